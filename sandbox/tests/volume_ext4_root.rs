//! The ext4 image volume against the real kernel (root only): the size caps writes (ENOSPC),
//! the shutdown kill switch fails writes through an fd that is already open (EIO), and nothing
//! is left in /proc/mounts or among the loop devices afterwards, even when a test panics (the
//! volume's Drop unmounts and detaches; the tests check that too).

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use orchestrate_sandbox::volume_ext4::{Ext4Error, Ext4Volume};

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".to_owned());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no /dev/loop-control (loop driver absent)".to_owned());
    }
    let have_mkfs = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
        .iter()
        .any(|p| Path::new(p).exists());
    if !have_mkfs {
        return Some("mkfs.ext4 missing (scripts/setup.sh installs e2fsprogs)".to_owned());
    }
    None
}

macro_rules! require_root_and_loop {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("SKIP: {why}");
            return;
        }
    };
}

/// True when `/proc/mounts` lists `path` as a mountpoint.
fn mounted(path: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    let want = path.to_str().unwrap();
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want))
}

/// True when a loop device is backed by `image`, per `losetup -a` (the kernel's sysfs view).
fn attached(image: &Path) -> bool {
    let out = Command::new("losetup").arg("-a").output().unwrap();
    assert!(out.status.success(), "losetup -a failed");
    String::from_utf8_lossy(&out.stdout).contains(image.to_str().unwrap())
}

/// A temp dir whose volume is checked for leftovers when the guard drops, after the volume
/// itself (declared later, dropped first) has been torn down.
struct Place {
    tmp: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        Place {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn image(&self) -> PathBuf {
        self.tmp.path().join("volume.img")
    }
    fn mnt(&self) -> PathBuf {
        self.tmp.path().join("mnt")
    }
    fn assert_clean(&self) {
        assert!(!mounted(&self.mnt()), "{:?} still mounted", self.mnt());
        // A loop device whose last user went away after a lazy unmount is detached by the
        // kernel's AUTOCLEAR, possibly from a work queue: give it a moment.
        for _ in 0..50 {
            if !attached(&self.image()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("{:?} still attached", self.image());
    }
}

/// Writes `total` bytes in 1 MiB chunks; the error of the first failing write, if any.
fn fill(path: &Path, total: usize) -> Result<(), std::io::Error> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let chunk = vec![0x5au8; 1 << 20];
    let mut written = 0;
    while written < total {
        let n = total.min(written + chunk.len()) - written;
        f.write_all(&chunk[..n])?;
        written += n;
    }
    f.sync_all()
}

#[test]
fn writing_past_the_image_size_fails_with_enospc_and_a_plain_directory_takes_it() {
    require_root_and_loop!();
    let place = Place::new();
    {
        let vol = Ext4Volume::create(&place.image(), 16, &place.mnt(), None).unwrap();
        assert!(mounted(vol.path()));
        assert!(attached(&place.image()));
        // Positive control: 4 MiB fits.
        fill(&vol.path().join("small"), 4 << 20).unwrap();
        // 32 MiB into a 16 MiB volume: ENOSPC, exactly.
        let err = fill(&vol.path().join("big"), 32 << 20).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        // The image on the host never grew past its size.
        assert!(fs::metadata(place.image()).unwrap().len() <= 16 << 20);
        vol.destroy().unwrap();
    }
    place.assert_clean();
    assert!(!place.image().exists(), "destroy deletes the image");

    // Twin, the layer off: the same write into a plain directory succeeds, so the ENOSPC above
    // came from the volume's size and not from the host.
    let dir = place.tmp.path().join("plain");
    fs::create_dir(&dir).unwrap();
    fill(&dir.join("big"), 32 << 20).unwrap();
}

#[test]
fn after_shutdown_a_write_through_an_already_open_fd_fails_with_eio() {
    require_root_and_loop!();
    let place = Place::new();
    {
        let mut vol = Ext4Volume::create(&place.image(), 16, &place.mnt(), None).unwrap();
        let path = vol.path().join("log");
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        // Positive control (and the twin: without the shutdown, the same fd keeps writing).
        f.write_all(b"before\n").unwrap();
        f.sync_all().unwrap();
        f.write_all(b"still fine\n").unwrap();

        vol.shutdown().unwrap();
        let err = f.write_all(b"after\n").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
        // New files cannot be made either.
        let err = fs::write(vol.path().join("new"), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
        // The fd is still open: teardown must cope with the busy mount.
        vol.destroy().unwrap();
        assert!(!mounted(&place.mnt()), "unmounted while an fd was open");
        drop(f);
    }
    place.assert_clean();
}

#[test]
fn the_volume_root_belongs_to_the_role_user_and_release_keeps_the_image_for_quarantine() {
    require_root_and_loop!();
    let place = Place::new();
    let vol = Ext4Volume::create(&place.image(), 8, &place.mnt(), Some((4242, 4343))).unwrap();
    let meta = fs::metadata(vol.path()).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (4242, 4343, 0o755)
    );
    fs::write(vol.path().join("diff"), b"the run's work").unwrap();
    let image = vol.release().unwrap();
    place.assert_clean();
    assert!(image.exists(), "release keeps the image");

    // Quarantined work is still there when the image is mounted again.
    let again = Ext4Volume::mount(&image, &place.mnt(), None).unwrap();
    assert_eq!(
        fs::read(again.path().join("diff")).unwrap(),
        b"the run's work"
    );
    again.destroy().unwrap();
    place.assert_clean();
}

#[test]
fn a_panic_while_the_volume_is_mounted_leaves_no_mount_and_no_loop_device() {
    require_root_and_loop!();
    let place = Place::new();
    let image = place.image();
    let mnt = place.mnt();
    let result = std::panic::catch_unwind(|| {
        // Declared first so it is dropped last: the volume's Drop meets a busy mount.
        let _held: fs::File;
        let vol = Ext4Volume::create(&image, 8, &mnt, None).unwrap();
        _held = fs::File::create(vol.path().join("held")).unwrap();
        assert!(mounted(vol.path()));
        panic!("test failure while mounted");
    });
    assert!(result.is_err());
    place.assert_clean();
}

#[test]
fn sizes_outside_the_limits_and_an_existing_image_are_refused_before_anything_is_made() {
    require_root_and_loop!();
    let place = Place::new();
    let err = Ext4Volume::create(&place.image(), 0, &place.mnt(), None).unwrap_err();
    assert!(matches!(err, Ext4Error::Size(0)), "{err}");
    assert!(!place.image().exists());
    fs::write(place.image(), b"someone's file").unwrap();
    let err = Ext4Volume::create(&place.image(), 8, &place.mnt(), None).unwrap_err();
    match err {
        Ext4Error::CreateImage { source, .. } => {
            assert_eq!(source.kind(), ErrorKind::AlreadyExists)
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(fs::read(place.image()).unwrap(), b"someone's file");
    place.assert_clean();
}

/// `doctor`'s volume-speed warning rests on this probe: a fresh image made by `Ext4Volume`
/// (mkfs.ext4's defaults: a journal) is told apart from one made without a journal, by the
/// device the kernel names for each mount.
#[test]
fn the_filesystem_probe_tells_a_journaled_ext4_from_a_journal_less_one() {
    use orchestrate_sandbox::volume_fs;
    require_root_and_loop!();
    let journaled = Place::new();
    let plain = Place::new();
    {
        let vol = Ext4Volume::create(&journaled.image(), 16, &journaled.mnt(), None).unwrap();
        let fs = volume_fs::probe(&vol.path().join("runs/R/volume"));
        assert_eq!(fs.fs_type, "ext4");
        assert!(
            vol.device().ends_with(fs.device.as_deref().unwrap()),
            "{fs:?} vs {:?}",
            vol.device()
        );
        assert_eq!(fs.journal, Some(true), "{fs:?}");
        assert!(!fs.slow_overlay_mounts());
        vol.destroy().unwrap();
    }
    journaled.assert_clean();
    {
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(plain.image())
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let mkfs = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-O", "^has_journal"])
            .arg(plain.image())
            .status()
            .unwrap();
        assert!(mkfs.success());
        let vol = Ext4Volume::mount(&plain.image(), &plain.mnt(), None).unwrap();
        let fs = volume_fs::probe(vol.path());
        assert_eq!((fs.fs_type.as_str(), fs.journal), ("ext4", Some(false)));
        assert!(fs.slow_overlay_mounts());
        vol.destroy().unwrap();
    }
    plain.assert_clean();
}
