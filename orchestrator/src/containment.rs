//! roles.yaml's containment mapped onto the sandbox crate's plain data (which knows no YAML):
//! shared by `orchestrate sandbox exec` and the run engine's contained launcher.

use std::path::PathBuf;

use protocol::roles::{Network, RoleName, RolesFile};
use sandbox::exec::{RoleSpec, SandboxSpec};
use sandbox::plan::{Layer, Limits};

/// Maps roles.yaml's policy of `role` onto the sandbox crate's plain data.
pub fn role_spec(roles: &RolesFile, role: RoleName) -> Option<(RoleSpec, SandboxSpec)> {
    let p = roles.role(role)?;
    let l = p.limits;
    let spec = RoleSpec {
        name: role.as_str().to_owned(),
        user: p.user.clone(),
        read: p.read.clone(),
        write: p.write.clone(),
        // An allowlist is reached through the gateway too: the namespace has no other route.
        gateway: !matches!(p.network, Network::None),
        limits: Limits {
            cpu_seconds: l.cpu_seconds,
            memory_mb: l.memory_mb,
            pids: l.pids,
            wall_seconds: l.wall_seconds,
            nofile: l.nofile,
            fsize_mb: l.fsize_mb,
        },
    };
    let sb = SandboxSpec {
        require: roles
            .sandbox
            .require
            .iter()
            // Same names on both sides (tested below): none is dropped here.
            .filter_map(|l| Layer::parse(l.as_str()))
            .collect(),
        system_read: roles
            .sandbox
            .system_read
            .iter()
            .map(PathBuf::from)
            .collect(),
        env_allow: roles.sandbox.env_allow.clone(),
    };
    Some((spec, sb))
}

/// `{toolchain}`: RUSTUP_HOME and CARGO_HOME, else ~/.rustup and ~/.cargo, where they exist.
pub fn toolchain_dirs() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(default)))
    };
    [pick("RUSTUP_HOME", ".rustup"), pick("CARGO_HOME", ".cargo")]
        .into_iter()
        .flatten()
        .filter(|p| p.is_absolute() && p.is_dir())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The jail crate keeps its own `Layer` (it does not depend on the contracts crate); this
    /// module, doctor and `--layer-off` map between the two by name, so the names must agree
    /// or a required layer would silently drop out of `require`.
    #[test]
    fn the_contract_and_the_jail_name_the_same_layers_in_the_same_order() {
        let contract: Vec<&str> = protocol::roles::Layer::ALL
            .iter()
            .map(|l| l.as_str())
            .collect();
        let jail: Vec<&str> = Layer::ALL.iter().map(|l| l.name()).collect();
        assert_eq!(contract, jail);
        for l in protocol::roles::Layer::ALL {
            assert_eq!(Layer::parse(l.as_str()).map(Layer::name), Some(l.as_str()));
        }
    }
}
