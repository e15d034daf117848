//! `orchestrate-gate`: the promotion gate as its own process, run as the gate's OS user (the
//! only user that can write the integration repository's protected refs). The orchestrator
//! invokes it; the human caller's identity is the process's real uid, never an argument.
//!
//! Exit codes: 0 the decision passed (and the ref moved), 1 it failed or holds for a human,
//! 2 invalid input (unknown run, not promoted, nothing to roll back), 5 internal or I/O error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gate::actions::{ensure_integration, ActionError};
use gate::client::GateReport;
use gate::decision::{Action, Verdict};
use gate::identity::{lookup_user, Caller};
use gate::integration::{Owner, Seed};
use gate::layout::LayoutError;
use gate::{receipt, Gate};

/// The promotion gate: the only process that moves `staging` and `main`.
#[derive(Debug, Parser)]
#[command(name = "orchestrate-gate", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The state directory.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The run id.
    #[arg(long, value_name = "RUN")]
    run: String,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create <state>/integration.git seeded from a repository (no-op if it exists).
    Init {
        /// The state directory.
        #[arg(long, value_name = "DIR")]
        state: PathBuf,
        /// The engineer's repository.
        #[arg(long, value_name = "REPO")]
        seed: PathBuf,
        /// The revision that becomes main and staging.
        #[arg(long, default_value = "HEAD")]
        rev: String,
        /// Also create a protected dev ref.
        #[arg(long)]
        dev: bool,
        /// Give the repository to this OS user (as root): only it can then write refs.
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
    },
    /// Decide on a reviewed run and fast-forward staging to its agent branch on a pass.
    Promote(RunArgs),
    /// staging -> main, by the invoking user if roles.yaml lists them as approver.
    Approve(RunArgs),
    /// Refuse a run for good (approvers only).
    Reject {
        #[command(flatten)]
        run: RunArgs,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Put main and staging back to before the run (approvers only); the agent branch stays.
    Rollback(RunArgs),
    /// The run's proof receipt: text, or with --json the gate-signed DSSE envelope.
    Receipt {
        #[command(flatten)]
        run: RunArgs,
        /// Print the signed in-toto Statement (DSSE) instead of text.
        #[arg(long)]
        json: bool,
        /// The orchestrator's audit head (SEQ:HASH) to record in the receipt.
        #[arg(long, value_name = "SEQ:HASH")]
        audit_head: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err((code, msg)) => {
            eprintln!("orchestrate-gate: error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn fail(e: ActionError) -> (u8, String) {
    let code = match &e {
        ActionError::Layout(LayoutError::BadRunId(_) | LayoutError::NoRun(_))
        | ActionError::NoBundle { .. }
        | ActionError::NoAgentBranch { .. }
        | ActionError::BaseNotIntegrated { .. }
        | ActionError::NotPromoted(_)
        | ActionError::NothingToRollBack(_)
        | ActionError::NoIntegration(_)
        | ActionError::Policy(_) => 2,
        _ => 5,
    };
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    (code, msg)
}

fn report(
    run: &str,
    action: Action,
    outcomes: Vec<gate::Outcome>,
) -> Result<ExitCode, (u8, String)> {
    let verdict = outcomes
        .last()
        .map_or(Verdict::Fail, |o| o.decision.verdict);
    let r = GateReport {
        run_id: run.to_owned(),
        action,
        verdict,
        outcomes,
    };
    let text = serde_json::to_string(&r).map_err(|e| (5, format!("printing the report: {e}")))?;
    println!("{text}");
    for o in &r.outcomes {
        for c in o
            .decision
            .checks
            .iter()
            .filter(|c| c.status == gate::CheckStatus::Fail)
        {
            for d in &c.detail {
                eprintln!("orchestrate-gate: {} failed: {d}", c.name);
            }
        }
    }
    Ok(ExitCode::from(if verdict == Verdict::Pass { 0 } else { 1 }))
}

/// Installed set-user-id to the gate's user, the gate runs with the caller's real uid and the
/// gate's effective uid: then the caller also chose `--state`, so that directory, its `keys/`
/// and `integration.git` must belong to root or the gate and be writable by nobody else —
/// otherwise a caller could point the gate at keys of their own making (or at a symlink to the
/// real integration repository) and have it sign and promote.
fn trusted_state(state: &std::path::Path) -> Result<(), (u8, String)> {
    use std::os::unix::fs::MetadataExt as _;
    let (ruid, euid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::geteuid().as_raw(),
    );
    if ruid == euid {
        return Ok(());
    }
    for p in [
        state.to_path_buf(),
        state.join("keys"),
        state.join("keys/gate"),
        state.join("integration.git"),
    ] {
        let meta = std::fs::symlink_metadata(&p)
            .map_err(|e| (2, format!("set-uid gate: {}: {e}", p.display())))?;
        let owner_ok = meta.uid() == 0 || meta.uid() == euid;
        if meta.file_type().is_symlink() || !owner_ok || meta.mode() & 0o022 != 0 {
            return Err((
                2,
                format!(
                    "set-uid gate: {} must be a directory owned by root or the gate and \
                     writable by nobody else",
                    p.display()
                ),
            ));
        }
    }
    Ok(())
}

fn run(cmd: Cmd) -> Result<ExitCode, (u8, String)> {
    let state = match &cmd {
        Cmd::Init { state, .. } | Cmd::Promote(RunArgs { state, .. }) => state,
        Cmd::Approve(a) | Cmd::Rollback(a) => &a.state,
        Cmd::Reject { run, .. } | Cmd::Receipt { run, .. } => &run.state,
    };
    trusted_state(state)?;
    match cmd {
        Cmd::Init {
            state,
            seed,
            rev,
            dev,
            owner,
        } => {
            let owner = match owner {
                Some(name) => {
                    let (uid, gid) =
                        lookup_user(&name).ok_or((2, format!("no OS user `{name}`")))?;
                    Some(Owner { uid, gid })
                }
                None => None,
            };
            let seed = Seed {
                source_repo: seed,
                rev,
                dev,
            };
            match ensure_integration(&state, &seed, owner).map_err(|e| (5, e.to_string()))? {
                Some(c) => println!("created {} at {c}", state.join("integration.git").display()),
                None => println!("{} exists", state.join("integration.git").display()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Promote(a) => {
            let o = Gate::new(&a.state).promote_run(&a.run).map_err(fail)?;
            report(&a.run, Action::PromoteStaging, o)
        }
        Cmd::Approve(a) => {
            let o = Gate::new(&a.state)
                .approve(&a.run, &Caller::invoking())
                .map_err(fail)?;
            report(&a.run, Action::ApproveMain, o)
        }
        Cmd::Reject { run: a, reason } => {
            let o = Gate::new(&a.state)
                .reject(&a.run, &Caller::invoking(), &reason)
                .map_err(fail)?;
            report(&a.run, Action::Reject, vec![o])
        }
        Cmd::Rollback(a) => {
            let o = Gate::new(&a.state)
                .rollback(&a.run, &Caller::invoking())
                .map_err(fail)?;
            report(&a.run, Action::Rollback, o)
        }
        Cmd::Receipt {
            run: a,
            json,
            audit_head,
        } => {
            let gate = Gate::new(&a.state);
            let r = receipt::build(&gate, &a.run, audit_head.as_deref()).map_err(fail)?;
            if json {
                let bytes = receipt::sign(&gate, &r).map_err(fail)?;
                println!("{}", String::from_utf8_lossy(&bytes));
            } else {
                print!("{}", receipt::render(&r));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
