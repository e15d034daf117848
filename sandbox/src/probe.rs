//! What each containment layer can do on this host, probed for real: namespaces and seccomp are
//! tried in a throwaway child (std's spawn with a pre-exec hook that makes one async-signal-safe
//! syscall, so this is safe in a multi-threaded caller), Landlock's ABI is asked from the kernel,
//! cgroups are looked for under a root given as a parameter. `orchestrate doctor` prints this.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::linux::sys;
use crate::plan::{CgroupHost, Layer};

/// One layer's availability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Availability {
    Available { detail: String },
    Unavailable { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerProbe {
    pub layer: Layer,
    #[serde(flatten)]
    pub availability: Availability,
}

/// Everything `doctor` reports about containment on this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProbe {
    pub root: bool,
    pub kernel: String,
    pub landlock_abi: i32,
    pub user_namespaces: bool,
    pub overlayfs: bool,
    pub cgroup: CgroupHost,
    pub layers: Vec<LayerProbe>,
}

impl HostProbe {
    pub fn available(&self, layer: Layer) -> bool {
        self.layers
            .iter()
            .any(|l| l.layer == layer && matches!(l.availability, Availability::Available { .. }))
    }
}

/// Finds memory+pids controllers from a mount table (`/proc/self/mounts`): a cgroup2 mount whose
/// `cgroup.controllers` lists both, else cgroup v1 mounts carrying the `memory` and `pids` options.
pub fn detect_cgroup(mounts: &str) -> CgroupHost {
    let (mut memory, mut pids, mut v2) = (None, None, Vec::new());
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(dir), Some(kind), Some(opts)) = (f.get(1), f.get(2), f.get(3)) else {
            continue;
        };
        let dir = PathBuf::from(dir.replace("\\040", " "));
        match *kind {
            "cgroup2" => v2.push(dir),
            "cgroup" => {
                let opts: Vec<&str> = opts.split(',').collect();
                if opts.contains(&"memory") {
                    memory = Some(dir.clone());
                }
                if opts.contains(&"pids") {
                    pids = Some(dir);
                }
            }
            _ => {}
        }
    }
    for root in v2 {
        if let Ok(c) = std::fs::read_to_string(root.join("cgroup.controllers")) {
            let names: Vec<&str> = c.split_whitespace().collect();
            if names.contains(&"memory") && names.contains(&"pids") {
                return CgroupHost::V2 { root };
            }
        }
    }
    match (memory, pids) {
        (Some(memory), Some(pids)) => CgroupHost::V1 { memory, pids },
        _ => CgroupHost::None,
    }
}

/// [`detect_cgroup`] on this process's mount table.
pub fn host_cgroup() -> CgroupHost {
    detect_cgroup(&std::fs::read_to_string("/proc/self/mounts").unwrap_or_default())
}

/// Runs /bin/true after `hook` in the child; `Err` is what the hook's syscall returned.
fn try_in_child(
    hook: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) -> Result<(), String> {
    let mut cmd = Command::new("/bin/true");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: every hook below makes one raw syscall (unshare or seccomp), which is
    // async-signal-safe, and allocates nothing.
    unsafe { cmd.pre_exec(hook) };
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("probe child exited {s}")),
        Err(e) => Err(e.to_string()),
    }
}

fn unshare_probe(flag: libc::c_int, name: &str) -> Availability {
    match try_in_child(move || sys::unshare(flag)) {
        Ok(()) => Availability::Available {
            detail: format!("unshare({name}) works"),
        },
        Err(e) => Availability::Unavailable {
            reason: format!("unshare({name}): {e}"),
        },
    }
}

/// The kernel's Landlock ABI version (0: none).
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attr, size 0 and the VERSION flag, the call only returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

fn seccomp_probe() -> Availability {
    let plan = crate::plan::SeccompPlan {
        eperm: vec!["kexec_load".to_owned()],
        deny_clone_namespaces: true,
        enosys: vec![],
    };
    let compiled = match crate::linux::seccomp::compile(&plan) {
        Ok(c) => c,
        Err(e) => {
            return Availability::Unavailable {
                reason: e.to_string(),
            }
        }
    };
    let hook = move || {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)?;
        // No allocation after fork: report a fixed errno.
        compiled
            .install()
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
    };
    match try_in_child(hook) {
        Ok(()) => Availability::Available {
            detail: "seccomp filter installs".to_owned(),
        },
        Err(e) => Availability::Unavailable { reason: e },
    }
}

/// Probes every layer; `mounts` is the text of `/proc/self/mounts` (a parameter for tests).
pub fn probe(mounts: &str) -> HostProbe {
    let root = sys::geteuid() == 0;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let abi = landlock_abi();
    let userns = matches!(
        unshare_probe(libc::CLONE_NEWUSER, "CLONE_NEWUSER"),
        Availability::Available { .. }
    );
    let overlayfs = std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|f| f.lines().any(|l| l.ends_with("overlay")));
    let cgroup = detect_cgroup(mounts);
    let ns = |flag, name: &str| {
        if root {
            unshare_probe(flag, name)
        } else if userns {
            // Unprivileged: every other namespace comes from a user namespace, as in the jail.
            unshare_probe(flag | libc::CLONE_NEWUSER, &format!("CLONE_NEWUSER|{name}"))
        } else {
            Availability::Unavailable {
                reason: "neither root nor user namespaces".to_owned(),
            }
        }
    };
    let mut layers = vec![
        LayerProbe {
            layer: Layer::Identity,
            availability: if root {
                Availability::Available {
                    detail: "root: can setuid to per-role users".to_owned(),
                }
            } else {
                Availability::Unavailable {
                    reason: "not root: no per-role users (weaker mode)".to_owned(),
                }
            },
        },
        LayerProbe {
            layer: Layer::Mount,
            availability: match (ns(libc::CLONE_NEWNS, "CLONE_NEWNS"), overlayfs) {
                (Availability::Available { detail }, true) => Availability::Available {
                    detail: format!("{detail}; overlayfs present"),
                },
                (Availability::Available { .. }, false) => Availability::Unavailable {
                    reason: "overlayfs not in /proc/filesystems".to_owned(),
                },
                (u, _) => u,
            },
        },
        LayerProbe {
            layer: Layer::Pid,
            availability: ns(libc::CLONE_NEWPID, "CLONE_NEWPID"),
        },
        LayerProbe {
            layer: Layer::Ipc,
            availability: ns(libc::CLONE_NEWIPC, "CLONE_NEWIPC"),
        },
        LayerProbe {
            layer: Layer::Uts,
            availability: ns(libc::CLONE_NEWUTS, "CLONE_NEWUTS"),
        },
        LayerProbe {
            layer: Layer::Network,
            availability: ns(libc::CLONE_NEWNET, "CLONE_NEWNET"),
        },
        LayerProbe {
            layer: Layer::Landlock,
            availability: if abi >= 6 {
                Availability::Available {
                    detail: format!("ABI {abi}"),
                }
            } else {
                Availability::Unavailable {
                    reason: format!("Landlock ABI {abi}, need 6 (fs + TCP + scopes)"),
                }
            },
        },
        LayerProbe {
            layer: Layer::Seccomp,
            availability: seccomp_probe(),
        },
        LayerProbe {
            layer: Layer::Rlimits,
            availability: Availability::Available {
                detail: "setrlimit".to_owned(),
            },
        },
        LayerProbe {
            layer: Layer::Cgroups,
            availability: cgroup_availability(&cgroup, root),
        },
        LayerProbe {
            layer: Layer::Env,
            availability: Availability::Available {
                detail: "execve with an explicit environment".to_owned(),
            },
        },
    ];
    layers.sort_by_key(|l| l.layer);
    HostProbe {
        root,
        kernel,
        landlock_abi: abi,
        user_namespaces: userns,
        overlayfs,
        cgroup,
        layers,
    }
}

fn cgroup_availability(cg: &CgroupHost, root: bool) -> Availability {
    let writable = |p: &PathBuf| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
        // SAFETY: c is a live CString; access only checks permissions.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    };
    match cg {
        CgroupHost::None => Availability::Unavailable {
            reason: "no memory+pids controllers (v1 or v2)".to_owned(),
        },
        CgroupHost::V1 { memory, pids } if root || (writable(memory) && writable(pids)) => {
            Availability::Available {
                detail: format!("cgroup v1: {} and {}", memory.display(), pids.display()),
            }
        }
        CgroupHost::V2 { root: r } if root || writable(r) => Availability::Available {
            detail: format!("cgroup v2 at {}", r.display()),
        },
        _ => Availability::Unavailable {
            reason: "cgroup hierarchy not writable (not root, not delegated)".to_owned(),
        },
    }
}
