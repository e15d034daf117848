//! Running `git` for the gate: read facts about a commit range, move a ref with compare-and-swap.
//!
//! The gate shells out to the `git` binary instead of linking libgit2 so that the kernel's file
//! permissions on the integration repository apply to exactly the process that writes it, and so
//! that ref updates go through git's own lock-file protocol (`refs/heads/x.lock` + rename), which
//! is what the ownership of `refs/heads/` is designed around (see `integration.rs`).
//!
//! Every invocation runs with an empty environment (no `GIT_DIR`, `GIT_CONFIG_*` or
//! `GIT_EXEC_PATH` from the caller), ignores system and global config, trusts exactly the one
//! repository it was given (`safe.directory`), and points `core.hooksPath` at `/dev/null` so no
//! hook (notably `reference-transaction`, which `update-ref` runs) executes as the gate's user.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::{Deserialize, Serialize};

/// Errors from running git.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The git binary could not be started.
    #[error("starting git {args:?} in {repo}: {source}")]
    Spawn {
        /// Repository.
        repo: PathBuf,
        /// Arguments.
        args: Vec<String>,
        /// Cause.
        source: std::io::Error,
    },
    /// git exited with a failure status.
    #[error("git {args:?} in {repo} failed ({status}): {stderr}")]
    Failed {
        /// Repository.
        repo: PathBuf,
        /// Arguments.
        args: Vec<String>,
        /// Exit status as text.
        status: String,
        /// git's stderr (trimmed).
        stderr: String,
    },
    /// git printed something the gate could not parse.
    #[error("unexpected output from git {args:?} in {repo}: {output:?}")]
    Parse {
        /// Repository.
        repo: PathBuf,
        /// Arguments.
        args: Vec<String>,
        /// The offending output.
        output: String,
    },
}

/// One file changed between two commits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChangedFile {
    /// Path from the repository root.
    pub path: String,
    /// git's status letter: A (added), M (modified), D (deleted), T (type changed).
    pub status: String,
    /// Mode before (`000000` when added).
    pub old_mode: String,
    /// Mode after (`000000` when deleted).
    pub new_mode: String,
    /// Blob id after the change (all zeros when deleted).
    pub new_blob: String,
    /// git treats the content as binary (numstat prints `-`).
    pub binary: bool,
    /// Lines added (0 for binary files).
    pub added: u64,
    /// Lines deleted (0 for binary files).
    pub deleted: u64,
}

/// One commit in a range, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// Full object id.
    pub id: String,
    /// Full message.
    pub message: String,
}

/// A git repository the gate reads or writes.
#[derive(Debug, Clone)]
pub struct Git {
    repo: PathBuf,
}

/// PATH for git and the helpers it execs; fixed so the caller's PATH cannot substitute a binary.
const GIT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

impl Git {
    /// A handle on the repository at `repo` (bare or not).
    pub fn new(repo: impl Into<PathBuf>) -> Self {
        Self { repo: repo.into() }
    }

    /// The repository path.
    pub fn path(&self) -> &Path {
        &self.repo
    }

    fn command<I, S>(&self, args: I) -> (Command, Vec<String>)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<String> = args
            .into_iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        let mut cmd = Command::new("git");
        cmd.env_clear()
            .env("PATH", GIT_PATH)
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_COMMITTER_NAME", "orchestrate-gate")
            .env("GIT_COMMITTER_EMAIL", "gate@orchestrate.invalid")
            .env("GIT_AUTHOR_NAME", "orchestrate-gate")
            .env("GIT_AUTHOR_EMAIL", "gate@orchestrate.invalid")
            .arg("-c")
            .arg(format!("safe.directory={}", self.repo.display()))
            .arg("-c")
            .arg("core.hooksPath=/dev/null")
            .arg("-C")
            .arg(&self.repo)
            .args(&args)
            .stdin(Stdio::null());
        (cmd, args)
    }

    fn output(&self, args: &[&str]) -> Result<(Output, Vec<String>), GitError> {
        let (mut cmd, args) = self.command(args);
        let out = cmd.output().map_err(|source| GitError::Spawn {
            repo: self.repo.clone(),
            args: args.clone(),
            source,
        })?;
        Ok((out, args))
    }

    /// Runs git and returns stdout; a non-zero exit is an error carrying stderr.
    pub fn run(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        let (out, args) = self.output(args)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(self.failed(args, &out))
        }
    }

    fn failed(&self, args: Vec<String>, out: &Output) -> GitError {
        GitError::Failed {
            repo: self.repo.clone(),
            args,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }
    }

    fn parse_err(&self, args: &[&str], output: &[u8]) -> GitError {
        GitError::Parse {
            repo: self.repo.clone(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            output: String::from_utf8_lossy(output).into_owned(),
        }
    }

    /// Resolves `rev` to a commit id; `None` when it does not exist.
    pub fn resolve_commit(&self, rev: &str) -> Result<Option<String>, GitError> {
        let spec = format!("{rev}^{{commit}}");
        let args = [
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ];
        let (out, argv) = self.output(&args)?;
        match out.status.code() {
            Some(0) => {
                let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if is_object_id(&id) {
                    Ok(Some(id))
                } else {
                    Err(self.parse_err(&args, &out.stdout))
                }
            }
            Some(1) => Ok(None),
            _ => Err(self.failed(argv, &out)),
        }
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors (the fast-forward test).
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        let args = ["merge-base", "--is-ancestor", ancestor, descendant];
        let (out, argv) = self.output(&args)?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.failed(argv, &out)),
        }
    }

    /// Files changed from `from` to `to` (no rename detection: a rename is a delete and an add,
    /// so both paths are checked against protected paths and targets).
    pub fn changed_files(&self, from: &str, to: &str) -> Result<Vec<ChangedFile>, GitError> {
        let raw_args = [
            "diff",
            "--raw",
            "-z",
            "--no-renames",
            "--no-abbrev",
            from,
            to,
        ];
        let raw = self.run(&raw_args)?;
        let mut files = parse_raw(&raw).ok_or_else(|| self.parse_err(&raw_args, &raw))?;
        let num_args = ["diff", "--numstat", "-z", "--no-renames", from, to];
        let num = self.run(&num_args)?;
        let stats = parse_numstat(&num).ok_or_else(|| self.parse_err(&num_args, &num))?;
        for f in &mut files {
            if let Some((added, deleted)) = stats.iter().find(|s| s.0 == f.path).map(|s| s.1) {
                match (added, deleted) {
                    (Some(a), Some(d)) => {
                        f.added = a;
                        f.deleted = d;
                    }
                    _ => f.binary = true,
                }
            }
        }
        files.sort();
        Ok(files)
    }

    /// Commits reachable from `to` but not from `from`, oldest first.
    pub fn commits(&self, from: &str, to: &str) -> Result<Vec<CommitInfo>, GitError> {
        let range = format!("{from}..{to}");
        let args = ["log", "-z", "--reverse", "--format=%H%n%B", &range];
        let out = self.run(&args)?;
        let mut commits = Vec::new();
        for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let text = String::from_utf8_lossy(record);
            let (id, message) = text
                .split_once('\n')
                .ok_or_else(|| self.parse_err(&args, record))?;
            if !is_object_id(id) {
                return Err(self.parse_err(&args, record));
            }
            commits.push(CommitInfo {
                id: id.to_owned(),
                message: message.trim_end().to_owned(),
            });
        }
        Ok(commits)
    }

    /// Whether the change from `from` to `to` is whitespace only (formatting).
    pub fn whitespace_only(&self, from: &str, to: &str) -> Result<bool, GitError> {
        let args = [
            "diff",
            "--quiet",
            "--ignore-all-space",
            "--ignore-blank-lines",
            from,
            to,
        ];
        let (out, argv) = self.output(&args)?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.failed(argv, &out)),
        }
    }

    /// Moves `refname` from `old` to `new` atomically (git's compare-and-swap under the ref's
    /// lock). `old = None` requires that the ref does not exist yet. Never forces: if the ref moved
    /// in between, git refuses.
    pub fn update_ref(
        &self,
        refname: &str,
        new: &str,
        old: Option<&str>,
        reason: &str,
    ) -> Result<(), GitError> {
        let zero = "0".repeat(new.len());
        let old = old.unwrap_or(&zero);
        self.run(&["update-ref", "-m", reason, "--no-deref", refname, new, old])
            .map(|_| ())
    }

    /// Fetches `src` from a bundle file into `dst` in this repository. The bundle is a plain data
    /// file: unlike fetching from another repository, nothing of the sender's config or hooks is
    /// read, and index-pack re-hashes every object it receives.
    pub fn fetch_bundle(&self, bundle: &Path, src: &str, dst: &str) -> Result<(), GitError> {
        let bundle = bundle.to_string_lossy().into_owned();
        let spec = format!("+{src}:{dst}");
        self.run(&[
            "fetch",
            "--no-tags",
            "--no-write-fetch-head",
            "--quiet",
            &bundle,
            &spec,
        ])
        .map(|_| ())
    }
}

/// 40 (SHA-1) or 64 (SHA-256) lower-case hex digits.
pub fn is_object_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses `git diff --raw -z --no-abbrev` output:
/// `:<old mode> <new mode> <old blob> <new blob> <status>\0<path>\0`.
fn parse_raw(out: &[u8]) -> Option<Vec<ChangedFile>> {
    let mut parts = out.split(|b| *b == 0);
    let mut files = Vec::new();
    while let Some(meta) = parts.next() {
        if meta.is_empty() {
            continue;
        }
        let meta = std::str::from_utf8(meta).ok()?;
        let fields: Vec<&str> = meta.strip_prefix(':')?.split(' ').collect();
        let [old_mode, new_mode, _old_blob, new_blob, status] = fields.as_slice() else {
            return None;
        };
        let path = String::from_utf8_lossy(parts.next()?).into_owned();
        files.push(ChangedFile {
            path,
            status: (*status).to_owned(),
            old_mode: (*old_mode).to_owned(),
            new_mode: (*new_mode).to_owned(),
            new_blob: (*new_blob).to_owned(),
            binary: false,
            added: 0,
            deleted: 0,
        });
    }
    Some(files)
}

type NumStat = (String, (Option<u64>, Option<u64>));

/// Parses `git diff --numstat -z`: `<added>\t<deleted>\t<path>\0`, `-` for binary.
fn parse_numstat(out: &[u8]) -> Option<Vec<NumStat>> {
    let mut stats = Vec::new();
    for rec in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let text = String::from_utf8_lossy(rec);
        let mut it = text.splitn(3, '\t');
        let added = it.next()?;
        let deleted = it.next()?;
        let path = it.next()?.to_owned();
        stats.push((path, (added.parse().ok(), deleted.parse().ok())));
    }
    Some(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_output_is_parsed_per_file() {
        let out = b":100644 100644 aaaa bbbb M\0src/lib.rs\0:000000 100755 0000 cccc A\0run.sh\0";
        let files = parse_raw(out).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "src/lib.rs");
        assert_eq!(files[0].status, "M");
        assert_eq!(files[1].new_mode, "100755");
    }

    #[test]
    fn numstat_marks_binary_with_none() {
        let stats = parse_numstat(b"3\t1\ta.rs\0-\t-\tlogo.png\0").unwrap();
        assert_eq!(stats[0], ("a.rs".to_owned(), (Some(3), Some(1))));
        assert_eq!(stats[1], ("logo.png".to_owned(), (None, None)));
    }

    #[test]
    fn object_ids_are_full_lowercase_hex() {
        assert!(is_object_id(&"a".repeat(40)));
        assert!(!is_object_id("HEAD"));
        assert!(!is_object_id(&"A".repeat(40)));
    }
}
