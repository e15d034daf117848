//! The policy the gate applies: roles.yaml (protected paths, approvers) and the optional
//! `orchestrate-gate.yaml`, read from the integration repository's `main` — a ref only the gate
//! moves and only after a human approved — so no run can loosen the policy that judges it.
//! `<state>/roles.yaml` is the fallback when `main` has none (a repository not yet set up).

use std::path::{Path, PathBuf};

use protocol::load::{parse_yaml, LoadError};
use protocol::roles::{RolesError, RolesFile};

use crate::git::{Git, GitError};
use crate::inputs::GatePolicy;
use crate::integration::MAIN;

/// Errors loading the policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Reading from the integration repository failed.
    #[error("reading policy from {MAIN}: {0}")]
    Git(#[from] GitError),
    /// Neither `main:roles.yaml` nor `<state>/roles.yaml` exists.
    #[error("no roles.yaml on {MAIN} of the integration repository nor at {0}")]
    Missing(PathBuf),
    /// Reading the fallback file failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The YAML does not parse.
    #[error("{0}")]
    Parse(#[source] Box<LoadError>),
    /// roles.yaml parses but does not validate.
    #[error("roles.yaml: {0}")]
    Invalid(#[source] RolesError),
}

/// The policy in force, with where it came from.
#[derive(Debug, Clone)]
pub struct Policy {
    /// roles.yaml.
    pub roles: RolesFile,
    /// orchestrate-gate.yaml (defaults when absent).
    pub gate: GatePolicy,
    /// `main:roles.yaml@<commit>` or the fallback path.
    pub source: String,
}

/// `git show <ref>:<path>`, `None` when the path does not exist at that ref.
fn show(git: &Git, rev: &str, path: &str) -> Result<Option<String>, GitError> {
    let spec = format!("{rev}:{path}");
    match git.run(&["cat-file", "-e", &spec]) {
        Ok(_) => {}
        Err(GitError::Failed { .. }) => return Ok(None),
        Err(e) => return Err(e),
    }
    let bytes = git.run(&["cat-file", "blob", &spec])?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Loads the policy for the integration repository `git`, falling back to `state/roles.yaml`.
pub fn load(git: &Git, state: &Path) -> Result<Policy, PolicyError> {
    let main = git.resolve_commit(MAIN)?;
    let from_main = match &main {
        Some(c) => show(git, c, "roles.yaml")?.map(|t| (t, format!("main:roles.yaml@{c}"))),
        None => None,
    };
    let (text, source) = match from_main {
        Some(x) => x,
        None => {
            let path = state.join("roles.yaml");
            if !path.is_file() {
                return Err(PolicyError::Missing(path));
            }
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
                path: path.clone(),
                source,
            })?;
            (text, path.display().to_string())
        }
    };
    let roles: RolesFile =
        parse_yaml(Path::new(&source), &text).map_err(|e| PolicyError::Parse(Box::new(e)))?;
    roles.validate().map_err(PolicyError::Invalid)?;
    let gate = match &main {
        Some(c) => match show(git, c, "orchestrate-gate.yaml")? {
            Some(t) => parse_yaml(Path::new("main:orchestrate-gate.yaml"), &t)
                .map_err(|e| PolicyError::Parse(Box::new(e)))?,
            None => GatePolicy::default(),
        },
        None => GatePolicy::default(),
    };
    Ok(Policy {
        roles,
        gate,
        source,
    })
}
