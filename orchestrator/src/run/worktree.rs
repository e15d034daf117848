//! Codegen's view of the repository and where the orchestrator reads what it changed.
//!
//! Contained (the mount layer live), codegen sees `volume/work` as an overlay: the lower layer is
//! the tip it starts from (`volume/lower`, materialised once per launch, never written), the
//! upper layer (`volume/upper`, its user's) receives every write, deletion (a whiteout) and new
//! file. The orchestrator reads only the upper layer, against the lower layer's commit. Without
//! the mount layer there is no overlay: codegen edits a full copy (`volume/work`) and the
//! orchestrator compares the whole tree.

use std::path::PathBuf;

use protocol::RoleName;

use super::engine::{Engine, EngineError};
use crate::git::{Candidate, Change};

/// What `volume/lower` holds: the commit, so a resumed run knows whether it still fits.
const LOWER_MARKER: &str = "lower.commit";

impl Engine {
    fn volume_dir(&self, name: &str) -> PathBuf {
        self.dir.volume().join(name)
    }

    /// Before the roles start: when codegen's tree is an overlay, makes `tip` its lower layer and
    /// gives it an empty upper layer — unless both are already there for `tip` (an interrupted
    /// run going on). An upper layer left over for another tip is set aside in `quarantine/`.
    pub(super) fn prepare_worktree(&mut self, tip: &str) -> Result<(), EngineError> {
        if !self.launcher.overlay(RoleName::Codegen) {
            self.lower = None;
            return Ok(());
        }
        let (lower, upper) = (self.volume_dir("lower"), self.volume_dir("upper"));
        let marker = self.dir.volume().join(LOWER_MARKER);
        let current = std::fs::read_to_string(&marker).unwrap_or_default();
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| EngineError::HandOver { path, source }
        };
        if current.trim() != tip || !upper.is_dir() {
            if upper.exists() && std::fs::read_dir(&upper).is_ok_and(|mut d| d.next().is_some()) {
                let q = self.dir.quarantine();
                std::fs::create_dir_all(&q).map_err(io(&q))?;
                let aside = q.join(format!("upper-stale-{}", current.trim()));
                std::fs::rename(&upper, &aside).map_err(io(&upper))?;
            }
            if lower.exists() {
                std::fs::remove_dir_all(&lower).map_err(io(&lower))?;
            }
            let _ = std::fs::remove_dir_all(&upper);
            self.repo.materialise(tip, &lower)?;
            std::fs::create_dir_all(&upper).map_err(io(&upper))?;
            if let Some(owner) = self.launcher.writer(RoleName::Codegen) {
                // Overlay copy-up keeps the lower file's owner: the writer must own it.
                chown_tree(&lower, owner).map_err(io(&lower))?;
                chown_tree(&upper, owner).map_err(io(&upper))?;
            }
            std::fs::write(&marker, tip).map_err(io(&marker))?;
        }
        self.lower = Some(tip.to_owned());
        Ok(())
    }

    /// The candidate tree codegen's changes make and those changes, against the commit they
    /// apply to (the lower layer's, or the base for a full copy).
    pub(super) fn codegen_changes(&self) -> Result<(String, Vec<Change>), EngineError> {
        Ok(match &self.lower {
            Some(lower) => {
                let upper = self.volume_dir("upper");
                self.repo
                    .candidate_changes(lower, &Candidate::Upper(&upper))?
            }
            None => {
                let work = self.volume_dir("work");
                self.repo
                    .candidate_changes(&self.base, &Candidate::FullTree(&work))?
            }
        })
    }

    /// The first `.git` (directory or file) codegen left anywhere in its work, relative to the
    /// tree: git metadata is the orchestrator's alone (a hook or a config there would run on a
    /// person's machine, a nested `.git` would turn a directory into a submodule). Git itself
    /// refuses such paths in an index, so without this check the run would fail on them, or in a
    /// full copy ignore them without a word.
    pub(super) fn git_metadata_written(&self) -> Option<String> {
        let root = self.uncommitted();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_name() == ".git" {
                    // Name what was written there (a hook, a config), not just the directory.
                    let found = first_file(&path).unwrap_or(path);
                    let rel = found.strip_prefix(&root).unwrap_or(&found);
                    return Some(rel.display().to_string());
                }
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path);
                }
            }
        }
        None
    }

    /// Where codegen's uncommitted work is on the host: the upper layer, or the full copy.
    pub(super) fn uncommitted(&self) -> PathBuf {
        if self.lower.is_some() {
            self.volume_dir("upper")
        } else {
            self.volume_dir("work")
        }
    }
}

/// The first file below `dir` (depth first), or `dir` itself when it is a file.
fn first_file(dir: &std::path::Path) -> Option<PathBuf> {
    if !std::fs::symlink_metadata(dir).ok()?.is_dir() {
        return Some(dir.to_path_buf());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries.into_iter().find_map(|p| first_file(&p))
}

/// Gives `dir` and everything below it to `owner` (the role that edits it runs as that user).
pub(super) fn chown_tree(dir: &std::path::Path, owner: (u32, u32)) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(owner.0), Some(owner.1))?;
    if std::fs::symlink_metadata(dir)?.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            chown_tree(&entry?.path(), owner)?;
        }
    }
    Ok(())
}
