//! The run engine's state and its plumbing: starting the role actors, sending tasks, checking
//! signed results, appending audit events. The stages live in `pipeline.rs`, the endings
//! (done, stop, pause) in `finish.rs`; the decisions in `guard.rs` and `decide.rs`.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use protocol::artifact::{verify_artifact, ArtifactError, DsseEnvelope, KeyPair, PublicKey};
use protocol::canonical::Digest32;
use protocol::frame::{Message, MessageKind, Task, TestResults};
use protocol::plan::WorkPlan;
use protocol::{RoleName, StopCode};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorRef};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::launch::{LaunchError, RoleLauncher, RoleSpec};
use super::layout::{self, LayoutError, RunDir};
use super::preflight::Policy;
use super::role::{CallRecord, Fault, Reply, RoleActor, RoleArgs, RoleMsg, Shared};
use crate::git::{GitError, Repo};
use crate::state::{Event, Store, StoreError};

/// Errors that are not stops: the orchestrator itself could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing a run file failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// git failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// A role could not be launched.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// A key could not be created or read.
    #[error("key for {label}: {source}")]
    Key {
        /// Key label.
        label: String,
        /// Cause.
        source: ArtifactError,
    },
    /// A socket pair for a role could not be made.
    #[error("socket pair for {role}: {source}")]
    Socket {
        /// The role.
        role: RoleName,
        /// Cause.
        source: std::io::Error,
    },
    /// An actor could not be spawned.
    #[error("spawning the {role} actor: {source}")]
    Actor {
        /// The role.
        role: RoleName,
        /// Cause.
        source: ractor::SpawnErr,
    },
    /// Serialising a value failed.
    #[error("serialising {what}: {source}")]
    Json {
        /// What.
        what: &'static str,
        /// Cause.
        source: serde_json::Error,
    },
    /// Hashing the plan failed.
    #[error("hashing the plan: {0}")]
    Hash(#[from] protocol::canonical::CanonicalError),
    /// Moving the workspace into quarantine failed.
    #[error("quarantining {path}: {source}")]
    Quarantine {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The work tree could not be handed to the role that edits it.
    #[error("giving {path} to codegen's OS user: {source}")]
    HandOver {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A git plumbing command failed.
    #[error("git {args} in {dir}: {detail}")]
    GitCmd {
        /// The repository.
        dir: PathBuf,
        /// The arguments.
        args: String,
        /// stderr or the spawn error.
        detail: String,
    },
    /// A checkpoint or plan file of a run could not be read.
    #[error("reading {path}: {detail}")]
    Resume {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// Where the role keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// `<state>/keys/<role>/` written by `orchestrate setup`.
    Setup,
    /// Generated for this run under `<state>/runs/<run>/keys/` (weaker mode; the gate lists it
    /// as uncertain).
    PerRun,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every acceptance test passes; the agent branch holds the change.
    Done,
    /// Stopped with a reason code.
    Stopped(StopCode, String),
    /// Paused for a human at the escalation threshold of a budget dimension.
    Paused(String),
}

/// A run's result as the CLI reports it.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The run.
    pub run_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Its directory.
    pub dir: PathBuf,
    /// The agent branch.
    pub branch: String,
    /// The branch head, if anything was committed.
    pub head: Option<String>,
}

/// A progress line for the terminal.
pub type Reporter = Box<dyn FnMut(&str) + Send>;

/// One iteration as the manifest records it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct IterationRecord {
    /// Iteration number.
    pub iteration: u32,
    /// Commit tested.
    pub commit: String,
    /// Failures (failed tests + failed commands).
    pub failures: usize,
    /// Acceptance tests passing.
    pub acceptance_passing: usize,
    /// Progress score.
    pub score: f64,
    /// Whether it progressed.
    pub progressed: bool,
    /// Findings of the review.
    pub findings: usize,
    /// Highest budget use, percent.
    pub budget_pct: f64,
}

/// Everything resume needs, written after every iteration.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The base commit.
    pub base: String,
    /// The agent branch head (None: nothing committed).
    pub head: Option<String>,
    /// Last finished iteration.
    pub iteration: u32,
    /// Plan hash (hex).
    pub plan_hash: String,
    /// Last test results (baseline before iteration 1).
    pub last_results: TestResults,
    /// Iterations in a row without progress.
    pub streak: u32,
    /// Tool calls so far.
    pub tool_calls: u32,
    /// Wall clock used so far, seconds.
    pub elapsed_s: u64,
    /// Iteration records.
    pub iterations: Vec<IterationRecord>,
}

/// The engine of one run.
pub struct Engine {
    pub(super) run_id: String,
    pub(super) dir: RunDir,
    pub(super) store: Store,
    pub(super) repo: Repo,
    pub(super) policy: Policy,
    pub(super) launcher: Box<dyn RoleLauncher>,
    pub(super) agent_bin: PathBuf,
    pub(super) session: PathBuf,
    pub(super) key_source: KeySource,
    pub(super) state_dir: PathBuf,
    pub(super) public: BTreeMap<RoleName, PublicKey>,
    pub(super) shared: Arc<Shared>,
    pub(super) roles: BTreeMap<RoleName, ActorRef<RoleMsg>>,
    pub(super) base: String,
    pub(super) head: Option<String>,
    pub(super) head_tree: String,
    /// The commit codegen's overlay lower layer holds (`None`: codegen edits a full copy).
    pub(super) lower: Option<String>,
    pub(super) plan: Option<WorkPlan>,
    pub(super) plan_hash: Option<Digest32>,
    pub(super) report: Reporter,
    pub(super) started: SystemTime,
    pub(super) elapsed_before: Duration,
    pub(super) task_seq: u64,
    pub(super) iterations: Vec<IterationRecord>,
    pub(super) last_results: Option<TestResults>,
    pub(super) streak: u32,
    pub(super) iteration: u32,
    pub(super) files_read: Vec<String>,
    pub(super) stage: &'static str,
}

/// What the engine is built from.
pub struct EngineParts {
    /// Run id.
    pub run_id: String,
    /// State directory.
    pub state_dir: PathBuf,
    /// Open store.
    pub store: Store,
    /// The repository.
    pub repo: Repo,
    /// Loaded policy.
    pub policy: Policy,
    /// Launcher.
    pub launcher: Box<dyn RoleLauncher>,
    /// `orchestrate-agent`.
    pub agent_bin: PathBuf,
    /// Recorded session for the replay driver.
    pub session: PathBuf,
    /// Base commit.
    pub base: String,
    /// Terminal progress.
    pub report: Reporter,
}

impl Engine {
    /// A fresh engine (no roles started yet).
    pub fn new(p: EngineParts) -> Self {
        let dir = RunDir::new(&p.state_dir, &p.run_id);
        let runtime = Duration::from_secs(p.policy.limits.runtime_seconds);
        let shared = Arc::new(Shared {
            tool_calls: AtomicU32::new(0),
            tool_call_cap: AtomicU32::new(u32::MAX),
            stop_file: dir.stop_request(),
            deadline: tokio::time::Instant::now() + runtime,
        });
        Self {
            run_id: p.run_id,
            dir,
            store: p.store,
            repo: p.repo,
            policy: p.policy,
            launcher: p.launcher,
            agent_bin: p.agent_bin,
            session: p.session,
            key_source: KeySource::PerRun,
            state_dir: p.state_dir,
            public: BTreeMap::new(),
            shared,
            roles: BTreeMap::new(),
            head_tree: String::new(),
            lower: None,
            base: p.base,
            head: None,
            plan: None,
            plan_hash: None,
            report: p.report,
            started: SystemTime::now(),
            elapsed_before: Duration::ZERO,
            task_seq: 0,
            iterations: Vec::new(),
            last_results: None,
            streak: 0,
            iteration: 0,
            files_read: Vec::new(),
            stage: "preflight",
        }
    }

    /// The agent branch of this run.
    pub fn branch(&self) -> String {
        format!("agent/{}/{}", self.policy.fr.id, self.run_id)
    }

    /// Resets the run's deadline to `remaining` from now (resume).
    pub(super) fn set_remaining(&mut self, used: Duration) {
        let total = Duration::from_secs(self.policy.limits.runtime_seconds);
        self.elapsed_before = used;
        let shared = Shared {
            tool_calls: AtomicU32::new(self.shared.tool_calls.load(Ordering::SeqCst)),
            tool_call_cap: AtomicU32::new(self.shared.tool_call_cap.load(Ordering::SeqCst)),
            stop_file: self.dir.stop_request(),
            deadline: tokio::time::Instant::now() + total.saturating_sub(used),
        };
        self.shared = Arc::new(shared);
    }

    /// Wall clock used by the run (including before a resume).
    pub(super) fn elapsed(&self) -> Duration {
        self.elapsed_before + self.started.elapsed().unwrap_or_default()
    }

    /// Prints a progress line and appends it to `logs/run.log`.
    pub(super) fn say(&mut self, line: &str) {
        (self.report)(line);
        let path = self.dir.logs().join("run.log");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            use std::io::Write;
            let _ = writeln!(f, "{line}");
        }
    }

    /// Appends an audit event of this run.
    pub(super) fn event(&mut self, kind: &str, body: serde_json::Value) -> Result<(), EngineError> {
        self.store
            .append(&Event::for_run(self.run_id.clone(), kind, body))?;
        Ok(())
    }

    /// Sets the run's status in the store.
    pub(super) fn status(
        &mut self,
        status: &str,
        stop: Option<StopCode>,
    ) -> Result<(), EngineError> {
        self.store
            .set_run_status(&self.run_id, status, stop.map(|c| c.as_str()))?;
        Ok(())
    }

    /// Prepares keys: `orchestrate setup`'s when every role has one, else per-run keys.
    pub(super) fn prepare_keys(
        &mut self,
        use_setup: bool,
    ) -> Result<BTreeMap<RoleName, PathBuf>, EngineError> {
        let mut paths = BTreeMap::new();
        if use_setup {
            for role in RoleName::ALL {
                let dir = self.state_dir.join("keys").join(role.as_str());
                let public = PublicKey::read(&dir.join("ed25519.pub")).map_err(|source| {
                    EngineError::Key {
                        label: role.to_string(),
                        source,
                    }
                })?;
                self.public.insert(role, public);
                paths.insert(role, dir.join("ed25519.key"));
            }
            self.key_source = KeySource::Setup;
            return Ok(paths);
        }
        for role in RoleName::ALL {
            let path = self.dir.key(role);
            let pub_path = path.with_file_name("ed25519.pub");
            let key = if path.is_file() {
                KeyPair::read_private(&path).map_err(|source| EngineError::Key {
                    label: role.to_string(),
                    source,
                })?
            } else {
                layout::parent_dirs(&path)?;
                let key = KeyPair::generate();
                key.write_private(&path)
                    .map_err(|source| EngineError::Key {
                        label: role.to_string(),
                        source,
                    })?;
                key.public()
                    .write(&pub_path)
                    .map_err(|source| EngineError::Key {
                        label: role.to_string(),
                        source,
                    })?;
                key
            };
            self.public.insert(role, key.public());
            paths.insert(role, path);
        }
        self.key_source = KeySource::PerRun;
        Ok(paths)
    }

    /// Starts the six role processes and their actors, linked to `supervisor`.
    pub(super) async fn start_roles(
        &mut self,
        keys: &BTreeMap<RoleName, PathBuf>,
        supervisor: ActorCell,
    ) -> Result<(), EngineError> {
        let env = role_env(&self.policy.roles.sandbox.env_allow);
        for role in RoleName::ALL {
            let Some(policy) = self.policy.roles.role(role).cloned() else {
                continue;
            };
            let (ours, theirs) =
                UnixStream::pair().map_err(|source| EngineError::Socket { role, source })?;
            // Only a role that sends a signed artifact holds its key: codegen, whose work the
            // orchestrator reads from the volume itself, gets none (nor does a CLI it runs).
            let key = signs_artifacts(&policy)
                .then(|| keys.get(&role).cloned())
                .flatten();
            let spec = RoleSpec {
                role,
                run_id: self.run_id.clone(),
                agent_bin: self.agent_bin.clone(),
                key: key.clone(),
                log: self.dir.log(role),
                scratch: self.dir.volume().join("scratch").join(role.as_str()),
                env: env.clone(),
                socket: theirs.into(),
                read: {
                    let mut r = vec![self.agent_bin.clone()];
                    r.extend(key);
                    if role == RoleName::Codegen {
                        r.push(self.session.clone());
                    }
                    r
                },
                lifetime_s: self
                    .shared
                    .deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_secs()
                    + 60,
            };
            let process = self.launcher.launch(spec)?;
            let args = RoleArgs {
                role,
                run_id: self.run_id.clone(),
                policy,
                process,
                socket: ours,
                shared: Arc::clone(&self.shared),
            };
            let name = format!("{}-{role}", self.run_id);
            let (actor, _) = Actor::spawn_linked(Some(name), RoleActor, args, supervisor.clone())
                .await
                .map_err(|source| EngineError::Actor { role, source })?;
            self.roles.insert(role, actor);
        }
        // Cost-control starts its gateway on its own time; a role calling a model before it
        // listens would see its connection dropped (a resumed run's first iteration did, in CI).
        if let Some(socket) = self.launcher.gateway_socket() {
            wait_listening(&socket, GATEWAY_READY).await;
        }
        Ok(())
    }

    /// Kills every role process and stops the actors: no new call is accepted after this.
    pub(super) fn stop_roles(&mut self) {
        for (_, actor) in std::mem::take(&mut self.roles) {
            let _ = actor.send_message(RoleMsg::Kill);
            actor.stop(None);
        }
    }

    /// A task for `role` at the current iteration.
    pub(super) fn task(&mut self, input: &impl Serialize) -> Result<Task, EngineError> {
        self.task_seq += 1;
        Ok(Task {
            task_id: self.task_seq,
            fr_id: self.policy.fr.id.clone(),
            iteration: self.iteration,
            plan_hash: self.plan_hash.map(|h| h.to_hex()),
            plan: self.plan.clone(),
            base_commit: Some(self.base.clone()),
            candidate_commit: self.head.clone(),
            test_commands: self.policy.test_commands.clone(),
            feedback: Vec::new(),
            input: serde_json::to_value(input).map_err(|source| EngineError::Json {
                what: "task input",
                source,
            })?,
        })
    }

    /// Sends `task` to `role` and waits for its `want` result. Tool calls made on the way are
    /// recorded in the audit trail whether or not the task succeeds.
    pub(super) async fn call(
        &mut self,
        role: RoleName,
        task: Task,
        want: MessageKind,
    ) -> Result<Result<Reply, Fault>, EngineError> {
        let Some(actor) = self.roles.get(&role).cloned() else {
            return Ok(Err(Fault {
                code: StopCode::RoleCrashed,
                detail: format!("{role} is not running"),
                calls: vec![],
            }));
        };
        let result = actor
            .call(|port| RoleMsg::Call(Box::new(task), want, port), None)
            .await;
        let result = match result {
            Ok(CallResult::Success(r)) => r,
            Ok(CallResult::Timeout) | Ok(CallResult::SenderError) | Err(_) => Err(Fault {
                code: StopCode::RoleCrashed,
                detail: format!("the {role} actor died"),
                calls: vec![],
            }),
        };
        let calls: &[CallRecord] = match &result {
            Ok(r) => &r.calls,
            Err(f) => &f.calls,
        };
        let calls = calls.to_vec();
        for c in &calls {
            if c.call.tool == "read_file" {
                if let Some(p) = c.call.args.get("path").and_then(|p| p.as_str()) {
                    self.files_read.push(p.to_owned());
                }
            }
            self.event(
                "tool_call",
                serde_json::json!({"role": role, "call_id": c.call.call_id, "tool": c.call.tool, "allowed": c.allowed}),
            )?;
        }
        if let Ok(r) = &result {
            for line in &r.logs {
                tracing::debug!(%role, "{line}");
            }
        }
        Ok(result)
    }

    /// Asks `role` for one signed result: sends `task`, takes the reply of kind `want`, picks
    /// its body with `extract` (a reply without it is a protocol violation, `missing` says what
    /// was expected) and accepts the artifact the role signed for it as `artifact`.
    #[allow(clippy::too_many_arguments)] // one call, named by its parts; a struct would only rename them
    pub(super) async fn ask<T: DeserializeOwned + PartialEq>(
        &mut self,
        role: RoleName,
        task: Task,
        want: MessageKind,
        extract: fn(Message) -> Option<T>,
        missing: &str,
        artifact: &str,
        plan_hash: &Digest32,
    ) -> Result<Result<T, Fault>, EngineError> {
        let reply = match self.call(role, task, want).await? {
            Ok(r) => r,
            Err(f) => return Ok(Err(f)),
        };
        let Some(body) = extract(reply.body) else {
            return Ok(Err(Fault {
                code: StopCode::ProtocolViolation,
                detail: format!("{role} sent no {missing}"),
                calls: vec![],
            }));
        };
        if let Err(f) =
            self.accept_artifact(role, artifact, reply.artifact.as_ref(), &body, plan_hash)?
        {
            return Ok(Err(f));
        }
        Ok(Ok(body))
    }

    /// Verifies a result's signature (right role, run, plan, key) and that the signed body is
    /// the body that came in the message; writes it to `artifacts/<name>.dsse.json`.
    pub(super) fn accept_artifact<T: DeserializeOwned + PartialEq>(
        &mut self,
        role: RoleName,
        name: &str,
        artifact: Option<&DsseEnvelope>,
        body: &T,
        plan_hash: &Digest32,
    ) -> Result<Result<(), Fault>, EngineError> {
        let bad = |detail: String| Fault {
            code: StopCode::SecurityViolation,
            detail,
            calls: vec![],
        };
        let Some(env) = artifact else {
            return Ok(Err(bad(format!("{role} sent its {name} unsigned"))));
        };
        let Some(key) = self.public.get(&role) else {
            return Ok(Err(bad(format!("no public key for {role}"))));
        };
        let statement = match verify_artifact(env, role, &self.run_id, plan_hash, key) {
            Ok(s) => s,
            Err(e) => {
                return Ok(Err(bad(format!(
                    "{role}'s {name} artifact does not verify: {e}"
                ))))
            }
        };
        match statement.body::<T>() {
            Ok(signed) if &signed == body => {}
            _ => {
                return Ok(Err(bad(format!(
                    "{role}'s signed {name} differs from the message it sent"
                ))))
            }
        }
        layout::write_json(&self.dir.artifact(name), env)?;
        Ok(Ok(()))
    }
}

/// The environment a role gets: roles.yaml's allowlist, PATH, and the toolchain locations (a
/// role's HOME is its scratch dir, so rustup and cargo must be told where they live).
fn role_env(allow: &[String]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = allow
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
        .collect();
    let home = std::env::var("HOME").unwrap_or_default();
    let defaults = [
        (
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        (
            "CARGO_HOME",
            std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo")),
        ),
        (
            "RUSTUP_HOME",
            std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{home}/.rustup")),
        ),
    ];
    for (k, v) in defaults {
        env.push((k.to_owned(), v));
    }
    if let Ok(t) = std::env::var("RUSTUP_TOOLCHAIN") {
        env.push(("RUSTUP_TOOLCHAIN".into(), t));
    }
    env
}

/// Runs git in `dir` and returns trimmed stdout (for the few plumbing calls `crate::git` does not
/// offer: a commit's tree, bundles, diff stats).
pub(super) fn git_text(dir: &Path, args: &[&str]) -> Result<String, EngineError> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|source| EngineError::GitCmd {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            detail: source.to_string(),
        })?;
    if !out.status.success() {
        return Err(EngineError::GitCmd {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether a role's messages carry signed artifacts (plan, test results, review, progress,
/// ledger), so that it needs its private key.
fn signs_artifacts(policy: &protocol::roles::RolePolicy) -> bool {
    use MessageKind as K;
    policy.messages.iter().any(|m| {
        matches!(
            m,
            K::Plan | K::TestResults | K::Review | K::Progress | K::Ledger
        )
    })
}

/// How long the engine waits for cost-control's gateway to listen before going on without it
/// (a model call then fails on its own, with the gateway's error).
const GATEWAY_READY: std::time::Duration = std::time::Duration::from_secs(15);

/// Returns once `socket` accepts a connection, or after `limit`.
async fn wait_listening(socket: &std::path::Path, limit: std::time::Duration) {
    let start = tokio::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        if start.elapsed() >= limit {
            tracing::warn!(socket = %socket.display(), "the model gateway is not listening yet; going on");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::wait_listening;
    use std::time::{Duration, Instant};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_gateway_wait_ends_when_the_socket_listens_and_gives_up_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("gateway.sock");
        let t = Instant::now();
        block_on(wait_listening(&sock, Duration::from_millis(60)));
        assert!(
            t.elapsed() >= Duration::from_millis(60),
            "nothing listens: waits its limit"
        );
        // A listener that appears while the engine waits.
        let path = sock.clone();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            std::os::unix::net::UnixListener::bind(path).unwrap()
        });
        let t = Instant::now();
        block_on(wait_listening(&sock, Duration::from_secs(10)));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "returned once it listened"
        );
        drop(late.join().unwrap());
    }
}
