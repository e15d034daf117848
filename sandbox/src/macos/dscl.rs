//! Accounts on macOS: one hidden user and group per principal of the setup plan, created with
//! `dscl` (commands as data; [`super::apply`] runs them on macOS).
//!
//! macOS has no `useradd --system`: ids are picked here, the lowest free one in
//! [`HIDDEN_ID_RANGE`] (below 500, so the login window never lists them and they never collide
//! with people's accounts from 501 up), the same number for the user and its group.

use std::collections::BTreeSet;
use std::ops::Range;

use serde::Serialize;

use super::{Cmd, MacError};
use crate::setup::{SetupPlan, Step};

/// Ids setup may give on macOS.
pub const HIDDEN_ID_RANGE: Range<u32> = 300..500;

const DSCL: &str = "/usr/bin/dscl";

/// One account the plan creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MacAccount {
    /// User and group name.
    pub name: String,
    /// UniqueID and PrimaryGroupID.
    pub id: u32,
    /// RealName (what the account is for).
    pub comment: String,
}

/// Accounts and the dscl commands that create them, for every user of `plan` not in
/// `existing` (kept as they are). `taken` holds every uid and gid already in use.
pub fn account_plan(
    plan: &SetupPlan,
    existing: &BTreeSet<String>,
    taken: &BTreeSet<u32>,
) -> Result<(Vec<MacAccount>, Vec<Cmd>), MacError> {
    let mut used = taken.clone();
    let mut accounts = Vec::new();
    let mut cmds = Vec::new();
    for step in &plan.steps {
        let Step::User { name, comment, .. } = step else {
            continue;
        };
        if existing.contains(name) {
            continue;
        }
        let id = HIDDEN_ID_RANGE
            .clone()
            .find(|id| !used.contains(id))
            .ok_or_else(|| MacError::NoFreeId { name: name.clone() })?;
        used.insert(id);
        let id_text = id.to_string();
        let group = format!("/Groups/{name}");
        let user = format!("/Users/{name}");
        let dscl = |args: &[&str]| {
            let mut all = vec![".", "-create"];
            all.extend_from_slice(args);
            Cmd::new(DSCL, &all)
        };
        cmds.push(dscl(&[&group]));
        cmds.push(dscl(&[&group, "PrimaryGroupID", &id_text]));
        cmds.push(dscl(&[&group, "RealName", comment]));
        cmds.push(dscl(&[&group, "Password", "*"]));
        cmds.push(dscl(&[&user]));
        cmds.push(dscl(&[&user, "UniqueID", &id_text]));
        cmds.push(dscl(&[&user, "PrimaryGroupID", &id_text]));
        cmds.push(dscl(&[&user, "UserShell", "/usr/bin/false"]));
        cmds.push(dscl(&[&user, "NFSHomeDirectory", "/var/empty"]));
        cmds.push(dscl(&[&user, "RealName", comment]));
        cmds.push(dscl(&[&user, "Password", "*"]));
        cmds.push(dscl(&[&user, "IsHidden", "1"]));
        accounts.push(MacAccount {
            name: name.clone(),
            id,
            comment: comment.clone(),
        });
    }
    Ok((accounts, cmds))
}

/// The dscl commands that delete the plan's users, then their groups.
pub fn account_removal_plan(plan: &SetupPlan) -> Vec<Cmd> {
    let users = plan.users();
    let mut cmds: Vec<Cmd> = users
        .iter()
        .rev()
        .map(|n| Cmd::new(DSCL, &[".", "-delete", &format!("/Users/{n}")]))
        .collect();
    cmds.extend(
        plan.groups()
            .iter()
            .rev()
            .map(|n| Cmd::new(DSCL, &[".", "-delete", &format!("/Groups/{n}")])),
    );
    cmds
}
