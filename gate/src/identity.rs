//! Who is asking: the caller's identity as the kernel reports it, never as the caller states it.
//!
//! Over a unix socket the gate reads the peer's credentials with `SO_PEERCRED` (filled in by the
//! kernel at `connect`/`socketpair` time); in-process it takes the effective uid. The uid is then
//! turned into a user name with the system's user database and compared with roles.yaml
//! `approvers`. There is no flag, environment variable or message field that sets it.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Uid, User};
use serde::{Deserialize, Serialize};

/// Errors from establishing the caller's identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// `getsockopt(SO_PEERCRED)` failed.
    #[error("reading the peer's credentials (SO_PEERCRED): {0}")]
    PeerCred(#[source] nix::Error),
}

/// The identity of the process that made a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// Numeric user id, from the kernel.
    pub uid: u32,
    /// Process id at connect time (0 in-process), recorded for the audit trail.
    pub pid: i32,
    /// User name from the user database; `None` when the uid has no entry (never an approver).
    pub user: Option<String>,
}

impl Caller {
    /// The caller on the other end of a connected unix socket.
    pub fn from_socket<F: AsFd>(sock: &F) -> Result<Self, IdentityError> {
        let cred = getsockopt(sock, PeerCredentials).map_err(IdentityError::PeerCred)?;
        Ok(Self::from_uid(cred.uid(), cred.pid()))
    }

    /// This process (the in-process gate used without a separate gate user).
    pub fn current() -> Self {
        Self::from_uid(Uid::effective().as_raw(), std::process::id() as i32)
    }

    /// The user who invoked this process: the *real* uid, which the kernel sets at login and
    /// keeps across a set-user-id exec (installed set-uid `orch-gate`, the gate binary runs with
    /// the gate's effective uid and the engineer's real uid). No flag or variable can change it.
    pub fn invoking() -> Self {
        Self::from_uid(Uid::current().as_raw(), std::process::id() as i32)
    }

    /// Builds a caller from a uid the kernel vouched for.
    pub fn from_uid(uid: u32, pid: i32) -> Self {
        Self {
            uid,
            pid,
            user: user_name(uid),
        }
    }

    /// Whether this caller is listed in `approvers` (by user name).
    pub fn is_listed(&self, names: &[String]) -> bool {
        self.user
            .as_deref()
            .is_some_and(|u| names.iter().any(|n| n == u))
    }

    /// `name(uid)` or `uid` for messages and records.
    pub fn display(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}({})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// The user name for `uid`, if the user database has one.
pub fn user_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The uid and primary gid of the user called `name`.
pub fn lookup_user(name: &str) -> Option<(u32, u32)> {
    User::from_name(name)
        .ok()
        .flatten()
        .map(|u| (u.uid.as_raw(), u.gid.as_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn socketpair_reports_this_process_uid() {
        let (a, _b) = UnixStream::pair().unwrap();
        let c = Caller::from_socket(&a).unwrap();
        assert_eq!(c.uid, Uid::effective().as_raw());
        assert_eq!(c.pid, std::process::id() as i32);
    }

    #[test]
    fn unknown_uid_is_never_listed() {
        let c = Caller {
            uid: 4_000_000_000,
            pid: 0,
            user: None,
        };
        assert!(!c.is_listed(&["root".to_owned()]));
    }
}
