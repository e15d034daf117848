//! Which filesystem a directory volume lands on, and whether that filesystem makes every
//! launch's writable overlay slow.
//!
//! Each launch of a role that writes `{repo}` mounts an overlay whose upper and work dirs are on
//! the volume. overlayfs's mount makes and removes about five inodes in the work dir (it
//! recreates `work/work`, probes O_TMPFILE, RENAME_WHITEOUT and the `volatile` marker). On ext4
//! *without a journal* the kernel will not hand out an inode freed in the last 30 seconds (or one
//! whose inode-table block is still dirty): `find_inode_bit` walks past every such inode one
//! buffer lookup at a time (`recently_deleted` in fs/ext4/ialloc.c). So on a journal-less ext4
//! the overlay's mount cost grows with how many launches happened in the last half minute:
//! measured on this project's CI host, 3000 back-to-back overlay mounts took 2.2 ms each (median)
//! on its journal-less root against 0.19 ms on a journaled ext4 image of the same disk.
//! `orchestrate doctor` reports it; the `ext4` volume kind (an image with a journal) avoids it.

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
        };
    };
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let fs_type = fs_type_of(mountinfo, major, minor).unwrap_or_else(|| "unknown".to_owned());
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
    }
}

/// The filesystem type of the mount with device `major:minor` (mountinfo field 3, and the
/// field after the ` - ` separator).
#[cfg(target_os = "linux")]
fn fs_type_of(mountinfo: &str, major: u32, minor: u32) -> Option<String> {
    let want = format!("{major}:{minor}");
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split(' ');
        if fields.nth(2)? != want {
            return None;
        }
        let (_, after) = line.split_once(" - ")?;
        after.split(' ').next().map(str::to_owned)
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
    fn the_mount_with_the_device_number_names_the_type() {
        assert_eq!(fs_type_of(MOUNTINFO, 254, 0).as_deref(), Some("ext4"));
        assert_eq!(fs_type_of(MOUNTINFO, 0, 25).as_deref(), Some("tmpfs"));
        assert_eq!(fs_type_of(MOUNTINFO, 7, 1), None);
    }

    #[test]
    fn only_a_journal_less_ext4_makes_overlay_mounts_slow() {
        let fs = |t: &str, j| VolumeFs {
            fs_type: t.to_owned(),
            device: Some("vda".to_owned()),
            journal: j,
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
        let info = format!("22 1 {major}:{minor} / / rw - ext4 /dev/vdz rw\n");
        std::fs::write(sys.join("fs/ext4/vdz/journal_task"), "<none>\n").unwrap();
        let fs = probe_with(t.path(), &info, &sys);
        assert_eq!(fs.device.as_deref(), Some("vdz"));
        assert_eq!(fs.journal, Some(false));
        assert!(fs.slow_overlay_mounts());
        std::fs::write(sys.join("fs/ext4/vdz/journal_task"), "20119\n").unwrap();
        assert_eq!(probe_with(t.path(), &info, &sys).journal, Some(true));
    }
}
