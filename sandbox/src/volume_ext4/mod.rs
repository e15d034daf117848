//! The sandbox volume as a loop-mounted ext4 image of fixed size (roles.yaml
//! `sandbox.volume: {kind: ext4, size_mb: N}`): the image's size caps every write a role makes
//! (ENOSPC past it), and [`Ext4Volume::shutdown`] stops every write at once, including through
//! file descriptors that are already open (EIO), which an unmount cannot do.
//!
//! Lifecycle (root only):
//! ```text
//! Ext4Volume::create(image, size_mb, mountpoint, owner)
//!     sparse image (O_EXCL, 0600) -> mkfs.ext4 -> loop device (LOOP_CTL_GET_FREE +
//!     LOOP_CONFIGURE with AUTOCLEAR) -> mount nosuid,nodev -> chown the root to the role user
//! vol.shutdown()     kill switch: EXT4_IOC_SHUTDOWN(NOLOGFLUSH); every later write fails with EIO
//! vol.release()      quarantine: unmount + detach, keep the image (mount it again to inspect)
//! vol.destroy()      rollback: unmount + detach + delete the image
//! drop(vol)          unmount + detach, whatever happened (the image stays)
//! ```
//! Ordering invariant of teardown: unmount before detach; a busy filesystem is shut down first and
//! only then lazily unmounted, because a lazy unmount alone leaves open fds writable (DESIGN.md).
//! With AUTOCLEAR the kernel detaches the loop device by itself when the last user lets go, so
//! even a process killed mid-run does not leak a loop device once its mount is gone.

mod sys;

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{chown, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Largest image accepted (1 TiB): a typo in roles.yaml must not fill the host's disk.
pub const MAX_SIZE_MB: u64 = 1 << 20;
/// Smallest image mkfs.ext4 makes usable room in.
pub const MIN_SIZE_MB: u64 = 2;
/// How often a free loop device is asked for when another process takes it first.
const ATTACH_ATTEMPTS: u32 = 16;

/// Errors of the ext4 volume, each naming the step and the path.
#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    /// The size is outside [`MIN_SIZE_MB`]..=[`MAX_SIZE_MB`].
    #[error("ext4 volume size {0} MiB is outside {MIN_SIZE_MB}..={MAX_SIZE_MB} MiB")]
    Size(u64),
    /// Creating the sparse image failed (it must not exist yet).
    #[error("creating image {path:?}: {source}")]
    CreateImage {
        /// The image.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// mkfs.ext4 could not be started (e2fsprogs missing: `scripts/setup.sh` installs it).
    #[error("running mkfs.ext4 on {path:?}: {source}")]
    MkfsSpawn {
        /// The image.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// mkfs.ext4 failed.
    #[error("mkfs.ext4 on {path:?} failed ({status}): {stderr}")]
    Mkfs {
        /// The image.
        path: PathBuf,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed.
        stderr: String,
    },
    /// Opening `/dev/loop-control` or asking it for a free device failed.
    #[error("loop control /dev/loop-control: {source}")]
    LoopControl {
        /// Cause.
        source: io::Error,
    },
    /// Opening a loop device or the image for it failed.
    #[error("opening {path:?} for the loop device: {source}")]
    LoopOpen {
        /// The device or image.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// LOOP_CONFIGURE failed (Linux < 5.8 has no LOOP_CONFIGURE: ENOTTY/EINVAL).
    #[error("attaching {image:?} to {device:?}: {source}")]
    LoopAttach {
        /// The device.
        device: PathBuf,
        /// The image.
        image: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Creating the mountpoint failed.
    #[error("creating mountpoint {path:?}: {source}")]
    Mountpoint {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// mount(2) failed.
    #[error("mounting {device:?} on {target:?}: {source}")]
    Mount {
        /// The loop device.
        device: PathBuf,
        /// The mountpoint.
        target: PathBuf,
        /// Cause.
        source: nix::Error,
    },
    /// Handing the volume's root to the role user failed.
    #[error("chown {path:?} to {uid}:{gid}: {source}")]
    Chown {
        /// The volume root.
        path: PathBuf,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
        /// Cause.
        source: io::Error,
    },
    /// EXT4_IOC_SHUTDOWN failed.
    #[error("shutting down the filesystem at {path:?}: {source}")]
    Shutdown {
        /// The mountpoint.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// umount(2) failed.
    #[error("unmounting {path:?}: {source}")]
    Unmount {
        /// The mountpoint.
        path: PathBuf,
        /// Cause.
        source: nix::Error,
    },
    /// LOOP_CLR_FD failed.
    #[error("detaching {device:?}: {source}")]
    Detach {
        /// The device.
        device: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Deleting the image failed.
    #[error("removing image {path:?}: {source}")]
    RemoveImage {
        /// The image.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// A mounted ext4 image volume. Dropping it unmounts and detaches (best effort, logged); use
/// [`Ext4Volume::destroy`] or [`Ext4Volume::release`] to see errors.
#[derive(Debug)]
pub struct Ext4Volume {
    image: PathBuf,
    device: PathBuf,
    loop_fd: Option<OwnedFd>,
    mountpoint: PathBuf,
    mounted: bool,
    shut_down: bool,
}

impl Ext4Volume {
    /// Makes a fresh `size_mb` image at `image` (which must not exist), mounts it at
    /// `mountpoint` (created 0700 if missing) and gives its root to `owner` (uid, gid) with mode
    /// 0755. On any error, whatever was set up is undone and the image removed.
    pub fn create(
        image: &Path,
        size_mb: u64,
        mountpoint: &Path,
        owner: Option<(u32, u32)>,
    ) -> Result<Ext4Volume, Ext4Error> {
        make_image(image, size_mb)?;
        match Self::mount(image, mountpoint, owner) {
            Ok(vol) => Ok(vol),
            Err(e) => {
                let _ = fs::remove_file(image);
                Err(e)
            }
        }
    }

    /// Attaches an existing image (made by [`Ext4Volume::create`]) to a free loop device and
    /// mounts it at `mountpoint` (nosuid, nodev); with `owner`, its root is chowned and set 0755.
    pub fn mount(
        image: &Path,
        mountpoint: &Path,
        owner: Option<(u32, u32)>,
    ) -> Result<Ext4Volume, Ext4Error> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(mountpoint)
            .map_err(|source| Ext4Error::Mountpoint {
                path: mountpoint.to_path_buf(),
                source,
            })?;
        let (device, loop_fd) = attach(image)?;
        // From here on, Drop undoes what is done.
        let mut vol = Ext4Volume {
            image: image.to_path_buf(),
            device,
            loop_fd: Some(loop_fd),
            mountpoint: mountpoint.to_path_buf(),
            mounted: false,
            shut_down: false,
        };
        mount(
            Some(vol.device.as_path()),
            mountpoint,
            Some("ext4"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            None::<&str>,
        )
        .map_err(|source| Ext4Error::Mount {
            device: vol.device.clone(),
            target: mountpoint.to_path_buf(),
            source,
        })?;
        vol.mounted = true;
        if let Some((uid, gid)) = owner {
            let chown_err = |source| Ext4Error::Chown {
                path: mountpoint.to_path_buf(),
                uid,
                gid,
                source,
            };
            chown(mountpoint, Some(uid), Some(gid)).map_err(chown_err)?;
            fs::set_permissions(mountpoint, Permissions::from_mode(0o755)).map_err(chown_err)?;
        }
        Ok(vol)
    }

    /// Where the volume is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The image file.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// The loop device (`/dev/loopN`).
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// The kill switch: every write to the volume fails with EIO from now on, through any fd,
    /// already open or not. Reads of cached data may still succeed. Idempotent.
    pub fn shutdown(&mut self) -> Result<(), Ext4Error> {
        if self.shut_down || !self.mounted {
            return Ok(());
        }
        let err = |source| Ext4Error::Shutdown {
            path: self.mountpoint.clone(),
            source,
        };
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.mountpoint)
            .map_err(err)?;
        sys::ext4_shutdown(dir.as_fd(), sys::EXT4_GOING_FLAGS_NOLOGFLUSH).map_err(err)?;
        self.shut_down = true;
        Ok(())
    }

    /// Quarantine: unmounts and detaches, keeps the image; returns its path.
    pub fn release(mut self) -> Result<PathBuf, Ext4Error> {
        self.teardown()?;
        Ok(self.image.clone())
    }

    /// Rollback: unmounts, detaches and deletes the image.
    pub fn destroy(mut self) -> Result<(), Ext4Error> {
        self.teardown()?;
        fs::remove_file(&self.image).map_err(|source| Ext4Error::RemoveImage {
            path: self.image.clone(),
            source,
        })
    }

    /// Unmount (shutting a busy filesystem down first, then detaching it lazily), then detach
    /// the loop device. Safe to call twice.
    fn teardown(&mut self) -> Result<(), Ext4Error> {
        if self.mounted {
            match umount2(&self.mountpoint, MntFlags::empty()) {
                Ok(()) => {}
                Err(nix::errno::Errno::EBUSY) => {
                    // Something still holds a file open: kill its writes, then detach the mount
                    // from the tree; the kernel frees it when the last fd closes.
                    self.shutdown()?;
                    umount2(&self.mountpoint, MntFlags::MNT_DETACH).map_err(|source| {
                        Ext4Error::Unmount {
                            path: self.mountpoint.clone(),
                            source,
                        }
                    })?;
                }
                Err(source) => {
                    return Err(Ext4Error::Unmount {
                        path: self.mountpoint.clone(),
                        source,
                    })
                }
            }
            self.mounted = false;
        }
        if let Some(fd) = self.loop_fd.take() {
            match sys::loop_clear(fd.as_fd()) {
                // ENXIO: already detached (AUTOCLEAR got there first).
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
                Err(source) => {
                    return Err(Ext4Error::Detach {
                        device: self.device.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

impl Drop for Ext4Volume {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            // No logger in this crate; a leaked mount must not pass silently.
            eprintln!("orchestrate: tearing down ext4 volume: {e}");
        }
    }
}

/// Creates a sparse `size_mb` image (O_EXCL, 0600) and formats it: no reserved blocks (the
/// role, not root, is the one meant to get the room), no lazy init left running in the kernel
/// after the mount.
fn make_image(image: &Path, size_mb: u64) -> Result<(), Ext4Error> {
    if !(MIN_SIZE_MB..=MAX_SIZE_MB).contains(&size_mb) {
        return Err(Ext4Error::Size(size_mb));
    }
    let create_err = |source| Ext4Error::CreateImage {
        path: image.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(image)
        .map_err(create_err)?;
    file.set_len(size_mb << 20).map_err(create_err)?;
    drop(file);
    let out = Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-m",
            "0",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
        ])
        .arg(image)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .map_err(|source| Ext4Error::MkfsSpawn {
            path: image.to_path_buf(),
            source,
        });
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            let _ = fs::remove_file(image);
            return Err(e);
        }
    };
    if !out.status.success() {
        let _ = fs::remove_file(image);
        return Err(Ext4Error::Mkfs {
            path: image.to_path_buf(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Attaches `image` to a free loop device with AUTOCLEAR; returns the device path and an open
/// fd on it (held until teardown, so the device cannot be recycled under us).
fn attach(image: &Path) -> Result<(PathBuf, OwnedFd), Ext4Error> {
    let backing = open_rw(image)?;
    let control = open_rw(Path::new("/dev/loop-control")).map_err(|e| match e {
        Ext4Error::LoopOpen { source, .. } => Ext4Error::LoopControl { source },
        other => other,
    })?;
    let name = image.as_os_str().as_bytes();
    let mut last = None;
    for _ in 0..ATTACH_ATTEMPTS {
        let n = sys::loop_get_free(control.as_fd())
            .map_err(|source| Ext4Error::LoopControl { source })?;
        let device = PathBuf::from(format!("/dev/loop{n}"));
        let dev = open_rw(&device)?;
        match sys::loop_configure(dev.as_fd(), backing.as_fd(), sys::LO_FLAGS_AUTOCLEAR, name) {
            Ok(()) => return Ok((device, OwnedFd::from(dev))),
            // Another process configured the same free device between the two calls.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = Some((device, e)),
            Err(source) => {
                return Err(Ext4Error::LoopAttach {
                    device,
                    image: image.to_path_buf(),
                    source,
                })
            }
        }
    }
    let (device, source) = last.unwrap_or_else(|| {
        (
            PathBuf::from("/dev/loop-control"),
            io::Error::from_raw_os_error(libc::EBUSY),
        )
    });
    Err(Ext4Error::LoopAttach {
        device,
        image: image.to_path_buf(),
        source,
    })
}

fn open_rw(path: &Path) -> Result<File, Ext4Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| Ext4Error::LoopOpen {
            path: path.to_path_buf(),
            source,
        })
}
