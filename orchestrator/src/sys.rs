//! Raw libc calls, one per unsafe block.

/// True when the process runs with effective uid 0.
#[cfg(unix)]
pub fn effective_uid_is_root() -> bool {
    // SAFETY: geteuid takes no arguments, touches no memory of ours and cannot fail.
    let uid = unsafe { libc::geteuid() };
    uid == 0
}

/// Non-unix hosts have no uid 0; they always use the per-user state directory.
#[cfg(not(unix))]
pub fn effective_uid_is_root() -> bool {
    false
}
