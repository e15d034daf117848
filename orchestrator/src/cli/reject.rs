//! `orchestrate reject RUN --reason TEXT`: an approver refuses a run for good. The gate records
//! it as a signed decision (the approver named by the OS), nothing moves, and any later
//! promotion of the run fails the gate's `not_rejected` check.

use clap::Args;

use super::approve::{call_gate, print, record_or_warn, resolve_run, GateCmdError};
use super::context::Context;
use super::exit::ExitCode;
use super::output::Output;

/// `orchestrate reject`
#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The run id, or an FR id (its latest run).
    pub run: String,
    /// Why (kept in the signed decision and the audit trail).
    #[arg(long)]
    pub reason: String,
    /// Print the gate's report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrate reject`.
pub fn run(ctx: &Context, out: &Output, args: &RejectArgs) -> Result<ExitCode, GateCmdError> {
    let state = ctx.state_dir()?;
    let run = resolve_run(&state, &args.run)?;
    let report = call_gate(&state, "reject", &run, &["--reason", &args.reason])?;
    record_or_warn(out, &state, &report)?;
    Ok(print(out, &report))
}
