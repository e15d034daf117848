//! Building a candidate tree in a temporary index, and the changes it makes against a base.

use std::path::{Path, PathBuf};

use super::cmd::Git;
use super::upper::{UpperEntry, UpperKind};
use super::{GitError, ZERO_OID};

/// One path changed against the base commit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// Path relative to the repository root.
    pub path: String,
    /// How.
    pub kind: ChangeKind,
}

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// New path.
    Added,
    /// Content, mode or type changed.
    Modified,
    /// Removed.
    Deleted,
}

/// An index file in a private temporary directory, removed on drop.
pub(crate) struct TempIndex {
    _dir: tempfile::TempDir,
    git: Git,
}

impl TempIndex {
    /// A temporary index holding `treeish`'s tree.
    pub(crate) fn from_tree(repo: &Git, treeish: &str) -> Result<Self, GitError> {
        let dir = tempfile::Builder::new()
            .prefix("orchestrate-index-")
            .tempdir()
            .map_err(|source| GitError::Temp {
                what: "index directory",
                source,
            })?;
        let path: PathBuf = dir.path().join("index");
        let git = repo.with_index(&path);
        git.run(&["read-tree", treeish])?;
        Ok(Self { _dir: dir, git })
    }

    /// Applies an overlay upper layer (entries from [`super::scan_upper`]) on top of the tree.
    pub(crate) fn apply_upper(
        &self,
        _base: &str,
        root: &Path,
        entries: &[UpperEntry],
    ) -> Result<(), GitError> {
        // Deletions first: whiteouts remove the path and everything below it; an opaque
        // directory removes everything below it; a file where a directory was removes the
        // directory's entries (its new children are added afterwards).
        let mut prefixes: Vec<String> = Vec::new();
        for e in entries {
            match e.kind {
                UpperKind::Whiteout | UpperKind::File { .. } | UpperKind::Symlink => {
                    prefixes.push(format!("{}/", e.path));
                }
                UpperKind::OpaqueDir => prefixes.push(format!("{}/", e.path)),
                UpperKind::Special => {}
            }
        }
        let deleted_exact: Vec<&str> = entries
            .iter()
            .filter(|e| e.kind == UpperKind::Whiteout)
            .map(|e| e.path.as_str())
            .collect();
        let listed = self.git.bytes_stdin(&["ls-files", "-z"], None)?;
        let mut info = String::new();
        for p in listed.split(|b| *b == 0).filter(|p| !p.is_empty()) {
            let p = String::from_utf8_lossy(p);
            let gone = deleted_exact.contains(&p.as_ref())
                || prefixes.iter().any(|pre| p.starts_with(pre.as_str()));
            if gone {
                info.push_str(&format!("0 {ZERO_OID}\t{p}\n"));
            }
        }

        let files: Vec<&UpperEntry> = entries
            .iter()
            .filter(|e| matches!(e.kind, UpperKind::File { .. }))
            .collect();
        if !files.is_empty() {
            let mut paths = String::new();
            for f in &files {
                paths.push_str(&root.join(&f.path).to_string_lossy());
                paths.push('\n');
            }
            let out = self.git.run_stdin(
                &["hash-object", "-w", "--no-filters", "--stdin-paths"],
                paths.as_bytes(),
            )?;
            let out = String::from_utf8_lossy(&out).into_owned();
            let oids: Vec<&str> = out.lines().collect();
            if oids.len() != files.len() {
                return Err(GitError::Output {
                    args: "hash-object --stdin-paths".to_string(),
                    output: out.clone(),
                });
            }
            for (f, oid) in files.iter().zip(oids) {
                let mode = match f.kind {
                    UpperKind::File { executable: true } => "100755",
                    _ => "100644",
                };
                info.push_str(&format!("{mode} {oid}\t{}\n", f.path));
            }
        }
        for link in entries.iter().filter(|e| e.kind == UpperKind::Symlink) {
            let full = root.join(&link.path);
            let target = std::fs::read_link(&full).map_err(|source| GitError::ReadUpper {
                path: full.clone(),
                source,
            })?;
            let oid = self.git.oid_stdin(
                &["hash-object", "-w", "--stdin"],
                target.as_os_str().as_encoded_bytes(),
            )?;
            info.push_str(&format!("120000 {oid}\t{}\n", link.path));
        }
        if !info.is_empty() {
            self.git.run_stdin(
                &["update-index", "--replace", "--index-info"],
                info.as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Replaces the index content with every file of `dir` (ignored files included: what the
    /// agent wrote counts whether or not a `.gitignore` would hide it).
    pub(crate) fn add_all(&self, dir: &Path) -> Result<(), GitError> {
        self.git
            .with_work_tree(dir)
            .run(&["add", "-A", "-f", "--", "."])
    }

    pub(crate) fn write_tree(&self) -> Result<String, GitError> {
        self.git.oid(&["write-tree"])
    }

    /// Writes every indexed file below `dir`.
    pub(crate) fn checkout_into(&self, dir: &Path) -> Result<(), GitError> {
        let mut prefix = dir.to_string_lossy().into_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let arg = format!("--prefix={prefix}");
        self.git.run(&["checkout-index", "-a", "-f", &arg])
    }
}

/// The changes from tree-ish `from` to tree-ish `to`, renames reported as delete + add.
pub(crate) fn diff_trees(git: &Git, from: &str, to: &str) -> Result<Vec<Change>, GitError> {
    let out = git.bytes_stdin(
        &[
            "diff-tree",
            "-r",
            "-z",
            "--no-renames",
            "--name-status",
            from,
            to,
        ],
        None,
    )?;
    let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
    let mut changes = Vec::new();
    while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
        let kind = match status.first() {
            Some(b'A') => ChangeKind::Added,
            Some(b'D') => ChangeKind::Deleted,
            _ => ChangeKind::Modified,
        };
        changes.push(Change {
            path: String::from_utf8_lossy(path).into_owned(),
            kind,
        });
    }
    Ok(changes)
}
