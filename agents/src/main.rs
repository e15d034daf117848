//! `orchestrate-agent <role> --run RUN`: one role process behind the frame socket on fd
//! `$ORCHESTRATE_FRAME_FD`. Started by the orchestrator, never by hand.

use clap::Parser;
use protocol::RoleName;

/// One orchestrate role process.
#[derive(Debug, Parser)]
#[command(name = "orchestrate-agent", version)]
struct Args {
    /// The role: planner, codegen, security-review, test-runner, cost-control, progress-evaluator.
    role: RoleName,
    /// The run id.
    #[arg(long)]
    run: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match orchestrate_agents::agent::serve(args.role, args.run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", args.role);
            std::process::ExitCode::FAILURE
        }
    }
}
