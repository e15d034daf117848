//! The writable overlay's work dir: one of a few reusable slots on the volume, held with a lock.
//!
//! A writable overlay needs a work dir on the upper layer's file system that no other mounted
//! overlay uses, and a `volatile` one leaves a marker there (`work/incompat/volatile`) that makes
//! the kernel refuse the dir to the next mount. A fresh dir per launch, removed afterwards, cost
//! five directory creations and removals on the volume's disk at every launch (0.5–4 ms per
//! `rmdir` on an ext4 with online discard); a slot costs one removal of the marker.
//!
//! The helper of a launch claims the first free slot under the work base (`<base>/slot-N`) by
//! taking an exclusive `flock` on it, and holds the lock until it exits: that is, until its pid 1
//! and so the overlay are gone. The kernel releases the lock of a helper that dies, so a crashed
//! launch never strands its slot. Once claimed, the previous launch's marker is set aside in the
//! slot (one `rename`, ~15 µs, where removing its three entries took 0.15–0.4 ms on this
//! project's ext4 with online discard); the kernel clears the rest of the dir itself when it
//! mounts. Set-aside markers are removed once [`SWEEP_AT`] have piled up, one at a time, by a
//! helper that is only waiting for its command to exit ([`Slot::trash`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// More concurrent writers of one volume than this is a bug, not a workload.
const MAX_SLOTS: usize = 64;
/// A set-aside marker's name in its slot.
const TRASH: &str = ".trash-";
/// Markers set aside are removed only once this many have piled up, so most launches remove none.
pub const SWEEP_AT: usize = 8;

/// A claimed work dir; the claim ends when this is dropped (or its process ends).
#[derive(Debug)]
pub struct Slot {
    pub path: PathBuf,
    _lock: Flock<File>,
}

/// Claims the first free slot under `base` (creating it if needed) and readies it for a mount.
pub fn claim(base: &Path) -> io::Result<Slot> {
    for i in 0..MAX_SLOTS {
        let path = base.join(format!("slot-{i}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let lock = match Flock::lock(File::open(&path)?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => continue,
            Err((_, e)) => return Err(e.into()),
        };
        clear_marker(&path)?;
        return Ok(Slot { path, _lock: lock });
    }
    Err(io::Error::other(format!(
        "all {MAX_SLOTS} overlay work dirs under {} are in use",
        base.display()
    )))
}

impl Slot {
    /// The markers earlier claims of this slot set aside, for the helper to remove while it
    /// waits ([`remove_trash`], one per call); none until [`SWEEP_AT`] have piled up.
    pub fn trash(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return Vec::new();
        };
        let trash: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                e.file_name()
                    .as_encoded_bytes()
                    .starts_with(TRASH.as_bytes())
            })
            .map(|e| e.path())
            .collect();
        if trash.len() < SWEEP_AT {
            return Vec::new();
        }
        trash
    }
}

/// Removes one set-aside marker (the kernel made its dirs `d---------`: without root's override,
/// they are opened up first). Best effort: what stays is removed with the volume.
pub fn remove_trash(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() == io::ErrorKind::PermissionDenied {
            open_up(dir);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// chmod 0700 on `dir` and every directory under it.
fn open_up(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
}

/// Sets aside what the last `volatile` mount left in the slot's `work/` (one rename out of the
/// kernel's `d---------` dir: without root's override, it is opened up first).
fn clear_marker(slot: &Path) -> io::Result<()> {
    let work = slot.join("work");
    let incompat = work.join("incompat");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let aside = slot.join(format!("{TRASH}{nanos}"));
    match std::fs::rename(&incompat, &aside) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() != io::ErrorKind::PermissionDenied => return Err(e),
        Err(_) => {}
    }
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700))?;
    match std::fs::rename(&incompat, &aside) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child spawned by one test holds a copy of the other's lock fds until it execs: the
    /// release the other test checks for would come late.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_held_slot_is_skipped_and_a_released_one_reused_without_its_marker() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let t = tempfile::tempdir().unwrap();
        let a = claim(t.path()).unwrap();
        let b = claim(t.path()).unwrap();
        assert_eq!(a.path, t.path().join("slot-0"));
        assert_eq!(b.path, t.path().join("slot-1"), "slot-0 is held");
        let marker = a.path.join("work/incompat/volatile");
        std::fs::create_dir_all(&marker).unwrap();
        std::fs::write(marker.join("dirty"), b"").unwrap();
        drop(a);
        // Another test's child may hold a copy of the lock's fd until it execs: allow it that.
        let c = (0..50)
            .map(|_| {
                let c = claim(t.path()).unwrap();
                if c.path.ends_with("slot-2") {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                c
            })
            .find(|c| !c.path.ends_with("slot-2"))
            .unwrap();
        assert_eq!(c.path, t.path().join("slot-0"), "released: reused");
        assert!(
            !c.path.join("work/incompat").exists(),
            "the volatile marker is gone"
        );
        assert!(
            c.path.join("work").is_dir(),
            "the rest is the kernel's to clear"
        );
    }

    #[test]
    fn markers_set_aside_are_swept_once_enough_pile_up() {
        let t = tempfile::tempdir().unwrap();
        let slot = Slot {
            path: t.path().to_path_buf(),
            _lock: Flock::lock(
                File::open(t.path()).unwrap(),
                FlockArg::LockExclusiveNonblock,
            )
            .unwrap(),
        };
        let mark = || {
            let v = t.path().join("work/incompat/volatile");
            std::fs::create_dir_all(&v).unwrap();
            std::fs::write(v.join("dirty"), b"").unwrap();
            // The kernel's modes: nothing but root's override gets in.
            for d in ["work/incompat/volatile", "work/incompat"] {
                let p = t.path().join(d);
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
            }
            clear_marker(t.path()).unwrap();
            assert!(!t.path().join("work/incompat").exists(), "set aside");
        };
        for _ in 1..SWEEP_AT {
            mark();
        }
        assert!(
            slot.trash().is_empty(),
            "below the threshold: nothing to sweep"
        );
        mark();
        let trash = slot.trash();
        assert_eq!(trash.len(), SWEEP_AT);
        for dir in &trash {
            remove_trash(dir);
        }
        let left = std::fs::read_dir(t.path()).unwrap().count();
        assert_eq!(left, 1, "only work/ is left");
    }

    #[test]
    fn a_lock_held_by_another_process_counts() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("slot-0")).unwrap();
        // flock(1) holds the lock in another process until its `cat` sees the end of stdin.
        let mut holder = std::process::Command::new("flock")
            .arg(t.path().join("slot-0"))
            .arg("cat")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let held = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let f = File::open(t.path().join("slot-0")).unwrap();
            Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err()
        });
        assert!(held, "flock(1) took the lock");
        let got = claim(t.path()).unwrap();
        assert_eq!(got.path, t.path().join("slot-1"));
        drop(holder.stdin.take());
        assert!(holder.wait().unwrap().success());
        drop(got);
        assert_eq!(claim(t.path()).unwrap().path, t.path().join("slot-0"));
    }
}
