//! `orchestrate sandbox exec --role ROLE [--volume DIR] [--repo DIR] [--allow-weaker] -- CMD`:
//! one role's full containment around an arbitrary command. The CLI maps roles.yaml into
//! [`RoleSpec`]/[`SandboxSpec`] (plain data, so this crate needs no YAML) and calls [`exec`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use crate::linux::early::Early;
use crate::linux::launch::{self, LaunchError, Launcher};
use crate::plan::{
    CgroupHost, HostPaths, Identity, Layer, Limits, Namespaces, Network, Plan, PlanError,
    PolicyInput,
};
use crate::report::{LaunchReport, LayerReport, LayerStatus};
use crate::volume::{VolumeError, VolumeLayout};

/// One role from roles.yaml, placeholders unresolved (`{repo}`, `{volume}`, `{scratch}`, `{toolchain}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleSpec {
    pub name: String,
    pub user: String,
    pub read: Vec<String>,
    pub write: Vec<String>,
    /// `true` for `network: gateway`.
    pub gateway: bool,
    pub limits: Limits,
}

/// roles.yaml's `sandbox` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxSpec {
    pub require: BTreeSet<Layer>,
    pub system_read: Vec<PathBuf>,
    pub env_allow: Vec<String>,
}

/// Everything one `sandbox exec` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    pub role: RoleSpec,
    pub sandbox: SandboxSpec,
    /// The repository (its HEAD is materialised into the volume's lower layer).
    pub repo: PathBuf,
    /// The sandbox volume; must not be under /tmp (the role's /tmp is mounted there).
    pub volume: PathBuf,
    /// `{toolchain}`: e.g. RUSTUP_HOME and CARGO_HOME (read-only).
    pub toolchain: Vec<PathBuf>,
    pub gateway_socket: Option<PathBuf>,
    pub allow_weaker: bool,
    /// `None`: look the role's OS user up by name.
    pub identity: Option<Identity>,
    /// Layers to switch on (normally all).
    pub enabled: BTreeSet<Layer>,
    /// Where the memory and pids controllers are (`probe::host_cgroup()`).
    pub cgroup: CgroupHost,
    pub argv: Vec<String>,
    /// Fds the role receives at these numbers (e.g. `[3]` for the frame socket); the caller
    /// hands the matching fds to `launch::spawn` in the same order.
    pub pass_fds: Vec<i32>,
    /// Variables set for the role besides the allowlist (e.g. `ORCHESTRATE_FRAME_FD=3`).
    pub extra_env: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("role {role}: placeholder in {value:?} is unknown (known: {{repo}} {{volume}} {{scratch}} {{toolchain}})")]
    Placeholder { role: String, value: String },
    #[error("identity: OS user {user:?} for role {role} does not exist (run `orchestrate setup`, or --allow-weaker)")]
    NoUser { role: String, user: String },
    #[error("identity: not root, so role {role} cannot run as its own OS user (run as root, or --allow-weaker)")]
    NotRoot { role: String },
    #[error("volume: {0}")]
    Volume(#[from] VolumeError),
    #[error("plan: {0}")]
    Plan(#[from] PlanError),
    #[error("launch: {0}")]
    Launch(#[from] LaunchError),
}

/// uid/gid of an OS user, if it exists (a failed lookup counts as absent: the launch then
/// refuses with `NoUser`).
pub fn lookup_user(name: &str) -> Option<Identity> {
    crate::setup::lookup_user(name)
        .ok()
        .flatten()
        .map(|a| Identity {
            uid: a.uid,
            gid: a.gid,
        })
}

fn resolve(
    role: &str,
    value: &str,
    repo: &Path,
    vol: &VolumeLayout,
    toolchain: &[PathBuf],
) -> Result<Vec<PathBuf>, ExecError> {
    let err = || ExecError::Placeholder {
        role: role.to_owned(),
        value: value.to_owned(),
    };
    let one = |base: PathBuf, rest: &str| -> Vec<PathBuf> {
        let rest = rest.trim_start_matches('/');
        vec![if rest.is_empty() {
            base
        } else {
            base.join(rest)
        }]
    };
    if let Some(rest) = value.strip_prefix("{repo}") {
        return Ok(one(repo.to_path_buf(), rest));
    }
    if let Some(rest) = value.strip_prefix("{volume}") {
        return Ok(one(vol.root.clone(), rest));
    }
    if let Some(rest) = value.strip_prefix("{scratch}") {
        return Ok(one(vol.scratch(role), rest));
    }
    if let Some(rest) = value.strip_prefix("{toolchain}") {
        return Ok(toolchain
            .iter()
            .flat_map(|t| one(t.clone(), rest))
            .collect());
    }
    if value.contains('{') || !value.starts_with('/') {
        return Err(err());
    }
    Ok(vec![PathBuf::from(value)])
}

/// Builds the role's plan (creating and materialising the volume). Returns the plan plus the
/// layers that had to be dropped up front (identity without a user) for the report.
pub fn prepare(req: &ExecRequest) -> Result<(Plan, Vec<LayerReport>), ExecError> {
    let role = &req.role;
    let unprivileged = crate::linux::sys::geteuid() != 0;
    let mut enabled = req.enabled.clone();
    let mut dropped = Vec::new();
    let identity = if !enabled.contains(&Layer::Identity) {
        None
    } else if unprivileged {
        if req.sandbox.require.contains(&Layer::Identity) && !req.allow_weaker {
            return Err(ExecError::NotRoot {
                role: role.name.clone(),
            });
        }
        enabled.remove(&Layer::Identity);
        dropped.push(LayerReport {
            layer: Layer::Identity,
            status: LayerStatus::Unavailable {
                reason: "not root: no per-role user".to_owned(),
            },
        });
        None
    } else {
        match req.identity.or_else(|| lookup_user(&role.user)) {
            Some(id) => Some(id),
            None if req.allow_weaker => {
                enabled.remove(&Layer::Identity);
                dropped.push(LayerReport {
                    layer: Layer::Identity,
                    status: LayerStatus::Unavailable {
                        reason: format!("OS user {:?} does not exist", role.user),
                    },
                });
                None
            }
            None => {
                return Err(ExecError::NoUser {
                    role: role.name.clone(),
                    user: role.user.clone(),
                })
            }
        }
    };
    let vol = VolumeLayout::new(&req.volume);
    let writes_repo = role.write.iter().any(|w| w == "{repo}");
    vol.create(if writes_repo { identity } else { None })?;
    vol.create_role(&role.name, identity)?;
    vol.materialise_git(&req.repo, "HEAD", if writes_repo { identity } else { None })?;
    let mut read = Vec::new();
    for r in &role.read {
        read.extend(resolve(&role.name, r, &req.repo, &vol, &req.toolchain)?);
    }
    let mut write = Vec::new();
    for w in &role.write {
        write.extend(resolve(&role.name, w, &req.repo, &vol, &req.toolchain)?);
    }
    let network = match (role.gateway, &req.gateway_socket) {
        (false, _) => Network::None,
        (true, Some(s)) => Network::Gateway { socket: s.clone() },
        // No gateway to reach: loopback only, which is stricter, not weaker.
        (true, None) => Network::None,
    };
    let env = req
        .sandbox
        .env_allow
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
        .chain(req.extra_env.iter().cloned())
        .collect();
    let input = PolicyInput {
        role: role.name.clone(),
        identity,
        read,
        write,
        system_read: req.sandbox.system_read.clone(),
        network,
        limits: role.limits,
        env,
        require: req.sandbox.require.clone(),
        enabled,
        allow_weaker: req.allow_weaker,
        repo: Some(vol.repo_view(&req.repo)),
        home: vol.home(&role.name),
        tmp: vol.tmp(&role.name),
        cwd: req.repo.clone(),
        argv: req.argv.clone(),
        path_prepend: req.toolchain.iter().map(|t| t.join("bin")).collect(),
        pass_fds: req.pass_fds.clone(),
    };
    let host = HostPaths {
        jail_root: vol.jail_root(),
        cgroup: req.cgroup.clone(),
        launch_id: format!("{}-{}-{}", role.name, std::process::id(), unique()),
        unprivileged,
    };
    // An identity dropped for weaker mode is not "switched off": report it as unavailable.
    let mut plan = Plan::build(&input, &host)?;
    plan.switched_off
        .retain(|l| !dropped.iter().any(|d| d.layer == *l));
    Ok((plan, dropped))
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// For a single-threaded caller that knows the layers but has not loaded the policy yet: forks
/// the launch's pid 1 now, so it builds its namespaces while the caller loads roles.yaml and
/// prepares the volume (see `linux::early`). `None`: launch the usual way.
pub fn start_early(enabled: &BTreeSet<Layer>) -> Option<Early> {
    if !single_threaded() {
        return None;
    }
    let unprivileged = crate::linux::sys::geteuid() != 0;
    Early::start(Namespaces::for_layers(enabled, unprivileged)).ok()
}

/// Whether the calling process has exactly one thread (then it may fork and supervise itself).
/// procfs gives `/proc/self/task` a link count of 2 + the number of threads: one stat, where
/// reading `/proc/self/status` would have the kernel format forty lines.
pub fn single_threaded() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/task").is_ok_and(|m| m.nlink() == 3)
}

/// Runs the command under the role's containment with inherited stdio; the report's
/// `exit_code()` is the status to exit with. A single-threaded caller (the `orchestrate` CLI)
/// supervises the launch itself, saving the helper's exec, and may have forked pid 1 already
/// ([`start_early`]); any other caller starts `launcher`.
pub fn exec(
    req: &ExecRequest,
    launcher: &Launcher,
    early: Option<Early>,
) -> Result<LaunchReport, ExecError> {
    let (plan, dropped) = prepare(req)?;
    let mut report = match early {
        Some(early) => early.run(&plan),
        None if single_threaded() => crate::linux::jail::supervise(&plan),
        None => launch::run(launcher, &plan)?,
    };
    report.layers.extend(dropped);
    report.layers.sort_by_key(|l| l.layer);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_task_link_count_is_two_plus_the_threads() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv().ok());
        let threads = std::fs::read_dir("/proc/self/task").unwrap().count() as u64;
        let nlink = std::fs::metadata("/proc/self/task").unwrap().nlink();
        assert!(threads >= 2, "the test thread and the one just spawned");
        assert_eq!(nlink, threads + 2);
        assert!(!super::single_threaded());
        drop(tx);
        t.join().unwrap();
    }
}
