//! The `orchestrate` command line.
//!
//! Layout: this file holds the clap [`Cli`] (global flags) and the [`Command`] enum, and
//! dispatches; each subcommand lives in its own file with its `Args` type, its own error enum
//! (implementing [`exit::Failure`], which maps it to a row of the exit-code table) and a
//! `run(&Context, &Output, &Args) -> Result<ExitCode, Error>` function. A subcommand returns
//! `Ok(ExitCode::Failed)` when it worked and its answer is "no" (findings, tampering), and
//! `Err(..)` when it could not do its job; dispatch prints the error once, on stderr (and as
//! `{"error": ...}` on stdout under `--json`).
//!
//! Adding a subcommand `frobnicate`:
//! 1. `src/cli/frobnicate.rs` with `pub struct FrobnicateArgs` (`#[derive(clap::Args)]`, with a
//!    `json: bool` field if it is a read command), `pub enum FrobnicateError` (thiserror) plus
//!    `impl Failure for FrobnicateError`, and `pub fn run(ctx, out, args)`;
//! 2. here: `mod frobnicate;`, a variant `Frobnicate(frobnicate::FrobnicateArgs)` in
//!    [`Command`] (its doc comment is the help text), and one arm in [`Command::json`] and
//!    [`dispatch`].
//!
//! Exit codes: see [`exit`] (the one table).

mod approve;
mod audit;
mod context;
mod doctor;
pub mod exit;
pub mod front;
mod init;
mod log;
mod logging;
pub mod output;
mod policy;
mod progress;
mod receipt;
mod reject;
mod resume;
mod review;
mod rollback;
mod sandbox;
mod scan;
mod setup;
mod start;
mod status;
mod stop;

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

pub use context::{Context, ContextError};
use exit::{ExitCode, Failure};
use output::Output;

/// Lets AI coding agents work unattended safely: every run is bound to a Functional Requirement,
/// split across contained role processes, gated, and audited.
#[derive(Debug, Parser)]
#[command(name = "orchestrate", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok, 1 check failed / findings / tampering detected, \
2 usage or invalid input, 3 containment unavailable, 4 run stopped, 5 internal or I/O error."
)]
pub struct Cli {
    /// The options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The options every subcommand takes (shared with the front's sandbox-only parser).
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The repository (default: the git top level of the current directory, else the current
    /// directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Where orchestrate keeps its database and audit trail (default: /var/lib/orchestrate as
    /// root, else $XDG_STATE_HOME/orchestrate or ~/.local/state/orchestrate).
    #[arg(long, global = true, value_name = "DIR", env = "ORCHESTRATE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    fn context(&self) -> Context {
        Context::new(self.repo.clone(), self.state_dir.clone())
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write roles.yaml, an example FR (frs/FR-1.yaml) and its frs/config.yaml into the
    /// repository; refuses (exit 2) if any of them exists.
    Init(init::InitArgs),
    /// Inspect the audit trail.
    Audit(audit::AuditArgs),
    /// Run the security-review rules over a path, a git range (--diff BASE..HEAD) or the staged
    /// change (--staged, the pre-commit hook); exit 1 when a finding at or above --fail-on
    /// (default high) exists. --sarif FILE also writes SARIF 2.1.0.
    Scan(scan::ScanArgs),
    /// Show a run's security review (signed artifact) grouped by severity; --sarif writes
    /// SARIF 2.1.0; exit 1 on a high or critical finding or a signature that does not verify.
    Review(review::ReviewArgs),
    /// Run an FR end to end: preflight, baseline, plan, iterations (codegen, tests, progress,
    /// review, budget) on agent/<FR>/<run>, then hand it to the gate, which promotes staging
    /// (--no-promote: stop at the branch). Exit 0 done, 1 the gate refused, 4 stopped or paused
    /// (reason printed).
    Start(start::StartArgs),
    /// Show the runs, or one run in detail (`interrupted` when its orchestrator died).
    Status(status::StatusArgs),
    /// Print a run's audit events; -f follows until the run ends.
    Log(log::LogArgs),
    /// Ask a run to stop (STOP_HUMAN); an interrupted run is marked stopped at once.
    Stop(stop::StopArgs),
    /// Continue a stopped, paused or interrupted run; needs --reauthorize from a person.
    Resume(resume::ResumeArgs),
    /// Promote a run from staging to main through the gate; only a user listed in roles.yaml
    /// `approvers` (identified by the OS) can. --update-local fast-forwards this clone's main.
    Approve(approve::ApproveArgs),
    /// Refuse a run for good through the gate (approvers only), with --reason.
    Reject(reject::RejectArgs),
    /// Put main and staging back to before a run (approvers only); the agent branch is kept.
    Rollback(rollback::RollbackArgs),
    /// A run's proof receipt: what changed, what was validated, what remains uncertain;
    /// --json prints it signed by the gate (in-toto Statement in DSSE).
    Receipt(receipt::ReceiptArgs),
    /// Validate the policy documents: roles.yaml and every FR with its config.yaml.
    Policy(policy::PolicyArgs),
    /// Show which containment layers are live on this host and for which roles, and why not.
    /// Exit 3 when a layer roles.yaml requires is not live for some role.
    Doctor(doctor::DoctorArgs),
    /// Run a command under a role's containment: `sandbox exec --role R -- CMD...`.
    Sandbox(sandbox::SandboxArgs),
    /// Prepare this machine (root): a system user and group per role, for the gate and the
    /// orchestrator, the state directory with its owners and modes, and an ed25519 key pair per
    /// principal readable only by its user. Idempotent; --dry-run prints the plan; --remove
    /// undoes it. Without root: exit 3.
    Setup(setup::SetupArgs),
}

impl Command {
    /// True when the command was asked for JSON output.
    fn json(&self) -> bool {
        match self {
            Command::Init(_) => false,
            Command::Audit(a) => a.json(),
            Command::Scan(a) => a.json(),
            Command::Review(a) => a.json(),
            Command::Start(a) => a.json,
            Command::Status(a) => a.json,
            Command::Log(a) => a.json,
            Command::Stop(a) => a.json,
            Command::Resume(a) => a.json,
            Command::Approve(a) => a.json,
            Command::Reject(a) => a.json,
            Command::Rollback(a) => a.json,
            Command::Receipt(a) => a.json,
            Command::Policy(a) => a.json(),
            Command::Doctor(a) => a.json(),
            Command::Sandbox(a) => a.json(),
            Command::Setup(a) => a.json(),
        }
    }
}

/// Parses the command line, sets up logging, runs the subcommand and returns its exit code.
/// Usage errors exit 2 from inside clap, as the table says.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Sandbox(a) = &cli.command {
        // The engine's loader always loads (or fails with the located error).
        return sandbox::main(&cli.global, a, sandbox::load_roles_full, None)
            .unwrap_or_else(|| ExitCode::Internal.into());
    }
    logging::init(cli.global.verbose);
    dispatch(&cli).into()
}

/// Runs the subcommand `cli` names.
pub fn dispatch(cli: &Cli) -> ExitCode {
    let ctx = cli.global.context();
    let out = Output::new(cli.command.json());
    match &cli.command {
        Command::Init(a) => finish(&out, init::run(&ctx, &out, a)),
        Command::Audit(a) => finish(&out, audit::run(&ctx, &out, a)),
        Command::Scan(a) => finish(&out, scan::run(&ctx, &out, a)),
        Command::Review(a) => finish(&out, review::run(&ctx, &out, a)),
        Command::Start(a) => finish(&out, start::run(&ctx, &out, a)),
        Command::Status(a) => finish(&out, status::run(&ctx, &out, a)),
        Command::Log(a) => finish(&out, log::run(&ctx, &out, a)),
        Command::Stop(a) => finish(&out, stop::run(&ctx, &out, a)),
        Command::Resume(a) => finish(&out, resume::run(&ctx, &out, a)),
        Command::Approve(a) => finish(&out, approve::run(&ctx, &out, a)),
        Command::Reject(a) => finish(&out, reject::run(&ctx, &out, a)),
        Command::Rollback(a) => finish(&out, rollback::run(&ctx, &out, a)),
        Command::Receipt(a) => finish(&out, receipt::run(&ctx, &out, a)),
        Command::Policy(a) => finish(&out, policy::run(&ctx, &out, a)),
        Command::Doctor(a) => finish(&out, doctor::run(&ctx, &out, a)),
        // `main` runs `sandbox` itself to pass the command's exact status through.
        Command::Sandbox(a) => finish(
            &out,
            sandbox::run(&ctx, &out, a).map(|s| {
                if s == 0 {
                    ExitCode::Ok
                } else {
                    ExitCode::Failed
                }
            }),
        ),
        Command::Setup(a) => finish(&out, setup::run(&ctx, &out, a)),
    }
}

fn finish<E: Failure>(out: &Output, result: Result<ExitCode, E>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            tracing::debug!(error = ?e, "command failed");
            out.error(&e, code);
            code
        }
    }
}
