//! `orchestrate rollback RUN`: `main` and `staging` back to exactly where they were before the
//! run's promotions, as gate decisions (the gate refuses when later promotions moved a ref past
//! the run: those are rolled back first). The agent branch is kept for inspection.

use clap::Args;

use super::approve::{call_gate, print, record_or_warn, resolve_run, GateCmdError};
use super::context::Context;
use super::exit::ExitCode;
use super::output::Output;

/// `orchestrate rollback`
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The run id, or an FR id (its latest run).
    pub run: String,
    /// Print the gate's report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrate rollback`.
pub fn run(ctx: &Context, out: &Output, args: &RollbackArgs) -> Result<ExitCode, GateCmdError> {
    let state = ctx.state_dir()?;
    let run = resolve_run(&state, &args.run)?;
    let report = call_gate(&state, "rollback", &run, &[])?;
    record_or_warn(out, &state, &report)?;
    Ok(print(out, &report))
}
