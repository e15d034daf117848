//! The `llm` driver's tool layer: the tools the model is offered (their JSON schemas), parsing a
//! model's tool call, and running it on the work tree.
//!
//! Paths are checked lexically here: repository-relative, no `..`, not absolute, not into
//! `.git`. A refusal is returned to the model as the tool's result, never run. Symlinks inside the
//! tree are followed as the kernel resolves them: what a path finally reaches is fenced by the
//! sandbox (mount namespace, Landlock, the role's own user), which is the wall; this layer only
//! keeps an honest model from trying.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use super::llm_patch::{self, PatchError};

/// Largest file `read_file` returns whole.
pub const MAX_READ_BYTES: u64 = 256 * 1024;
/// Most entries `list_files` returns.
pub const MAX_LIST_ENTRIES: usize = 2000;
/// Largest content `write_file` accepts.
pub const MAX_WRITE_BYTES: usize = 1024 * 1024;

/// One parsed tool call of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// Files below a directory of the work tree.
    ListFiles {
        /// Repository-relative directory (`.` for the root).
        path: String,
    },
    /// A file's text.
    ReadFile {
        /// Repository-relative file.
        path: String,
    },
    /// Writes a whole file (parents created).
    WriteFile {
        /// Repository-relative file.
        path: String,
        /// New content.
        content: String,
    },
    /// Applies a unified diff (one or more files).
    ApplyPatch {
        /// The diff.
        patch: String,
    },
    /// Ends the iteration so the orchestrator's test-runner runs the approved test commands on
    /// the change; their results are this call's result, in the next iteration.
    RunTests,
    /// The model says the work is done.
    Finish {
        /// What it did.
        summary: String,
    },
}

/// A tool call that cannot be run; its text goes back to the model as the tool's result.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The model named a tool that does not exist.
    #[error("unknown tool `{name}`: the tools are list_files, read_file, write_file, apply_patch, run_tests, finish")]
    Unknown {
        /// The name.
        name: String,
    },
    /// The arguments are not the tool's JSON object.
    #[error("{tool}: arguments are not valid: {source}")]
    Arguments {
        /// The tool.
        tool: &'static str,
        /// Cause.
        source: serde_json::Error,
    },
    /// A path leaves the work tree or names `.git`.
    #[error("path `{path}` refused: {why}")]
    Path {
        /// The path.
        path: String,
        /// Why.
        why: &'static str,
    },
    /// A file is larger than the tool returns or accepts.
    #[error("{path}: {bytes} bytes is more than the {limit} bytes this tool handles")]
    TooLarge {
        /// The path.
        path: String,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The file system refused (the kernel's answer: e.g. ENOENT or EACCES inside the sandbox).
    #[error("{step} {path}: {source}")]
    Io {
        /// What was done.
        step: &'static str,
        /// The path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The patch does not parse or does not apply.
    #[error(transparent)]
    Patch(#[from] PatchError),
}

/// The `tools` array of a Chat Completions request.
pub fn definitions() -> Value {
    let f = |name: &str, description: &str, properties: Value, required: &[&str]| {
        json!({"type": "function", "function": {
            "name": name, "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required,
                           "additionalProperties": false}}})
    };
    let path = json!({"type": "string", "description": "repository-relative path"});
    json!([
        f("list_files", "List files and directories below a directory of the repository (recursive; `.` is the root).",
          json!({"path": path}), &["path"]),
        f("read_file", "Read a text file of the repository.", json!({"path": path}), &["path"]),
        f("write_file", "Create or replace a whole file of the repository.",
          json!({"path": path, "content": {"type": "string"}}), &["path", "content"]),
        f("apply_patch", "Apply a unified diff (`--- a/path`, `+++ b/path`, `@@` hunks; several files allowed; /dev/null creates or deletes).",
          json!({"patch": {"type": "string"}}), &["patch"]),
        f("run_tests", "Ask the orchestrator to run the approved test commands on your change. The results come back as this call's result.",
          json!({}), &[]),
        f("finish", "Say the work is done, with a short summary.",
          json!({"summary": {"type": "string"}}), &["summary"]),
    ])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArgs {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchArgs {
    patch: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinishArgs {
    #[serde(default)]
    summary: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

fn args<T: serde::de::DeserializeOwned>(tool: &'static str, raw: &str) -> Result<T, ToolError> {
    // Some models send "" for a call without arguments.
    let raw = if raw.trim().is_empty() { "{}" } else { raw };
    serde_json::from_str(raw).map_err(|source| ToolError::Arguments { tool, source })
}

/// Parses a model's tool call (`name` and its JSON `arguments` string).
pub fn parse(name: &str, arguments: &str) -> Result<Tool, ToolError> {
    Ok(match name {
        "list_files" => Tool::ListFiles {
            path: args::<PathArgs>("list_files", arguments)?.path,
        },
        "read_file" => Tool::ReadFile {
            path: args::<PathArgs>("read_file", arguments)?.path,
        },
        "write_file" => {
            let a: WriteArgs = args("write_file", arguments)?;
            Tool::WriteFile {
                path: a.path,
                content: a.content,
            }
        }
        "apply_patch" => Tool::ApplyPatch {
            patch: args::<PatchArgs>("apply_patch", arguments)?.patch,
        },
        "run_tests" => {
            args::<NoArgs>("run_tests", arguments)?;
            Tool::RunTests
        }
        "finish" => Tool::Finish {
            summary: args::<FinishArgs>("finish", arguments)?.summary,
        },
        other => {
            return Err(ToolError::Unknown {
                name: other.to_owned(),
            })
        }
    })
}

impl Tool {
    /// The name and arguments this call is reported to the orchestrator with (a write's content
    /// as its size and hash: the audit log records what was asked, not the file).
    pub fn frame(&self) -> (&'static str, Value) {
        match self {
            Tool::ListFiles { path } => ("list_files", json!({"path": path})),
            Tool::ReadFile { path } => ("read_file", json!({"path": path})),
            Tool::WriteFile { path, content } => (
                "write_file",
                json!({"path": path, "bytes": content.len(), "sha256": sha256_hex(content.as_bytes())}),
            ),
            Tool::ApplyPatch { patch } => (
                "apply_patch",
                json!({"files": llm_patch::paths(patch), "bytes": patch.len(), "sha256": sha256_hex(patch.as_bytes())}),
            ),
            Tool::RunTests => ("run_tests", json!({})),
            Tool::Finish { summary } => ("finish", json!({"summary": summary})),
        }
    }
}

fn sha256_hex(b: &[u8]) -> String {
    protocol::canonical::sha256(b).to_hex()
}

/// `root/rel` for a repository-relative `rel`: not empty, not absolute, no `..`, not into
/// `.git` (the agent never touches git; the orchestrator commits). `.` alone is the root when
/// `allow_root`.
pub fn confine(root: &Path, rel: &str, allow_root: bool) -> Result<PathBuf, ToolError> {
    let refuse = |why| {
        Err(ToolError::Path {
            path: rel.to_owned(),
            why,
        })
    };
    if rel.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    let p = Path::new(rel);
    if p.is_absolute() {
        return refuse("absolute paths are outside the work tree; use a repository-relative path");
    }
    let mut out = root.to_path_buf();
    let mut depth = 0usize;
    for c in p.components() {
        match c {
            Component::Normal(n) => {
                if n == ".git" {
                    return refuse("`.git` belongs to the orchestrator");
                }
                out.push(n);
                depth += 1;
            }
            Component::CurDir => {}
            Component::ParentDir => return refuse("`..` leaves the work tree"),
            Component::RootDir | Component::Prefix(_) => {
                return refuse("absolute paths are outside the work tree")
            }
        }
    }
    if depth == 0 && !allow_root {
        return refuse("it names no file");
    }
    Ok(out)
}

/// What running a tool produced: its text for the model and the files it changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The tool's result, for the model.
    pub text: String,
    /// Repository-relative files written or deleted.
    pub changed: Vec<String>,
}

fn io(step: &'static str, path: &str) -> impl FnOnce(std::io::Error) -> ToolError {
    let path = path.to_owned();
    move |source| ToolError::Io { step, path, source }
}

/// Runs a file tool below `root`. `RunTests` and `Finish` change nothing here (the loop handles
/// them).
pub fn run(root: &Path, tool: &Tool) -> Result<Outcome, ToolError> {
    match tool {
        Tool::ListFiles { path } => {
            let dir = confine(root, path, true)?;
            let mut entries = Vec::new();
            list(&dir, Path::new(""), &mut entries).map_err(io("listing", path))?;
            entries.sort();
            let more = entries.len() > MAX_LIST_ENTRIES;
            entries.truncate(MAX_LIST_ENTRIES);
            let mut text = entries.join("\n");
            if more {
                text.push_str(&format!("\n... (first {MAX_LIST_ENTRIES} entries)"));
            }
            Ok(Outcome {
                text,
                changed: vec![],
            })
        }
        Tool::ReadFile { path } => {
            let file = confine(root, path, false)?;
            let bytes = std::fs::metadata(&file).map_err(io("reading", path))?.len();
            if bytes > MAX_READ_BYTES {
                return Err(ToolError::TooLarge {
                    path: path.clone(),
                    bytes,
                    limit: MAX_READ_BYTES,
                });
            }
            let data = std::fs::read(&file).map_err(io("reading", path))?;
            Ok(Outcome {
                text: String::from_utf8_lossy(&data).into_owned(),
                changed: vec![],
            })
        }
        Tool::WriteFile { path, content } => {
            let file = confine(root, path, false)?;
            if content.len() > MAX_WRITE_BYTES {
                return Err(ToolError::TooLarge {
                    path: path.clone(),
                    bytes: content.len() as u64,
                    limit: MAX_WRITE_BYTES as u64,
                });
            }
            write(&file, path, content)?;
            Ok(Outcome {
                text: format!("wrote {path} ({} bytes)", content.len()),
                changed: vec![path.clone()],
            })
        }
        Tool::ApplyPatch { patch } => {
            // Every file is patched in memory first: a patch that fails anywhere changes nothing.
            let edits = llm_patch::plan(patch, |rel| {
                let file = confine(root, rel, false)?;
                match std::fs::read(&file) {
                    Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(ToolError::Io {
                        step: "reading",
                        path: rel.to_owned(),
                        source,
                    }),
                }
            })?;
            let mut changed = Vec::new();
            for e in &edits {
                let file = confine(root, &e.path, false)?;
                match &e.content {
                    Some(c) => write(&file, &e.path, c)?,
                    None => std::fs::remove_file(&file).map_err(io("deleting", &e.path))?,
                }
                changed.push(e.path.clone());
            }
            Ok(Outcome {
                text: format!("patched {}", changed.join(", ")),
                changed,
            })
        }
        Tool::RunTests => Ok(Outcome::default()),
        Tool::Finish { .. } => Ok(Outcome {
            text: "recorded: the orchestrator tests the change".into(),
            changed: vec![],
        }),
    }
}

fn write(file: &Path, rel: &str, content: &str) -> Result<(), ToolError> {
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating the directory of", rel))?;
    }
    std::fs::write(file, content).map_err(io("writing", rel))
}

/// Appends `dir`'s entries (recursively, `.git` and `target` left out) as relative paths;
/// directories end in `/`. Stops a little past the cap.
fn list(dir: &Path, rel: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        if out.len() > MAX_LIST_ENTRIES {
            return Ok(());
        }
        let e = e?;
        let name = e.file_name();
        if name == ".git" || name == "target" {
            continue;
        }
        let r = rel.join(&name);
        // file_type does not follow symlinks: a link is listed, never walked.
        if e.file_type()?.is_dir() {
            out.push(format!("{}/", r.display()));
            list(&e.path(), &r, out)?;
        } else {
            out.push(r.display().to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "llm_tools_tests.rs"]
mod tests;
