//! The run's sandbox volume on macOS: a size-capped APFS sparse image (hdiutil), mounted with
//! owners honoured (`-owners on`: without it every file on an image appears to belong to
//! whoever looks, which would erase the per-role users) and handed to the role user.
//!
//! There is no EXT4_IOC_SHUTDOWN: the kill switch is a forced detach, which revokes the open
//! files on the volume (later writes through them fail).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Cmd, MacError};

/// Largest image accepted (1 TiB), as on Linux.
pub const MAX_SIZE_MB: u64 = 1 << 20;

const HDIUTIL: &str = "/usr/bin/hdiutil";

/// The commands of one volume's lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumePlan {
    /// The image file (hdiutil insists on the `.sparseimage` extension).
    pub image: PathBuf,
    /// Make the image.
    pub create: Vec<Cmd>,
    /// Mount it and give its root to the role user.
    pub attach: Vec<Cmd>,
    /// Kill switch and quarantine: force-detach (the image is kept).
    pub kill: Vec<Cmd>,
    /// Rollback: force-detach and delete the image.
    pub destroy: Vec<Cmd>,
}

fn text(path: &Path) -> Result<&str, MacError> {
    match path.to_str() {
        Some(t) if path.is_absolute() && !t.contains(['\0', '\n', '\r']) => Ok(t),
        _ => Err(MacError::BadPath(path.to_path_buf())),
    }
}

/// The volume plan: `size_mb` MiB, APFS, named `name`, mounted at `mountpoint`, root owned by
/// `owner` (uid, gid) with mode 0755.
pub fn volume_plan(
    image: &Path,
    mountpoint: &Path,
    name: &str,
    size_mb: u64,
    owner: (u32, u32),
) -> Result<VolumePlan, MacError> {
    if size_mb == 0 || size_mb > MAX_SIZE_MB {
        return Err(MacError::Size(size_mb));
    }
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !name_ok {
        return Err(MacError::VolumeName(name.to_owned()));
    }
    let image = if image.extension().is_some_and(|e| e == "sparseimage") {
        image.to_path_buf()
    } else {
        let mut s = image.as_os_str().to_owned();
        s.push(".sparseimage");
        PathBuf::from(s)
    };
    let img = text(&image)?.to_owned();
    let mnt = text(mountpoint)?;
    let size = format!("{size_mb}m");
    let owner_text = format!("{}:{}", owner.0, owner.1);
    let detach = Cmd::new(HDIUTIL, &["detach", "-force", mnt]);
    Ok(VolumePlan {
        create: vec![Cmd::new(
            HDIUTIL,
            &[
                "create", "-quiet", "-size", &size, "-fs", "APFS", "-type", "SPARSE", "-volname",
                name, &img,
            ],
        )],
        attach: vec![
            Cmd::new(
                HDIUTIL,
                &[
                    "attach",
                    "-quiet",
                    "-nobrowse",
                    "-noautoopen",
                    "-owners",
                    "on",
                    "-mountpoint",
                    mnt,
                    &img,
                ],
            ),
            Cmd::new("/usr/sbin/chown", &[&owner_text, mnt]),
            Cmd::new("/bin/chmod", &["0755", mnt]),
        ],
        kill: vec![detach.clone()],
        destroy: vec![detach, Cmd::new("/bin/rm", &["-f", &img])],
        image,
    })
}
