//! The run engine: `orchestrate start FR` end to end (see DESIGN.md "A run, end to end").
//!
//! Shape: a supervisor actor per run ([`supervisor`]) owns the [`engine::Engine`] and one actor
//! per role ([`role`]), each owning one `orchestrate-agent <role> --run ID` process with a frame
//! socket on fd 3. The actors only move frames and enforce routing; every decision — guardrails
//! on a change, drift repair, progress, caps, budget levels — is a pure function in [`guard`] and
//! [`decide`], unit-tested on its own. Roles are launched through [`launch::RoleLauncher`].

pub mod budget_raise;
pub mod decide;
mod engine;
mod evidence;
mod finish;
pub mod guard;
pub mod launch;
#[cfg(target_os = "linux")]
pub mod launch_sandbox;
pub mod layout;
mod pipeline;
pub mod preflight;
mod role;
mod supervisor;
pub mod volume;
mod worktree;

use std::path::{Path, PathBuf};

use protocol::StopCode;
use ractor::Actor;

pub use engine::{Checkpoint, EngineError, Outcome, Reporter, Summary};
use engine::{Engine, EngineParts};
use launch::{DirectLauncher, RoleLauncher};
use layout::RunDir;
use preflight::{Policy, PreflightError};
use supervisor::{RunSupervisor, SupervisorArgs, SupervisorMsg};

use crate::git::{GitError, Repo};
use crate::state::{Event, NewRun, Store, StoreError};

/// Run statuses as stored in `runs.status`.
pub mod status {
    /// Loading the documents.
    pub const PREFLIGHT: &str = "preflight";
    /// Baseline, plan or iterations in progress.
    pub const RUNNING: &str = "running";
    /// Every acceptance test passes.
    pub const DONE: &str = "done";
    /// Stopped with a reason code.
    pub const STOPPED: &str = "stopped";
    /// Paused for a human at a budget threshold.
    pub const PAUSED: &str = "paused";
    /// Refused before it ran (invalid input, containment unavailable).
    pub const REFUSED: &str = "refused";
    /// Shown (never stored) for a non-final run whose orchestrator is gone.
    pub const INTERRUPTED: &str = "interrupted";
}

/// Errors of `start` and `resume` that are not a stop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The repository is not a git repository with a commit.
    #[error("repository {path}: {source}")]
    Repo {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: Box<GitError>,
    },
    /// The state store failed.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// A document is invalid (exit 2).
    #[error(transparent)]
    Preflight(Box<PreflightError>),
    /// Required containment is unavailable and `--allow-weaker` was not given (exit 3).
    #[error("containment unavailable: {reason}; refusing to run (pass --allow-weaker to run without it, recorded in the manifest)")]
    NoContainment {
        /// Why.
        reason: String,
    },
    /// The recorded session for the replay driver is missing.
    #[error("recorded session {path} not found (pass --session)")]
    NoSession {
        /// The path.
        path: PathBuf,
    },
    /// `orchestrate-agent` could not be found.
    #[error("orchestrate-agent not found next to {exe} or on PATH (set ORCHESTRATE_AGENT)")]
    NoAgent {
        /// The orchestrate binary.
        exe: PathBuf,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(Box<EngineError>),
    /// The async runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The supervisor actor could not be spawned or answered nothing.
    #[error("run supervisor: {0}")]
    Supervisor(String),
    /// Writing the run directory failed.
    #[error(transparent)]
    Layout(Box<layout::LayoutError>),
    /// No such run.
    #[error("no run {run_id}")]
    NoSuchRun {
        /// The run.
        run_id: String,
    },
    /// The run cannot be resumed from its status.
    #[error("run {run_id} is {status}: only a stopped, paused or interrupted run can be resumed")]
    NotResumable {
        /// The run.
        run_id: String,
        /// Its status.
        status: String,
    },
    /// Resume without `--reauthorize`.
    #[error("resuming {run_id} needs --reauthorize: a person must re-authorize a stopped run")]
    NeedsReauthorize {
        /// The run.
        run_id: String,
    },
    /// `--raise-budget` refused (exit 2; the run is left as it was).
    #[error("resuming {run_id}: {source}")]
    Raise {
        /// The run.
        run_id: String,
        /// Why.
        source: budget_raise::RaiseError,
    },
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        RunError::Store(Box::new(e))
    }
}

impl From<PreflightError> for RunError {
    fn from(e: PreflightError) -> Self {
        RunError::Preflight(Box::new(e))
    }
}

impl From<EngineError> for RunError {
    fn from(e: EngineError) -> Self {
        RunError::Engine(Box::new(e))
    }
}

impl From<layout::LayoutError> for RunError {
    fn from(e: layout::LayoutError) -> Self {
        RunError::Layout(Box::new(e))
    }
}

/// What `start` needs.
pub struct StartRequest {
    /// The repository.
    pub repo: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The FR id.
    pub fr_id: String,
    /// Run without the required containment (recorded).
    pub allow_weaker: bool,
    /// Layers switched off on purpose (`--layer-off`, tests and debugging; needs `allow_weaker`
    /// when the layer is required). Recorded in the manifest like any missing layer.
    pub layers_off: Vec<String>,
    /// The recorded session (default `<repo>/sessions/<FR>.json`).
    pub session: Option<PathBuf>,
    /// Terminal progress.
    pub report: Reporter,
}

/// The `orchestrate-agent` binary: `$ORCHESTRATE_AGENT`, next to this executable, or on PATH.
pub fn agent_binary() -> Result<PathBuf, RunError> {
    if let Some(p) = std::env::var_os("ORCHESTRATE_AGENT") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().unwrap_or_default();
    if let Some(dir) = exe.parent() {
        for c in [
            dir.join("orchestrate-agent"),
            dir.join("../orchestrate-agent"),
        ] {
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let c = d.join("orchestrate-agent");
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    Err(RunError::NoAgent { exe })
}

/// Whether every role key `orchestrate setup` writes is present.
pub fn setup_done(state_dir: &Path) -> bool {
    protocol::RoleName::ALL.iter().all(|r| {
        state_dir
            .join("keys")
            .join(r.as_str())
            .join("ed25519.pub")
            .is_file()
    })
}

/// The launcher for this run, or why containment is unavailable. On Linux roles run in the
/// sandbox; a required layer this host cannot apply refuses the run unless `allow_weaker`, which
/// runs with the layers that are live (and records the rest). Plain processes only where the
/// sandbox cannot start at all, and only with `allow_weaker`.
fn choose_launcher(
    policy: &Policy,
    volume: PathBuf,
    allow_weaker: bool,
    layers_off: &[String],
) -> Result<Box<dyn RoleLauncher>, String> {
    let required: Vec<String> = policy
        .roles
        .sandbox
        .require
        .iter()
        .map(|l| l.as_str().to_owned())
        .collect();
    #[cfg(target_os = "linux")]
    let reason = {
        let mut off = std::collections::BTreeSet::new();
        for name in layers_off {
            off.insert(
                sandbox::plan::Layer::parse(name)
                    .ok_or_else(|| format!("--layer-off {name}: no such layer"))?,
            );
        }
        match launch_sandbox::SandboxLauncher::new(
            &policy.roles,
            volume,
            allow_weaker,
            &off,
            policy.cost_usd,
        ) {
            Ok(l) => return Ok(Box::new(l)),
            Err(e) => e.to_string(),
        }
    };
    #[cfg(not(target_os = "linux"))]
    let reason = {
        let _ = (volume, layers_off);
        format!(
            "roles are contained on Linux only; required layers not live: {}",
            required.join(", ")
        )
    };
    if allow_weaker {
        tracing::warn!("the sandbox cannot start ({reason}): roles run as plain processes");
        Ok(Box::new(DirectLauncher { required }))
    } else {
        Err(reason)
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn rand16() -> u16 {
    let mut b = [0u8; 2];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    u16::from_be_bytes(b) ^ u16::try_from(std::process::id() & 0xffff).unwrap_or(0)
}

/// The OS user running this process (for audit events).
pub fn os_user() -> serde_json::Value {
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let name = std::env::var("SUDO_USER")
        .ok()
        .filter(|_| uid == 0)
        .or_else(|| std::env::var("USER").ok());
    serde_json::json!({"uid": uid, "name": name})
}

/// Starts a run and drives it to its end.
pub fn start(mut req: StartRequest) -> Result<Summary, RunError> {
    let repo = Repo::discover(&req.repo).map_err(|source| RunError::Repo {
        path: req.repo.clone(),
        source: Box::new(source),
    })?;
    let base = repo.head_commit().map_err(|source| RunError::Repo {
        path: req.repo.clone(),
        source: Box::new(source),
    })?;
    let mut store = Store::open(&req.state_dir)?;
    let run_id = layout::new_run_id(&req.fr_id, now_secs(), rand16());
    let dir = RunDir::new(&req.state_dir, &run_id);
    layout::write(&dir.pid_file(), std::process::id().to_string().as_bytes())?;
    store.create_run(&NewRun {
        run_id: run_id.clone(),
        fr_id: req.fr_id.clone(),
        status: status::PREFLIGHT.into(),
    })?;
    store.append(&Event::for_run(
        run_id.clone(),
        "run.started",
        serde_json::json!({"fr": req.fr_id, "repo": repo.root(), "base": base, "by": os_user(), "pid": std::process::id()}),
    ))?;
    (req.report)(&format!(
        "run {run_id}: {} on {} (base {})",
        req.fr_id,
        repo.root().display(),
        &base[..base.len().min(12)]
    ));
    let policy = match preflight::load(repo.root(), &req.fr_id) {
        Ok(p) => p,
        Err(e) if e.is_missing_acceptance() => {
            let detail = e.to_string();
            store.append(&Event::for_run(
                run_id.clone(),
                "run.stopped",
                serde_json::json!({"code": StopCode::MissingAcceptance, "detail": detail, "stage": "preflight"}),
            ))?;
            store.set_run_status(
                &run_id,
                status::STOPPED,
                Some(StopCode::MissingAcceptance.as_str()),
            )?;
            (req.report)(&format!("[stop] {}: {detail}", StopCode::MissingAcceptance));
            return Ok(Summary {
                run_id: run_id.clone(),
                outcome: Outcome::Stopped(StopCode::MissingAcceptance, detail),
                dir: dir.root,
                branch: format!("agent/{}/{run_id}", req.fr_id),
                head: None,
            });
        }
        Err(e) => {
            store.append(&Event::for_run(
                run_id.clone(),
                "run.refused",
                serde_json::json!({"stage": "preflight", "error": e.to_string()}),
            ))?;
            store.set_run_status(&run_id, status::REFUSED, None)?;
            return Err(e.into());
        }
    };
    let volume = match volume::attach(policy.roles.sandbox.volume, &dir.volume(), req.allow_weaker)
    {
        Ok(v) => v,
        Err(e) => {
            store.append(&Event::for_run(
                run_id.clone(),
                "run.refused",
                serde_json::json!({"stage": "volume", "reason": e.to_string()}),
            ))?;
            store.set_run_status(
                &run_id,
                status::REFUSED,
                Some(StopCode::ContainmentUnavailable.as_str()),
            )?;
            return Err(RunError::NoContainment {
                reason: e.to_string(),
            });
        }
    };
    store.append(&Event::for_run(
        run_id.clone(),
        "volume",
        volume.record.clone(),
    ))?;
    let launcher = match choose_launcher(&policy, dir.volume(), req.allow_weaker, &req.layers_off) {
        Ok(l) => l,
        Err(reason) => {
            store.append(&Event::for_run(
                run_id.clone(),
                "run.refused",
                serde_json::json!({"stage": "containment", "reason": reason}),
            ))?;
            store.set_run_status(
                &run_id,
                status::REFUSED,
                Some(StopCode::ContainmentUnavailable.as_str()),
            )?;
            return Err(RunError::NoContainment { reason });
        }
    };
    let containment = launcher.containment();
    store.append(&Event::for_run(
        run_id.clone(),
        "containment",
        serde_json::to_value(&containment).unwrap_or_default(),
    ))?;
    if containment.mode == "weaker" {
        (req.report)(&format!(
            "WEAKER MODE (--allow-weaker): roles run without these required layers: {} (recorded in the manifest)",
            containment.layers_missing.join(", ")
        ));
    } else {
        (req.report)(&format!(
            "[containment] every role in the sandbox; live: {}",
            containment.layers_live.join(", ")
        ));
    }
    let session = session_path(req.session.take(), repo.root(), &req.fr_id);
    if !session.is_file() {
        return Err(RunError::NoSession { path: session });
    }
    let agent_bin = agent_binary()?;
    let engine = Engine::new(EngineParts {
        run_id,
        state_dir: req.state_dir.clone(),
        store,
        repo,
        policy,
        launcher,
        agent_bin,
        session,
        base,
        report: req.report,
    });
    let summary = drive(engine, None, setup_done(&req.state_dir));
    drop(volume);
    summary
}

fn drive(
    engine: Engine,
    resume: Option<Checkpoint>,
    setup_keys: bool,
) -> Result<Summary, RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let run_id = engine.run_id.clone();
    let branch = engine.branch();
    let dir = engine.dir.root.clone();
    let repo_root = engine.repo.root().to_path_buf();
    let outcome = runtime.block_on(async move {
        let (actor, handle) = Actor::spawn(
            None,
            RunSupervisor,
            SupervisorArgs {
                engine,
                resume,
                setup_keys,
            },
        )
        .await
        .map_err(|e| RunError::Supervisor(e.to_string()))?;
        let reply = actor
            .call(SupervisorMsg::Drive, None)
            .await
            .map_err(|e| RunError::Supervisor(e.to_string()))?;
        let _ = handle.await;
        match reply {
            ractor::rpc::CallResult::Success(r) => r.map_err(RunError::from),
            _ => Err(RunError::Supervisor(
                "the supervisor ended without an answer".into(),
            )),
        }
    })?;
    let head = Repo::discover(&repo_root)
        .ok()
        .and_then(|r| r.resolve(&format!("refs/heads/{branch}")).ok().flatten());
    Ok(Summary {
        run_id,
        outcome,
        dir,
        branch,
        head,
    })
}

/// Whether the process that drove a run is still alive.
pub fn driver_alive(state_dir: &Path, run_id: &str) -> bool {
    let pid_file = RunDir::new(state_dir, run_id).pid_file();
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return false;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains("orchestrate")
}

/// The status to show: a non-final run whose orchestrator died is `interrupted`.
pub fn shown_status(state_dir: &Path, run_id: &str, stored: &str) -> String {
    let live = matches!(stored, status::PREFLIGHT | status::RUNNING);
    if live && !driver_alive(state_dir, run_id) {
        status::INTERRUPTED.to_owned()
    } else {
        stored.to_owned()
    }
}

/// What `resume` needs.
pub struct ResumeRequest {
    /// The repository.
    pub repo: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The run.
    pub run_id: String,
    /// The human re-authorized it.
    pub reauthorize: bool,
    /// Run without the required containment (recorded).
    pub allow_weaker: bool,
    /// Layers switched off on purpose (`--layer-off`, tests and debugging; needs `allow_weaker`
    /// when the layer is required). Recorded in the manifest like any missing layer.
    pub layers_off: Vec<String>,
    /// The recorded session (default `<repo>/sessions/<FR>.json`).
    pub session: Option<PathBuf>,
    /// Raise the run's cost ceiling to this many USD (`--raise-budget`).
    pub raise_budget: Option<f64>,
    /// Terminal progress.
    pub report: Reporter,
}

/// Resumes a stopped, paused or interrupted run after a human re-authorized it.
pub fn resume(mut req: ResumeRequest) -> Result<Summary, RunError> {
    let mut store = Store::open_existing(&req.state_dir)?;
    let record = store.run(&req.run_id)?.ok_or_else(|| RunError::NoSuchRun {
        run_id: req.run_id.clone(),
    })?;
    let shown = shown_status(&req.state_dir, &req.run_id, &record.status);
    if !matches!(
        shown.as_str(),
        status::STOPPED | status::PAUSED | status::INTERRUPTED
    ) {
        return Err(RunError::NotResumable {
            run_id: req.run_id.clone(),
            status: shown,
        });
    }
    if !req.reauthorize {
        return Err(RunError::NeedsReauthorize {
            run_id: req.run_id.clone(),
        });
    }
    let repo = Repo::discover(&req.repo).map_err(|source| RunError::Repo {
        path: req.repo.clone(),
        source: Box::new(source),
    })?;
    let mut policy = preflight::load(repo.root(), &record.fr_id)?;
    let dir = RunDir::new(&req.state_dir, &req.run_id);
    // A raise is checked before anything of the run is touched; the newest raise (this one or an
    // earlier resume's) sets the ceiling the gateway and the budget stage use.
    let raises = budget_raise::raises(&store, &req.run_id)?;
    let from_usd = budget_raise::current_ceiling(&raises, &dir, &policy);
    if let Some(to) = req.raise_budget {
        budget_raise::check(to, from_usd, policy.roles.budgets.per_month_usd).map_err(
            |source| RunError::Raise {
                run_id: req.run_id.clone(),
                source,
            },
        )?;
    }
    if let Some(to) = req.raise_budget.or(raises.last().map(|r| r.to_usd)) {
        budget_raise::apply(&mut policy, to);
    }
    // Mounted again for as long as this process drives the run; unmounted when it returns.
    let volume = volume::attach(policy.roles.sandbox.volume, &dir.volume(), req.allow_weaker)
        .map_err(|e| RunError::NoContainment {
            reason: e.to_string(),
        })?;
    let launcher = choose_launcher(&policy, dir.volume(), req.allow_weaker, &req.layers_off)
        .map_err(|reason| RunError::NoContainment { reason })?;
    let _ = std::fs::remove_file(dir.stop_request());
    layout::write(&dir.pid_file(), std::process::id().to_string().as_bytes())?;
    let checkpoint: Option<Checkpoint> = std::fs::read(dir.checkpoint())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    store.append(&Event::for_run(
        req.run_id.clone(),
        "run.reauthorized",
        serde_json::json!({"by": os_user(), "previous_status": shown, "stop_reason": record.stop_reason, "from_iteration": checkpoint.as_ref().map(|c| c.iteration)}),
    ))?;
    if let Some(to) = req.raise_budget {
        store.append(&Event::for_run(
            req.run_id.clone(),
            budget_raise::RAISED,
            serde_json::json!({"by": os_user(), "from_usd": from_usd, "to_usd": to, "per_month_usd": policy.roles.budgets.per_month_usd}),
        ))?;
        (req.report)(&format!(
            "run {}: cost ceiling raised from {from_usd} to {to} USD by a person",
            req.run_id
        ));
    }
    store.append(&Event::for_run(
        req.run_id.clone(),
        "volume",
        volume.record.clone(),
    ))?;
    store.set_run_status(&req.run_id, status::RUNNING, None)?;
    let base = match &checkpoint {
        Some(c) => c.base.clone(),
        None => repo.head_commit().map_err(|source| RunError::Repo {
            path: req.repo.clone(),
            source: Box::new(source),
        })?,
    };
    (req.report)(&format!(
        "run {}: resumed by a person (re-authorized)",
        req.run_id
    ));
    let session = session_path(req.session.take(), repo.root(), &record.fr_id);
    let agent_bin = agent_binary()?;
    let engine = Engine::new(EngineParts {
        run_id: req.run_id.clone(),
        state_dir: req.state_dir.clone(),
        store,
        repo,
        policy,
        launcher,
        agent_bin,
        session,
        base,
        report: req.report,
    });
    let summary = drive(engine, checkpoint, setup_done(&req.state_dir));
    drop(volume);
    summary
}

/// Asks a running run to stop: writes its STOP request (checked before every tool call and
/// stage) and the audit event. A run whose orchestrator is gone is marked stopped at once.
pub fn request_stop(state_dir: &Path, run_id: &str) -> Result<String, RunError> {
    let mut store = Store::open_existing(state_dir)?;
    let record = store.run(run_id)?.ok_or_else(|| RunError::NoSuchRun {
        run_id: run_id.to_owned(),
    })?;
    let shown = shown_status(state_dir, run_id, &record.status);
    let dir = RunDir::new(state_dir, run_id);
    layout::write(&dir.stop_request(), b"stop requested\n")?;
    store.append(&Event::for_run(
        run_id.to_owned(),
        "run.stop_requested",
        serde_json::json!({"by": os_user(), "status": shown}),
    ))?;
    if shown == status::INTERRUPTED || shown == status::PAUSED {
        store.append(&Event::for_run(
            run_id.to_owned(),
            "run.stopped",
            serde_json::json!({"code": StopCode::Human, "detail": format!("stopped by a person while {shown}"), "stage": shown}),
        ))?;
        store.set_run_status(run_id, status::STOPPED, Some(StopCode::Human.as_str()))?;
        return Ok(status::STOPPED.to_owned());
    }
    Ok(shown)
}

/// The recorded session the replay driver applies: `--session` resolved against the caller's
/// working directory (the roles run elsewhere), or `sessions/<FR>.json` in the
/// repository.
fn session_path(given: Option<PathBuf>, repo: &Path, fr_id: &str) -> PathBuf {
    match given {
        Some(p) => p.canonicalize().unwrap_or(p),
        None => repo.join("sessions").join(format!("{fr_id}.json")),
    }
}
