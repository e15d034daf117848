//! Logs go to stderr through `tracing`. `RUST_LOG` wins when set (`level` or
//! `target=level,...`, the `Targets` syntax); otherwise `-v` raises the level from warn (default)
//! to info, debug, trace.
//!
//! `Targets`, not `EnvFilter`: the `orchestrate` front sets logging up on the launch's hot path,
//! and `EnvFilter` brings the regex engine with its Unicode tables, about a tenth of a
//! millisecond of relocations and page faults at every process start.

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter `RUST_LOG` asks for, else the one `-v` asks for.
fn filter(verbose: u8, rust_log: Option<&str>) -> Targets {
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    rust_log
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| Targets::from_str(s).ok())
        .unwrap_or_else(|| Targets::new().with_default(level))
}

/// Installs the global subscriber. Called once, before dispatch.
pub fn init(verbose: u8) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    // try_init fails only if a subscriber is already set (tests calling main twice): keep it.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter(verbose, rust_log.as_deref()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn verbosity_sets_the_default_level() {
        assert!(filter(0, None).would_enable("orchestrate", &Level::WARN));
        assert!(!filter(0, None).would_enable("orchestrate", &Level::INFO));
        assert!(filter(2, None).would_enable("orchestrate", &Level::DEBUG));
        assert!(filter(3, None).would_enable("orchestrate", &Level::TRACE));
    }

    #[test]
    fn rust_log_wins_and_a_bad_one_falls_back() {
        let f = filter(0, Some("orchestrate_sandbox=trace,info"));
        assert!(f.would_enable("orchestrate_sandbox::exec", &Level::TRACE));
        assert!(f.would_enable("orchestrate", &Level::INFO));
        assert!(!f.would_enable("orchestrate", &Level::DEBUG));
        let bad = filter(1, Some("=not a filter=="));
        assert!(bad.would_enable("orchestrate", &Level::INFO));
        assert!(!bad.would_enable("orchestrate", &Level::DEBUG));
    }
}
