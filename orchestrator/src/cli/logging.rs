//! Logs go to stderr through `tracing`. `RUST_LOG` wins when set; otherwise `-v` raises the
//! level from warn (default) to info, debug, trace.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Called once, before dispatch.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // try_init fails only if a subscriber is already set (tests calling main twice): keep it.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
