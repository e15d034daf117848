//! `orchestrate setup`: one system user + group per role (and for the gate and the
//! orchestrator), the state directory tree with its owners and modes, and one ed25519 key pair per
//! principal whose private half only that principal's user can read.
//!
//! Ordering invariant: groups → users → directories → keys. A key file is created 0400 by root
//! and handed to its user with `fchown` before a single byte is written, so there is no moment
//! when anyone else could read it. Applying is idempotent: what exists is kept (a key is never
//! regenerated), wrong owners or modes are corrected, and the report says which of these happened.

mod accounts;
mod apply;
mod fsops;
mod gate_bin;
mod keys;
mod plan;
mod remove;

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

pub use accounts::{is_root, lookup_group, lookup_user, Account};
pub use apply::{apply, Change, ReportItem, SetupReport};
pub use gate_bin::{
    add_gate_binary, installed_gate_path, GATE_BIN_DIR, GATE_BIN_MODE, GATE_BIN_NAME,
};
pub use keys::{read_private_key, read_public_key};
pub use plan::{
    plan, Owner, SetupPlan, SetupSpec, Step, GATE_LABEL, NOLOGIN, NO_HOME, ORCHESTRATOR_LABEL,
    PRIVATE_KEY_FILE, PUBLIC_KEY_FILE,
};
pub use remove::{removal_plan, remove, RemoveOptions};

/// Every way setup, its plan, or its removal can fail. Each variant names the step and holds the
/// path or name it was working on.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A user name useradd or dscl would refuse, or `root`.
    #[error("invalid user name {0:?}: want [a-z_][a-z0-9_-]*, at most 32 bytes, not root")]
    InvalidUserName(String),
    /// A label that cannot be a directory name under `keys/`.
    #[error("invalid principal label {0:?}: want [a-z0-9_-]+")]
    InvalidLabel(String),
    /// The database file name is not a plain file name.
    #[error("database file name {0:?} is not a plain file name")]
    InvalidDbFile(String),
    /// Two principals with the same user would share a signing key.
    #[error("user {0:?} is given to more than one role")]
    DuplicateUser(String),
    /// Two principals with the same label would share a key directory.
    #[error("label {0:?} appears more than once")]
    DuplicateLabel(String),
    /// The state directory must be absolute.
    #[error("state directory {0:?} is not an absolute path")]
    RelativeStateDir(PathBuf),
    /// Creating users, chown and key ownership need root.
    #[error("setup must run as root (effective uid {0})")]
    NotRoot(u32),
    /// Looking up a user or group failed (not "absent": the lookup itself failed).
    #[error("looking up {what} {name:?}: {source}")]
    Lookup {
        /// "user" or "group".
        what: &'static str,
        /// The name looked up.
        name: String,
        /// The error from the NSS lookup.
        source: nix::Error,
    },
    /// A user or group was still absent after its creating command succeeded.
    #[error("{what} {name:?} is absent right after creating it")]
    Vanished {
        /// "user" or "group".
        what: &'static str,
        /// The name.
        name: String,
    },
    /// An account tool (useradd, groupadd, userdel, groupdel) could not be started.
    #[error("running {argv}: {source}")]
    Spawn {
        /// The command line.
        argv: String,
        /// Why it could not start.
        source: io::Error,
    },
    /// An account tool exited unsuccessfully.
    #[error("{argv} failed ({status}): {stderr}")]
    Command {
        /// The command line.
        argv: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// An existing ancestor of the state directory could let a non-root user rename the state
    /// directory away and plant another (not root's, or writable by group or others without
    /// the sticky bit).
    #[error(
        "{path:?} (owner uid {uid}, mode {mode:04o}) would let others replace the state \
         directory: it must belong to root and not be group/other-writable unless sticky"
    )]
    UnsafeAncestor {
        /// The ancestor.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading a path's metadata failed.
    #[error("inspecting {path:?}: {source}")]
    Metadata {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A path that must be a real directory is something else (a symlink, a file).
    #[error("{0:?} exists but is not a directory (symlinks are refused)")]
    NotADirectory(PathBuf),
    /// A key path that must be a regular file is something else (a symlink, a directory).
    #[error("{0:?} exists but is not a regular file (symlinks are refused)")]
    NotARegularFile(PathBuf),
    /// Creating a directory failed.
    #[error("creating directory {path:?}: {source}")]
    CreateDir {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Changing an owner failed.
    #[error("chown {path:?}: {source}")]
    Chown {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Changing a mode failed.
    #[error("chmod {path:?}: {source}")]
    Chmod {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Reading a key file failed.
    #[error("reading key {path:?}: {source}")]
    KeyRead {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An existing key file does not parse; setup refuses to overwrite it.
    #[error("existing key {path:?} does not parse ({reason}); refusing to overwrite it")]
    KeyParse {
        /// The path.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// Encoding a freshly generated key failed.
    #[error("encoding key for {path:?}: {reason}")]
    KeyEncode {
        /// The path it was meant for.
        path: PathBuf,
        /// The encoder's message.
        reason: String,
    },
    /// Writing a key file failed.
    #[error("writing key {path:?}: {source}")]
    KeyWrite {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Copying the gate binary into place (or reading its source) failed.
    #[error("installing the gate at {path:?}: {source}")]
    GateInstall {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Removing the state directory failed.
    #[error("removing {path:?}: {source}")]
    Remove {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

#[cfg(test)]
mod plan_tests;
