//! Running one git command: arguments, environment, output checking.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::GitError;

/// Environment variables that would redirect git away from the repository we mean.
const SCRUB: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
];

/// A git invocation context: a directory, an optional temporary index and work tree.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    dir: PathBuf,
    index: Option<PathBuf>,
    work_tree: Option<PathBuf>,
    identity: bool,
}

impl Git {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            index: None,
            work_tree: None,
            identity: false,
        }
    }

    /// Uses `index` instead of the repository's own index.
    pub(crate) fn with_index(&self, index: &Path) -> Self {
        let mut g = self.clone();
        g.index = Some(index.to_path_buf());
        g
    }

    /// Uses `dir` as the work tree (for `add -A` and `checkout-index`).
    pub(crate) fn with_work_tree(&self, dir: &Path) -> Self {
        let mut g = self.clone();
        g.work_tree = Some(dir.to_path_buf());
        g
    }

    /// Commits carry the orchestrator's identity, never the engineer's configured one: the
    /// agent, not the engineer, wrote the change.
    pub(crate) fn with_identity(&self) -> Self {
        let mut g = self.clone();
        g.identity = true;
        g
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        c.current_dir(&self.dir);
        for v in SCRUB {
            c.env_remove(v);
        }
        if let Some(index) = &self.index {
            c.env("GIT_INDEX_FILE", index);
        }
        if let Some(wt) = &self.work_tree {
            c.arg("--work-tree").arg(wt);
        }
        if self.identity {
            for (k, v) in [
                ("GIT_AUTHOR_NAME", "orchestrate agent"),
                ("GIT_AUTHOR_EMAIL", "agent@orchestrate.invalid"),
                ("GIT_COMMITTER_NAME", "orchestrate"),
                ("GIT_COMMITTER_EMAIL", "orchestrate@orchestrate.invalid"),
            ] {
                c.env(k, v);
            }
        }
        // Hooks, pagers, prompts and fsmonitor never run: plumbing only, no surprises.
        c.args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
        ]);
        c.env("GIT_TERMINAL_PROMPT", "0");
        c.args(args);
        c
    }

    /// Runs and returns stdout as bytes.
    pub(crate) fn bytes_stdin(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Vec<u8>, GitError> {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let spawn_err = |source| GitError::Spawn {
            args: args.join(" "),
            dir: self.dir.clone(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        // A writer thread so a large stdin cannot deadlock against a full stdout pipe.
        let writer = match (stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => {
                let data = data.to_vec();
                Some(std::thread::spawn(move || pipe.write_all(&data)))
            }
            _ => None,
        };
        let out = child.wait_with_output().map_err(spawn_err)?;
        if let Some(w) = writer {
            // A write error shows up as git's own failure below; the join result carries it.
            let _ = w.join();
        }
        if !out.status.success() {
            return Err(GitError::Failed {
                args: args.join(" "),
                dir: self.dir.clone(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    pub(crate) fn run(&self, args: &[&str]) -> Result<(), GitError> {
        self.bytes_stdin(args, None).map(|_| ())
    }

    pub(crate) fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Result<Vec<u8>, GitError> {
        self.bytes_stdin(args, Some(stdin))
    }

    pub(crate) fn text(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.bytes_stdin(args, None)?;
        String::from_utf8(out).map_err(|e| GitError::Output {
            args: args.join(" "),
            output: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    pub(crate) fn line(&self, args: &[&str]) -> Result<String, GitError> {
        Ok(self.text(args)?.trim_end_matches('\n').to_string())
    }

    /// Runs a command that prints one object id.
    pub(crate) fn oid(&self, args: &[&str]) -> Result<String, GitError> {
        check_oid(args, self.line(args)?)
    }

    pub(crate) fn oid_stdin(&self, args: &[&str], stdin: &[u8]) -> Result<String, GitError> {
        let out = self.run_stdin(args, stdin)?;
        let s = String::from_utf8_lossy(&out).trim().to_string();
        check_oid(args, s)
    }
}

fn check_oid(args: &[&str], s: String) -> Result<String, GitError> {
    let ok = (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(s)
    } else {
        Err(GitError::Output {
            args: args.join(" "),
            output: s,
        })
    }
}
