//! Executes a `SetupPlan`, idempotently, and reports per step what it did.

use std::fmt;

use serde::Serialize;

use super::accounts::{
    add_group, add_user, is_root, lookup_group, lookup_user, require_group, require_user,
};
use super::fsops::{check_ancestors, ensure_dir, restrict_if_present};
use super::gate_bin::ensure_gate_binary;
use super::keys::ensure_key_pair;
use super::plan::{Owner, SetupPlan, Step};
use super::SetupError;

/// What happened to one thing setup manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", content = "detail", rename_all = "snake_case")]
pub enum Change {
    /// It did not exist and was made.
    Created,
    /// It existed as wanted and was left alone.
    Unchanged,
    /// It existed but its owner, mode or derived content was corrected (how, in words).
    Fixed(String),
    /// `--remove` deleted it.
    Removed,
    /// `--remove` left it in place (why, in words).
    Left(String),
    /// Nothing there: `--remove` found nothing to remove, or an optional file (the database
    /// before the first run) does not exist yet.
    Absent,
}

impl Change {
    /// True for everything that touched the system.
    pub fn is_change(&self) -> bool {
        matches!(self, Change::Created | Change::Fixed(_) | Change::Removed)
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Created => f.write_str("created"),
            Change::Unchanged => f.write_str("unchanged"),
            Change::Fixed(how) => write!(f, "fixed ({how})"),
            Change::Removed => f.write_str("removed"),
            Change::Left(why) => write!(f, "left in place ({why})"),
            Change::Absent => f.write_str("absent"),
        }
    }
}

/// One line of a report: the thing (`user orch-codegen`, `dir /var/lib/orchestrate/db`) and what
/// happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportItem {
    /// The thing.
    pub what: String,
    /// What happened.
    #[serde(flatten)]
    pub change: Change,
}

/// What `apply` or `remove` did, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SetupReport {
    /// One item per managed thing.
    pub items: Vec<ReportItem>,
}

impl SetupReport {
    /// True when anything on the system changed.
    pub fn changed(&self) -> bool {
        self.items.iter().any(|i| i.change.is_change())
    }

    pub(super) fn push(&mut self, what: String, change: Change) {
        self.items.push(ReportItem { what, change });
    }
}

impl fmt::Display for SetupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            writeln!(f, "{:<9} {}", item.change, item.what)?;
        }
        let changes = self.items.iter().filter(|i| i.change.is_change()).count();
        if changes == 0 {
            writeln!(f, "unchanged: everything was already in place")
        } else {
            writeln!(f, "{changes} change(s)")
        }
    }
}

/// Applies the plan as root. Existing groups, users and keys are kept; directory and key-file
/// owners and modes are corrected; nothing is ever deleted.
pub fn apply(plan: &SetupPlan) -> Result<SetupReport, SetupError> {
    if !is_root() {
        return Err(SetupError::NotRoot(nix::unistd::geteuid().as_raw()));
    }
    // Before any account exists: nothing to undo when the place is wrong.
    check_ancestors(&plan.state_dir)?;
    let mut report = SetupReport::default();
    for step in &plan.steps {
        match step {
            Step::Group { name } => {
                let change = if lookup_group(name)?.is_some() {
                    Change::Unchanged
                } else {
                    add_group(name)?;
                    require_group(name)?;
                    Change::Created
                };
                report.push(format!("group {name}"), change);
            }
            Step::User {
                name,
                group,
                home,
                shell,
                comment,
            } => {
                let change = if lookup_user(name)?.is_some() {
                    Change::Unchanged
                } else {
                    add_user(name, group, home, shell, comment)?;
                    require_user(name)?;
                    Change::Created
                };
                report.push(format!("user {name}"), change);
            }
            Step::Dir { path, owner, mode } => {
                let (uid, gid) = resolve(owner)?;
                let change = ensure_dir(path, uid, gid, *mode)?;
                report.push(format!("dir {}", path.display()), change);
            }
            Step::RestrictIfPresent { path, mode } => {
                let change = restrict_if_present(path, *mode)?;
                report.push(format!("file {}", path.display()), change);
            }
            Step::GateBinary {
                source,
                path,
                owner,
                mode,
            } => {
                let (uid, gid) = resolve(owner)?;
                let change = ensure_gate_binary(source, path, uid, gid, *mode)?;
                report.push(format!("gate binary {}", path.display()), change);
            }
            Step::KeyPair { label, dir, owner } => {
                let (uid, gid) = resolve(owner)?;
                let change = ensure_key_pair(dir, uid, gid)?;
                report.push(format!("key pair {label} in {}", dir.display()), change);
            }
        }
    }
    Ok(report)
}

fn resolve(owner: &Owner) -> Result<(u32, u32), SetupError> {
    let uid = require_user(&owner.user)?.uid;
    let gid = require_group(&owner.group)?;
    Ok((uid, gid))
}
