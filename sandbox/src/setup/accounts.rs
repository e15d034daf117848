//! System users and groups: NSS lookups through `nix`, changes through the shadow-utils tools
//! (`groupadd`, `useradd`, `userdel`, `groupdel`) run by argv, never through a shell. The tools
//! keep /etc/passwd, /etc/shadow and /etc/group consistent and locked; writing those files by
//! hand would not.

use std::path::Path;
use std::process::Command;

use nix::unistd::{Group, Uid, User};

use super::SetupError;

/// Highest uid/gid a system account may have on Debian (`SYS_UID_MAX` in login.defs). Removal
/// refuses anything above it, so `setup --remove` cannot delete a person's account that happens
/// to share a role's name.
pub const SYS_ID_MAX: u32 = 999;

/// A user as the system knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Name.
    pub name: String,
    /// Numeric uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
}

/// True when the effective uid is 0.
pub fn is_root() -> bool {
    Uid::effective().is_root()
}

/// The user named `name`, or `None` when there is none.
pub fn lookup_user(name: &str) -> Result<Option<Account>, SetupError> {
    let user = User::from_name(name).map_err(|source| SetupError::Lookup {
        what: "user",
        name: name.to_owned(),
        source,
    })?;
    Ok(user.map(|u| Account {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

/// The gid of the group named `name`, or `None` when there is none.
pub fn lookup_group(name: &str) -> Result<Option<u32>, SetupError> {
    let group = Group::from_name(name).map_err(|source| SetupError::Lookup {
        what: "group",
        name: name.to_owned(),
        source,
    })?;
    Ok(group.map(|g| g.gid.as_raw()))
}

/// Looks a user up and fails when it is absent (used right after creating it).
pub fn require_user(name: &str) -> Result<Account, SetupError> {
    lookup_user(name)?.ok_or_else(|| SetupError::Vanished {
        what: "user",
        name: name.to_owned(),
    })
}

/// Looks a group up and fails when it is absent.
pub fn require_group(name: &str) -> Result<u32, SetupError> {
    lookup_group(name)?.ok_or_else(|| SetupError::Vanished {
        what: "group",
        name: name.to_owned(),
    })
}

/// `groupadd --system NAME`.
pub fn add_group(name: &str) -> Result<(), SetupError> {
    run(&["groupadd", "--system", name])
}

/// `useradd --system` with no login shell and a home that is never created.
pub fn add_user(
    name: &str,
    group: &str,
    home: &Path,
    shell: &Path,
    comment: &str,
) -> Result<(), SetupError> {
    let home = home.to_string_lossy();
    let shell = shell.to_string_lossy();
    run(&[
        "useradd",
        "--system",
        "--gid",
        group,
        "--no-create-home",
        "--home-dir",
        &home,
        "--shell",
        &shell,
        "--comment",
        comment,
        name,
    ])
}

/// `userdel NAME` (never `--remove`: the home is /nonexistent and nothing else is the user's).
pub fn del_user(name: &str) -> Result<(), SetupError> {
    run(&["userdel", name])
}

/// `groupdel NAME`.
pub fn del_group(name: &str) -> Result<(), SetupError> {
    run(&["groupdel", name])
}

/// Runs one tool by argv and turns a failure into an error carrying the command and its stderr.
fn run(argv: &[&str]) -> Result<(), SetupError> {
    let line = argv.join(" ");
    let (program, args) = match argv.split_first() {
        Some(split) => split,
        None => return Ok(()),
    };
    let out = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .map_err(|source| SetupError::Spawn {
            argv: line.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(SetupError::Command {
            argv: line,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
