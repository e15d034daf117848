//! Launching role processes behind one trait, so the engine does not care how a role is
//! contained (a local sandbox today, a pod tomorrow). [`DirectLauncher`] runs the role as a plain
//! child process: no containment at all, allowed only with `--allow-weaker` and recorded as such.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use protocol::RoleName;

/// The fd number the role finds its frame socket on.
pub const FRAME_FD: i32 = 3;

/// What a launcher needs to start one role process.
#[derive(Debug)]
pub struct RoleSpec {
    /// The role.
    pub role: RoleName,
    /// The run.
    pub run_id: String,
    /// The `orchestrate-agent` binary.
    pub agent_bin: PathBuf,
    /// The role's private key; `None` for a role that signs nothing (codegen), which then never
    /// sees one: not in its root, not in its environment.
    pub key: Option<PathBuf>,
    /// Where its stderr goes (`logs/<role>.log`).
    pub log: PathBuf,
    /// Its scratch directory (HOME, caches).
    pub scratch: PathBuf,
    /// Environment passed in (already filtered by roles.yaml `env_allow` plus toolchain vars).
    pub env: Vec<(String, String)>,
    /// The role's end of the frame socket.
    pub socket: OwnedFd,
    /// Host paths the role must be able to read besides its policy's (its own binary and key,
    /// codegen's recorded session).
    pub read: Vec<PathBuf>,
    /// How long the process may live: the run's wall-clock ceiling (each task has its own, shorter
    /// limit from roles.yaml, enforced by the orchestrator).
    pub lifetime_s: u64,
}

impl RoleSpec {
    /// Opens the role's log for appending (its stderr), creating `logs/` if needed.
    pub fn open_log(&self) -> Result<std::fs::File, LaunchError> {
        let err = |source| LaunchError::Log {
            path: self.log.clone(),
            source,
        };
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(err)
    }
}

/// A started role process.
#[derive(Debug)]
pub struct RoleProcess {
    /// The child: the role itself (its pid is also its process group id), or the jail helper
    /// supervising it.
    pub child: Child,
    /// For a jailed role: the helper's report pipe; the report says which layers were live and,
    /// when the role never started, which setup step failed.
    pub jail_report: Option<std::fs::File>,
    /// Where the jail's failure is appended (the role's log).
    pub log: PathBuf,
}

impl RoleProcess {
    /// A plain child process.
    pub fn plain(child: Child, log: PathBuf) -> Self {
        Self {
            child,
            jail_report: None,
            log,
        }
    }

    /// Kills the role's whole process group (the role and anything it started); for a jailed
    /// role, asks the helper to kill every process of the sandbox and clean up.
    pub fn kill(&mut self) {
        if self.jail_report.is_some() {
            #[cfg(target_os = "linux")]
            if let Ok(pid) = i32::try_from(self.child.id()) {
                let _ = sandbox::linux::sys::kill(pid, sandbox::linux::jail::KILL_ALL);
            }
            let _ = self.child.wait();
            self.record_jail_report();
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: killpg only sends a signal; the group id is the child's pid, which the
            // child made its own group leader before exec (process_group(0)) and which stays
            // reserved until we reap it below.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Once the helper has exited: appends a setup or exec failure from its report to the role's
    /// log, so "exited without its result" has its reason next to it.
    pub fn record_jail_report(&mut self) {
        let Some(mut pipe) = self.jail_report.take() else {
            return;
        };
        let mut text = Vec::new();
        if std::io::Read::read_to_end(&mut pipe, &mut text).is_err() {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Ok(report) = serde_json::from_slice::<sandbox::report::LaunchReport>(&text) {
            let line = match (&report.setup_failure, &report.exec_failure) {
                (Some(f), _) => Some(format!(
                    "sandbox: setup failed ({}): {}",
                    f.layer.map_or("no layer", |l| l.name()),
                    f.error
                )),
                (None, Some(e)) => Some(format!("sandbox: exec failed: {}", e.error)),
                _ if report.wall_killed => Some("sandbox: killed by the wall clock".to_owned()),
                _ => None,
            };
            if let Some(line) = line {
                tracing::warn!(role = %report.role, "{line}");
                let _ = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&self.log)
                    .and_then(|mut f| {
                        std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes())
                    });
            }
        }
    }
}

/// Errors starting a role.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The log file could not be opened.
    #[error("opening role log {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The scratch directory could not be created.
    #[error("creating scratch {path}: {source}")]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The process could not be started.
    #[error("starting {role} ({bin}): {source}")]
    Spawn {
        /// The role.
        role: RoleName,
        /// The binary.
        bin: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// How the run contains its roles; recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Containment {
    /// `sandbox` or `weaker`.
    pub mode: String,
    /// Layers live for every role.
    pub layers_live: Vec<String>,
    /// Layers roles.yaml requires that are not live.
    pub layers_missing: Vec<String>,
}

/// Starts role processes.
pub trait RoleLauncher: Send + Sync {
    /// Starts one role process with its frame socket on fd 3.
    fn launch(&self, spec: RoleSpec) -> Result<RoleProcess, LaunchError>;
    /// What this launcher contains.
    fn containment(&self) -> Containment;
    /// The uid/gid that must own what `role` writes (its work tree), when roles run as their
    /// own OS users.
    fn writer(&self, _role: RoleName) -> Option<(u32, u32)> {
        None
    }
    /// Whether `role` sees the repository as an overlay (`volume/lower` under `volume/upper`,
    /// mounted at `volume/work`) rather than as a full copy it edits in place.
    fn overlay(&self, _role: RoleName) -> bool {
        false
    }
    /// The run's model gateway socket, when cost-control serves one: the engine waits for it to
    /// accept connections before any role may call a model through it.
    fn gateway_socket(&self) -> Option<PathBuf> {
        None
    }
}

/// Runs roles as plain child processes of the orchestrator (weaker mode): own process group,
/// empty environment plus the allowlist, stdin closed, stderr to the role's log. Nothing else.
#[derive(Debug, Clone)]
pub struct DirectLauncher {
    /// The layers roles.yaml requires (all reported missing except `env`).
    pub required: Vec<String>,
}

impl RoleLauncher for DirectLauncher {
    fn launch(&self, spec: RoleSpec) -> Result<RoleProcess, LaunchError> {
        std::fs::create_dir_all(&spec.scratch).map_err(|source| LaunchError::Scratch {
            path: spec.scratch.clone(),
            source,
        })?;
        let log = spec.open_log()?;
        let mut cmd = Command::new(&spec.agent_bin);
        cmd.arg(spec.role.as_str())
            .arg("--run")
            .arg(&spec.run_id)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("HOME", &spec.scratch)
            .env("ORCHESTRATE_FRAME_FD", FRAME_FD.to_string())
            .current_dir(&spec.scratch)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        if let Some(key) = &spec.key {
            cmd.env("ORCHESTRATE_KEY", key);
        }
        cmd.process_group(0);
        let fd = spec.socket.as_raw_fd();
        // SAFETY: the hook runs between fork and exec in a copy of a multi-threaded process; it
        // calls only prctl, dup2 and fcntl, which are async-signal-safe, on `fd`, which `spec.socket`
        // keeps open until after spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                // The role dies with the orchestrator: no orphan keeps working after a kill -9.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if fd == FRAME_FD {
                    // dup2 onto itself would keep FD_CLOEXEC: clear it instead.
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, FRAME_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            role: spec.role,
            bin: spec.agent_bin.clone(),
            source,
        })?;
        drop(spec.socket);
        Ok(RoleProcess::plain(child, spec.log))
    }

    fn containment(&self) -> Containment {
        Containment {
            mode: "weaker".into(),
            layers_live: vec!["env".into()],
            layers_missing: self
                .required
                .iter()
                .filter(|l| l.as_str() != "env")
                .cloned()
                .collect(),
        }
    }
}
