//! Which filesystem a directory volume lands on, and whether that filesystem makes every
//! launch's writable overlay slow.
//!
//! Each launch of a role that writes `{repo}` mounts an overlay whose upper and work dirs are on
//! the volume. overlayfs's mount removes and remakes its `work/work` dir, probes O_TMPFILE and
//! RENAME_WHITEOUT with throwaway inodes, and makes the `volatile` marker's three dirs (set aside
//! and removed by later launches, see `linux/workslot.rs`): about seven inodes and four directory
//! blocks made and freed per launch. Two things make that slow on ext4 *without a journal*:
//!
//! - the kernel will not hand out an inode freed in the last 30 seconds (or one whose
//!   inode-table block is still dirty): `find_inode_bit` walks past every such inode one buffer
//!   lookup at a time (`recently_deleted` in fs/ext4/ialloc.c), so the mount costs more the more
//!   launches happened in the last half minute;
//! - with online `discard`, a freed block is discarded synchronously by the `rmdir` that frees it
//!   (a journal would batch the discards at commit).
//!
//! Measured on this project's CI host (its root is such a filesystem): 3000 back-to-back overlay
//! mounts took 2.2 ms each (median) there against 0.19 ms on a journaled ext4 image of the same
//! disk; one `rmdir` 0.08–0.26 ms against 0.02–0.035 ms. `orchestrate doctor` reports it; the
//! `ext4` volume kind (an image with a journal) avoids it.

use std::path::Path;

use serde::Serialize;

/// The filesystem under a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VolumeFs {
    /// `ext4`, `tmpfs`, `xfs`, ... (from `/proc/self/mountinfo`), or `unknown`.
    pub fs_type: String,
    /// The block device's kernel name (`vda`, `loop0`), where there is one.
    pub device: Option<String>,
    /// For ext4: whether it has a journal (`/sys/fs/ext4/<dev>/journal_task`); None elsewhere
    /// or when the kernel does not say.
    pub journal: Option<bool>,
    /// Mounted with online `discard` (every freed block discarded as it is freed).
    pub discard: bool,
}

impl VolumeFs {
    /// Whether launches that write `{repo}` pay the journal-less ext4 inode-reuse walk.
    pub fn slow_overlay_mounts(&self) -> bool {
        self.fs_type == "ext4" && self.journal == Some(false)
    }
}

/// Probes the filesystem `path` (or its nearest existing ancestor: a run's volume may not exist
/// yet) is on, from `/proc/self/mountinfo` and `/sys`.
#[cfg(target_os = "linux")]
pub fn probe(path: &Path) -> VolumeFs {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    probe_with(path, &mountinfo, Path::new("/sys"))
}

/// Elsewhere the question does not arise (no overlayfs): the answer is `unknown`.
#[cfg(not(target_os = "linux"))]
pub fn probe(_path: &Path) -> VolumeFs {
    VolumeFs {
        fs_type: "unknown".to_owned(),
        device: None,
        journal: None,
    }
}

#[cfg(target_os = "linux")]
fn probe_with(path: &Path, mountinfo: &str, sys: &Path) -> VolumeFs {
    use std::os::unix::fs::MetadataExt;
    let dev = path
        .ancestors()
        .find_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.dev());
    let Some(dev) = dev else {
        return VolumeFs {
            fs_type: "unknown".to_owned(),
            device: None,
            journal: None,
            discard: false,
        };
    };
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let (fs_type, discard) = match mount_of(mountinfo, major, minor) {
        Some((t, opts)) => (t.to_owned(), opts.split(',').any(|o| o == "discard")),
        None => ("unknown".to_owned(), false),
    };
    // /sys/dev/block/M:m links to the device's directory, named for the device.
    let device = std::fs::read_link(sys.join(format!("dev/block/{major}:{minor}")))
        .ok()
        .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()));
    let journal = match (&device, fs_type.as_str()) {
        (Some(name), "ext4") => {
            std::fs::read_to_string(sys.join(format!("fs/ext4/{name}/journal_task")))
                .ok()
                .map(|t| t.trim() != "<none>")
        }
        _ => None,
    };
    VolumeFs {
        fs_type,
        device,
        journal,
        discard,
    }
}

/// The filesystem type and super options of the mount with device `major:minor` (mountinfo
/// field 3; after the ` - ` separator: type, source, super options).
#[cfg(target_os = "linux")]
fn mount_of(mountinfo: &str, major: u32, minor: u32) -> Option<(&str, &str)> {
    let want = format!("{major}:{minor}");
    mountinfo.lines().find_map(|line| {
        if line.split(' ').nth(2)? != want {
            return None;
        }
        let (_, after) = line.split_once(" - ")?;
        let mut f = after.split(' ');
        let fs_type = f.next()?;
        Some((fs_type, f.nth(1).unwrap_or("")))
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
30 22 0:25 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw
41 22 7:0 / /var/tmp/img rw,relatime shared:20 - ext4 /dev/loop0 rw
";

    #[test]
    fn the_mount_with_the_device_number_names_the_type_and_options() {
        assert_eq!(mount_of(MOUNTINFO, 254, 0), Some(("ext4", "rw,discard")));
        assert_eq!(mount_of(MOUNTINFO, 0, 25), Some(("tmpfs", "rw")));
        assert_eq!(mount_of(MOUNTINFO, 7, 1), None);
    }

    #[test]
    fn only_a_journal_less_ext4_makes_overlay_mounts_slow() {
        let fs = |t: &str, j| VolumeFs {
            fs_type: t.to_owned(),
            device: Some("vda".to_owned()),
            journal: j,
            discard: true,
        };
        assert!(fs("ext4", Some(false)).slow_overlay_mounts());
        assert!(!fs("ext4", Some(true)).slow_overlay_mounts());
        assert!(!fs("ext4", None).slow_overlay_mounts());
        assert!(!fs("tmpfs", None).slow_overlay_mounts());
    }

    /// The real probe on a path that does not exist yet answers for its existing ancestor, and
    /// agrees with the kernel's own table about that filesystem's type.
    #[test]
    fn a_missing_path_is_answered_for_its_nearest_ancestor() {
        let t = tempfile::tempdir().unwrap();
        let here = probe(t.path());
        let missing = probe(&t.path().join("runs/R/volume"));
        assert_eq!(here, missing);
        assert_ne!(here.fs_type, "unknown");
    }

    /// A fake /sys: the journal answer comes from `journal_task` (`<none>` = no journal).
    #[test]
    fn journal_task_says_whether_ext4_has_a_journal() {
        let t = tempfile::tempdir().unwrap();
        let dev = std::fs::metadata(t.path()).unwrap().dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        let sys = t.path().join("sys");
        std::fs::create_dir_all(sys.join("dev/block")).unwrap();
        std::fs::create_dir_all(sys.join("devices/fake/vdz")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/fake/vdz",
            sys.join(format!("dev/block/{major}:{minor}")),
        )
        .unwrap();
        std::fs::create_dir_all(sys.join("fs/ext4/vdz")).unwrap();
        let info = format!("22 1 {major}:{minor} / / rw - ext4 /dev/vdz rw,discard\n");
        std::fs::write(sys.join("fs/ext4/vdz/journal_task"), "<none>\n").unwrap();
        let fs = probe_with(t.path(), &info, &sys);
        assert_eq!(fs.device.as_deref(), Some("vdz"));
        assert_eq!(fs.journal, Some(false));
        assert!(fs.discard);
        assert!(fs.slow_overlay_mounts());
        std::fs::write(sys.join("fs/ext4/vdz/journal_task"), "20119\n").unwrap();
        assert_eq!(probe_with(t.path(), &info, &sys).journal, Some(true));
    }
}
