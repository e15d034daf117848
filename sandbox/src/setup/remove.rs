//! `orchestrate setup --remove`: deletes the key pairs, then the users and groups a plan names,
//! and the rest of the state directory (audit database, runs, integration repository) only with
//! `--purge`, because the audit trail and the promoted history outlive a reinstall.
//!
//! Keys go first and always: a key file left behind would belong to a uid that no longer exists,
//! and the next account to get that uid would own another principal's signing key. Accounts
//! outside the system id range are never deleted, so a person's account that shares a role's
//! name survives.

use std::fs;
use std::io::ErrorKind;

use super::accounts::{del_group, del_user, is_root, lookup_group, lookup_user, SYS_ID_MAX};
use super::apply::{Change, SetupReport};
use super::plan::SetupPlan;
use super::SetupError;

/// What `remove` may delete besides users and groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemoveOptions {
    /// Also delete the whole state directory (database, runs, integration repository).
    pub purge: bool,
}

/// What `remove` would do, as the lines `--remove --dry-run` prints (pure; no lookups).
pub fn removal_plan(plan: &SetupPlan, options: RemoveOptions) -> Vec<String> {
    let mut lines = vec![
        format!(
            "rm {} (the set-id gate, before its user goes)",
            super::gate_bin::installed_gate_path(&plan.state_dir).display()
        ),
        format!("rm -r {}", plan.state_dir.join("keys").display()),
    ];
    for name in plan.users().into_iter().rev() {
        lines.push(format!("userdel {name} (only if its uid is a system uid)"));
    }
    for name in plan.groups().into_iter().rev() {
        lines.push(format!("groupdel {name} (only if its gid is a system gid)"));
    }
    if options.purge {
        lines.push(format!("rm -r {}", plan.state_dir.display()));
    } else {
        lines.push(format!(
            "keep {} (database, runs, integration.git; --purge deletes them)",
            plan.state_dir.display()
        ));
    }
    lines
}

fn is_system_id(id: u32) -> bool {
    id != 0 && id <= SYS_ID_MAX
}

/// Undoes `apply`: users first (userdel may take the user's own group with it), then groups,
/// then, with `purge`, the state directory. The report says what was kept and why.
pub fn remove(plan: &SetupPlan, options: RemoveOptions) -> Result<SetupReport, SetupError> {
    if !is_root() {
        return Err(SetupError::NotRoot(nix::unistd::geteuid().as_raw()));
    }
    let mut report = SetupReport::default();
    // The set-id gate goes first, with the keys: its owner's uid is about to be freed.
    let gate = super::gate_bin::installed_gate_path(&plan.state_dir);
    let change = super::gate_bin::remove_gate_binary(&plan.state_dir)?;
    report.push(format!("gate binary {}", gate.display()), change);
    if let Some(bin) = gate.parent() {
        // Left when something else was put there; setup only ever puts the gate in it.
        let _ = fs::remove_dir(bin);
    }
    let keys = plan.state_dir.join("keys");
    let change = remove_tree(&keys)?;
    report.push(format!("dir {}", keys.display()), change);

    let groups = plan.groups();
    let groups_before: Vec<Option<u32>> = groups
        .iter()
        .map(|g| lookup_group(g))
        .collect::<Result<_, _>>()?;

    for name in plan.users().into_iter().rev() {
        let change = match lookup_user(name)? {
            None => Change::Absent,
            Some(account) if !is_system_id(account.uid) => Change::Left(format!(
                "uid {} is not a system uid, so setup did not create it",
                account.uid
            )),
            Some(_) => {
                del_user(name)?;
                Change::Removed
            }
        };
        report.push(format!("user {name}"), change);
    }

    for (name, before) in groups.iter().zip(groups_before).rev() {
        let change = match (before, lookup_group(name)?) {
            (None, _) => Change::Absent,
            // userdel removed the user's private group already.
            (Some(_), None) => Change::Removed,
            (Some(_), Some(gid)) if !is_system_id(gid) => Change::Left(format!(
                "gid {gid} is not a system gid, so setup did not create it"
            )),
            (Some(_), Some(_)) => {
                del_group(name)?;
                Change::Removed
            }
        };
        report.push(format!("group {name}"), change);
    }

    let state = &plan.state_dir;
    let change = if options.purge {
        remove_tree(state)?
    } else if state.exists() {
        Change::Left("database, runs and integration.git are kept; --purge deletes them".to_owned())
    } else {
        Change::Absent
    };
    report.push(format!("dir {}", state.display()), change);
    Ok(report)
}

/// Deletes a directory tree (never following a symlink in its place); `Absent` if missing.
fn remove_tree(path: &std::path::Path) -> Result<Change, SetupError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Change::Absent),
        Err(source) => Err(SetupError::Metadata {
            path: path.to_path_buf(),
            source,
        }),
        Ok(meta) if !meta.file_type().is_dir() => {
            Err(SetupError::NotADirectory(path.to_path_buf()))
        }
        Ok(_) => {
            fs::remove_dir_all(path).map_err(|source| SetupError::Remove {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(Change::Removed)
        }
    }
}
