//! The containment plan: a pure function from one role's policy and the host's paths to data.
//!
//! Nothing here touches the system. `linux::` applies a [`Plan`] in the fixed order
//! namespaces → mounts → pivot_root → Landlock → identity → close fds → setsid → seccomp → exec.
//!
//! Paths keep their host spelling inside the new root (a bind of `/usr` lands on `/usr`, the repo's
//! overlay lands on the repo's own path). That way `{repo}` means the same string inside and out,
//! and the Landlock rules are the same whether or not the mount layer is on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One containment layer: separately switchable and separately reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Identity,
    Mount,
    Pid,
    Ipc,
    Uts,
    Network,
    Landlock,
    Seccomp,
    Rlimits,
    Cgroups,
    Env,
}

impl Layer {
    /// Every layer, in the order the report lists them.
    pub const ALL: [Layer; 11] = [
        Layer::Identity,
        Layer::Mount,
        Layer::Pid,
        Layer::Ipc,
        Layer::Uts,
        Layer::Network,
        Layer::Landlock,
        Layer::Seccomp,
        Layer::Rlimits,
        Layer::Cgroups,
        Layer::Env,
    ];

    /// The name used in roles.yaml's `sandbox.require` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Identity => "identity",
            Layer::Mount => "mount",
            Layer::Pid => "pid",
            Layer::Ipc => "ipc",
            Layer::Uts => "uts",
            Layer::Network => "network",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Rlimits => "rlimits",
            Layer::Cgroups => "cgroups",
            Layer::Env => "env",
        }
    }

    /// Inverse of [`Layer::name`].
    pub fn parse(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// The OS identity a role runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// What network a role gets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// Loopback only.
    None,
    /// Loopback plus the cost-control gateway's unix socket, bound into the root at its host path.
    Gateway { socket: PathBuf },
}

/// Resource limits, as in roles.yaml.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub cpu_seconds: u64,
    pub memory_mb: u64,
    pub pids: u64,
    pub wall_seconds: u64,
    pub nofile: u64,
    pub fsize_mb: u64,
}

/// The repository view: an overlay of `upper` over `lower` mounted at `path`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoView {
    /// Where `{repo}` points (same path inside the sandbox and on the host).
    pub path: PathBuf,
    /// The materialised base tree (owned by the writing role's uid).
    pub lower: PathBuf,
    /// The overlay's upper dir: the run's diff.
    pub upper: PathBuf,
    /// Where the overlay's work dirs are (same filesystem as `upper`): each launch's helper
    /// claims a slot under it (`linux/workslot.rs`).
    pub work: PathBuf,
}

/// One role's policy with every placeholder already resolved to an absolute host path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInput {
    pub role: String,
    /// `None` in the unprivileged (weaker) mode: the role keeps the caller's uid.
    pub identity: Option<Identity>,
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub system_read: Vec<PathBuf>,
    pub network: Network,
    pub limits: Limits,
    /// Allowlisted variables with the values the caller picked from its own environment.
    pub env: Vec<(String, String)>,
    /// Layers the policy requires (fail closed unless `allow_weaker`).
    pub require: BTreeSet<Layer>,
    /// Layers switched on for this launch (all of them, except in tests and weaker runs).
    pub enabled: BTreeSet<Layer>,
    pub allow_weaker: bool,
    pub repo: Option<RepoView>,
    /// The role's throwaway HOME (on the volume).
    pub home: PathBuf,
    /// Backing dir of the role's private `/tmp` (on the volume).
    pub tmp: PathBuf,
    pub cwd: PathBuf,
    pub argv: Vec<String>,
    /// Directories put in front of PATH (e.g. the toolchain's `bin`).
    pub path_prepend: Vec<PathBuf>,
    /// Fd numbers the role receives (e.g. the frame socket); the launcher says which fd goes where.
    pub pass_fds: Vec<i32>,
}

/// Where the cgroup controllers live on this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupHost {
    None,
    /// Separate `memory` and `pids` hierarchies (this machine).
    V1 {
        memory: PathBuf,
        pids: PathBuf,
    },
    /// A unified hierarchy with the controllers enabled at its root.
    V2 {
        root: PathBuf,
    },
}

/// Host facts the plan depends on; parameters so tests can use temp dirs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPaths {
    /// An empty directory; the new root's tmpfs is mounted on it inside the child's mount namespace
    /// only, so concurrent launches can share it.
    pub jail_root: PathBuf,
    pub cgroup: CgroupHost,
    /// Unique per launch: names the launch's cgroup.
    pub launch_id: String,
    /// Not root: namespaces come from a user namespace and identity cannot change.
    pub unprivileged: bool,
}

/// Which namespaces the child unshares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub net: bool,
}

impl Namespaces {
    /// The namespaces a launch with these layers switched on unshares (a user namespace when
    /// not root). Known before the policy is loaded: see `linux::early`.
    pub fn for_layers(enabled: &BTreeSet<Layer>, unprivileged: bool) -> Namespaces {
        let on = |l: Layer| enabled.contains(&l);
        Namespaces {
            user: unprivileged,
            mount: on(Layer::Mount),
            pid: on(Layer::Pid),
            ipc: on(Layer::Ipc),
            uts: on(Layer::Uts),
            net: on(Layer::Network),
        }
    }
}

/// One step that builds the new root; targets are paths inside the new root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountOp {
    Tmpfs {
        target: PathBuf,
        mode: u32,
    },
    /// Bind `src` (a directory, file, device node or socket) at `target`. A missing `src` is an
    /// error unless `optional`; a symlink `src` is recreated as the same symlink.
    Bind {
        src: PathBuf,
        target: PathBuf,
        writable: bool,
        optional: bool,
    },
    /// Overlay; `upper` = `Some((upper, work))` makes it writable (mounted `volatile`: the upper
    /// layer is read back by the orchestrator through the page cache, never after a crash), with
    /// its work dir in a slot the launch's helper claims under `work` and names to pid 1.
    Overlay {
        target: PathBuf,
        lower: Vec<PathBuf>,
        upper: Option<(PathBuf, PathBuf)>,
    },
    Proc {
        target: PathBuf,
    },
    Symlink {
        link: PathBuf,
        points_to: PathBuf,
    },
    /// A tmpfs at `target` holding only the host's character devices `nodes` (e.g. /dev/null),
    /// made with mknod under the same numbers where the jail may (root in the initial user
    /// namespace: two syscalls a node, where a bind is a mount and a teardown), else bound one by
    /// one. This tmpfs alone lacks `nodev`, so the nodes work; the role cannot add one (the
    /// directory is root's, 0755, and the role has no CAP_MKNOD).
    DevTmpfs {
        target: PathBuf,
        nodes: Vec<PathBuf>,
    },
    /// Make the new root's own tmpfs read-only once everything is mounted.
    RootReadOnly,
}

/// The new root: a tmpfs mounted at `mountpoint`, then `ops` in order, then `pivot_root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRoot {
    pub mountpoint: PathBuf,
    pub ops: Vec<MountOp>,
}

/// Landlock: everything not listed is denied; TCP bind/connect denied when `deny_tcp`, except on
/// `tcp_ports` (the gateway relay's loopback port of a model-calling role).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockRules {
    pub read_only: Vec<PathBuf>,
    pub read_write: Vec<PathBuf>,
    pub deny_tcp: bool,
    #[serde(default)]
    pub tcp_ports: Vec<u16>,
}

/// The seccomp rule map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompPlan {
    /// Syscalls that fail with EPERM.
    pub eperm: Vec<String>,
    /// `clone` with any CLONE_NEW* flag fails with EPERM.
    pub deny_clone_namespaces: bool,
    /// Syscalls that fail with ENOSYS (`clone3`: its flags are in memory a filter cannot read).
    pub enosys: Vec<String>,
}

/// A resource limit; soft == hard so the role cannot raise it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rlimit {
    Cpu(u64),
    As(u64),
    Nproc(u64),
    Fsize(u64),
    Nofile(u64),
    Core(u64),
}

/// The launch's cgroup: created in order, written, joined by the child, removed after exit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPlan {
    /// Directories to create (parents first); only the leaf ones in `remove` are removed after.
    pub create: Vec<PathBuf>,
    pub writes: Vec<(PathBuf, String)>,
    /// `cgroup.procs` files the child's pid is written to.
    pub join: Vec<PathBuf>,
    pub remove: Vec<PathBuf>,
}

/// The whole containment of one launch, as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub role: String,
    pub namespaces: Namespaces,
    pub new_root: Option<NewRoot>,
    pub landlock: Option<LandlockRules>,
    pub identity: Option<Identity>,
    pub seccomp: Option<SeccompPlan>,
    pub rlimits: Option<Vec<Rlimit>>,
    pub cgroup: Option<CgroupPlan>,
    /// `Some`: the role's whole environment. `None`: the env layer is off and the role inherits.
    pub env: Option<Vec<(String, String)>>,
    pub cwd: PathBuf,
    pub argv: Vec<String>,
    pub wall_seconds: u64,
    pub pass_fds: Vec<i32>,
    pub require: BTreeSet<Layer>,
    pub allow_weaker: bool,
    /// Layers switched off by the caller (reported as skipped).
    pub switched_off: Vec<Layer>,
}

/// Why a policy cannot become a plan.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("{field}: path {path:?} is not absolute")]
    RelativePath { field: &'static str, path: PathBuf },
    #[error("{field}: path {path:?} contains `..`")]
    DotDot { field: &'static str, path: PathBuf },
    #[error("argv is empty")]
    EmptyArgv,
    #[error("pass_fds: fd {0} is not in 3..=255")]
    BadFd(i32),
    #[error("env: variable name {0:?} is empty or contains `=` or NUL")]
    BadEnvName(String),
    #[error("layer {layer} is required but switched off, and allow_weaker is not set")]
    RequiredLayerOff { layer: &'static str },
    #[error("identity: a per-role uid/gid needs root; unprivileged mode has none")]
    IdentityUnprivileged,
    #[error(
        "{field}: {path:?} is under /tmp, which the role's private /tmp hides inside the sandbox"
    )]
    UnderTmp { field: &'static str, path: PathBuf },
}

/// Syscalls no role needs and every escape wants.
pub const SECCOMP_EPERM: [&str; 22] = [
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
];

/// Device nodes a role gets in its minimal /dev.
pub const DEV_NODES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

const MIB: u64 = 1024 * 1024;
/// Address space: generous, JIT runtimes reserve large ranges; the memory cgroup is the real bound.
const AS_FLOOR: u64 = 64 * 1024 * MIB;
/// RLIMIT_NPROC counts per real uid host-wide: keep it generous; the pids cgroup is the real bound.
const NPROC_FLOOR: u64 = 4096;

impl Plan {
    /// Turns one role's policy into its containment plan.
    pub fn build(input: &PolicyInput, host: &HostPaths) -> Result<Plan, PlanError> {
        validate(input)?;
        let on = |l: Layer| input.enabled.contains(&l);
        for layer in Layer::ALL {
            if input.require.contains(&layer) && !on(layer) && !input.allow_weaker {
                return Err(PlanError::RequiredLayerOff {
                    layer: layer.name(),
                });
            }
        }
        if on(Layer::Identity) && host.unprivileged && input.identity.is_some() {
            return Err(PlanError::IdentityUnprivileged);
        }
        let namespaces = Namespaces::for_layers(&input.enabled, host.unprivileged);
        Ok(Plan {
            role: input.role.clone(),
            namespaces,
            new_root: on(Layer::Mount).then(|| new_root(input, host)),
            landlock: on(Layer::Landlock).then(|| landlock_rules(input, on(Layer::Mount))),
            identity: if on(Layer::Identity) {
                input.identity
            } else {
                None
            },
            seccomp: on(Layer::Seccomp).then(seccomp_plan),
            rlimits: on(Layer::Rlimits).then(|| rlimits(&input.limits)),
            cgroup: if on(Layer::Cgroups) {
                cgroup_plan(&host.cgroup, &host.launch_id, &input.limits)
            } else {
                None
            },
            env: on(Layer::Env).then(|| role_env(input, on(Layer::Mount))),
            cwd: input.cwd.clone(),
            argv: input.argv.clone(),
            wall_seconds: input.limits.wall_seconds,
            pass_fds: input.pass_fds.clone(),
            require: input.require.clone(),
            allow_weaker: input.allow_weaker,
            switched_off: Layer::ALL.into_iter().filter(|l| !on(*l)).collect(),
        })
    }
}

fn validate(input: &PolicyInput) -> Result<(), PlanError> {
    let mut paths: Vec<(&'static str, &Path)> = vec![
        ("home", &input.home),
        ("tmp", &input.tmp),
        ("cwd", &input.cwd),
    ];
    paths.extend(input.read.iter().map(|p| ("read", p.as_path())));
    paths.extend(input.write.iter().map(|p| ("write", p.as_path())));
    paths.extend(
        input
            .system_read
            .iter()
            .map(|p| ("system_read", p.as_path())),
    );
    if let Network::Gateway { socket } = &input.network {
        paths.push(("network.gateway", socket));
    }
    if let Some(r) = &input.repo {
        paths.extend([
            ("repo.path", &*r.path),
            ("repo.lower", &r.lower),
            ("repo.upper", &r.upper),
            ("repo.work", &r.work),
        ]);
    }
    for (field, path) in paths {
        if input.enabled.contains(&Layer::Mount) && field != "cwd" && path.starts_with("/tmp") {
            return Err(PlanError::UnderTmp {
                field,
                path: path.to_path_buf(),
            });
        }
        if !path.is_absolute() {
            return Err(PlanError::RelativePath {
                field,
                path: path.to_path_buf(),
            });
        }
        if path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(PlanError::DotDot {
                field,
                path: path.to_path_buf(),
            });
        }
    }
    if input.argv.is_empty() {
        return Err(PlanError::EmptyArgv);
    }
    if let Some(fd) = input.pass_fds.iter().find(|fd| !(3..=255).contains(*fd)) {
        return Err(PlanError::BadFd(*fd));
    }
    if let Some((name, _)) = input
        .env
        .iter()
        .find(|(n, _)| n.is_empty() || n.contains(['=', '\0']))
    {
        return Err(PlanError::BadEnvName(name.clone()));
    }
    Ok(())
}

fn is_repo(input: &PolicyInput, p: &Path) -> bool {
    input.repo.as_ref().is_some_and(|r| r.path == p)
}

fn new_root(input: &PolicyInput, host: &HostPaths) -> NewRoot {
    let mut ops = vec![MountOp::Tmpfs {
        target: PathBuf::from("/"),
        mode: 0o755,
    }];
    for p in &input.system_read {
        ops.push(MountOp::Bind {
            src: p.clone(),
            target: p.clone(),
            writable: false,
            optional: true,
        });
    }
    for p in input
        .read
        .iter()
        .filter(|p| !is_repo(input, p) && !input.write.contains(p))
    {
        ops.push(MountOp::Bind {
            src: p.clone(),
            target: p.clone(),
            writable: false,
            optional: false,
        });
    }
    if let Some(repo) = &input.repo {
        let writable = input.write.contains(&repo.path);
        if writable {
            ops.push(MountOp::Overlay {
                target: repo.path.clone(),
                lower: vec![repo.lower.clone()],
                // `volatile`: no syncfs of the volume at unmount, which cost up to a second per
                // launch on a busy disk. The helper claims the work dir (a reusable slot).
                upper: Some((repo.upper.clone(), repo.work.clone())),
            });
        } else if input.read.contains(&repo.path) {
            // A reader sees the candidate tree (upper over lower) and can change nothing.
            ops.push(MountOp::Overlay {
                target: repo.path.clone(),
                lower: vec![repo.upper.clone(), repo.lower.clone()],
                upper: None,
            });
        }
    }
    for p in input.write.iter().filter(|p| !is_repo(input, p)) {
        ops.push(MountOp::Bind {
            src: p.clone(),
            target: p.clone(),
            writable: true,
            optional: false,
        });
    }
    ops.push(MountOp::Bind {
        src: input.home.clone(),
        target: input.home.clone(),
        writable: true,
        optional: false,
    });
    ops.push(MountOp::Bind {
        src: input.tmp.clone(),
        target: PathBuf::from("/tmp"),
        writable: true,
        optional: false,
    });
    if let Network::Gateway { socket } = &input.network {
        ops.push(MountOp::Bind {
            src: socket.clone(),
            target: socket.clone(),
            writable: true,
            optional: false,
        });
    }
    ops.push(MountOp::Proc {
        target: PathBuf::from("/proc"),
    });
    ops.push(MountOp::DevTmpfs {
        target: PathBuf::from("/dev"),
        nodes: DEV_NODES.map(|n| Path::new("/dev").join(n)).to_vec(),
    });
    ops.push(MountOp::Tmpfs {
        target: PathBuf::from("/dev/shm"),
        mode: 0o1777,
    });
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(MountOp::Symlink {
            link: Path::new("/dev").join(link),
            points_to: PathBuf::from(to),
        });
    }
    ops.push(MountOp::RootReadOnly);
    NewRoot {
        mountpoint: host.jail_root.clone(),
        ops,
    }
}

/// With the mount layer off, the rules name the host paths the role would otherwise see remapped:
/// its tmp dir instead of the host's shared /tmp, and no /dev/shm.
fn landlock_rules(input: &PolicyInput, mount: bool) -> LandlockRules {
    let mut read_only: Vec<PathBuf> = input.system_read.clone();
    read_only.extend(
        input
            .read
            .iter()
            .filter(|p| !input.write.contains(p))
            .cloned(),
    );
    read_only.push(PathBuf::from("/proc"));
    read_only.extend(["random", "urandom"].map(|n| Path::new("/dev").join(n)));
    let mut read_write: Vec<PathBuf> = input.write.clone();
    let tmp = if mount {
        PathBuf::from("/tmp")
    } else {
        input.tmp.clone()
    };
    read_write.extend([input.home.clone(), tmp]);
    read_write.extend(["null", "zero", "full"].map(|n| Path::new("/dev").join(n)));
    if mount {
        read_write.push(PathBuf::from("/dev/shm"));
    }
    if let Network::Gateway { socket } = &input.network {
        read_write.push(socket.clone());
    }
    LandlockRules {
        read_only,
        read_write,
        deny_tcp: true,
        tcp_ports: Vec::new(),
    }
}

fn seccomp_plan() -> SeccompPlan {
    SeccompPlan {
        eperm: SECCOMP_EPERM.iter().map(|s| (*s).to_owned()).collect(),
        deny_clone_namespaces: true,
        enosys: vec!["clone3".to_owned()],
    }
}

fn rlimits(l: &Limits) -> Vec<Rlimit> {
    vec![
        Rlimit::Cpu(l.cpu_seconds),
        Rlimit::As(AS_FLOOR.max(l.memory_mb.saturating_mul(MIB).saturating_mul(4))),
        Rlimit::Nproc(NPROC_FLOOR.max(l.pids.saturating_mul(4))),
        Rlimit::Fsize(l.fsize_mb.saturating_mul(MIB)),
        Rlimit::Nofile(l.nofile),
        Rlimit::Core(0),
    ]
}

/// The launch's cgroup under an `orchestrate` parent, for whichever hierarchy the host has.
pub fn cgroup_plan(host: &CgroupHost, launch_id: &str, l: &Limits) -> Option<CgroupPlan> {
    let memory = l.memory_mb.saturating_mul(MIB).to_string();
    let pids = l.pids.to_string();
    match host {
        CgroupHost::None => None,
        CgroupHost::V1 {
            memory: mem_root,
            pids: pids_root,
        } => {
            let (mp, pp) = (mem_root.join("orchestrate"), pids_root.join("orchestrate"));
            let (m, p) = (mp.join(launch_id), pp.join(launch_id));
            Some(CgroupPlan {
                create: vec![mp, m.clone(), pp, p.clone()],
                writes: vec![
                    (m.join("memory.limit_in_bytes"), memory),
                    (m.join("memory.swappiness"), "0".to_owned()),
                    (p.join("pids.max"), pids),
                ],
                join: vec![m.join("cgroup.procs"), p.join("cgroup.procs")],
                remove: vec![m, p],
            })
        }
        CgroupHost::V2 { root } => {
            let parent = root.join("orchestrate");
            let leaf = parent.join(launch_id);
            Some(CgroupPlan {
                create: vec![parent.clone(), leaf.clone()],
                writes: vec![
                    (
                        root.join("cgroup.subtree_control"),
                        "+memory +pids".to_owned(),
                    ),
                    (
                        parent.join("cgroup.subtree_control"),
                        "+memory +pids".to_owned(),
                    ),
                    (leaf.join("memory.max"), memory),
                    (leaf.join("memory.swap.max"), "0".to_owned()),
                    (leaf.join("pids.max"), pids),
                ],
                join: vec![leaf.join("cgroup.procs")],
                remove: vec![leaf],
            })
        }
    }
}

fn role_env(input: &PolicyInput, mount: bool) -> Vec<(String, String)> {
    let tmp = if mount {
        "/tmp".to_owned()
    } else {
        input.tmp.to_string_lossy().into_owned()
    };
    let home = input.home.to_string_lossy().into_owned();
    let mut path: String = input
        .path_prepend
        .iter()
        .map(|p| format!("{}:", p.display()))
        .collect();
    path.push_str("/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin");
    let set = [
        ("HOME", home.clone()),
        ("PATH", path),
        ("TMPDIR", tmp),
        ("XDG_CACHE_HOME", format!("{home}/.cache")),
        ("XDG_CONFIG_HOME", format!("{home}/.config")),
        ("XDG_DATA_HOME", format!("{home}/.local/share")),
        ("CARGO_HOME", format!("{home}/.cargo")),
        ("npm_config_cache", format!("{home}/.npm")),
        ("UV_CACHE_DIR", format!("{home}/.cache/uv")),
        ("USER", input.role.clone()),
    ];
    let mut env: Vec<(String, String)> = set.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for (k, v) in &input.env {
        // The allowlist never overrides the variables the sandbox sets itself.
        if !env.iter().any(|(e, _)| e == k) {
            env.push((k.clone(), v.clone()));
        }
    }
    env
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
