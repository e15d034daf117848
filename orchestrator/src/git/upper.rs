//! Reading an overlayfs upper layer: what the agent wrote, deleted and replaced.
//!
//! overlayfs records a deletion as a *whiteout*, a character device with device number 0/0, and
//! a directory that replaces (rather than merges with) the lower one as an *opaque* directory,
//! marked with the `trusted.overlay.opaque` (or, on user-xattr mounts, `user.overlay.opaque`)
//! extended attribute set to `y`.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::GitError;

/// One entry of the upper layer, by path relative to the layer's root (`/`-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpperEntry {
    /// Path relative to the root of the layer.
    pub path: String,
    /// What the entry is.
    pub kind: UpperKind,
}

/// The kinds of upper-layer entries that change the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpperKind {
    /// A regular file (written or replaced); `executable` when any x bit is set.
    File {
        /// Any execute bit set.
        executable: bool,
    },
    /// A symbolic link.
    Symlink,
    /// A whiteout: the path (file or whole directory) is deleted.
    Whiteout,
    /// An opaque directory: everything the lower layer had below it is gone.
    OpaqueDir,
    /// A fifo, socket or device other than a whiteout: cannot be committed, reported so the
    /// guardrails can refuse it.
    Special,
}

/// Lists the upper layer at `root`, parents before children, sorted by path.
pub fn scan_upper(root: &Path) -> Result<Vec<UpperEntry>, GitError> {
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<UpperEntry>) -> Result<(), GitError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GitError::ReadUpper { path, source }
    };
    let entries = std::fs::read_dir(dir).map_err(read_err(dir))?;
    for entry in entries {
        let entry = entry.map_err(read_err(dir))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(read_err(&path))?;
        let rel = relative(root, &path)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            if super::sys::is_opaque_dir(&path) {
                out.push(UpperEntry {
                    path: rel.clone(),
                    kind: UpperKind::OpaqueDir,
                });
            }
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let executable = meta.permissions().mode() & 0o111 != 0;
            out.push(UpperEntry {
                path: rel,
                kind: UpperKind::File { executable },
            });
        } else if ft.is_symlink() {
            out.push(UpperEntry {
                path: rel,
                kind: UpperKind::Symlink,
            });
        } else if ft.is_char_device() && meta.rdev() == 0 {
            out.push(UpperEntry {
                path: rel,
                kind: UpperKind::Whiteout,
            });
        } else {
            out.push(UpperEntry {
                path: rel,
                kind: UpperKind::Special,
            });
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> Result<String, GitError> {
    let rel: PathBuf = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    rel.to_str()
        .map(str::to_string)
        .ok_or(GitError::NonUtf8Path { path: rel })
}
