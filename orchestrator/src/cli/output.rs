//! How subcommands print: one JSON document on stdout with `--json`, plain lines otherwise;
//! colour only on a terminal and never when `NO_COLOR` is set (https://no-color.org) or
//! `TERM=dumb`. Diagnostics and logs go to stderr, so stdout stays parseable.

use std::io::{IsTerminal, Write};

use serde::Serialize;

use super::exit::ExitCode;

/// A verdict word at the start of a text line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Green "ok".
    Ok,
    /// Red "FAIL".
    Fail,
    /// Yellow "warn".
    Warn,
}

impl Mark {
    fn word(self) -> &'static str {
        match self {
            Mark::Ok => "ok",
            Mark::Fail => "FAIL",
            Mark::Warn => "warn",
        }
    }

    fn ansi(self) -> &'static str {
        match self {
            Mark::Ok => "\x1b[32m",
            Mark::Fail => "\x1b[1;31m",
            Mark::Warn => "\x1b[33m",
        }
    }
}

/// The printer a subcommand writes through.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
    color_out: bool,
    color_err: bool,
}

impl Output {
    /// A printer for a command run with (`json = true`) or without `--json`.
    pub fn new(json: bool) -> Self {
        let allowed = color_allowed(
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var_os("TERM").as_deref(),
        );
        Self {
            json,
            color_out: allowed && !json && std::io::stdout().is_terminal(),
            color_err: allowed && std::io::stderr().is_terminal(),
        }
    }

    /// True when the command should print one JSON document instead of text.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints one text line on stdout (ignored in JSON mode, where only the document is printed).
    pub fn line(&self, text: impl std::fmt::Display) {
        if !self.json {
            write_out(format_args!("{text}\n"));
        }
    }

    /// Prints `mark subject: detail` (detail may be empty) on stdout in text mode.
    pub fn mark(
        &self,
        mark: Mark,
        subject: impl std::fmt::Display,
        detail: impl std::fmt::Display,
    ) {
        if self.json {
            return;
        }
        let word = paint(self.color_out, mark, mark.word());
        let detail = detail.to_string();
        if detail.is_empty() {
            write_out(format_args!("{word:<4} {subject}\n"));
        } else {
            write_out(format_args!("{word:<4} {subject}: {detail}\n"));
        }
    }

    /// Prints `value` as the command's JSON document (JSON mode only).
    pub fn document<T: Serialize>(&self, value: &T) {
        if !self.json {
            return;
        }
        match serde_json::to_string_pretty(value) {
            Ok(s) => write_out(format_args!("{s}\n")),
            // Only a map with non-string keys fails here; the types we print have none.
            Err(e) => tracing::error!(error = %e, "cannot print JSON output"),
        }
    }

    /// Reports an error that ends the command: `error: ...` with its causes on stderr and, in
    /// JSON mode, `{"error": {...}}` on stdout so a caller parsing stdout sees it too.
    pub fn error(&self, err: &dyn std::error::Error, code: ExitCode) {
        let mut msg = err.to_string();
        let mut src = err.source();
        while let Some(s) = src {
            let s_text = s.to_string();
            // thiserror messages usually embed their source already; do not repeat it.
            if !msg.contains(&s_text) {
                msg.push_str(": ");
                msg.push_str(&s_text);
            }
            src = s.source();
        }
        let word = paint(self.color_err, Mark::Fail, "error");
        let _ = writeln!(std::io::stderr().lock(), "{word}: {msg}");
        if self.json {
            self.document(&serde_json::json!({
                "error": { "message": msg, "exit_code": code.code() }
            }));
        }
    }
}

fn color_allowed(no_color: Option<&std::ffi::OsStr>, term: Option<&std::ffi::OsStr>) -> bool {
    let no_color_set = no_color.is_some_and(|v| !v.is_empty());
    let dumb = term.is_some_and(|t| t == "dumb");
    !no_color_set && !dumb
}

fn paint(color: bool, mark: Mark, text: &str) -> String {
    if color {
        format!("{}{text}\x1b[0m", mark.ansi())
    } else {
        text.to_string()
    }
}

fn write_out(args: std::fmt::Arguments<'_>) {
    // A closed stdout (`orchestrate ... | head`) must not panic the way println! does; the exit
    // code still tells the caller the verdict.
    let _ = std::io::stdout().lock().write_fmt(args);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn no_color_and_dumb_terminals_disable_colour() {
        assert!(color_allowed(None, Some(OsStr::new("xterm"))));
        assert!(!color_allowed(
            Some(OsStr::new("1")),
            Some(OsStr::new("xterm"))
        ));
        // The spec: NO_COLOR set to an empty string does not count.
        assert!(color_allowed(Some(OsStr::new("")), None));
        assert!(!color_allowed(None, Some(OsStr::new("dumb"))));
    }

    #[test]
    fn painting_wraps_only_when_enabled() {
        assert_eq!(paint(false, Mark::Ok, "ok"), "ok");
        assert_eq!(paint(true, Mark::Ok, "ok"), "\x1b[32mok\x1b[0m");
    }
}
