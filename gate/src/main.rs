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
use gate::identity::lookup_user;
use gate::integration::{Owner, Seed};
use gate::layout::LayoutError;
use gate::setuid::{self, Invocation};
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
    // Before anything else reads the environment or opens a file (see gate::setuid).
    let inv = match setuid::harden() {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("orchestrate-gate: error: {e}");
            return ExitCode::from(5);
        }
    };
    let cli = Cli::parse();
    match run(cli.command, &inv) {
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

fn run(cmd: Cmd, inv: &Invocation) -> Result<ExitCode, (u8, String)> {
    let state = match &cmd {
        Cmd::Init { state, .. } | Cmd::Promote(RunArgs { state, .. }) => state,
        Cmd::Approve(a) | Cmd::Rollback(a) => &a.state,
        Cmd::Reject { run, .. } | Cmd::Receipt { run, .. } => &run.state,
    };
    if inv.set_id {
        setuid::trusted_state(state, inv.gate_uid).map_err(|e| (2, e.to_string()))?;
    }
    let caller = &inv.caller;
    match cmd {
        Cmd::Init {
            state,
            seed,
            rev,
            dev,
            owner,
        } => {
            if inv.set_id && !setuid::is_orchestrator(&state, caller.uid) {
                return Err((
                    2,
                    format!(
                        "set-id gate: {} may not create the integration repository (root or \
                         the owner of {} may)",
                        caller.display(),
                        state.join("runs").display()
                    ),
                ));
            }
            let owner = match owner {
                // Set-id, the gate is its own user already: what it creates is the gate's;
                // `secure_tree` then takes every group/other write bit away.
                _ if inv.set_id => Some(Owner {
                    uid: inv.gate_uid,
                    gid: nix::unistd::getegid().as_raw(),
                }),
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
            if inv.set_id && !setuid::is_orchestrator(&a.state, caller.uid) {
                return Err((
                    2,
                    format!(
                        "set-id gate: {} may not ask for a promotion (root or the owner of {} \
                         may)",
                        caller.display(),
                        a.state.join("runs").display()
                    ),
                ));
            }
            let o = Gate::new(&a.state).promote_run(&a.run).map_err(fail)?;
            report(&a.run, Action::PromoteStaging, o)
        }
        Cmd::Approve(a) => {
            let o = Gate::new(&a.state).approve(&a.run, caller).map_err(fail)?;
            report(&a.run, Action::ApproveMain, o)
        }
        Cmd::Reject { run: a, reason } => {
            let o = Gate::new(&a.state)
                .reject(&a.run, caller, &reason)
                .map_err(fail)?;
            report(&a.run, Action::Reject, vec![o])
        }
        Cmd::Rollback(a) => {
            let o = Gate::new(&a.state).rollback(&a.run, caller).map_err(fail)?;
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
