//! `orchestrate approve RUN [--update-local]`: staging → main through the gate.
//!
//! The orchestrator never moves a protected ref itself: it runs `orchestrate-gate approve` as a
//! separate process, which takes the approver's identity from its own real uid (the kernel's
//! word, never a flag or a variable), re-verifies every artifact, and fast-forwards `main` only
//! for a user roles.yaml lists as approver. The gate's signed decisions are then recorded as
//! audit events. This file also holds what `reject`, `rollback` and `receipt` share: finding the
//! run, calling the gate, recording and printing its report.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;
use gate::client::{ClientError, GateReport};
use gate::decision::{CheckStatus, Verdict};

use super::context::{Context, ContextError};
use super::exit::{ExitCode, Failure};
use super::output::{Mark, Output};
use crate::state::{Event, Store, StoreError};

/// `orchestrate approve`
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The run id, or an FR id (its latest run).
    pub run: String,
    /// Then fast-forward this clone's local `main` to the approved main, adding the remote
    /// `orchestrate` (the integration repository) if it is missing.
    #[arg(long)]
    pub update_local: bool,
    /// Print the gate's report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Errors of the gate commands (approve, reject, rollback, receipt).
#[derive(Debug, thiserror::Error)]
pub enum GateCmdError {
    /// The state directory or repository could not be resolved.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Neither a run directory nor a recorded run of that FR.
    #[error("no run `{arg}` in {state} (give a run id, or an FR id with recorded runs)")]
    NoRun {
        /// What was given.
        arg: String,
        /// The state directory.
        state: PathBuf,
    },
    /// The gate could not be run or refused to decide.
    #[error("the gate: {0}")]
    Gate(#[source] ClientError),
    /// Writing the built-in policy for the gate (`<state>/roles.yaml`) failed.
    #[error("writing the gate's policy {path}: {source}")]
    WritePolicy {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Recording the decision in the audit trail failed (the decision itself stands: it is
    /// signed and stored in the run directory).
    #[error("recording the gate's decision in the audit trail: {0}")]
    Audit(#[source] StoreError),
    /// A git step of `--update-local` failed.
    #[error("updating the local clone ({step}) in {repo}: {stderr}")]
    LocalGit {
        /// What was being done.
        step: &'static str,
        /// The clone.
        repo: PathBuf,
        /// git's message.
        stderr: String,
    },
    /// git could not be started.
    #[error("running git in {repo}: {source}")]
    GitSpawn {
        /// The clone.
        repo: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl Failure for GateCmdError {
    fn exit_code(&self) -> ExitCode {
        match self {
            GateCmdError::Context(e) => e.exit_code(),
            GateCmdError::NoRun { .. } => ExitCode::Usage,
            GateCmdError::Gate(ClientError::Refused { code: Some(2), .. }) => ExitCode::Usage,
            GateCmdError::Gate(_)
            | GateCmdError::Audit(_)
            | GateCmdError::LocalGit { .. }
            | GateCmdError::GitSpawn { .. }
            | GateCmdError::WritePolicy { .. } => ExitCode::Internal,
        }
    }
}

/// A run id from `arg`: a run directory of that name, else the newest recorded run of the FR
/// `arg`.
pub(super) fn resolve_run(state: &Path, arg: &str) -> Result<String, GateCmdError> {
    let no_run = || GateCmdError::NoRun {
        arg: arg.to_owned(),
        state: state.to_owned(),
    };
    if gate::layout::check_run_id(arg).is_ok() && state.join("runs").join(arg).is_dir() {
        return Ok(arg.to_owned());
    }
    // An approver who is not the orchestrator's user cannot list `<state>/runs` (0750,
    // orchestrator and gate only): a full run id then goes to the gate, which can, as is.
    let runs_closed = std::fs::read_dir(state.join("runs"))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
    if runs_closed && looks_like_run_id(arg) {
        return Ok(arg.to_owned());
    }
    let store = Store::open_existing(state).map_err(|_| no_run())?;
    let runs = store.runs().map_err(|_| no_run())?;
    runs.into_iter()
        .filter(|r| r.fr_id == arg)
        .max_by_key(|r| r.created_at)
        .map(|r| r.run_id)
        .ok_or_else(no_run)
}

/// `<FR-id>-<yyyymmddThhmmss>-<4 hex>` (INTERFACES.md), as opposed to an FR id.
fn looks_like_run_id(arg: &str) -> bool {
    if gate::layout::check_run_id(arg).is_err() {
        return false;
    }
    let parts: Vec<&str> = arg.rsplitn(3, '-').collect();
    let [hex, stamp, fr] = parts.as_slice() else {
        return false;
    };
    let stamp_ok = stamp.len() == 15
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            _ => b.is_ascii_digit(),
        });
    !fr.is_empty() && stamp_ok && hex.len() == 4 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Runs `orchestrate-gate <action> --state S --run R <extra>` and returns its report.
pub(super) fn call_gate(
    state: &Path,
    action: &str,
    run: &str,
    extra: &[&str],
) -> Result<GateReport, GateCmdError> {
    let bin = gate::client::locate_for(state).map_err(GateCmdError::Gate)?;
    let s = state.to_string_lossy();
    let mut args = vec![action, "--state", &s, "--run", run];
    args.extend_from_slice(extra);
    gate::client::invoke(&bin, &args).map_err(GateCmdError::Gate)
}

/// The run's stored gate decisions (verified under the gate's key) whose SHA-256 no `gate.*`
/// event of the run cites yet, other than `skip`, as audit events marked `recorded_late`.
fn late_decisions(store: &Store, state: &Path, run: &str, skip: &[&str]) -> Vec<Event> {
    let recorded: Vec<String> = match store.run_events(run, 0) {
        Ok(evs) => evs
            .into_iter()
            .filter(|e| e.kind.starts_with("gate."))
            .filter_map(|e| e.body["decision_sha256"].as_str().map(str::to_owned))
            .collect(),
        Err(e) => {
            tracing::warn!(run, error = %e, "reading the run's audit events");
            return Vec::new();
        }
    };
    let stored = match gate::layout::StateDir::new(state).decisions(run) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(run, error = %e, "reading the run's gate decisions");
            return Vec::new();
        }
    };
    stored
        .into_iter()
        .filter(|d| !recorded.contains(&d.sha256) && !skip.contains(&d.sha256.as_str()))
        .map(|d| {
            let protected = [
                gate::integration::MAIN,
                gate::integration::STAGING,
                gate::integration::DEV,
            ]
            .contains(&d.decision.target_ref.as_str());
            let moved = match (&d.decision.verdict, &d.decision.from, &d.decision.to) {
                (Verdict::Pass, Some(from), Some(to)) if from != to && protected => {
                    Some(gate::Moved {
                        refname: d.decision.target_ref.clone(),
                        from: from.clone(),
                        to: to.clone(),
                    })
                }
                _ => None,
            };
            let o = gate::Outcome {
                decision: d.decision,
                file: d.path,
                sha256: d.sha256,
                moved,
            };
            let (kind, mut body) = gate::client::audit_event(&o);
            body["recorded_late"] = serde_json::Value::Bool(true);
            Event::for_run(run.to_owned(), kind, body)
        })
        .collect()
}

/// Appends the run's gate decisions the audit trail lacks (see [`record`]); a no-op when this
/// user cannot write the audit database or nothing is missing.
pub(super) fn record_late(state: &Path, run: &str) -> Result<(), GateCmdError> {
    if !audit_writable(state) {
        return Ok(());
    }
    let mut store = Store::open(state).map_err(GateCmdError::Audit)?;
    let events = late_decisions(&store, state, run, &[]);
    if !events.is_empty() {
        store.append_batch(&events).map_err(GateCmdError::Audit)?;
    }
    Ok(())
}

/// Whether this process may write the audit database: an approver who is not the
/// orchestrator's user cannot (setup makes it 0600), and the gate's decision then stands on its
/// own (signed, in the run directory) while the audit event waits for the orchestrator.
fn audit_writable(state: &Path) -> bool {
    let db = state.join(crate::state::DB_FILE);
    if db.exists() {
        access(&db, libc::W_OK)
    } else {
        access(state, libc::W_OK | libc::X_OK)
    }
}

/// `access(2)`: whether the real uid may `mode` the path.
fn access(path: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated string that outlives the call; access only reads it.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

/// [`record`], or a printed warning when this user cannot write the audit database.
pub(super) fn record_or_warn(
    out: &Output,
    state: &Path,
    report: &GateReport,
) -> Result<(), GateCmdError> {
    if audit_writable(state) {
        return record(state, report);
    }
    tracing::warn!(run = %report.run_id, "audit database not writable by this user");
    out.line(format!(
        "warning: {} is not writable by you: the gate's decision is signed and stored in the run \
         directory, but no audit event was appended",
        state.join(crate::state::DB_FILE).display()
    ));
    Ok(())
}

/// Appends one `gate.<action>` audit event per decision the gate wrote.
/// Decisions the gate made earlier for the run that the audit trail lacks (an approver who
/// cannot write the database made them) come first, marked `recorded_late`.
pub(super) fn record(state: &Path, report: &GateReport) -> Result<(), GateCmdError> {
    let mut store = Store::open(state).map_err(GateCmdError::Audit)?;
    let current: Vec<&str> = report.outcomes.iter().map(|o| o.sha256.as_str()).collect();
    let mut events = late_decisions(&store, state, &report.run_id, &current);
    events.extend(report.outcomes.iter().map(|o| {
        let (kind, body) = gate::client::audit_event(o);
        Event::for_run(report.run_id.clone(), kind, body)
    }));
    store.append_batch(&events).map_err(GateCmdError::Audit)?;
    Ok(())
}

/// Prints the report (text or JSON) and maps its verdict to an exit code.
pub(super) fn print(out: &Output, report: &GateReport) -> ExitCode {
    out.document(report);
    for o in &report.outcomes {
        let d = &o.decision;
        let mark = match d.verdict {
            Verdict::Pass => Mark::Ok,
            Verdict::Fail => Mark::Fail,
            Verdict::Hold => Mark::Warn,
        };
        let what = match &o.moved {
            Some(m) => format!("{} {} -> {}", m.refname, short(&m.from), short(&m.to)),
            None => format!("{} not moved", d.target_ref),
        };
        out.mark(
            mark,
            format!("{} {}", d.action.as_str(), report.run_id),
            format!("{what} (decision sha256:{})", o.sha256),
        );
        for c in d.checks.iter().filter(|c| c.status == CheckStatus::Fail) {
            for why in &c.detail {
                out.line(format!("     {}: {why}", c.name));
            }
        }
        if let Some(r) = &d.reason {
            out.line(format!("     reason: {r}"));
        }
    }
    if report.verdict == Verdict::Pass {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Runs `orchestrate approve`.
pub fn run(ctx: &Context, out: &Output, args: &ApproveArgs) -> Result<ExitCode, GateCmdError> {
    let state = ctx.state_dir()?;
    let run = resolve_run(&state, &args.run)?;
    let report = call_gate(&state, "approve", &run, &[])?;
    record_or_warn(out, &state, &report)?;
    let code = print(out, &report);
    if code == ExitCode::Ok && args.update_local {
        let repo = ctx.repo()?;
        update_local(&repo, &state.join(gate::integration::INTEGRATION_DIR))?;
        out.line(format!("updated local main in {}", repo.display()));
    }
    Ok(code)
}

fn git(repo: &Path, step: &'static str, args: &[&str]) -> Result<String, GateCmdError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|source| GateCmdError::GitSpawn {
            repo: repo.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(GateCmdError::LocalGit {
            step,
            repo: repo.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Adds remote `orchestrate` (the integration repository) if missing, fetches it, and
/// fast-forwards local `main` to `orchestrate/main` — never a merge or a reset.
pub fn update_local(repo: &Path, integration: &Path) -> Result<(), GateCmdError> {
    let url = integration.to_string_lossy().into_owned();
    // The integration repository belongs to the gate's user: trust it for this fetch only.
    let trust = format!("safe.directory={url}");
    if git(
        repo,
        "reading remote orchestrate",
        &["remote", "get-url", "orchestrate"],
    )
    .is_err()
    {
        git(
            repo,
            "adding remote orchestrate",
            &["remote", "add", "orchestrate", &url],
        )?;
    }
    // The upload-pack git starts on the integration repository does not inherit `-c`
    // options, and that repository belongs to the gate's user (installed set-id by setup): the
    // remote's own upload-pack command carries the trust, for this one path, so a plain
    // `git fetch orchestrate` in the clone works too.
    if !url.contains('\'') {
        let upload_pack = format!("git -c 'safe.directory={url}' upload-pack");
        git(
            repo,
            "configuring remote orchestrate",
            &["config", "remote.orchestrate.uploadpack", &upload_pack],
        )?;
    }
    git(
        repo,
        "fetching orchestrate",
        &["-c", &trust, "fetch", "--quiet", "orchestrate"],
    )?;
    let branch = git(
        repo,
        "reading HEAD",
        &["symbolic-ref", "--quiet", "--short", "HEAD"],
    )
    .unwrap_or_default();
    if branch == "main" {
        git(
            repo,
            "fast-forwarding main",
            &["merge", "--ff-only", "--quiet", "orchestrate/main"],
        )?;
    } else {
        git(
            repo,
            "fast-forwarding main",
            &["-c", &trust, "fetch", "--quiet", "orchestrate", "main:main"],
        )?;
    }
    Ok(())
}
