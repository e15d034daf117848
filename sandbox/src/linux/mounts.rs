//! Builds the minimal root and pivots into it. Runs in the child after `unshare(CLONE_NEWNS)`
//! and before Landlock (whose rules must resolve in the new root), identity, seccomp and exec.
//!
//! Every mount lives in the child's private mount namespace: nothing has to be unmounted by hand,
//! it all disappears with the namespace's last process.

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::sys;
use crate::plan::{MountOp, NewRoot};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("making / private (so nothing propagates to the host): {0}")]
    MakePrivate(#[source] io::Error),
    #[error("tmpfs on {path:?}: {source}")]
    Tmpfs { path: PathBuf, source: io::Error },
    #[error("bind {src:?} -> {target:?}: {source}")]
    Bind {
        src: PathBuf,
        target: PathBuf,
        source: io::Error,
    },
    #[error("remount read-only {target:?}: {source}")]
    Remount { target: PathBuf, source: io::Error },
    #[error("overlay on {target:?}: {source}")]
    Overlay { target: PathBuf, source: io::Error },
    #[error("proc on {target:?}: {source}")]
    Proc { target: PathBuf, source: io::Error },
    #[error("device node {path:?}: {source}")]
    Device { path: PathBuf, source: io::Error },
    #[error("symlink {link:?}: {source}")]
    Symlink { link: PathBuf, source: io::Error },
    #[error("creating mount point {path:?}: {source}")]
    MountPoint { path: PathBuf, source: io::Error },
    #[error("path {0:?} contains NUL")]
    Nul(PathBuf),
    #[error("pivot_root into {path:?}: {source}")]
    Pivot { path: PathBuf, source: io::Error },
}

fn cstr(p: &Path) -> Result<CString, MountError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| MountError::Nul(p.to_path_buf()))
}

fn c(s: &str) -> CString {
    // Literals below never hold NUL; an empty string is the harmless fallback.
    CString::new(s).unwrap_or_default()
}

/// `/x/y` inside the new root → `<root>/x/y` on the way there.
fn under(root: &Path, inside: &Path) -> PathBuf {
    root.join(inside.strip_prefix("/").unwrap_or(inside))
}

/// Directories known to exist while the root is built: each mount point is made top-down with
/// one `mkdir` per missing component, instead of `create_dir_all`'s walk up and back down.
struct Made {
    known: HashSet<PathBuf>,
    /// The new root's mountpoint: its parent exists; everything below is built here.
    base: PathBuf,
}

impl Made {
    fn mkdirs(&mut self, path: &Path) -> Result<(), MountError> {
        if self.known.contains(path) {
            return Ok(());
        }
        if !path.starts_with(&self.base) {
            // Outside the new root: the parents exist.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(|source| MountError::MountPoint {
                    path: path.to_path_buf(),
                    source,
                })?;
            self.known.insert(path.to_path_buf());
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut at = Some(path);
        while let Some(p) = at {
            if self.known.contains(p) || Some(p) == self.base.parent() {
                break;
            }
            missing.push(p);
            at = p.parent();
        }
        for dir in missing.into_iter().rev() {
            match std::fs::DirBuilder::new().mode(0o755).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(MountError::MountPoint {
                        path: dir.to_path_buf(),
                        source,
                    })
                }
            }
            self.known.insert(dir.to_path_buf());
        }
        Ok(())
    }
}

fn touch(made: &mut Made, path: &Path) -> Result<(), MountError> {
    if let Some(parent) = path.parent() {
        made.mkdirs(parent)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map(drop)
        .map_err(|source| MountError::MountPoint {
            path: path.to_path_buf(),
            source,
        })
}

/// Builds the new root at its mountpoint (the host's tree is still this process's root).
/// `premount`: pid 1's end of the channel on which the helper names the writable overlay's work
/// dir and sends the overlay if it made it (see `premount.rs`); a plan with a writable overlay
/// cannot be built without it.
pub fn build(root: &NewRoot, premount: Option<RawFd>) -> Result<(), MountError> {
    let none = c("none");
    sys::mount(&none, &c("/"), &none, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(MountError::MakePrivate)?;
    let mut made = Made {
        known: HashSet::new(),
        base: root.mountpoint.clone(),
    };
    for op in &root.ops {
        apply(&mut made, &root.mountpoint, op, premount)?;
    }
    Ok(())
}

/// Makes the built root this process's `/` and detaches the host's tree.
pub fn pivot(root: &NewRoot) -> Result<(), MountError> {
    let base = &root.mountpoint;
    let base_c = cstr(base)?;
    sys::chdir(&base_c).map_err(|source| MountError::Pivot {
        path: base.clone(),
        source,
    })?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the
    // new root, with no put_old directory to hide.
    let dot = c(".");
    sys::pivot_root(&dot, &dot).map_err(|source| MountError::Pivot {
        path: base.clone(),
        source,
    })?;
    sys::umount2(&dot, libc::MNT_DETACH).map_err(|source| MountError::Pivot {
        path: base.clone(),
        source,
    })?;
    sys::chdir(&c("/")).map_err(|source| MountError::Pivot {
        path: base.clone(),
        source,
    })
}

fn apply(
    made: &mut Made,
    base: &Path,
    op: &MountOp,
    premount: Option<RawFd>,
) -> Result<(), MountError> {
    let none = c("none");
    match op {
        MountOp::Tmpfs { target, mode } => tmpfs(
            made,
            base,
            target,
            &format!("mode={mode:o},size=64m"),
            libc::MS_NOSUID | libc::MS_NODEV,
        ),
        MountOp::Bind {
            src,
            target,
            writable,
            optional,
        } => bind(made, base, src, target, *writable, *optional),
        MountOp::Overlay {
            target,
            lower,
            upper,
        } => {
            let path = under(base, target);
            made.mkdirs(&path)?;
            let err = |source| MountError::Overlay {
                target: target.clone(),
                source,
            };
            let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
            let data = match upper {
                Some((u, _)) => {
                    // The helper claimed the work dir, and made the mount if it could.
                    let sock = premount
                        .ok_or_else(|| err(io::Error::other("no channel to the helper")))?;
                    let (slot, mnt) = super::premount::receive(sock).map_err(err)?;
                    if let Some(mnt) = mnt {
                        return super::premount::attach(&mnt, &path).map_err(err);
                    }
                    format!(
                        "lowerdir={},upperdir={},workdir={},volatile",
                        lowerdir(lower),
                        escape_overlay(u),
                        escape_overlay(&slot)
                    )
                }
                None => {
                    flags |= libc::MS_RDONLY;
                    format!("lowerdir={}", lowerdir(lower))
                }
            };
            let data = CString::new(data).map_err(|_| MountError::Nul(target.clone()))?;
            sys::mount(
                &c("overlay"),
                &cstr(&path)?,
                &c("overlay"),
                flags,
                Some(&data),
            )
            .map_err(err)
        }
        MountOp::DevTmpfs { target, nodes } => {
            // No nodev: the nodes made in it must work.
            let flags = libc::MS_NOSUID | libc::MS_NOEXEC;
            tmpfs(made, base, target, "mode=755,size=64k", flags)?;
            for node in nodes {
                device(made, base, node)?;
            }
            Ok(())
        }
        MountOp::Proc { target } => {
            let path = under(base, target);
            made.mkdirs(&path)?;
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            sys::mount(&c("proc"), &cstr(&path)?, &c("proc"), flags, None).map_err(|source| {
                MountError::Proc {
                    target: target.clone(),
                    source,
                }
            })
        }
        MountOp::Symlink { link, points_to } => {
            let path = under(base, link);
            std::os::unix::fs::symlink(points_to, &path).map_err(|source| MountError::Symlink {
                link: link.clone(),
                source,
            })
        }
        MountOp::RootReadOnly => {
            let flags = libc::MS_REMOUNT
                | libc::MS_BIND
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV;
            sys::mount(&none, &cstr(base)?, &none, flags, None).map_err(|source| {
                MountError::Remount {
                    target: PathBuf::from("/"),
                    source,
                }
            })
        }
    }
}

/// A tmpfs with options `data` at `target` inside the new root.
fn tmpfs(
    made: &mut Made,
    base: &Path,
    target: &Path,
    data: &str,
    flags: libc::c_ulong,
) -> Result<(), MountError> {
    let path = under(base, target);
    made.mkdirs(&path)?;
    let fs = c("tmpfs");
    sys::mount(&fs, &cstr(&path)?, &fs, flags, Some(&c(data)))
        .map_err(|source| MountError::Tmpfs { path, source })
}

/// The host's character device `node` at the same path in the new root: mknod, or a bind where
/// that is not allowed (a user namespace, a container without CAP_MKNOD).
fn device(made: &mut Made, base: &Path, node: &Path) -> Result<(), MountError> {
    let err = |source| MountError::Device {
        path: node.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(node).map_err(err)?;
    if !meta.file_type().is_char_device() {
        return Err(err(io::Error::other("not a character device")));
    }
    let perm = meta.mode() & 0o777;
    match sys::mknod_char(&cstr(&under(base, node))?, perm, meta.rdev()) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            bind(made, base, node, node, true, false)
        }
        Err(source) => Err(err(source)),
    }
}

/// An overlay's `lowerdir` value: the layers colon-separated, top first, each escaped.
pub(super) fn lowerdir(lower: &[PathBuf]) -> String {
    let lowers: Vec<String> = lower.iter().map(|l| escape_overlay(l)).collect();
    lowers.join(":")
}

/// Overlay's option parser splits on `,` and `:`; escape them.
pub(super) fn escape_overlay(p: &Path) -> String {
    let s = p.to_string_lossy();
    s.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace(':', "\\:")
}

fn bind(
    made: &mut Made,
    base: &Path,
    src: &Path,
    target: &Path,
    writable: bool,
    optional: bool,
) -> Result<(), MountError> {
    let path = under(base, target);
    let meta = match std::fs::symlink_metadata(src) {
        Ok(m) => m,
        Err(e) if optional && e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(MountError::Bind {
                src: src.to_path_buf(),
                target: target.to_path_buf(),
                source,
            })
        }
    };
    if meta.file_type().is_symlink() {
        // /bin -> usr/bin on merged-/usr systems: recreate the link instead of binding its target twice.
        let to = std::fs::read_link(src).map_err(|source| MountError::Symlink {
            link: target.to_path_buf(),
            source,
        })?;
        if let Some(parent) = path.parent() {
            made.mkdirs(parent)?;
        }
        return std::os::unix::fs::symlink(to, &path).map_err(|source| MountError::Symlink {
            link: target.to_path_buf(),
            source,
        });
    }
    if meta.is_dir() {
        made.mkdirs(&path)?;
    } else {
        touch(made, &path)?;
    }
    let (src_c, dst_c, none) = (cstr(src)?, cstr(&path)?, c("none"));
    let err = |source| MountError::Bind {
        src: src.to_path_buf(),
        target: target.to_path_buf(),
        source,
    };
    sys::mount(&src_c, &dst_c, &none, libc::MS_BIND | libc::MS_REC, None).map_err(err)?;
    let mut set = sys::MOUNT_ATTR_NOSUID;
    if !meta.file_type().is_char_device() {
        set |= sys::MOUNT_ATTR_NODEV;
    }
    if !writable {
        set |= sys::MOUNT_ATTR_RDONLY;
    }
    match sys::mount_setattr(&dst_c, set) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
        Err(source) => {
            return Err(MountError::Remount {
                target: target.to_path_buf(),
                source,
            })
        }
    }
    // Before Linux 5.12: a bind remount. A bind inherits the source's flags; a remount must keep the ones the kernel locks (in a user
    // namespace, dropping nodev/nosuid/noexec fails with EPERM), so start from the current ones.
    let current = sys::statvfs_flags(&dst_c).map_err(|source| MountError::Remount {
        target: target.to_path_buf(),
        source,
    })?;
    let mut flags = libc::MS_REMOUNT
        | libc::MS_BIND
        | libc::MS_NOSUID
        | (current & (libc::ST_NODEV | libc::ST_NOEXEC | libc::ST_NOATIME | libc::ST_RELATIME));
    if !meta.file_type().is_char_device() {
        flags |= libc::MS_NODEV;
    }
    if !writable {
        flags |= libc::MS_RDONLY;
    }
    sys::mount(&none, &dst_c, &none, flags, None).map_err(|source| MountError::Remount {
        target: target.to_path_buf(),
        source,
    })
}
