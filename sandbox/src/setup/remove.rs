//! `orchestrate setup --remove`: deletes the users and groups a plan names, and the state
//! directory only with `--purge` (it holds the keys and the audit database, which outlive a
//! reinstall). Accounts outside the system id range are never deleted, so a person's account that
//! shares a role's name survives.

use std::fs;
use std::io::ErrorKind;

use super::accounts::{del_group, del_user, is_root, lookup_group, lookup_user, SYS_ID_MAX};
use super::apply::{Change, SetupReport};
use super::plan::SetupPlan;
use super::SetupError;

/// What `remove` may delete besides users and groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemoveOptions {
    /// Also delete the state directory (keys, database, runs, integration repository).
    pub purge: bool,
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
    let change = match fs::symlink_metadata(state) {
        Err(e) if e.kind() == ErrorKind::NotFound => Change::Absent,
        Err(source) => {
            return Err(SetupError::Metadata {
                path: state.clone(),
                source,
            })
        }
        Ok(_) if !options.purge => Change::Left(
            "keys, database and runs are kept; --purge deletes them".to_owned(),
        ),
        Ok(meta) if !meta.file_type().is_dir() => {
            return Err(SetupError::NotADirectory(state.clone()))
        }
        Ok(_) => {
            fs::remove_dir_all(state).map_err(|source| SetupError::Remove {
                path: state.clone(),
                source,
            })?;
            Change::Removed
        }
    };
    report.push(format!("dir {}", state.display()), change);
    Ok(report)
}
