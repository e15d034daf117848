//! Landlock, the second fence. Applied after `pivot_root` (rule paths resolve in the new root) and
//! before identity is dropped, so a mistake in the mount layer is still caught here.

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use crate::plan::LandlockRules;

/// The ABI whose rights the policy needs: fs rights up to ioctl_dev (5), TCP (4), scopes (6).
const TARGET: ABI = ABI::V6;

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("landlock ruleset: {0}")]
    Ruleset(#[from] landlock::RulesetError),
    #[error("landlock is not enforced by this kernel")]
    NotEnforced,
    #[error("landlock is only partially enforced by this kernel (needs ABI {0})")]
    Partial(i32),
}

/// Restricts the calling process (and everything it execs) to `rules`.
pub fn apply(rules: &LandlockRules) -> Result<(), FenceError> {
    let read = AccessFs::from_read(TARGET);
    let all = AccessFs::from_all(TARGET);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)?;
    if rules.deny_tcp {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
    }
    // Scopes: no abstract unix sockets and no signals to processes outside the sandbox.
    ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal)?;
    let mut created = ruleset
        .create()?
        // A path that does not exist grants nothing: path_beneath_rules skips what it cannot open.
        .add_rules(path_beneath_rules(&rules.read_only, read))?
        .add_rules(path_beneath_rules(&rules.read_write, all))?;
    if rules.deny_tcp {
        for port in &rules.tcp_ports {
            created = created.add_rule(NetPort::new(
                *port,
                AccessNet::BindTcp | AccessNet::ConnectTcp,
            ))?;
        }
    }
    let status = created.restrict_self()?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(()),
        RulesetStatus::PartiallyEnforced => Err(FenceError::Partial(TARGET as i32)),
        RulesetStatus::NotEnforced => Err(FenceError::NotEnforced),
    }
}
