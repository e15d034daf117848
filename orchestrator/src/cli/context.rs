//! What every subcommand may need from the global flags: the repository and the state
//! directory, resolved only when asked (so `audit verify` never runs git, and `init` never
//! needs a state directory).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::exit::{ExitCode, Failure};

/// Errors resolving the global paths.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// Neither `--state-dir`, `ORCHESTRATE_STATE_DIR`, `XDG_STATE_HOME` nor `HOME` says where
    /// state lives.
    #[error("no state directory: pass --state-dir or set ORCHESTRATE_STATE_DIR")]
    NoStateDir,
    /// The current directory could not be read (deleted, or no permission).
    #[error("reading the current directory: {source}")]
    CurrentDir {
        /// Cause.
        source: std::io::Error,
    },
    /// `--repo` names something that is not a directory.
    #[error("repository {path} is not a directory")]
    RepoNotDir {
        /// The path given.
        path: PathBuf,
    },
}

impl Failure for ContextError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ContextError::NoStateDir | ContextError::RepoNotDir { .. } => ExitCode::Usage,
            ContextError::CurrentDir { .. } => ExitCode::Internal,
        }
    }
}

/// Global settings shared by every subcommand.
#[derive(Debug, Clone)]
pub struct Context {
    repo: Option<PathBuf>,
    state_dir: Option<PathBuf>,
}

impl Context {
    /// From the global flags (`--repo`, `--state-dir` / `ORCHESTRATE_STATE_DIR`).
    pub fn new(repo: Option<PathBuf>, state_dir: Option<PathBuf>) -> Self {
        Self { repo, state_dir }
    }

    /// The repository: `--repo`, else the git top level of the current directory, else the
    /// current directory.
    pub fn repo(&self) -> Result<PathBuf, ContextError> {
        if let Some(r) = &self.repo {
            if !r.is_dir() {
                return Err(ContextError::RepoNotDir { path: r.clone() });
            }
            return Ok(absolute(r));
        }
        let cwd = std::env::current_dir().map_err(|source| ContextError::CurrentDir { source })?;
        Ok(git_toplevel(&cwd).unwrap_or(cwd))
    }

    /// The state directory: `--state-dir` / `ORCHESTRATE_STATE_DIR`, else the default.
    pub fn state_dir(&self) -> Result<PathBuf, ContextError> {
        match &self.state_dir {
            Some(d) => Ok(absolute(d)),
            None => crate::state::default_state_dir().ok_or(ContextError::NoStateDir),
        }
    }
}

/// `p` made absolute against the working directory: roles, the gate and git run elsewhere, so
/// a relative `--repo` or `--state-dir` would name another place for them.
/// `..` is resolved through the file system (the sandbox refuses paths that contain it): the
/// path itself when it exists, else its parent.
fn absolute(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    if let (Some(parent), Some(name)) = (p.parent(), p.file_name()) {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(c) = parent.canonicalize() {
            return c.join(name);
        }
    }
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `git rev-parse --show-toplevel` in `dir`; `None` outside a work tree or without git.
fn git_toplevel(dir: &Path) -> Option<PathBuf> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-toplevel"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let top = text.trim_end_matches(['\n', '\r']);
    (!top.is_empty()).then(|| PathBuf::from(top))
}
