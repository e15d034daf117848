//! `orchestrate stop RUN`: ask a run to stop. The running orchestrator refuses the next tool call
//! and stops before its next stage (STOP_HUMAN); a run whose orchestrator is gone is marked
//! stopped at once.

use clap::Args;

use super::context::Context;
use super::exit::ExitCode;
use super::output::{Mark, Output};
use super::start::StartError;
use crate::run;

/// `orchestrate stop`
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The run id.
    pub run: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrate stop`.
pub fn run(ctx: &Context, out: &Output, args: &StopArgs) -> Result<ExitCode, StartError> {
    let status = run::request_stop(&ctx.state_dir()?, &args.run)?;
    if out.is_json() {
        out.document(
            &serde_json::json!({"run_id": args.run, "stop_requested": true, "status": status}),
        );
    } else if status == run::status::STOPPED {
        out.mark(Mark::Ok, "stopped", format!("{} (STOP_HUMAN)", args.run));
    } else {
        out.mark(
            Mark::Ok,
            "stop requested",
            format!(
                "{} ({status}): it stops before its next tool call or stage with STOP_HUMAN",
                args.run
            ),
        );
    }
    Ok(ExitCode::Ok)
}
