//! Calling the gate as a separate process (what the orchestrator and the run engine do): the
//! gate `orchestrate setup` installed for the state directory (set-id to the gate's user), else
//! the `orchestrate-gate` binary next to the caller's own executable; its one-line JSON report on
//! stdout, its exit code (0 pass, 1 fail or hold, 2 invalid input, 5 internal error).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::actions::Outcome;
use crate::decision::{Action, Verdict};

/// File name of the gate binary.
pub const GATE_BIN: &str = "orchestrate-gate";

/// What `orchestrate-gate promote|approve|reject|rollback` prints on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateReport {
    /// The run.
    pub run_id: String,
    /// What was asked.
    pub action: Action,
    /// The verdict of the last decision written (Fail when none was). `promote` writes two
    /// decisions when the policy auto-promotes a formatting-only change to main.
    pub verdict: Verdict,
    /// Every decision written, in order.
    pub outcomes: Vec<Outcome>,
}

/// Errors invoking the gate.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No gate binary where one was looked for.
    #[error("no {GATE_BIN} binary at {0} (install it next to orchestrate)")]
    NotFound(PathBuf),
    /// The caller's own executable path is unknown.
    #[error("locating the current executable: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// Opening a run's artifacts directory to the gate failed.
    #[error("opening {path} to the gate: {source}")]
    Artifacts {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Spawning failed.
    #[error("running {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The gate refused to decide (exit 2 or 5) and said why on stderr.
    #[error("{GATE_BIN} exited with {code:?}: {stderr}")]
    Refused {
        /// Exit code.
        code: Option<i32>,
        /// Its stderr.
        stderr: String,
    },
    /// The report on stdout did not parse.
    #[error("{GATE_BIN} printed no valid report: {source}")]
    Report {
        /// Cause.
        source: serde_json::Error,
    },
}

/// Where `orchestrate setup` installs the gate for a state directory (see
/// `sandbox::setup::installed_gate_path`; the same relative path).
pub fn installed_path(state: &Path) -> PathBuf {
    state.join("bin").join(GATE_BIN)
}

/// The installed gate of `state`, when setup installed one: a regular file (not a symlink)
/// carrying the set-user-id bit, owned by somebody other than root.
pub fn installed(state: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let path = installed_path(state);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    let set_uid = meta.mode() & 0o4000 != 0;
    (meta.file_type().is_file() && set_uid && meta.uid() != 0).then_some(path)
}

/// The gate to run for `state`: the one setup installed (set-id to the gate's user) when there
/// is one, else [`locate`].
pub fn locate_for(state: &Path) -> Result<PathBuf, ClientError> {
    match installed(state) {
        Some(p) => Ok(p),
        None => locate(),
    }
}

/// Opens the run's `artifacts/` directory to the installed gate's group (set-gid directory,
/// 2770), so the gate, running as its own user, can write its decisions there. A no-op when
/// no gate is installed for `state` (the gate then runs as its caller). Called by whoever
/// owns the run directory (the orchestrator) before it first hands the run to the gate.
pub fn open_artifacts_to_gate(state: &Path, run: &str) -> Result<(), ClientError> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Some(gate) = installed(state) else {
        return Ok(());
    };
    crate::layout::check_run_id(run).map_err(|e| ClientError::Artifacts {
        path: state.join("runs"),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
    })?;
    let dir = state.join("runs").join(run).join("artifacts");
    let err = |source| ClientError::Artifacts {
        path: dir.clone(),
        source,
    };
    let gid = std::fs::metadata(&gate).map_err(err)?.gid();
    std::fs::create_dir_all(&dir).map_err(err)?;
    let meta = std::fs::symlink_metadata(&dir).map_err(err)?;
    if !meta.file_type().is_dir() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a directory (symlinks are refused)",
        )));
    }
    std::os::unix::fs::lchown(&dir, None, Some(gid)).map_err(err)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2770)).map_err(err)
}

/// The gate binary: next to the current executable (the install puts them side by side; cargo
/// builds them into one target directory). The path is not taken from the environment.
pub fn locate() -> Result<PathBuf, ClientError> {
    let exe = std::env::current_exe().map_err(ClientError::CurrentExe)?;
    let mut dirs: Vec<&Path> = Vec::new();
    if let Some(d) = exe.parent() {
        dirs.push(d);
        // Test binaries live in target/<profile>/deps.
        if let Some(up) = d.parent().filter(|_| d.ends_with("deps")) {
            dirs.push(up);
        }
    }
    for d in &dirs {
        let p = d.join(GATE_BIN);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(ClientError::NotFound(dirs.first().map_or_else(
        || PathBuf::from(GATE_BIN),
        |d| d.join(GATE_BIN),
    )))
}

/// Runs `bin <args>` and returns its exit code and stdout; stderr is captured for errors.
pub fn run_raw(bin: &Path, args: &[&str]) -> Result<(Option<i32>, Vec<u8>, String), ClientError> {
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ClientError::Spawn {
            path: bin.to_owned(),
            source,
        })?;
    Ok((
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    ))
}

/// Runs an action subcommand and parses its report. Exit 0 and 1 carry a report; anything else
/// is [`ClientError::Refused`].
pub fn invoke(bin: &Path, args: &[&str]) -> Result<GateReport, ClientError> {
    let (code, stdout, stderr) = run_raw(bin, args)?;
    match code {
        Some(0 | 1) => {
            serde_json::from_slice(&stdout).map_err(|source| ClientError::Report { source })
        }
        _ => Err(ClientError::Refused { code, stderr }),
    }
}

/// The audit event for one decision the gate wrote: kind `gate.<action>` and its body (verdict,
/// decision file and SHA-256, ref movement, actor, reason, failed checks). The orchestrator
/// appends one per outcome, so the audit trail cites every signed decision.
pub fn audit_event(o: &Outcome) -> (String, serde_json::Value) {
    let d = &o.decision;
    (
        format!("gate.{}", d.action.as_str()),
        serde_json::json!({
            "verdict": d.verdict,
            "decision_file": o.file,
            "decision_sha256": o.sha256,
            "target_ref": d.target_ref,
            "from": d.from,
            "to": d.to,
            "moved": o.moved,
            "actor": d.actor,
            "reason": d.reason,
            "failed_checks": d.failed(),
        }),
    )
}

/// `orchestrate-gate promote --state STATE --run RUN`: what the run engine calls after review.
pub fn promote(state: &Path, run: &str) -> Result<GateReport, ClientError> {
    let bin = locate_for(state)?;
    open_artifacts_to_gate(state, run)?;
    let s = state.to_string_lossy();
    invoke(&bin, &["promote", "--state", &s, "--run", run])
}

/// `orchestrate-gate init --state STATE --seed REPO --rev REV`: creates the integration
/// repository from the engineer's repository at the run's base commit if it does not exist yet
/// (a no-op otherwise). The run engine calls it once before the first promotion.
pub fn init(state: &Path, seed: &Path, rev: &str) -> Result<(), ClientError> {
    let bin = locate_for(state)?;
    let s = state.to_string_lossy();
    let r = seed.to_string_lossy();
    let (code, _, stderr) = run_raw(&bin, &["init", "--state", &s, "--seed", &r, "--rev", rev])?;
    match code {
        Some(0) => Ok(()),
        _ => Err(ClientError::Refused { code, stderr }),
    }
}
