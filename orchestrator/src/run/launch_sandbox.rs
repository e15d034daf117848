//! Roles inside the sandbox crate's jail: each under its own OS user (when `orchestrate setup`
//! made it), in mount, pid, ipc, uts and network namespaces with a minimal root, behind Landlock,
//! seccomp, rlimits and cgroup limits, with a scrubbed environment — the layers roles.yaml
//! requires, fail closed. The role's view of the run's volume is bound at the same host paths the
//! orchestrator names in its tasks, so a task means the same thing inside and out:
//!
//! | roles.yaml     | read                                  | write                       |
//! |----------------|---------------------------------------|-----------------------------|
//! | `{repo}`       | `volume/base`, `volume/candidates`    | `volume/work` (codegen: an overlay of `volume/upper` on `volume/lower`; a full copy without the mount layer) |
//! | `{scratch}`    | `volume/scratch/<role>`               | `volume/scratch/<role>`     |
//! | `{toolchain}`  | RUSTUP_HOME, CARGO_HOME               | —                           |
//!
//! plus, read-only, the role's binary, its private key and (codegen) the recorded session.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use protocol::roles::{RoleName, RolesFile};
use sandbox::exec::{lookup_user, RoleSpec as SandboxRole, SandboxSpec};
use sandbox::linux::launch::{self as jail, Launcher, Stdio3};
use sandbox::plan::{CgroupHost, HostPaths, Identity, Layer, Network, Plan, PolicyInput, RepoView};
use sandbox::probe::{Availability, HostProbe};
use sandbox::volume::VolumeLayout;

use super::launch::{Containment, LaunchError, RoleLauncher, RoleProcess, RoleSpec, FRAME_FD};
use crate::containment::{role_spec, toolchain_dirs};

#[path = "gateway.rs"]
pub(super) mod gateway;
use gateway::{GatewayWiringError, RoleWiring, RunGateway};

/// Launches roles through the jail helper (`orchestrate sandbox __jail`).
#[derive(Debug)]
pub struct SandboxLauncher {
    roles: BTreeMap<RoleName, SandboxRole>,
    sandbox: SandboxSpec,
    volume: PathBuf,
    toolchain: Vec<PathBuf>,
    jail: Launcher,
    cgroup: CgroupHost,
    /// Layers applied to every role.
    live: BTreeSet<Layer>,
    /// Required layers that are not live, with the reason.
    missing: BTreeMap<Layer, String>,
    identities: BTreeMap<RoleName, Identity>,
    allow_weaker: bool,
    unprivileged: bool,
    /// roles.yaml `gateway:`: cost-control runs it, `network: gateway` roles reach it.
    gateway: Option<RunGateway>,
}

/// Why the roles cannot run contained.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// Required layers cannot be applied here.
    #[error("required layers not live: {}", list(.0))]
    Layers(BTreeMap<Layer, String>),
    /// The jail helper cannot be found.
    #[error("the jail helper: {0}")]
    Helper(#[from] sandbox::linux::launch::LaunchError),
    /// roles.yaml's gateway block cannot be wired.
    #[error("the model gateway: {0}")]
    Gateway(#[from] GatewayWiringError),
}

fn list(m: &BTreeMap<Layer, String>) -> String {
    m.iter()
        .map(|(l, why)| format!("{} ({why})", l.name()))
        .collect::<Vec<_>>()
        .join("; ")
}

impl SandboxLauncher {
    /// Probes this host for every layer and looks up each role's OS user. A required layer that
    /// is not available (or is in `off`, switched off by the caller) refuses the run unless
    /// `allow_weaker`, which runs with what is live.
    pub fn new(
        roles: &RolesFile,
        volume: PathBuf,
        allow_weaker: bool,
        off: &BTreeSet<Layer>,
        run_ceiling_usd: f64,
    ) -> Result<Self, Unavailable> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let probe = sandbox::probe::probe(&mounts);
        let mut specs = BTreeMap::new();
        let mut sandbox = None;
        for role in RoleName::ALL {
            if let Some((spec, sb)) = role_spec(roles, role) {
                specs.insert(role, spec);
                sandbox = Some(sb);
            }
        }
        let sandbox = sandbox.unwrap_or_else(|| SandboxSpec {
            require: BTreeSet::new(),
            system_read: Vec::new(),
            env_allow: Vec::new(),
        });
        let (identities, unavailable) = host_layers(&probe, &specs, &volume, off);
        let live: BTreeSet<Layer> = Layer::ALL
            .into_iter()
            .filter(|l| !unavailable.contains_key(l))
            .collect();
        let missing: BTreeMap<Layer, String> = unavailable
            .into_iter()
            .filter(|(l, _)| sandbox.require.contains(l))
            .collect();
        if !missing.is_empty() && !allow_weaker {
            return Err(Unavailable::Layers(missing));
        }
        let gateway = roles
            .gateway
            .as_ref()
            .map(|g| RunGateway::new(g, gateway_budgets(roles.budgets, run_ceiling_usd), &volume))
            .transpose()?;
        Ok(Self {
            roles: specs,
            sandbox,
            volume,
            toolchain: toolchain_dirs(),
            // The small `orchestrate-jail` next to this binary when it is there (a tenth of the
            // size, so each role's launch pays less exec), else this binary's hidden subcommand.
            jail: Launcher::find().or_else(|_| Launcher::this_exe(&["sandbox", "__jail"]))?,
            cgroup: probe.cgroup.clone(),
            live,
            missing,
            identities,
            allow_weaker,
            unprivileged: !probe.root,
            gateway,
        })
    }

    fn identity(&self, role: RoleName) -> Option<Identity> {
        self.live
            .contains(&Layer::Identity)
            .then(|| self.identities.get(&role).copied())
            .flatten()
    }

    /// The role's placeholders resolved to host paths of this run (see the module table).
    fn resolve(&self, role: RoleName, value: &str) -> Vec<PathBuf> {
        let v = &self.volume;
        match value {
            "{repo}" => vec![v.join("base"), v.join("candidates")],
            "{scratch}" => vec![v.join("scratch").join(role.as_str())],
            "{toolchain}" => self.toolchain.clone(),
            "{volume}" => vec![v.clone()],
            other if other.starts_with('/') && !other.contains('{') => vec![PathBuf::from(other)],
            // roles.yaml's validation already refused anything else.
            _ => Vec::new(),
        }
    }

    fn plan(&self, spec: &RoleSpec, policy: &SandboxRole) -> Result<Plan, LaunchError> {
        let role = spec.role;
        let identity = self.identity(role);
        let layout = VolumeLayout::new(&self.volume);
        let err = |path: &Path, source: std::io::Error| LaunchError::Scratch {
            path: path.to_path_buf(),
            source,
        };
        mkdir(&layout.jail_root(), None).map_err(|e| err(&layout.jail_root(), e))?;
        layout
            .create_role(role.as_str(), identity)
            .map_err(|e| err(&layout.scratch(role.as_str()), std::io::Error::other(e)))?;
        let mut write = Vec::new();
        let mut repo = None;
        let writes_repo = policy.write.iter().any(|w| w == "{repo}");
        for w in &policy.write {
            if w == "{repo}" {
                let work = self.volume.join("work");
                if self.overlay(role) {
                    // The engine materialised the lower layer and made the upper one; each launch
                    // claims a reusable overlay work dir (a slot) under `ovl/`.
                    let ovl = self.volume.join("ovl");
                    mkdir(&ovl, None).map_err(|e| err(&ovl, e))?;
                    repo = Some(RepoView {
                        path: work.clone(),
                        lower: self.volume.join("lower"),
                        upper: self.volume.join("upper"),
                        work: ovl,
                    });
                } else {
                    // A full copy the engine materialises and hands over.
                    mkdir(&work, identity).map_err(|e| err(&work, e))?;
                }
                write.push(work);
            } else {
                write.extend(self.resolve(role, w));
            }
        }
        let mut read: Vec<PathBuf> = Vec::new();
        for r in &policy.read {
            if r == "{repo}" && writes_repo {
                // Its own tree is the repository it reads.
                continue;
            }
            for p in self.resolve(role, r) {
                if r == "{repo}" {
                    mkdir(&p, None).map_err(|e| err(&p, e))?;
                }
                if !write.contains(&p) && !read.contains(&p) {
                    read.push(p);
                }
            }
        }
        for p in &spec.read {
            if p.exists() && !read.contains(p) {
                read.push(p.clone());
            }
        }
        if let (Some(id), Some(key)) = (identity, &spec.key) {
            // The role's private key: readable by the role's user alone.
            chown(key, id).map_err(|e| err(key, e))?;
            std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o400))
                .map_err(|e| err(key, e))?;
        }
        // The model gateway (network part): see gateway.rs.
        let wiring = match &self.gateway {
            Some(g) => g
                .wire(
                    role,
                    &spec.run_id,
                    policy.gateway,
                    self.identity(RoleName::CostControl),
                )
                .map_err(|e| LaunchError::Spawn {
                    role,
                    bin: spec.agent_bin.clone(),
                    source: std::io::Error::other(e),
                })?,
            None => RoleWiring::default(),
        };
        write.extend(wiring.write.iter().cloned());
        read.extend(wiring.read.iter().filter(|p| p.exists()).cloned());
        let mut limits = policy.limits;
        limits.wall_seconds = limits.wall_seconds.max(spec.lifetime_s);
        // The env layer scrubs the environment to the allowlist. Off, the role gets the
        // orchestrator's whole environment — but still its protocol variables, so the jail's env
        // step stays on and is handed everything.
        let scrub = self.live.contains(&Layer::Env);
        let mut env = if scrub {
            spec.env.clone()
        } else {
            std::env::vars().collect()
        };
        env.push(("ORCHESTRATE_FRAME_FD".into(), FRAME_FD.to_string()));
        if let Some(key) = &spec.key {
            env.push(("ORCHESTRATE_KEY".into(), key.display().to_string()));
        }
        env.extend(wiring.env.iter().cloned());
        let input = PolicyInput {
            role: role.as_str().to_owned(),
            identity,
            read,
            write,
            system_read: self.sandbox.system_read.clone(),
            // Loopback only, unless the role may call a model (then the gateway's socket too).
            network: wiring.network.clone().unwrap_or(Network::None),
            limits,
            env,
            require: self.sandbox.require.clone(),
            enabled: {
                let mut on = self.live.clone();
                on.insert(Layer::Env);
                on
            },
            allow_weaker: self.allow_weaker,
            repo,
            home: layout.home(role.as_str()),
            tmp: layout.tmp(role.as_str()),
            cwd: layout.home(role.as_str()),
            argv: vec![
                spec.agent_bin.display().to_string(),
                role.as_str().to_owned(),
                "--run".to_owned(),
                spec.run_id.clone(),
            ],
            path_prepend: self.toolchain.iter().map(|t| t.join("bin")).collect(),
            pass_fds: vec![FRAME_FD],
        };
        let host = HostPaths {
            jail_root: layout.jail_root(),
            cgroup: self.cgroup.clone(),
            launch_id: format!("{}-{role}-{}", spec.run_id, unique()),
            unprivileged: self.unprivileged,
        };
        let mut plan = Plan::build(&input, &host).map_err(|e| LaunchError::Spawn {
            role,
            bin: spec.agent_bin.clone(),
            source: std::io::Error::other(e),
        })?;
        if let Some(l) = plan.landlock.as_mut() {
            // The relay's loopback port: the only TCP a model-calling role may bind or connect.
            l.tcp_ports = wiring.tcp_ports;
        }
        Ok(plan)
    }
}

impl RoleLauncher for SandboxLauncher {
    fn launch(&self, spec: RoleSpec) -> Result<RoleProcess, LaunchError> {
        let Some(policy) = self.roles.get(&spec.role) else {
            return Err(LaunchError::Spawn {
                role: spec.role,
                bin: spec.agent_bin.clone(),
                source: std::io::Error::other("no policy for this role in roles.yaml"),
            });
        };
        let plan = self.plan(&spec, policy)?;
        let log = spec.open_log()?;
        let io = Stdio3 {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::from(log),
        };
        let running = jail::spawn(&self.jail, &plan, io, &[spec.socket.as_fd()]).map_err(|e| {
            LaunchError::Spawn {
                role: spec.role,
                bin: self.jail.program.clone(),
                source: std::io::Error::other(e),
            }
        })?;
        drop(spec.socket);
        let (child, report) = running.into_parts();
        Ok(RoleProcess {
            child,
            jail_report: Some(report),
            log: spec.log,
        })
    }

    fn containment(&self) -> Containment {
        Containment {
            mode: if self.missing.is_empty() {
                "sandbox".into()
            } else {
                "weaker".into()
            },
            layers_live: self.live.iter().map(|l| l.name().to_owned()).collect(),
            layers_missing: self
                .missing
                .iter()
                .map(|(l, why)| format!("{} ({why})", l.name()))
                .collect(),
        }
    }

    fn writer(&self, role: RoleName) -> Option<(u32, u32)> {
        self.identity(role).map(|i| (i.uid, i.gid))
    }

    fn gateway_socket(&self) -> Option<PathBuf> {
        self.gateway.as_ref().map(RunGateway::socket)
    }

    fn overlay(&self, role: RoleName) -> bool {
        self.live.contains(&Layer::Mount)
            && self
                .roles
                .get(&role)
                .is_some_and(|p| p.write.iter().any(|w| w == "{repo}"))
    }
}

/// The budgets the gateway admits requests against: roles.yaml's, with the per-run limit cut to
/// the run's own ceiling (the strictest of the FR, config.yaml and roles.yaml), so a request that
/// would cross the tighter ceiling is refused before it is sent, not after the iteration.
fn gateway_budgets(
    mut budgets: protocol::roles::Budgets,
    run_ceiling_usd: f64,
) -> protocol::roles::Budgets {
    if run_ceiling_usd.is_finite() && run_ceiling_usd >= 0.0 {
        budgets.per_run_usd = budgets.per_run_usd.min(run_ceiling_usd);
    }
    budgets
}

/// Which layers cannot be applied to every role here (or are switched `off`), and why; and each
/// role's OS user.
fn host_layers(
    probe: &HostProbe,
    specs: &BTreeMap<RoleName, SandboxRole>,
    volume: &Path,
    off: &BTreeSet<Layer>,
) -> (BTreeMap<RoleName, Identity>, BTreeMap<Layer, String>) {
    let mut unavailable: BTreeMap<Layer, String> = off
        .iter()
        .map(|l| (*l, "switched off (--layer-off)".to_owned()))
        .collect();
    for p in &probe.layers {
        if let Availability::Unavailable { reason } = &p.availability {
            unavailable.entry(p.layer).or_insert_with(|| reason.clone());
        }
    }
    if volume.starts_with("/tmp") {
        // A role's private /tmp would hide its own volume.
        unavailable.entry(Layer::Mount).or_insert_with(|| {
            format!(
                "the run's volume {} is under /tmp, which a role's private /tmp hides; use a state directory elsewhere",
                volume.display()
            )
        });
    }
    if unavailable.contains_key(&Layer::Mount) {
        // Without the mount layer a role reaches its files through the host's own directories,
        // so a role user must be able to search every parent of the volume.
        if let Some(dir) = volume
            .ancestors()
            .skip(1)
            .find(|d| !searchable_by_others(d))
        {
            unavailable.entry(Layer::Identity).or_insert_with(|| {
                format!(
                    "{} is not searchable by other users, and without the mount layer the role users reach the run's files through it",
                    dir.display()
                )
            });
        }
    }
    let mut identities = BTreeMap::new();
    let mut no_user = Vec::new();
    for (role, spec) in specs {
        match lookup_user(&spec.user) {
            Some(id) => {
                identities.insert(*role, id);
            }
            None => no_user.push(spec.user.clone()),
        }
    }
    if !no_user.is_empty() {
        unavailable.entry(Layer::Identity).or_insert_with(|| {
            format!(
                "OS users {} do not exist (run `orchestrate setup`)",
                no_user.join(", ")
            )
        });
    }
    (identities, unavailable)
}

fn searchable_by_others(dir: &Path) -> bool {
    // A parent that does not exist yet is created by the run (0755).
    std::fs::metadata(dir).map_or(true, |m| m.permissions().mode() & 0o001 != 0)
}

fn mkdir(path: &Path, owner: Option<Identity>) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    if let Some(id) = owner {
        chown(path, id)?;
    }
    Ok(())
}

fn chown(path: &Path, id: Identity) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(id.uid), Some(id.gid))
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::gateway_budgets;

    #[test]
    fn the_gateway_admits_against_the_runs_own_ceiling_when_it_is_tighter() {
        let roles = protocol::load::load_roles(
            &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roles.yaml"),
        )
        .unwrap();
        let b = roles.budgets;
        assert_eq!(gateway_budgets(b, 1.25).per_run_usd, 1.25);
        assert_eq!(
            gateway_budgets(b, b.per_run_usd + 10.0).per_run_usd,
            b.per_run_usd
        );
        assert_eq!(gateway_budgets(b, f64::NAN).per_run_usd, b.per_run_usd);
        assert_eq!(gateway_budgets(b, 1.25).per_request_usd, b.per_request_usd);
    }
}
