//! What `orchestrate-gate` does first when it may be running set-user-id (and set-group-id) to
//! the gate's OS user, as `orchestrate setup` installs it (`<state>/bin/orchestrate-gate`, owner
//! the gate's user and group, mode 6755):
//!
//! 1. fds 0, 1 and 2 are opened on `/dev/null` when the caller closed them, so no file the gate
//!    opens later (a decision, a ref) can become its stdout;
//! 2. umask 022: whatever the caller's umask, nothing the gate creates is group- or
//!    other-writable (refs, objects, decisions);
//! 3. `SIGXFSZ` is ignored: a tiny `RLIMIT_FSIZE` from the caller turns into a write error the
//!    gate reports instead of a kill half-way through a file;
//! 4. the whole environment is dropped and replaced by a fixed `PATH` and `LC_ALL=C` (no
//!    `GIT_*`, `HOME`, `XDG_*`, `PATH` of the caller reaches the gate or the git it runs; the
//!    dynamic loader already ignores `LD_*` for a set-id program);
//! 5. the invoking user is read from the *real* uid — the kernel's word, set at login and kept
//!    across the set-id exec — and then real, effective and saved ids all become the gate's
//!    (so the caller can neither signal the gate nor ptrace the git processes it starts).
//!
//! Then [`trusted_state`] refuses a `--state` that is not already canonical or that sits below
//! a directory the caller could change: the caller names the state directory, so the gate
//! accepts only one whose every component belongs to root (or the gate) and is writable by
//! nobody else (a sticky directory such as `/var/tmp` is fine for the ancestors).
//!
//! Not done, on purpose: supplementary groups stay the caller's (dropping them needs
//! CAP_SETGID, which a set-id program owned by an ordinary user does not have); they can only add
//! read access for the gate, never give the caller access to the gate's files.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use nix::unistd::{getegid, geteuid, getgid, getuid, setresgid, setresuid};

use crate::identity::Caller;

/// `PATH` inside the gate: fixed, never the caller's.
pub const SAFE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Errors while taking on the gate's identity or checking the state directory.
#[derive(Debug, thiserror::Error)]
pub enum SetuidError {
    /// Switching real/saved ids to the gate's failed.
    #[error("switching to the gate's user and group (uid {uid}, gid {gid}): {source}")]
    Switch {
        /// Target uid.
        uid: u32,
        /// Target gid.
        gid: u32,
        /// Cause.
        source: nix::Error,
    },
    /// `--state` is not usable by a set-id gate.
    #[error("set-id gate: --state {path}: {reason}")]
    UntrustedState {
        /// The path (or the component at fault).
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Who called, and whether the gate runs with ids other than the caller's.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The invoking user (the real uid before the switch).
    pub caller: Caller,
    /// The gate ran set-id: its effective uid or gid differed from the caller's.
    pub set_id: bool,
    /// The uid the gate runs as.
    pub gate_uid: u32,
}

fn ensure_std_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD on any integer is harmless; it only reports whether the fd is open.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
        if !open {
            // SAFETY: the path is a NUL-terminated literal; open returns the lowest free fd,
            // which is `fd` because every lower one is open (checked in order).
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// Hardens the process (see the module docs) and returns the caller. Call first in `main`,
/// before any other thread exists (it changes the environment).
pub fn harden() -> Result<Invocation, SetuidError> {
    ensure_std_fds();
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    for (k, _) in std::env::vars_os() {
        std::env::remove_var(k);
    }
    std::env::set_var("PATH", SAFE_PATH);
    std::env::set_var("LC_ALL", "C");

    let (ruid, euid, rgid, egid) = (getuid(), geteuid(), getgid(), getegid());
    let caller = Caller::from_uid(ruid.as_raw(), std::process::id() as i32);
    let set_id = ruid != euid || rgid != egid;
    if set_id {
        let switch = |source| SetuidError::Switch {
            uid: euid.as_raw(),
            gid: egid.as_raw(),
            source,
        };
        setresgid(egid, egid, egid).map_err(switch)?;
        setresuid(euid, euid, euid).map_err(switch)?;
    }
    Ok(Invocation {
        caller,
        set_id,
        gate_uid: euid.as_raw(),
    })
}

fn untrusted(path: &Path, reason: impl Into<String>) -> SetuidError {
    SetuidError::UntrustedState {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// For a set-id gate: `state` must be absolute and canonical (no symlink, `.` or `..` anywhere),
/// every ancestor must belong to root and be writable by root alone unless sticky, and the state
/// directory, `keys/`, `keys/gate/` and `integration.git` must be real directories of root or
/// the gate writable by nobody else. Otherwise a caller could point the gate at keys of their
/// own making, or swap a directory while the gate works.
pub fn trusted_state(state: &Path, gate_uid: u32) -> Result<(), SetuidError> {
    if !state.is_absolute() {
        return Err(untrusted(state, "must be an absolute path"));
    }
    let canonical = state
        .canonicalize()
        .map_err(|e| untrusted(state, e.to_string()))?;
    if canonical != state {
        return Err(untrusted(
            state,
            format!(
                "is not canonical (it resolves to {}): give that path",
                canonical.display()
            ),
        ));
    }
    for dir in state.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).map_err(|e| untrusted(dir, e.to_string()))?;
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky) {
            return Err(untrusted(
                dir,
                "an ancestor must belong to root and be writable by root alone (or be sticky)",
            ));
        }
    }
    for p in [
        state.to_path_buf(),
        state.join("keys"),
        state.join("keys/gate"),
        state.join("integration.git"),
    ] {
        let meta = std::fs::symlink_metadata(&p).map_err(|e| untrusted(&p, e.to_string()))?;
        let owner_ok = meta.uid() == 0 || meta.uid() == gate_uid;
        if !meta.file_type().is_dir() || !owner_ok || meta.mode() & 0o022 != 0 {
            return Err(untrusted(
                &p,
                "must be a directory owned by root or the gate and writable by nobody else",
            ));
        }
    }
    Ok(())
}

/// Who may seed the integration repository or ask for a promotion through a set-id gate: root,
/// or the owner of `<state>/runs` (the orchestrator's user, as setup made it). Anybody else could
/// otherwise create `main` from a repository of their choosing before the first run does, or
/// push a run to staging the orchestrator has not handed over (still only on a full pass).
/// Humans approve, reject and roll back; their authority is checked against roles.yaml.
pub fn is_orchestrator(state: &Path, caller_uid: u32) -> bool {
    caller_uid == 0
        || std::fs::symlink_metadata(state.join("runs"))
            .is_ok_and(|m| m.file_type().is_dir() && m.uid() == caller_uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_canonical_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let e = trusted_state(&link, 0).unwrap_err().to_string();
        assert!(e.contains("is not canonical"), "{e}");
        let e = trusted_state(Path::new("relative"), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn a_state_of_root_or_the_gate_passes_and_a_writable_one_does_not() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new().tempdir_in("/var/tmp").unwrap();
        let state = dir.path().canonicalize().unwrap();
        for d in ["keys/gate", "integration.git"] {
            std::fs::create_dir_all(state.join(d)).unwrap();
        }
        for d in ["", "keys", "keys/gate", "integration.git"] {
            std::fs::set_permissions(state.join(d), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let me = geteuid().as_raw();
        trusted_state(&state, me).unwrap();
        std::fs::set_permissions(
            state.join("integration.git"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let e = trusted_state(&state, me).unwrap_err().to_string();
        assert!(e.contains("integration.git"), "{e}");
        assert!(e.contains("writable by nobody else"), "{e}");
    }
}
