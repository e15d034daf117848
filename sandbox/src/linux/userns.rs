//! Unprivileged (weaker) mode: a user namespace gives the helper the capabilities to create the
//! other namespaces and mounts, mapping only the caller's own uid and gid (so files it creates on
//! the volume keep their real owner, and the command, not uid 0 inside, loses every capability
//! at execve).

use std::io;

use super::sys;

/// Unshares a user namespace and maps the caller's uid/gid onto themselves.
pub fn enter() -> io::Result<()> {
    let (uid, gid) = (sys::geteuid(), sys::getegid());
    sys::unshare(libc::CLONE_NEWUSER)?;
    // Without "deny", an unprivileged process may not write gid_map.
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}
