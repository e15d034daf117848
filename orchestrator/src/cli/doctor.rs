//! `orchestrate doctor [--json]`: which containment layers are live on this host, for which
//! roles, and why not where they are not. Every answer comes from the kernel (a throwaway child
//! tries each namespace and the seccomp filter, Landlock reports its ABI, the mount table names
//! the cgroup controllers) and from the user database (a role's OS user exists or not).
//!
//! Exit status: 0 when every layer roles.yaml requires is live for every role; 3 when one is not
//! (a run would refuse to start without --allow-weaker); 2 for a bad roles.yaml.

use std::path::PathBuf;

use clap::Args;
use protocol::roles::{RoleName, RolesFile};
use sandbox::plan::Layer;
use sandbox::probe::{self, Availability, HostProbe};
use serde::Serialize;

use super::context::{Context, ContextError};
use super::exit::{ExitCode, Failure};
use super::output::{Mark, Output};

/// `orchestrate doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// roles.yaml to check against (default: roles.yaml at the repository's top level, if any).
    #[arg(long, value_name = "FILE")]
    roles: Option<PathBuf>,
}

impl DoctorArgs {
    /// True when `--json` was given.
    pub fn json(&self) -> bool {
        self.json
    }
}

/// Errors of `orchestrate doctor`.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// The repository could not be resolved.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// roles.yaml did not load or validate.
    #[error(transparent)]
    Roles(#[from] protocol::load::LoadError),
}

impl Failure for DoctorError {
    fn exit_code(&self) -> ExitCode {
        match self {
            DoctorError::Context(e) => e.exit_code(),
            DoctorError::Roles(_) => ExitCode::Usage,
        }
    }
}

/// One role for which a layer is not live, and why.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Missing {
    /// The role.
    pub role: String,
    /// Why.
    pub reason: String,
}

/// One layer's row.
#[derive(Debug, Serialize)]
pub struct LayerRow {
    /// The layer.
    pub layer: Layer,
    /// Whether this host can apply it at all.
    pub available: bool,
    /// What works, or why not.
    pub detail: String,
    /// Whether roles.yaml requires it.
    pub required: bool,
    /// Roles it would be applied for.
    pub roles: Vec<String>,
    /// Roles it would not be applied for.
    pub missing: Vec<Missing>,
}

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct DoctorReport {
    /// `full` when every required layer is live for every role, else `weaker`.
    pub mode: &'static str,
    /// The roles.yaml checked against, if any.
    pub roles_file: Option<PathBuf>,
    /// Kernel facts.
    pub host: HostProbe,
    /// One row per layer.
    pub layers: Vec<LayerRow>,
    /// The sandbox volume roles.yaml asks for, and whether a run can have it here.
    pub volume: Option<VolumeRow>,
}

/// roles.yaml's `sandbox.volume` on this host.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct VolumeRow {
    /// `directory` or `ext4`.
    pub kind: &'static str,
    /// The image size (ext4).
    pub size_mb: u64,
    /// Whether a run can have it here.
    pub available: bool,
    /// What works, or why not.
    pub detail: String,
    /// For a directory volume: the filesystem the state dir's runs land on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<sandbox::volume_fs::VolumeFs>,
    /// Something that costs a run time here (not containment): a journal-less ext4 under a
    /// directory volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Whether a run gets the volume roles.yaml asks for: an ext4 image needs root, the loop
/// control device and `mkfs.ext4` (e2fsprogs) on PATH. `fs` is the filesystem a directory
/// volume would land on (the state dir's).
pub fn volume_row(
    settings: protocol::roles::VolumeSettings,
    root: bool,
    fs: Option<sandbox::volume_fs::VolumeFs>,
) -> VolumeRow {
    use protocol::roles::VolumeKind;
    if settings.kind == VolumeKind::Directory {
        let warning = fs.as_ref().filter(|f| f.slow_overlay_mounts()).map(|f| {
            format!(
                "the state dir is on ext4 without a journal ({}{}): each launch of a role that \
                 writes {{repo}} makes and frees a few inodes and directory blocks for its \
                 overlay, and such a filesystem keeps freed inodes out of reuse for 30 s{}, so \
                 launches slow down as they come faster (about 1-2 ms at tens per second). \
                 `sandbox.volume: {{kind: ext4}}` (an image with a journal) avoids it",
                f.device.as_deref().unwrap_or("?"),
                if f.discard { ", online discard" } else { "" },
                if f.discard {
                    " and discards every freed block as it is freed"
                } else {
                    ""
                },
            )
        });
        return VolumeRow {
            kind: "directory",
            size_mb: settings.size_mb,
            available: true,
            detail: format!(
                "a directory per run under the state dir (no disk quota){}",
                fs.as_ref()
                    .map(|f| format!(", on {}", f.fs_type))
                    .unwrap_or_default()
            ),
            filesystem: fs,
            warning,
        };
    }
    let mkfs = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("mkfs.ext4").is_file()));
    let why_not = if !root {
        Some("not root (a loop device and a mount need root)".to_owned())
    } else if !std::path::Path::new("/dev/loop-control").exists() {
        Some("no /dev/loop-control (loop devices unavailable)".to_owned())
    } else if !mkfs {
        Some("mkfs.ext4 not on PATH (e2fsprogs; scripts/setup.sh installs it)".to_owned())
    } else {
        None
    };
    VolumeRow {
        kind: "ext4",
        size_mb: settings.size_mb,
        available: why_not.is_none(),
        detail: why_not.unwrap_or_else(|| {
            format!(
                "a loop-mounted ext4 image of {} MiB per run: writes past it get ENOSPC",
                settings.size_mb
            )
        }),
        filesystem: None,
        warning: None,
    }
}

/// Builds the rows from a probe and (optionally) roles.yaml; `user_exists` looks an OS user up.
pub fn rows(
    host: &HostProbe,
    roles: Option<&RolesFile>,
    user_exists: &dyn Fn(&str) -> bool,
) -> Vec<LayerRow> {
    let role_users: Vec<(String, String)> = roles
        .map(|r| {
            RoleName::ALL
                .iter()
                .filter_map(|n| r.role(*n).map(|p| (n.as_str().to_owned(), p.user.clone())))
                .collect()
        })
        .unwrap_or_default();
    let required =
        |l: Layer| roles.is_some_and(|r| r.sandbox.require.iter().any(|q| q.as_str() == l.name()));
    host.layers
        .iter()
        .map(|probe| {
            let (available, detail) = match &probe.availability {
                Availability::Available { detail } => (true, detail.clone()),
                Availability::Unavailable { reason } => (false, reason.clone()),
            };
            let mut row = LayerRow {
                layer: probe.layer,
                available,
                detail: detail.clone(),
                required: required(probe.layer),
                roles: Vec::new(),
                missing: Vec::new(),
            };
            for (role, user) in &role_users {
                let why_not = if !available {
                    Some(detail.clone())
                } else if probe.layer == Layer::Identity && !user_exists(user) {
                    Some(format!(
                        "OS user {user} does not exist (run `orchestrate setup`)"
                    ))
                } else {
                    None
                };
                match why_not {
                    None => row.roles.push(role.clone()),
                    Some(reason) => row.missing.push(Missing {
                        role: role.clone(),
                        reason,
                    }),
                }
            }
            row
        })
        .collect()
}

/// Runs `orchestrate doctor`.
pub fn run(ctx: &Context, out: &Output, args: &DoctorArgs) -> Result<ExitCode, DoctorError> {
    let roles_path = match &args.roles {
        Some(p) => Some(p.clone()),
        None => Some(ctx.repo()?.join("roles.yaml")).filter(|p| p.is_file()),
    };
    let roles = roles_path
        .as_deref()
        .map(protocol::load::load_roles)
        .transpose()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let host = probe::probe(&mounts);
    let layers = rows(&host, roles.as_ref(), &|u| {
        sandbox::exec::lookup_user(u).is_some()
    });
    let volume = roles
        .as_ref()
        .map(|r| volume_row(r.sandbox.volume, host.root, volume_fs(ctx)));
    let weaker = layers.iter().any(|l| l.required && !l.missing.is_empty())
        || (roles.is_none() && layers.iter().any(|l| !l.available))
        || volume.as_ref().is_some_and(|v| !v.available);
    let report = DoctorReport {
        mode: if weaker { "weaker" } else { "full" },
        roles_file: roles_path,
        host,
        layers,
        volume,
    };
    print_text(out, &report);
    out.document(&report);
    Ok(if weaker {
        ExitCode::NoContainment
    } else {
        ExitCode::Ok
    })
}

/// The filesystem a directory volume would land on: the state dir's (or its nearest existing
/// ancestor's).
fn volume_fs(ctx: &Context) -> Option<sandbox::volume_fs::VolumeFs> {
    ctx.state_dir()
        .ok()
        .map(|d| sandbox::volume_fs::probe(&d.join("runs")))
}

fn print_text(out: &Output, r: &DoctorReport) {
    let h = &r.host;
    out.line(format!(
        "kernel {} · {} · Landlock ABI {} · user namespaces {} · overlayfs {} · cgroups {}",
        h.kernel,
        if h.root { "root" } else { "not root" },
        h.landlock_abi,
        if h.user_namespaces { "yes" } else { "no" },
        if h.overlayfs { "yes" } else { "no" },
        match &h.cgroup {
            sandbox::plan::CgroupHost::None => "none with memory+pids".to_owned(),
            sandbox::plan::CgroupHost::V1 { memory, pids } =>
                format!("v1 ({}, {})", memory.display(), pids.display()),
            sandbox::plan::CgroupHost::V2 { root } => format!("v2 ({})", root.display()),
        }
    ));
    for l in &r.layers {
        let mark = match (l.available && l.missing.is_empty(), l.required) {
            (true, _) => Mark::Ok,
            (false, true) => Mark::Fail,
            (false, false) => Mark::Warn,
        };
        let mut detail = l.detail.clone();
        if !l.roles.is_empty() {
            detail.push_str(&format!("; applied for: {}", l.roles.join(" ")));
        }
        if !l.missing.is_empty() && l.available {
            let who: Vec<String> = l
                .missing
                .iter()
                .map(|m| format!("{} ({})", m.role, m.reason))
                .collect();
            detail.push_str(&format!("; NOT for: {}", who.join(", ")));
        }
        out.mark(mark, l.layer.name(), detail);
    }
    if let Some(v) = &r.volume {
        let mark = if v.available { Mark::Ok } else { Mark::Fail };
        out.mark(mark, format!("volume ({})", v.kind), v.detail.clone());
        if let Some(w) = &v.warning {
            out.mark(Mark::Warn, "volume speed", w.clone());
        }
    }
    out.line(match r.mode {
        "full" => "mode: full containment".to_owned(),
        _ => "mode: WEAKER — a run refuses to start unless --allow-weaker is given, and its receipt records what is missing".to_owned(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::roles::{VolumeKind, VolumeSettings};

    #[test]
    fn an_ext4_volume_needs_root_and_says_so() {
        let ext4 = VolumeSettings {
            kind: VolumeKind::Ext4,
            size_mb: 64,
        };
        let row = volume_row(ext4, false, None);
        assert!(!row.available);
        assert!(row.detail.contains("not root"), "{}", row.detail);
        let dir = volume_row(
            VolumeSettings {
                kind: VolumeKind::Directory,
                size_mb: 64,
            },
            false,
            None,
        );
        assert!(dir.available);
        assert_eq!(dir.kind, "directory");
        assert_eq!(dir.warning, None);
    }

    #[test]
    fn a_directory_volume_on_a_journal_less_ext4_is_warned_about() {
        use sandbox::volume_fs::VolumeFs;
        let dir = VolumeSettings {
            kind: VolumeKind::Directory,
            size_mb: 64,
        };
        let fs = |journal| VolumeFs {
            fs_type: "ext4".to_owned(),
            device: Some("vda".to_owned()),
            journal: Some(journal),
            discard: true,
        };
        let slow = volume_row(dir, true, Some(fs(false)));
        assert!(slow.available, "speed is not containment");
        let w = slow.warning.unwrap();
        assert!(
            w.contains("without a journal (vda, online discard)") && w.contains("kind: ext4"),
            "{w}"
        );
        assert_eq!(volume_row(dir, true, Some(fs(true))).warning, None);
    }
}
