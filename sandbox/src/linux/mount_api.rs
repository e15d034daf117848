//! The new mount API (Linux 5.2+): a file system configured through an fd (`fsopen`/`fsconfig`),
//! made into a mount attached nowhere (`fsmount`), attached later, possibly by another process
//! in another mount namespace (`move_mount`). Raw system calls, one per unsafe block, as in
//! `sys.rs`; libc has the numbers but no wrappers.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(cvt(ret)?).map_err(io::Error::other)?;
    // SAFETY: the syscall returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(io::Error::other)
}

/// A configuration context for a new file system of type `fstype` (close-on-exec).
pub fn fsopen(fstype: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: fstype is a CStr alive for the call.
    owned(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })
}

/// `fsconfig(FSCONFIG_SET_STRING)`: the option `key` = `value`.
pub fn set_string(fs: &OwnedFd, key: &str, value: &str) -> io::Result<()> {
    let (key, value) = (cstring(key)?, cstring(value)?);
    // SAFETY: fs is a live fs context fd; key and value are CStrs alive for the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// `fsconfig(FSCONFIG_SET_FLAG)`: the flag option `key`.
pub fn set_flag(fs: &OwnedFd, key: &str) -> io::Result<()> {
    let key = cstring(key)?;
    // SAFETY: fs is a live fs context fd; key is a CStr alive for the call; no value.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_FLAG,
            key.as_ptr(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })
    .map(drop)
}

/// `fsconfig(FSCONFIG_CMD_CREATE)`: makes the superblock (where the file system does its work).
pub fn create(fs: &OwnedFd) -> io::Result<()> {
    // SAFETY: fs is a live fs context fd; no key or value for this command.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })
    .map(drop)
}

/// A mount of the created file system, attached nowhere, with `MOUNT_ATTR_*` flags `attrs`.
pub fn fsmount(fs: &OwnedFd, attrs: u64) -> io::Result<OwnedFd> {
    // SAFETY: fs is a live, created fs context fd.
    owned(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
}

/// Attaches the detached mount `mnt` at `target` (a path in the caller's mount namespace).
pub fn attach(mnt: &OwnedFd, target: &CStr) -> io::Result<()> {
    let empty = c"";
    // SAFETY: mnt is a live mount fd; both strings are CStrs alive for the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}
