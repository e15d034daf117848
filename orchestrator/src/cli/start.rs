//! `orchestrate start FR`: run an FR end to end (see `crate::run`). Progress goes to stdout as
//! plain lines (stderr under `--json`); the exit code says how the run ended: 0 done, 4 stopped
//! or paused (the reason code is printed), 2 invalid input, 3 containment unavailable.
//!
//! A run that is done is handed to the gate at once (`orchestrate-gate promote`, a separate
//! process that decides from the signed artifacts alone): on a pass it fast-forwards `staging`
//! and the approve command is printed; on a failed check nothing moves and `start` exits 1.

use std::path::{Path, PathBuf};

use clap::Args;

use super::context::{Context, ContextError};
use super::exit::{ExitCode, Failure};
use super::output::{Mark, Output};
use crate::run::{self, Outcome, RunError, StartRequest, Summary};

/// `orchestrate start`
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The FR id, e.g. FR-12 (its FR-12.yaml is found anywhere in the repository).
    pub fr: String,
    /// Run even though the containment roles.yaml requires is unavailable: roles run as plain
    /// processes. Recorded in the manifest and the receipt as the weaker mode.
    #[arg(long)]
    pub allow_weaker: bool,
    /// Switch a containment layer off for this run (repeatable; e.g. for a containment test's
    /// twin). A required layer needs --allow-weaker too; the manifest records it as missing.
    #[arg(long, value_name = "LAYER")]
    pub layer_off: Vec<String>,
    /// The recorded agent session the replay driver applies (default: sessions/<FR>.json in the
    /// repository).
    #[arg(long, value_name = "FILE")]
    pub session: Option<PathBuf>,
    /// Print the run's summary as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Stop at the agent branch: do not hand a finished run to the gate.
    #[arg(long)]
    pub no_promote: bool,
}

/// Errors of `start` and `resume`.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Paths could not be resolved.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The run could not start or the engine failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

impl Failure for StartError {
    fn exit_code(&self) -> ExitCode {
        match self {
            StartError::Context(e) => e.exit_code(),
            StartError::Run(e) => match e {
                RunError::Preflight(_)
                | RunError::Repo { .. }
                | RunError::NoSession { .. }
                | RunError::NoSuchRun { .. }
                | RunError::NotResumable { .. }
                | RunError::NeedsReauthorize { .. } => ExitCode::Usage,
                RunError::NoContainment { .. } => ExitCode::NoContainment,
                _ => ExitCode::Internal,
            },
        }
    }
}

/// A progress printer: stdout lines, or stderr under `--json`.
pub(super) fn reporter(json: bool) -> run::Reporter {
    if !json {
        if let Some(live) = super::progress::terminal_reporter() {
            return live;
        }
    }
    Box::new(move |line: &str| {
        if json {
            eprintln!("{line}");
        } else {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    })
}

/// Prints how a run ended and returns its exit code.
pub(super) fn conclude(out: &Output, s: &Summary) -> ExitCode {
    let (exit, code, detail) = match &s.outcome {
        Outcome::Done => ("done", None, None),
        Outcome::Stopped(c, d) => ("stopped", Some(c.as_str()), Some(d.clone())),
        Outcome::Paused(d) => ("paused", None, Some(d.clone())),
    };
    if out.is_json() {
        out.document(&serde_json::json!({
            "run_id": s.run_id, "exit": exit, "stop_reason": code, "detail": detail,
            "branch": s.branch, "head": s.head, "run_dir": s.dir,
            "manifest": s.dir.join("manifest.json"), "artifacts": s.dir.join("artifacts"),
        }));
    } else {
        match &s.outcome {
            Outcome::Done => out.mark(
                Mark::Ok,
                "done",
                format!("every acceptance test passes ({})", s.run_id),
            ),
            Outcome::Stopped(c, d) => out.mark(Mark::Fail, format!("STOPPED {c}"), d),
            Outcome::Paused(d) => out.mark(Mark::Warn, "PAUSED", d),
        }
        if let Some(h) = &s.head {
            out.line(format!("  branch     {} at {h}", s.branch));
        }
        let manifest = s.dir.join("manifest.json");
        if manifest.is_file() {
            out.line(format!("  manifest   {}", manifest.display()));
            out.line(format!(
                "  artifacts  {}",
                s.dir.join("artifacts").display()
            ));
        }
        if !matches!(s.outcome, Outcome::Done) {
            out.line(format!(
                "  continue   orchestrate resume {} --reauthorize",
                s.run_id
            ));
        }
    }
    match s.outcome {
        Outcome::Done => ExitCode::Ok,
        Outcome::Stopped(..) | Outcome::Paused(_) => ExitCode::RunStopped,
    }
}

/// Runs `orchestrate start`.
pub fn run(ctx: &Context, out: &Output, args: &StartArgs) -> Result<ExitCode, StartError> {
    let repo = ctx.repo()?;
    let state = ctx.state_dir()?;
    let summary = run::start(StartRequest {
        repo: repo.clone(),
        state_dir: state.clone(),
        fr_id: args.fr.clone(),
        allow_weaker: args.allow_weaker,
        layers_off: args.layer_off.clone(),
        session: args.session.clone(),
        report: reporter(args.json),
    })?;
    let code = conclude(out, &summary);
    if args.no_promote || !matches!(summary.outcome, Outcome::Done) {
        return Ok(code);
    }
    Ok(promote(out, &repo, &state, &summary))
}

/// Hands a finished run to the gate: seeds the integration repository at the run's base commit
/// the first time, then `promote`; records each decision in the audit trail. Under `--json` the
/// gate's report goes to stderr, so stdout stays one document.
fn promote(out: &Output, repo: &Path, state: &Path, s: &Summary) -> ExitCode {
    let report = seed_integration(repo, state, &s.dir)
        .and_then(|()| {
            // An installed gate runs as its own user: it needs to write its decisions here.
            gate::client::open_artifacts_to_gate(state, &s.run_id)
                .map_err(super::approve::GateCmdError::Gate)
        })
        .and_then(|()| super::approve::call_gate(state, "promote", &s.run_id, &[]));
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            out.error(&e, ExitCode::Internal);
            return ExitCode::Internal;
        }
    };
    if let Err(e) = super::approve::record(state, &report) {
        out.error(&e, ExitCode::Internal);
        return ExitCode::Internal;
    }
    if out.is_json() {
        if let Ok(line) = serde_json::to_string(&report) {
            eprintln!("{line}");
        }
        return gate_exit(&report);
    }
    let code = super::approve::print(out, &report);
    match report.verdict {
        gate::Verdict::Pass => out.line(format!(
            "  promote    staging moved by the gate; a person listed in roles.yaml approvers runs: orchestrate approve {}",
            s.run_id
        )),
        gate::Verdict::Hold => out.line(format!(
            "  promote    held for a person (risk class): orchestrate approve {}",
            s.run_id
        )),
        gate::Verdict::Fail => out.line(format!(
            "  promote    refused; nothing moved. The receipt says why: orchestrate receipt {}",
            s.run_id
        )),
    }
    if report.verdict == gate::Verdict::Hold {
        ExitCode::Ok
    } else {
        code
    }
}

fn gate_exit(report: &gate::client::GateReport) -> ExitCode {
    match report.verdict {
        gate::Verdict::Pass | gate::Verdict::Hold => ExitCode::Ok,
        gate::Verdict::Fail => ExitCode::Failed,
    }
}

/// Creates `<state>/integration.git` from the engineer's repository at the run's base commit
/// unless it holds a repository already (the gate refuses to re-create it). A repository without its own roles.yaml
/// ran under the built-in policy; the gate gets that same policy as `<state>/roles.yaml`, its
/// documented fallback, so it judges the run by the rules the run was held to.
fn seed_integration(
    repo: &Path,
    state: &Path,
    run_dir: &Path,
) -> Result<(), super::approve::GateCmdError> {
    let fallback = state.join("roles.yaml");
    if !repo.join("roles.yaml").is_file() && !fallback.exists() {
        std::fs::write(&fallback, crate::run::preflight::DEFAULT_ROLES).map_err(|source| {
            super::approve::GateCmdError::WritePolicy {
                path: fallback.clone(),
                source,
            }
        })?;
    }
    // `orchestrate setup` creates the directory empty (owned by the gate's user); a repository
    // is there once it has a HEAD.
    if state
        .join(gate::integration::INTEGRATION_DIR)
        .join("HEAD")
        .exists()
    {
        return Ok(());
    }
    let base = std::fs::read(run_dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|m| m["base_commit"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "HEAD".to_owned());
    if gate::client::installed(state).is_none() {
        return gate::client::init(state, repo, &base).map_err(super::approve::GateCmdError::Gate);
    }
    // The installed gate runs as its own user, which may not be able to read the engineer's
    // repository (a home directory is often 0700): hand it a copy of the base's history in the
    // run directory, which it reads through its group, and drop the copy once seeded.
    let copy = run_dir.join("seed.git");
    let seeded = copy_base(repo, &copy, &base).and_then(|()| {
        gate::client::init(state, &copy, "refs/heads/seed")
            .map_err(super::approve::GateCmdError::Gate)
    });
    if let Err(e) = std::fs::remove_dir_all(&copy) {
        tracing::warn!(path = %copy.display(), error = %e, "removing the seed copy");
    }
    seeded
}

/// `git init --bare <copy>` and fetch `<base>` from `repo` into its `refs/heads/seed`.
fn copy_base(repo: &Path, copy: &Path, base: &str) -> Result<(), super::approve::GateCmdError> {
    let git = |step: &'static str, args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("git")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args(args)
            .output()
            .map_err(|source| super::approve::GateCmdError::GitSpawn {
                repo: repo.to_owned(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(super::approve::GateCmdError::LocalGit {
                step,
                repo: repo.to_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    };
    let os = std::ffi::OsStr::new;
    let spec = format!("{base}:refs/heads/seed");
    git(
        "copying the base for the gate (init)",
        &[os("init"), os("--quiet"), os("--bare"), copy.as_os_str()],
    )?;
    // upload-pack does not inherit `-c`: the repository may belong to another user than the
    // orchestrator's, so the trust goes on upload-pack's own command line.
    git(
        "copying the base for the gate (fetch)",
        &[
            os("-C"),
            copy.as_os_str(),
            os("fetch"),
            os("--quiet"),
            os("--no-tags"),
            os("--upload-pack=git -c 'safe.directory=*' upload-pack"),
            repo.as_os_str(),
            os(&spec),
        ],
    )
}
