//! The `replay` driver: applies a RECORDED agent session (no model is asked anything). Used by
//! the quick start, the tests and demos, and labelled a replay wherever it reports.
//!
//! A session is JSON: `{fr_id, description, iterations: [{summary, steps: [...]}]}`; a step is
//! `{"op": "write", path, content}`, `{"op": "patch", path, find, replace}`,
//! `{"op": "delete", path}`, `{"op": "probe", act, target}` (containment tests) or
//! `{"op": "tool", tool, args}` (a tool call the recorded agent made
//! that changes no file, e.g. reading a file or running the tests). Iteration `n` replays entry
//! `n - 1`; past the end the last entry is replayed again (which changes nothing, so the
//! progress-evaluator sees no progress). Every step is first sent as a tool call: the
//! orchestrator counts it and may refuse it, and a refused step is not applied.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A recorded session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The FR it was recorded for.
    pub fr_id: String,
    /// What the recording shows, in words.
    #[serde(default)]
    pub description: String,
    /// One entry per iteration.
    pub iterations: Vec<SessionIteration>,
}

/// One iteration of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionIteration {
    /// What the agent said it did.
    #[serde(default)]
    pub summary: String,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One recorded step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Write a whole file.
    Write {
        /// Repository-relative path.
        path: String,
        /// New content.
        content: String,
    },
    /// Replace the first occurrence of `find` with `replace`.
    Patch {
        /// Repository-relative path.
        path: String,
        /// Text to find.
        find: String,
        /// Replacement.
        replace: String,
    },
    /// Delete a file.
    Delete {
        /// Repository-relative path.
        path: String,
    },
    /// Something a hostile or broken agent does to the protocol itself (recorded misbehaviour
    /// for the stop tests): the codegen role performs it on its frame socket.
    Misbehave {
        /// What.
        act: Misbehaviour,
    },
    /// A hostile act outside the protocol, attempted for real (containment tests; see
    /// [`super::probe`]).
    Probe {
        /// What.
        act: super::probe::ProbeAct,
        /// A path, or `host:port` for `connect`.
        target: String,
    },
    /// A tool call that changes no file.
    Tool {
        /// Tool name.
        tool: String,
        /// Its arguments.
        #[serde(default)]
        args: serde_json::Value,
    },
}

/// Recorded protocol misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misbehaviour {
    /// Send a message kind codegen may not send (a `review`).
    ForbiddenMessage,
    /// Exit at once with status 70, mid-iteration.
    Crash,
    /// Send a frame whose body is not JSON.
    GarbageFrame,
    /// Send a header announcing a frame larger than the limit.
    OversizedFrame,
    /// Send log frames as fast as possible.
    Flood,
    /// Stop answering (sleep), so the orchestrator's wall clock has to act.
    Hang,
}

/// Errors applying a session.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The session file could not be read.
    #[error("reading session {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The session file is not a session.
    #[error("parsing session {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
    /// A step names an absolute path or one with `..`.
    #[error("step path `{path}` is not a clean repository-relative path")]
    BadPath {
        /// The path.
        path: String,
    },
    /// A patch's text is not in the file.
    #[error("patch of {path}: text to replace not found")]
    PatchNoMatch {
        /// The path.
        path: String,
    },
    /// Writing the worktree failed.
    #[error("{step} {path}: {source}")]
    Io {
        /// What was done.
        step: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Reads a session file.
pub fn load(path: &Path) -> Result<Session, ReplayError> {
    let text = std::fs::read(path).map_err(|source| ReplayError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| ReplayError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

impl Session {
    /// The steps of iteration `n` (from 1).
    pub fn iteration(&self, n: u32) -> Option<&SessionIteration> {
        let i = usize::try_from(n.max(1) - 1).unwrap_or(usize::MAX);
        self.iterations.get(i).or_else(|| self.iterations.last())
    }
}

impl Step {
    /// The tool name and arguments this step is reported as.
    pub fn as_tool_call(&self) -> (String, serde_json::Value) {
        match self {
            Step::Write { path, content } => (
                "write_file".into(),
                serde_json::json!({"path": path, "bytes": content.len()}),
            ),
            Step::Patch { path, .. } => ("patch_file".into(), serde_json::json!({"path": path})),
            Step::Delete { path } => ("delete_file".into(), serde_json::json!({"path": path})),
            Step::Tool { tool, args } => (tool.clone(), args.clone()),
            Step::Misbehave { act } => ("misbehave".into(), serde_json::json!({"act": act})),
            Step::Probe { act, target } => (
                "probe".into(),
                serde_json::json!({"act": act, "target": target}),
            ),
        }
    }

    /// The file this step changes, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            Step::Write { path, .. } | Step::Patch { path, .. } | Step::Delete { path } => {
                Some(path)
            }
            Step::Tool { .. } | Step::Misbehave { .. } | Step::Probe { .. } => None,
        }
    }

    /// Applies the step below `root`.
    pub fn apply(&self, root: &Path) -> Result<(), ReplayError> {
        let Some(rel) = self.path() else {
            return Ok(());
        };
        let target = clean_join(root, rel)?;
        let io = |step: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| ReplayError::Io { step, path, source }
        };
        match self {
            Step::Write { content, .. } => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
                }
                std::fs::write(&target, content).map_err(io("writing", &target))
            }
            Step::Patch {
                path,
                find,
                replace,
                ..
            } => {
                let text = std::fs::read_to_string(&target).map_err(io("reading", &target))?;
                if !text.contains(find.as_str()) {
                    return Err(ReplayError::PatchNoMatch { path: path.clone() });
                }
                std::fs::write(&target, text.replacen(find.as_str(), replace, 1))
                    .map_err(io("writing", &target))
            }
            Step::Delete { .. } => std::fs::remove_file(&target).map_err(io("deleting", &target)),
            Step::Tool { .. } | Step::Misbehave { .. } | Step::Probe { .. } => Ok(()),
        }
    }
}

/// `root/rel`, refusing absolute paths and `..` (the containment is the real wall; this keeps
/// an honest replay from even trying).
pub fn clean_join(root: &Path, rel: &str) -> Result<PathBuf, ReplayError> {
    let p = Path::new(rel);
    if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(ReplayError::BadPath {
            path: rel.to_owned(),
        });
    }
    Ok(root.join(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_write_patch_delete_in_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        Step::Write {
            path: "src/a.rs".into(),
            content: "fn a() {}\n".into(),
        }
        .apply(dir.path())
        .unwrap();
        Step::Patch {
            path: "src/a.rs".into(),
            find: "a()".into(),
            replace: "b()".into(),
        }
        .apply(dir.path())
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("src/a.rs")).unwrap(),
            "fn b() {}\n"
        );
        Step::Delete {
            path: "src/a.rs".into(),
        }
        .apply(dir.path())
        .unwrap();
        assert!(!dir.path().join("src/a.rs").exists());
    }

    #[test]
    fn escaping_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
            let r = Step::Write {
                path: bad.into(),
                content: String::new(),
            }
            .apply(dir.path());
            assert!(
                matches!(r, Err(ReplayError::BadPath { .. })),
                "{bad}: {r:?}"
            );
        }
    }

    #[test]
    fn iterations_past_the_end_replay_the_last() {
        let s = Session {
            fr_id: "FR-1".into(),
            description: String::new(),
            iterations: vec![
                SessionIteration {
                    summary: "one".into(),
                    steps: vec![],
                },
                SessionIteration {
                    summary: "two".into(),
                    steps: vec![],
                },
            ],
        };
        assert_eq!(s.iteration(1).map(|i| i.summary.as_str()), Some("one"));
        assert_eq!(s.iteration(5).map(|i| i.summary.as_str()), Some("two"));
    }
}
