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
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::socket;

use super::workslot::{self, Slot};
use super::{mount_api, mounts, sys};
use crate::plan::{MountOp, Plan};

/// The longest message pid 1 accepts (a slot's path in JSON).
const MSG_MAX: usize = 8192;

/// The two ends of the channel: the helper's, pid 1's. Both close-on-exec.
pub fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socket::socketpair(
        socket::AddressFamily::Unix,
        socket::SockType::SeqPacket,
        None,
        socket::SockFlag::SOCK_CLOEXEC,
    )?)
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
    let to = CString::new(target.as_os_str().as_bytes()).map_err(io::Error::other)?;
    mount_api::attach(mnt, &to)
}

/// The overlay as `mounts.rs` would mount it (the layers, `volatile`, nosuid, nodev), attached
/// nowhere.
fn detached_overlay(lower: &[PathBuf], upper: &Path, work: &Path) -> io::Result<OwnedFd> {
    let fs = mount_api::fsopen(c"overlay")?;
    mount_api::set_string(&fs, "lowerdir", &mounts::lowerdir(lower))?;
    mount_api::set_string(&fs, "upperdir", &mounts::escape_overlay(upper))?;
    mount_api::set_string(&fs, "workdir", &mounts::escape_overlay(work))?;
    mount_api::set_flag(&fs, "volatile")?;
    mount_api::create(&fs)?;
    mount_api::fsmount(&fs, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV)
}

/// `msg` as JSON in one datagram, with `fd` attached when there is one.
fn send_msg(sock: RawFd, msg: &Msg, fd: Option<RawFd>) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let fds: Vec<RawFd> = fd.into_iter().collect();
    let cmsgs: Vec<socket::ControlMessage<'_>> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![socket::ControlMessage::ScmRights(&fds)]
    };
    socket::sendmsg::<()>(
        sock,
        &[IoSlice::new(&body)],
        &cmsgs,
        socket::MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok(())
}

/// The message [`send_msg`] sent and the fd with it, if any. `Err` on EOF (the helper is gone),
/// a socket error or a message that does not parse.
fn recv_msg(sock: RawFd) -> io::Result<(Msg, Option<OwnedFd>)> {
    let mut body = vec![0u8; MSG_MAX];
    let mut space = nix::cmsg_space!(RawFd);
    let mut iov = [IoSliceMut::new(&mut body)];
    let (n, fds) = loop {
        match socket::recvmsg::<()>(
            sock,
            &mut iov,
            Some(&mut space),
            socket::MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(m) => {
                let mut fds = Vec::new();
                for c in m.cmsgs()? {
                    if let socket::ControlMessageOwned::ScmRights(got) = c {
                        fds.extend(got);
                    }
                }
                break (m.bytes, fds);
            }
        }
    };
    // SAFETY: SCM_RIGHTS fds are new in this process and owned by nothing else. Any beyond the
    // first (never sent) are closed here.
    let owned: Vec<OwnedFd> = fds
        .into_iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    let fd = owned.into_iter().next();
    if n == 0 {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    let parsed = serde_json::from_slice(&body[..n]).map_err(io::Error::other)?;
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
