//! Repository operations for a run, done with git's plumbing through the `git` CLI.
//!
//! Why the CLI and not `git2`: the commands used here (`read-tree`, `hash-object`,
//! `update-index --index-info`, `write-tree`, `commit-tree`, `update-ref` with the old value) are
//! git's stable plumbing interface; they behave exactly like the engineer's own git (object
//! format, `safe.directory`, alternates), add no C library to the build, and every write goes
//! through a *temporary index* (`GIT_INDEX_FILE`), so the engineer's working tree and index are
//! never touched. `update-ref <ref> <new> <old>` makes each branch move a compare-and-swap.
//!
//! Invariants: the agent never touches `.git`; only this module writes the agent branch, and only
//! with a commit whose parent is the branch's previous head (or the base commit).

mod change;
mod cmd;
mod sys;
mod upper;

pub use change::{Change, ChangeKind};
pub use upper::{scan_upper, UpperEntry, UpperKind};

use std::path::{Path, PathBuf};

use cmd::Git;

/// The all-zero object id: `update-ref` with it as the old value means "must not exist yet".
const ZERO_OID: &str = "0000000000000000000000000000000000000000";

/// Errors from repository operations.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The `git` binary could not be started.
    #[error("running git {args} in {dir}: {source}")]
    Spawn {
        /// The arguments.
        args: String,
        /// Where.
        dir: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A git command exited non-zero.
    #[error("git {args} in {dir} failed ({status}): {stderr}")]
    Failed {
        /// The arguments.
        args: String,
        /// Where.
        dir: PathBuf,
        /// Exit status.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// Git printed something that is not the expected output (an object id, a list).
    #[error("git {args} printed unexpected output: {output:?}")]
    Output {
        /// The arguments.
        args: String,
        /// What it printed.
        output: String,
    },
    /// Reading the sandbox volume's upper layer failed.
    #[error("reading upper layer entry {path}: {source}")]
    ReadUpper {
        /// The entry.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A path in the upper layer is not valid UTF-8 (git paths here must be).
    #[error("upper layer path {path} is not UTF-8")]
    NonUtf8Path {
        /// The entry.
        path: PathBuf,
    },
    /// A temporary index or directory could not be created.
    #[error("creating temporary {what}: {source}")]
    Temp {
        /// What.
        what: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// Creating the directory a tree is materialised into failed.
    #[error("creating {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// A repository the orchestrator commits agent work into.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
}

/// A commit built from a candidate tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The new commit id.
    pub commit: String,
    /// Its tree id.
    pub tree: String,
    /// The changes against the run's base commit (cumulative over iterations).
    pub changes: Vec<Change>,
}

/// Where a candidate tree comes from.
#[derive(Debug, Clone)]
pub enum Candidate<'a> {
    /// An overlay upper layer over the base tree: whiteouts (char devices 0/0) are deletions,
    /// an opaque directory replaces the lower one.
    Upper(&'a Path),
    /// A full copy of the tree (the weaker mode without an overlay): every file counts, even one
    /// a `.gitignore` would hide.
    FullTree(&'a Path),
}

impl Repo {
    /// Opens the repository containing `path` (its top level).
    pub fn discover(path: &Path) -> Result<Self, GitError> {
        let git = Git::new(path);
        let top = git.line(&["rev-parse", "--show-toplevel"])?;
        Ok(Self {
            root: PathBuf::from(top),
        })
    }

    /// The repository's top level.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn git(&self) -> Git {
        Git::new(&self.root)
    }

    /// The commit `HEAD` points at: the run's base.
    pub fn head_commit(&self) -> Result<String, GitError> {
        self.git().oid(&["rev-parse", "--verify", "HEAD^{commit}"])
    }

    /// The commit `refname` points at, if it exists.
    pub fn resolve(&self, refname: &str) -> Result<Option<String>, GitError> {
        let spec = format!("{refname}^{{commit}}");
        match self.git().oid(&["rev-parse", "--verify", "--quiet", &spec]) {
            Ok(oid) => Ok(Some(oid)),
            Err(GitError::Failed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The changes a candidate tree makes against `base`, without writing a commit (the
    /// guardrails run on these before anything is committed). Blobs are written to the object
    /// store; unreferenced ones are garbage git collects later.
    pub fn candidate_changes(
        &self,
        base: &str,
        candidate: &Candidate<'_>,
    ) -> Result<(String, Vec<Change>), GitError> {
        let index = change::TempIndex::from_tree(&self.git(), base)?;
        match candidate {
            Candidate::Upper(dir) => {
                let entries = scan_upper(dir)?;
                index.apply_upper(base, dir, &entries)?;
            }
            Candidate::FullTree(dir) => index.add_all(dir)?,
        }
        let tree = index.write_tree()?;
        let changes = change::diff_trees(&self.git(), base, &tree)?;
        Ok((tree, changes))
    }

    /// Commits `tree` on `branch` with `parent` as its parent, moving the branch from
    /// `expected_old` (None: the branch must not exist yet). The message names the plan and the
    /// iteration, which the gate checks on every commit.
    pub fn commit_tree(
        &self,
        tree: &str,
        parent: &str,
        branch: &str,
        message: &str,
        expected_old: Option<&str>,
    ) -> Result<String, GitError> {
        let git = self.git().with_identity();
        let commit = git.oid_stdin(
            &["commit-tree", tree, "-p", parent, "-F", "-"],
            message.as_bytes(),
        )?;
        let refname = format!("refs/heads/{branch}");
        let old = expected_old.unwrap_or(ZERO_OID);
        git.run(&[
            "update-ref",
            "-m",
            "orchestrate: agent commit",
            &refname,
            &commit,
            old,
        ])?;
        Ok(commit)
    }

    /// Writes the files of `commit`'s tree into `dir` (created if needed), for the test-runner's
    /// read-only view. Uses a temporary index, so the repository's own index is untouched.
    pub fn materialise(&self, commit: &str, dir: &Path) -> Result<(), GitError> {
        std::fs::create_dir_all(dir).map_err(|source| GitError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let index = change::TempIndex::from_tree(&self.git(), commit)?;
        index.checkout_into(dir)
    }

    /// The unified diff between two commits (the snapshot persisted on a stop and reviewed).
    pub fn diff(&self, from: &str, to: &str) -> Result<String, GitError> {
        self.git()
            .text(&["diff", "--no-color", "--no-ext-diff", "--binary", from, to])
    }

    /// Commit ids on `branch` from `base` (exclusive), oldest first, with their messages.
    pub fn log(&self, base: &str, branch: &str) -> Result<Vec<(String, String)>, GitError> {
        let range = format!("{base}..refs/heads/{branch}");
        let out = self
            .git()
            .text(&["log", "--reverse", "--format=%H%x00%B%x1e", &range])?;
        Ok(out
            .split('\u{1e}')
            .filter_map(|rec| {
                let rec = rec.trim_start_matches('\n');
                let (id, msg) = rec.split_once('\0')?;
                Some((id.to_string(), msg.trim().to_string()))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
