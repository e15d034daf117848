//! The run's directory volume: the only writable place a role has.
//!
//! ```text
//! <vol>/lower            the run's base tree, materialised once per volume, owned by the writer role
//! <vol>/upper            the repo overlay's upper layer: this IS the run's diff
//! <vol>/work             overlayfs work dirs (same filesystem as upper): slot-N, one per
//!                        launch at a time (linux/workslot.rs)
//! <vol>/root             empty; each launch mounts its new root here, in its own mount namespace
//! <vol>/scratch/<role>   {scratch}: builds and caches
//! <vol>/home/<role>      the role's throwaway HOME (XDG/cargo/npm caches under it)
//! <vol>/tmp/<role>       backs the role's private /tmp
//! ```
//!
//! Ownership trap (DESIGN.md): an overlay over the engineer's repo lets a role read but not edit
//! (copy-up keeps the lower file's owner and mode checks use it). So the base commit is
//! materialised into `lower` with `git archive` and chowned to the writing role: the role can edit,
//! and it sees exactly the committed tree, never local junk. An idmapped lower would avoid the
//! copy, but a copy happens once per run and works on every kernel and filesystem.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::plan::{Identity, RepoView};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("creating {path:?}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("chown {path:?} to {uid}:{gid}: {source}")]
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
        source: io::Error,
    },
    #[error("chmod {path:?}: {source}")]
    Chmod { path: PathBuf, source: io::Error },
    #[error("running {what} for {repo:?}: {source}")]
    Spawn {
        what: &'static str,
        repo: PathBuf,
        source: io::Error,
    },
    #[error("{what} for {repo:?} failed: {status}")]
    Failed {
        what: &'static str,
        repo: PathBuf,
        status: std::process::ExitStatus,
    },
    #[error("walking {path:?}: {source}")]
    Walk { path: PathBuf, source: io::Error },
    #[error("role name {0:?} is not a plain file name")]
    BadRole(String),
}

/// Paths of one directory volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeLayout {
    pub root: PathBuf,
}

const BASE_MARKER: &str = "base-commit";

impl VolumeLayout {
    pub fn new(root: impl Into<PathBuf>) -> VolumeLayout {
        VolumeLayout { root: root.into() }
    }

    pub fn lower(&self) -> PathBuf {
        self.root.join("lower")
    }

    /// The overlay's upper layer: the run's diff.
    pub fn upper(&self) -> PathBuf {
        self.root.join("upper")
    }

    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }

    /// Where each launch mounts its new root (in its own mount namespace only).
    pub fn jail_root(&self) -> PathBuf {
        self.root.join("root")
    }

    pub fn scratch(&self, role: &str) -> PathBuf {
        self.root.join("scratch").join(role)
    }

    pub fn home(&self, role: &str) -> PathBuf {
        self.root.join("home").join(role)
    }

    pub fn tmp(&self, role: &str) -> PathBuf {
        self.root.join("tmp").join(role)
    }

    /// The repo overlay for a repo seen at `repo_path`.
    pub fn repo_view(&self, repo_path: &Path) -> RepoView {
        RepoView {
            path: repo_path.to_path_buf(),
            lower: self.lower(),
            upper: self.upper(),
            work: self.work(),
        }
    }

    /// Creates the shared part: `lower`/`upper`/`work` owned by `writer` (the role that edits the
    /// repo), everything else root-owned 0755. Idempotent.
    pub fn create(&self, writer: Option<Identity>) -> Result<(), VolumeError> {
        mkdir(&self.root, 0o755, None)?;
        for dir in [
            self.jail_root(),
            self.root.join("scratch"),
            self.root.join("home"),
            self.root.join("tmp"),
        ] {
            mkdir(&dir, 0o755, None)?;
        }
        mkdir(&self.lower(), 0o755, writer)?;
        mkdir(&self.upper(), 0o755, writer)?;
        mkdir(&self.work(), 0o700, None)
    }

    /// Creates `scratch`, `home` and `tmp` for `role`, private to its identity (mode 0700).
    pub fn create_role(&self, role: &str, id: Option<Identity>) -> Result<(), VolumeError> {
        if role.is_empty() || role.contains('/') || role == "." || role == ".." {
            return Err(VolumeError::BadRole(role.to_owned()));
        }
        for dir in [self.scratch(role), self.home(role), self.tmp(role)] {
            mkdir(&dir, 0o700, id)?;
        }
        Ok(())
    }

    /// The commit `lower` was materialised from, if it was.
    pub fn base_commit(&self) -> Option<String> {
        std::fs::read_to_string(self.root.join(BASE_MARKER))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Materialises `rev` of the git repository `repo` into `lower` (once per volume) and gives
    /// every file to `writer`.
    pub fn materialise_git(
        &self,
        repo: &Path,
        rev: &str,
        writer: Option<Identity>,
    ) -> Result<(), VolumeError> {
        if self.base_commit().is_some() {
            return Ok(());
        }
        let commit = git_output(
            repo,
            &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
        )?;
        let lower = self.lower();
        let mut archive = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["archive", "--format=tar", &commit])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|source| VolumeError::Spawn {
                what: "git archive",
                repo: repo.to_path_buf(),
                source,
            })?;
        let tar_in = archive.stdout.take().map_or_else(Stdio::null, Stdio::from);
        let tar = Command::new("tar")
            .arg("-x")
            .arg("--no-same-owner")
            .arg("-C")
            .arg(&lower)
            .stdin(tar_in)
            .status()
            .map_err(|source| VolumeError::Spawn {
                what: "tar -x",
                repo: repo.to_path_buf(),
                source,
            })?;
        let git = archive.wait().map_err(|source| VolumeError::Spawn {
            what: "git archive",
            repo: repo.to_path_buf(),
            source,
        })?;
        if !git.success() {
            return Err(VolumeError::Failed {
                what: "git archive",
                repo: repo.to_path_buf(),
                status: git,
            });
        }
        if !tar.success() {
            return Err(VolumeError::Failed {
                what: "tar -x",
                repo: repo.to_path_buf(),
                status: tar,
            });
        }
        if let Some(id) = writer {
            chown_tree(&lower, id)?;
        }
        std::fs::write(self.root.join(BASE_MARKER), format!("{commit}\n")).map_err(|source| {
            VolumeError::Create {
                path: self.root.join(BASE_MARKER),
                source,
            }
        })
    }
}

fn git_output(repo: &Path, args: &[&str]) -> Result<String, VolumeError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| VolumeError::Spawn {
            what: "git rev-parse",
            repo: repo.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(VolumeError::Failed {
            what: "git rev-parse",
            repo: repo.to_path_buf(),
            status: out.status,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn mkdir(path: &Path, mode: u32, owner: Option<Identity>) -> Result<(), VolumeError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|source| VolumeError::Create {
            path: path.to_path_buf(),
            source,
        })?;
    // The umask may have narrowed the mode; an existing dir keeps whatever it had. Only what
    // differs is changed: a chmod or chown of a settled volume would be an inode write at every
    // launch, for nothing. chmod follows a symlink (a `--volume` given as one), lchown does not:
    // compare likewise.
    let stat_err = |source| VolumeError::Create {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(stat_err)?;
    let target = if meta.is_symlink() {
        std::fs::metadata(path).map_err(stat_err)?
    } else {
        meta.clone()
    };
    if target.mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(
            |source| VolumeError::Chmod {
                path: path.to_path_buf(),
                source,
            },
        )?;
    }
    if let Some(id) = owner.filter(|id| (meta.uid(), meta.gid()) != (id.uid, id.gid)) {
        std::os::unix::fs::lchown(path, Some(id.uid), Some(id.gid)).map_err(|source| {
            VolumeError::Chown {
                path: path.to_path_buf(),
                uid: id.uid,
                gid: id.gid,
                source,
            }
        })?;
    }
    Ok(())
}

/// lchown every entry under `root` (never following symlinks out of the tree).
fn chown_tree(root: &Path, id: Identity) -> Result<(), VolumeError> {
    let chown = |p: &Path| {
        std::os::unix::fs::lchown(p, Some(id.uid), Some(id.gid)).map_err(|source| {
            VolumeError::Chown {
                path: p.to_path_buf(),
                uid: id.uid,
                gid: id.gid,
                source,
            }
        })
    };
    chown(root)?;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| VolumeError::Walk {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| VolumeError::Walk {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            chown(&path)?;
            let ft = entry.file_type().map_err(|source| VolumeError::Walk {
                path: path.clone(),
                source,
            })?;
            if ft.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths_are_fixed() {
        let v = VolumeLayout::new("/v");
        assert_eq!(
            v.repo_view(Path::new("/repo")),
            RepoView {
                path: PathBuf::from("/repo"),
                lower: PathBuf::from("/v/lower"),
                upper: PathBuf::from("/v/upper"),
                work: PathBuf::from("/v/work"),
            }
        );
        assert_eq!(v.scratch("codegen"), PathBuf::from("/v/scratch/codegen"));
        assert_eq!(v.home("codegen"), PathBuf::from("/v/home/codegen"));
        assert_eq!(v.tmp("codegen"), PathBuf::from("/v/tmp/codegen"));
        assert_eq!(v.jail_root(), PathBuf::from("/v/root"));
    }

    #[test]
    fn create_sets_modes_and_rejects_bad_roles() {
        let dir = tempfile::tempdir().unwrap();
        let v = VolumeLayout::new(dir.path().join("vol"));
        v.create(None).unwrap();
        v.create_role("codegen", None).unwrap();
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(v.home("codegen")), 0o700);
        assert_eq!(mode(v.work()), 0o700);
        assert_eq!(mode(v.upper()), 0o755);
        assert!(matches!(
            v.create_role("../x", None),
            Err(VolumeError::BadRole(_))
        ));
    }

    #[test]
    fn create_again_fixes_a_changed_mode_and_leaves_a_settled_one_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let v = VolumeLayout::new(dir.path().join("vol"));
        v.create(None).unwrap();
        v.create_role("codegen", None).unwrap();
        let ctime = |p: PathBuf| {
            let m = std::fs::metadata(p).unwrap();
            (m.ctime(), m.ctime_nsec())
        };
        let before = (ctime(v.upper()), ctime(v.home("codegen")));
        std::fs::set_permissions(v.work(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        v.create(None).unwrap();
        v.create_role("codegen", None).unwrap();
        let mode = std::fs::metadata(v.work()).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "a changed mode is put back");
        assert_eq!(
            (ctime(v.upper()), ctime(v.home("codegen"))),
            before,
            "a settled directory is not written again"
        );
    }
}
