//! The run's sandbox volume, as roles.yaml `sandbox.volume` says: `directory` (a plain directory,
//! `runs/<id>/volume`) or `ext4` (an image of `size_mb` at `runs/<id>/volume.ext4`, loop-mounted
//! on that directory for as long as this process drives the run). The image caps every write the
//! roles make (ENOSPC past it); unmounting it when the run ends, stops or pauses stops every write
//! at once. The image stays for `resume` and for people to inspect; a resume mounts it again.

use std::path::{Path, PathBuf};

use protocol::roles::{VolumeKind, VolumeSettings};

/// The volume while the run is driven; dropping it unmounts an ext4 image (the image stays).
pub struct AttachedVolume {
    /// What the run got, for the audit event and the report line.
    pub record: serde_json::Value,
    #[cfg(target_os = "linux")]
    _ext4: Option<sandbox::volume_ext4::Ext4Volume>,
}

/// Why the volume roles.yaml asks for cannot be had.
#[derive(Debug, thiserror::Error)]
#[error("volume: roles.yaml asks for an ext4 image of {size_mb} MiB at {image}, which cannot be mounted here: {reason} (run as root, or --allow-weaker for a plain directory)")]
pub struct VolumeError {
    /// The image path.
    pub image: PathBuf,
    /// The size asked for.
    pub size_mb: u64,
    /// Why not.
    pub reason: String,
}

/// The image beside the run's volume directory.
pub fn image_path(volume: &Path) -> PathBuf {
    volume.with_extension("ext4")
}

/// Gives the run its volume at `volume`. An ext4 image is made on first use and mounted again
/// on resume; with `allow_weaker`, a volume that cannot be mounted becomes a plain directory
/// (recorded).
pub fn attach(
    settings: VolumeSettings,
    volume: &Path,
    allow_weaker: bool,
) -> Result<AttachedVolume, VolumeError> {
    let image = image_path(volume);
    if settings.kind == VolumeKind::Directory {
        return Ok(directory(serde_json::json!({"kind": "directory"})));
    }
    match mount_ext4(&image, settings.size_mb, volume) {
        Ok(attached) => Ok(attached),
        Err(reason) if allow_weaker => Ok(directory(serde_json::json!({
            "kind": "directory", "wanted": "ext4", "size_mb": settings.size_mb, "reason": reason,
        }))),
        Err(reason) => Err(VolumeError {
            image,
            size_mb: settings.size_mb,
            reason,
        }),
    }
}

fn directory(record: serde_json::Value) -> AttachedVolume {
    AttachedVolume {
        record,
        #[cfg(target_os = "linux")]
        _ext4: None,
    }
}

#[cfg(target_os = "linux")]
fn mount_ext4(image: &Path, size_mb: u64, volume: &Path) -> Result<AttachedVolume, String> {
    use sandbox::volume_ext4::Ext4Volume;
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root (a loop device and a mount need root)".to_owned());
    }
    let fresh = !image.exists();
    if !fresh && is_mountpoint(volume) {
        // An orchestrator that died mid-run left its mount behind: take it down first so the
        // image is never mounted twice.
        let c = std::ffi::CString::new(volume.as_os_str().as_encoded_bytes())
            .map_err(|e| e.to_string())?;
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            return Err(format!(
                "unmounting the leftover mount on {}: {}",
                volume.display(),
                std::io::Error::last_os_error()
            ));
        }
    }
    if fresh && volume.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "{} already holds files (a run started without the image)",
            volume.display()
        ));
    }
    let vol = if fresh {
        Ext4Volume::create(image, size_mb, volume, None)
    } else {
        Ext4Volume::mount(image, volume, None)
    }
    .map_err(|e| e.to_string())?;
    let record = serde_json::json!({
        "kind": "ext4", "size_mb": size_mb, "image": image, "device": vol.device(),
        "created": fresh,
    });
    Ok(AttachedVolume {
        record,
        _ext4: Some(vol),
    })
}

#[cfg(not(target_os = "linux"))]
fn mount_ext4(_image: &Path, _size_mb: u64, _volume: &Path) -> Result<AttachedVolume, String> {
    Err("ext4 images are mounted on Linux only".to_owned())
}

/// Whether `path` is the mount point of a mount in this namespace.
#[cfg(target_os = "linux")]
fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.as_os_str().to_string_lossy();
    // Field 5 is the mount point, with spaces and the like octal-escaped.
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape(m) == want)
}

#[cfg(target_os = "linux")]
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Moves a directory tree, across filesystems too (the quarantine leaves an ext4 volume): a
/// rename where it can, else a copy (modes and symlinks kept) and the removal of the source.
pub fn move_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_tree(from, to)?;
            std::fs::remove_dir_all(from)
        }
        other => other,
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else if kind.is_dir() {
        std::fs::create_dir(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        std::fs::set_permissions(to, meta.permissions())
    } else if kind.is_file() {
        std::fs::copy(from, to).map(drop)
    } else {
        // Device nodes, fifos, sockets (an overlay whiteout is a 0/0 char device): their names
        // are what a person reviewing the quarantine needs.
        std::fs::write(to, b"").map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_copied_whole_with_links_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let from = t.path().join("from");
        std::fs::create_dir_all(from.join("a/b")).unwrap();
        std::fs::write(from.join("a/b/f.rs"), "fn main() {}").unwrap();
        std::fs::set_permissions(
            from.join("a/b/f.rs"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::os::unix::fs::symlink("a/b/f.rs", from.join("link")).unwrap();
        let to = t.path().join("to");
        copy_tree(&from, &to).unwrap();
        assert_eq!(
            std::fs::read_to_string(to.join("a/b/f.rs")).unwrap(),
            "fn main() {}"
        );
        let mode = std::fs::metadata(to.join("a/b/f.rs"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o750);
        assert_eq!(
            std::fs::read_link(to.join("link")).unwrap(),
            Path::new("a/b/f.rs")
        );
    }

    #[test]
    fn a_directory_volume_needs_nothing_mounted() {
        let t = tempfile::tempdir().unwrap();
        let v = attach(
            VolumeSettings {
                kind: VolumeKind::Directory,
                size_mb: 8,
            },
            &t.path().join("volume"),
            false,
        )
        .unwrap();
        assert_eq!(v.record["kind"], "directory");
        assert_eq!(
            image_path(Path::new("/s/runs/R/volume")),
            Path::new("/s/runs/R/volume.ext4")
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
