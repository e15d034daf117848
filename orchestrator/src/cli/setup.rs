//! `orchestrate setup`: prepare this machine for contained runs (root only) — one system user and
//! group per role of roles.yaml plus the gate's and the orchestrator's, the state directory with
//! its owners and modes, and one ed25519 key pair per principal. `--remove` undoes it.
//!
//! It also installs the promotion gate as `<state>/bin/orchestrate-gate`, set-uid and set-gid to
//! the gate's user (a copy of the `orchestrate-gate` next to this binary), so the gate runs as
//! its own user whoever calls it; `--remove` deletes that copy before the gate's user goes.
//!
//! The work is in `sandbox::setup` (plan as data, then apply); this file reads
//! roles.yaml, picks the action and prints. Without root the command refuses with exit 3
//! (containment unavailable): the identity layer cannot be prepared, which is the same verdict
//! `doctor` and `start` give for that layer; only `--dry-run` works without root.

use std::path::PathBuf;

use clap::Args;
use protocol::load::{load_roles, LoadError};
use sandbox::setup::{self as sandbox_setup, RemoveOptions, SetupError, SetupSpec};
use serde::Serialize;

use super::context::{Context, ContextError};
use super::exit::{ExitCode, Failure};
use super::output::Output;

/// `orchestrate setup`
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The role policy to read users from (default: roles.yaml at the repository root).
    #[arg(long, value_name = "FILE")]
    roles: Option<PathBuf>,
    /// Print what would be done and change nothing (works without root).
    #[arg(long)]
    dry_run: bool,
    /// Undo setup: delete the key pairs, then the users and groups (system ids only).
    #[arg(long)]
    remove: bool,
    /// With --remove: also delete the whole state directory (audit database, runs,
    /// integration.git), which is kept otherwise.
    #[arg(long, requires = "remove")]
    purge: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

impl SetupArgs {
    /// True when `--json` was given.
    pub fn json(&self) -> bool {
        self.json
    }
}

/// Errors of `orchestrate setup`.
#[derive(Debug, thiserror::Error)]
pub enum SetupCliError {
    /// The repository or state directory could not be resolved.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The state directory could not be made absolute.
    #[error("resolving state directory {path}: {source}")]
    StateDir {
        /// The path given.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// roles.yaml could not be loaded or does not validate.
    #[error("loading the role policy: {0}")]
    Roles(#[from] LoadError),
    /// The policy names users setup cannot create (bad or duplicate names).
    #[error("planning setup: {0}")]
    Plan(#[source] SetupError),
    /// Setup needs root to create users and hand key files to them.
    #[error(
        "setup must run as root (effective uid {euid}): it creates system users and gives each \
         its own key; run `sudo orchestrate setup`, or `orchestrate setup --dry-run` to see the plan"
    )]
    NotRoot {
        /// The effective uid.
        euid: u32,
    },
    /// Applying or removing failed part-way (what was done before stays done; re-run to finish).
    #[error("{action}: {source}")]
    Apply {
        /// "setup" or "setup --remove".
        action: &'static str,
        /// Cause.
        source: SetupError,
    },
}

impl Failure for SetupCliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            SetupCliError::Context(e) => e.exit_code(),
            SetupCliError::Roles(_) | SetupCliError::Plan(_) => ExitCode::Usage,
            SetupCliError::NotRoot { .. } => ExitCode::NoContainment,
            SetupCliError::StateDir { .. } | SetupCliError::Apply { .. } => ExitCode::Internal,
        }
    }
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct SetupDocument<'a> {
    action: &'static str,
    dry_run: bool,
    state_dir: &'a std::path::Path,
    /// `--dry-run`: the steps (setup) or lines (remove) that would run.
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<serde_json::Value>,
    /// Otherwise: what was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a sandbox_setup::SetupReport>,
    changed: bool,
}

/// Runs `orchestrate setup`.
pub fn run(ctx: &Context, out: &Output, args: &SetupArgs) -> Result<ExitCode, SetupCliError> {
    let roles_path = match &args.roles {
        Some(p) => p.clone(),
        None => ctx.repo()?.join("roles.yaml"),
    };
    let roles = load_roles(&roles_path)?;
    let state = ctx.state_dir()?;
    let state_dir = std::path::absolute(&state).map_err(|source| SetupCliError::StateDir {
        path: state.clone(),
        source,
    })?;
    let spec = SetupSpec {
        roles: roles
            .roles
            .iter()
            .map(|(name, policy)| (name.as_str().to_owned(), policy.user.clone()))
            .collect(),
        gate_user: roles.gate.user.clone(),
        orchestrator_user: roles.orchestrator.user.clone(),
        state_dir: state_dir.clone(),
        db_file: crate::state::DB_FILE.to_owned(),
    };
    let mut plan = sandbox_setup::plan(&spec).map_err(SetupCliError::Plan)?;
    // The gate is installed set-id to its own user (see gate::setuid): a copy of the
    // orchestrate-gate built with this orchestrate. Without one there is nothing to install and
    // the gate keeps running as whoever calls it; that is said, never silent.
    let gate_missing = match gate::client::locate() {
        Ok(source) => {
            sandbox_setup::add_gate_binary(&mut plan, &spec, source);
            None
        }
        Err(e) => Some(e),
    };
    let action = if args.remove {
        "setup --remove"
    } else {
        "setup"
    };
    let options = RemoveOptions { purge: args.purge };
    if let (Some(e), false) = (&gate_missing, args.remove) {
        tracing::warn!(error = %e, "gate binary not found: not installed");
        out.line(format!(
            "warning: {e}: the gate is not installed as its own user and runs as its caller"
        ));
    }

    if args.dry_run {
        let (lines, value) = if args.remove {
            let lines = sandbox_setup::removal_plan(&plan, options);
            let value = serde_json::json!(lines);
            (lines, value)
        } else {
            let lines = plan.steps.iter().map(ToString::to_string).collect();
            (lines, serde_json::json!(plan.steps))
        };
        for line in &lines {
            out.line(line);
        }
        out.line("dry run: nothing was changed");
        out.document(&SetupDocument {
            action,
            dry_run: true,
            state_dir: &state_dir,
            plan: Some(value),
            report: None,
            changed: false,
        });
        return Ok(ExitCode::Ok);
    }

    // apply and remove check root before touching anything.
    let report = if args.remove {
        sandbox_setup::remove(&plan, options)
    } else {
        sandbox_setup::apply(&plan)
    }
    .map_err(|source| match source {
        SetupError::NotRoot(euid) => SetupCliError::NotRoot { euid },
        source => SetupCliError::Apply { action, source },
    })?;
    tracing::info!(action, changed = report.changed(), "setup finished");
    // The report's Display ends with its own summary line.
    for line in report.to_string().lines() {
        out.line(line);
    }
    out.document(&SetupDocument {
        action,
        dry_run: false,
        state_dir: &state_dir,
        plan: None,
        report: Some(&report),
        changed: report.changed(),
    });
    Ok(ExitCode::Ok)
}

#[cfg(test)]
#[path = "setup_tests.rs"]
mod tests;
