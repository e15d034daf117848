//! Progress of a run on a terminal: each step's line is printed as always, and below it a live
//! line shows what is running now and for how long (the test suite can take minutes). Off a
//! terminal (a pipe, a file, CI, `TERM=dumb`) only the plain lines are printed.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::run::Reporter;

/// Clears the live line when the reporter is dropped (the run is over).
struct Live(ProgressBar);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// A reporter with a live status line, when stdout is a terminal.
pub fn terminal_reporter() -> Option<Reporter> {
    if !std::io::stdout().is_terminal() || std::env::var_os("TERM").is_some_and(|t| t == "dumb") {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
    // `{spinner}` and `{elapsed}` carry no colour; NO_COLOR has nothing to turn off here.
    let style = ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(120));
    let live = Live(bar);
    Some(Box::new(move |line: &str| {
        live.0.println(line);
        live.0.set_message(now_running(line));
    }))
}

/// What the live line says after `line`: its first line (cut to the terminal's width by
/// `{wide_msg}`).
fn now_running(line: &str) -> String {
    line.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::now_running;

    #[test]
    fn the_live_line_is_the_first_line() {
        assert_eq!(now_running("[plan] ok\nmore"), "[plan] ok");
        assert_eq!(now_running(""), "");
    }
}
