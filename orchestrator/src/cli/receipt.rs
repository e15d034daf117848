//! `orchestrate receipt RUN [--json]`: the run's proof receipt — what changed, what was
//! validated (each check with its evidence hashes), what remains uncertain. The gate builds and
//! (with --json) signs it: an in-toto Statement in a DSSE envelope. The orchestrator adds the
//! current head of its audit chain, so the receipt pins the trail it belongs to.

use clap::Args;

use super::approve::{resolve_run, GateCmdError};
use super::context::Context;
use super::exit::ExitCode;
use super::output::Output;
use crate::state::Store;

/// `orchestrate receipt`
#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// The run id, or an FR id (its latest run).
    pub run: String,
    /// Print the gate-signed receipt (DSSE envelope around an in-toto Statement).
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrate receipt`.
pub fn run(ctx: &Context, _out: &Output, args: &ReceiptArgs) -> Result<ExitCode, GateCmdError> {
    let state = ctx.state_dir()?;
    let run = resolve_run(&state, &args.run)?;
    // Decisions an approver made without write access to the audit trail land in it now, so
    // the head this receipt cites covers them.
    super::approve::record_late(&state, &run)?;
    let head = Store::open_existing(&state)
        .and_then(|s| s.head())
        .ok()
        .map(|h| h.to_string());
    let bin = gate::client::locate_for(&state).map_err(GateCmdError::Gate)?;
    let s = state.to_string_lossy();
    let mut argv = vec!["receipt", "--state", &s, "--run", &run];
    if args.json {
        argv.push("--json");
    }
    if let Some(h) = &head {
        argv.extend(["--audit-head", h]);
    }
    let (code, stdout, stderr) = gate::client::run_raw(&bin, &argv).map_err(GateCmdError::Gate)?;
    if code != Some(0) {
        return Err(GateCmdError::Gate(gate::client::ClientError::Refused {
            code,
            stderr,
        }));
    }
    use std::io::Write as _;
    // The gate's bytes as they are: the signed JSON must not be re-encoded.
    let _ = std::io::stdout().lock().write_all(&stdout);
    Ok(ExitCode::Ok)
}
