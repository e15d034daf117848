//! Directories with an exact owner and mode: create when absent, correct when wrong, keep when
//! right. A symlink where a directory should be is refused rather than followed.

use std::fs::{self, DirBuilder, Permissions};
use std::os::unix::fs::{chown, DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::apply::Change;
use super::SetupError;

/// Permission bits setup compares (type bits excluded).
const MODE_MASK: u32 = 0o7777;

/// Makes `path` a directory owned by `uid:gid` with `mode`, and says what it had to do.
pub fn ensure_dir(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<Change, SetupError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_dir() {
                return Err(SetupError::NotADirectory(path.to_path_buf()));
            }
            let mut fixes = Vec::new();
            if (meta.uid(), meta.gid()) != (uid, gid) {
                set_owner(path, uid, gid)?;
                fixes.push(format!(
                    "owner {}:{} -> {uid}:{gid}",
                    meta.uid(),
                    meta.gid()
                ));
            }
            let have = meta.mode() & MODE_MASK;
            if have != mode {
                set_mode(path, mode)?;
                fixes.push(format!("mode {have:04o} -> {mode:04o}"));
            }
            if fixes.is_empty() {
                Ok(Change::Unchanged)
            } else {
                Ok(Change::Fixed(fixes.join(", ")))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                // Only the state dir's own ancestors can be missing; they get ordinary 0755.
                fs::create_dir_all(parent).map_err(|source| SetupError::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            // Created 0700 root-owned first, so nobody sees it with a looser mode, then
            // handed over and opened up to `mode`.
            DirBuilder::new()
                .mode(0o700)
                .create(path)
                .map_err(|source| SetupError::CreateDir {
                    path: path.to_path_buf(),
                    source,
                })?;
            set_owner(path, uid, gid)?;
            set_mode(path, mode)?;
            Ok(Change::Created)
        }
        Err(source) => Err(SetupError::Metadata {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Refuses a state directory below a directory others could rename it out of: every existing
/// ancestor must belong to root and be writable by root alone, or carry the sticky bit (as
/// `/tmp` does, where only the owner of an entry may rename it).
pub fn check_ancestors(state: &Path) -> Result<(), SetupError> {
    for dir in state.ancestors().skip(1) {
        let meta = match fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(SetupError::Metadata {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        };
        let mode = meta.mode() & MODE_MASK;
        let sticky = mode & 0o1000 != 0;
        if meta.uid() != 0 || (mode & 0o022 != 0 && !sticky) {
            return Err(SetupError::UnsafeAncestor {
                path: dir.to_path_buf(),
                uid: meta.uid(),
                mode,
            });
        }
    }
    Ok(())
}

/// Sets `path`'s mode when the file exists (owner kept); `Absent` when it does not. A symlink
/// is refused, never followed.
pub fn restrict_if_present(path: &Path, mode: u32) -> Result<Change, SetupError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            Err(SetupError::NotARegularFile(path.to_path_buf()))
        }
        Ok(meta) => {
            let have = meta.mode() & MODE_MASK;
            if have == mode {
                return Ok(Change::Unchanged);
            }
            set_mode(path, mode)?;
            Ok(Change::Fixed(format!("mode {have:04o} -> {mode:04o}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Change::Absent),
        Err(source) => Err(SetupError::Metadata {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn set_owner(path: &Path, uid: u32, gid: u32) -> Result<(), SetupError> {
    chown(path, Some(uid), Some(gid)).map_err(|source| SetupError::Chown {
        path: path.to_path_buf(),
        source,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), SetupError> {
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|source| SetupError::Chmod {
        path: path.to_path_buf(),
        source,
    })
}
