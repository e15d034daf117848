//! The launch's writable overlay, made by the helper while pid 1 builds its namespaces and its
//! root, and handed over as a detached mount.
//!
//! Creating a writable overlay is the costliest mount of a launch (~0.1–0.3 ms here: the kernel
//! sets up and probes the work dir on the volume's disk), and it needs nothing of the new root.
//! So the helper builds it with the new mount API (`fsopen`/`fsconfig`/`fsmount`: a mount that
//! is attached nowhere), sends the mount's fd to pid 1 over a socketpair (`SCM_RIGHTS`), and pid 1
//! attaches it in its own mount namespace with `move_mount` when its turn comes. The overlay is
//! the same as the one `mounts.rs` makes (same layers, `volatile`, nosuid, nodev), created with
//! the same credentials (root, initial user namespace).
//!
//! The helper also claims the overlay's work dir (a slot under the plan's work base, see
//! `workslot.rs`) and names it in the same message: pid 1 never picks one itself. Building the
//! mount is best effort: if the helper cannot (no new mount API, a user namespace, an error), the
//! message carries the slot alone and pid 1 mounts the overlay itself, as it always did,
//! reporting the kernel's own error if that fails too. A message with no slot (none could be
//! claimed) makes pid 1 fail the mount layer. A detached mount nobody attaches disappears with
//! its last fd.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::mounts;
use super::workslot::{self, Slot};
use crate::plan::{MountOp, Plan};

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
/// The size of one fd in an `SCM_RIGHTS` message.
const FD_LEN: libc::c_uint = 4;
const _: () = assert!(std::mem::size_of::<RawFd>() == FD_LEN as usize);

/// The two ends of the channel: the helper's, pid 1's. Both close-on-exec.
pub fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a writable array of two ints.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair returned two fresh fds that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The plan's writable overlay, if it has one: (lower layers, upper, work base).
fn writable_overlay(plan: &Plan) -> Option<(&[PathBuf], &Path, &Path)> {
    plan.new_root.as_ref()?.ops.iter().find_map(|op| match op {
        MountOp::Overlay {
            lower,
            upper: Some((u, w)),
            ..
        } => Some((lower.as_slice(), u.as_path(), w.as_path())),
        _ => None,
    })
}

/// Helper side, for a plan with a writable overlay: claims its work dir, builds the overlay and
/// sends pid 1 the slot's path with the mount (or without, when it could not). Returns the slot,
/// to be held until the launch is over. Sends nothing for a plan without one (pid 1 never asks).
pub fn send(plan: &Plan, sock: &OwnedFd) -> Option<Slot> {
    let (lower, upper, base) = writable_overlay(plan)?;
    let slot = match workslot::claim(base) {
        Ok(slot) => slot,
        Err(e) => {
            // pid 1 reports it as the mount layer's failure.
            let why = format!("claiming a work dir under {}: {e}", base.display());
            let _ = send_msg(sock.as_raw_fd(), &Msg::NoSlot(why), None);
            return None;
        }
    };
    let made = detached_overlay(lower, upper, &slot.path);
    let fd = made.as_ref().ok().map(AsRawFd::as_raw_fd);
    let _ = send_msg(sock.as_raw_fd(), &Msg::Slot(slot.path.clone()), fd);
    Some(slot)
}

/// pid 1's side: the work dir the helper claimed and, if it made it, the mount. Blocks until the
/// helper answers.
pub fn receive(sock: RawFd) -> io::Result<(PathBuf, Option<OwnedFd>)> {
    match recv_msg(sock)? {
        (Msg::Slot(path), fd) => Ok((path, fd)),
        (Msg::NoSlot(why), _) => Err(io::Error::other(why)),
    }
}

/// What the helper tells pid 1 (the mount itself travels beside it).
#[derive(serde::Serialize, serde::Deserialize)]
enum Msg {
    Slot(PathBuf),
    NoSlot(String),
}

/// Attaches the detached mount `mnt` at `target` (a path in the caller's mount namespace).
pub fn attach(mnt: &OwnedFd, target: &Path) -> io::Result<()> {
    let empty = c"";
    let to = CString::new(target.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: mnt is a live mount fd; both strings are CStrs alive for the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

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

/// `fsopen("overlay")`, the layers, `volatile`, create, `fsmount` (nosuid, nodev).
fn detached_overlay(lower: &[PathBuf], upper: &Path, work: &Path) -> io::Result<OwnedFd> {
    let fstype = c"overlay";
    // SAFETY: fstype is a CStr alive for the call.
    let fs = owned(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    let (lowerdir, upperdir, workdir) = mounts::overlay_layers(lower, upper, work);
    for (key, value) in [
        ("lowerdir", lowerdir),
        ("upperdir", upperdir),
        ("workdir", workdir),
    ] {
        config(&fs, FSCONFIG_SET_STRING, key, Some(&value))?;
    }
    config(&fs, FSCONFIG_SET_FLAG, "volatile", None)?;
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
    })?;
    let attrs = super::sys::MOUNT_ATTR_NOSUID | super::sys::MOUNT_ATTR_NODEV;
    // SAFETY: fs is a live, created fs context fd.
    owned(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
}

fn config(fs: &OwnedFd, cmd: libc::c_uint, key: &str, value: Option<&str>) -> io::Result<()> {
    let key = CString::new(key).map_err(io::Error::other)?;
    let value = value
        .map(|v| CString::new(v).map_err(io::Error::other))
        .transpose()?;
    let vptr = value
        .as_ref()
        .map_or(std::ptr::null(), |v| v.as_ptr().cast::<libc::c_void>());
    // SAFETY: fs is a live fs context fd; key and value are CStrs alive for the call (or null).
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key.as_ptr(),
            vptr,
            0,
        )
    })
    .map(drop)
}

/// `msg` as JSON in one datagram, with `fd` attached when there is one.
fn send_msg(sock: RawFd, msg: &Msg, fd: Option<RawFd>) -> io::Result<()> {
    let mut body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let mut iov = libc::iovec {
        iov_base: body.as_mut_ptr().cast(),
        iov_len: body.len(),
    };
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(FD_LEN) };
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as usize;
        // SAFETY: msg_control points to a buffer of at least `space` bytes, so the first header
        // and its data fit; CMSG_FIRSTHDR/CMSG_DATA stay inside it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(FD_LEN) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        }
    }
    // SAFETY: msg and everything it points to are alive for the call.
    cvt(unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } as libc::c_long).map(drop)
}

/// The message [`send_msg`] sent and the fd with it, if any. `Err` on EOF (the helper is gone),
/// a socket error or a message that does not parse.
fn recv_msg(sock: RawFd) -> io::Result<(Msg, Option<OwnedFd>)> {
    let mut body = vec![0u8; 8192];
    let mut iov = libc::iovec {
        iov_base: body.as_mut_ptr().cast(),
        iov_len: body.len(),
    };
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    let n = loop {
        // SAFETY: msg and its buffers are alive and writable for the call.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break cvt(n as libc::c_long)?;
    };
    // SAFETY: recvmsg filled msg_control with msg_controllen valid bytes; the CMSG macros walk
    // only inside them. The fd, if any, is new in this process and owned by nothing else.
    let fd = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (!cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS)
            .then(|| {
                OwnedFd::from_raw_fd(std::ptr::read_unaligned(
                    libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                ))
            })
    };
    if n == 0 {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    let len = usize::try_from(n).map_err(io::Error::other)?;
    let parsed = serde_json::from_slice(&body[..len]).map_err(io::Error::other)?;
    Ok((parsed, fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_with_and_without_its_mount_and_a_refusal_cross_the_channel() {
        let (a, b) = channel().unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let slot = PathBuf::from("/v/work/slot-0");
        send_msg(
            a.as_raw_fd(),
            &Msg::Slot(slot.clone()),
            Some(file.as_raw_fd()),
        )
        .unwrap();
        send_msg(a.as_raw_fd(), &Msg::Slot(slot.clone()), None).unwrap();
        send_msg(a.as_raw_fd(), &Msg::NoSlot("all in use".into()), None).unwrap();
        let (path, fd) = receive(b.as_raw_fd()).unwrap();
        let same = |x: RawFd| std::fs::read_link(format!("/proc/self/fd/{x}")).unwrap();
        assert_eq!(path, slot);
        assert_eq!(same(fd.unwrap().as_raw_fd()), same(file.as_raw_fd()));
        let (path, fd) = receive(b.as_raw_fd()).unwrap();
        assert_eq!((path, fd.is_none()), (slot, true), "the slot alone");
        let e = receive(b.as_raw_fd()).unwrap_err();
        assert!(e.to_string().contains("all in use"), "{e}");
        drop(a);
        assert!(receive(b.as_raw_fd()).is_err(), "the helper gone: EOF");
    }
}
