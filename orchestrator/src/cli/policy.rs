//! `orchestrate policy check`: validate `roles.yaml` and every FR (with the `config.yaml` of its
//! directory) in the repository, the way `orchestrate start` will, and report every problem with
//! its file, line, column and field.
//!
//! Exit 0 when everything validates, 1 when a document does not (the check worked and its answer
//! is "no"), 2 when there is no roles.yaml to check against.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use protocol::load::{find_frs, load_roles, LoadError};
use protocol::thread::load_thread;
use serde::Serialize;

use super::context::{Context, ContextError};
use super::exit::{ExitCode, Failure};
use super::output::{Mark, Output};

/// `orchestrate policy ...`
#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate roles.yaml and every FR-<n>.yaml (with its directory's config.yaml) in the
    /// repository; exit 1 naming file, line and field when one does not validate.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

impl PolicyArgs {
    /// Whether the chosen subcommand asked for JSON.
    pub fn json(&self) -> bool {
        match &self.command {
            PolicyCommand::Check(c) => c.json,
        }
    }
}

/// Errors of `orchestrate policy`.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The repository could not be resolved.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// There is no roles.yaml at the repository root.
    #[error("{}: not found; `orchestrate init` writes a starting policy", .0.display())]
    NoRoles(PathBuf),
}

impl Failure for PolicyError {
    fn exit_code(&self) -> ExitCode {
        match self {
            PolicyError::Context(e) => e.exit_code(),
            PolicyError::NoRoles(_) => ExitCode::Usage,
        }
    }
}

/// Runs `orchestrate policy ...`.
pub fn run(ctx: &Context, out: &Output, args: &PolicyArgs) -> Result<ExitCode, PolicyError> {
    match &args.command {
        PolicyCommand::Check(_) => check(&ctx.repo()?, out),
    }
}

/// One checked document.
#[derive(Debug, Serialize)]
struct Checked {
    /// `roles`, `fr` (an FR with its config.yaml).
    kind: &'static str,
    /// The file, relative to the repository when inside it.
    file: String,
    /// `config.yaml` checked with the FR, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<String>,
    /// The problem, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Problem>,
}

#[derive(Debug, Serialize)]
struct Problem {
    /// The file the problem is in (an FR's problem may be in its config.yaml).
    file: String,
    line: Option<u64>,
    column: Option<u64>,
    message: String,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    valid: bool,
    repo: String,
    documents: &'a [Checked],
}

fn check(repo: &Path, out: &Output) -> Result<ExitCode, PolicyError> {
    let roles_path = repo.join("roles.yaml");
    if !roles_path.exists() {
        return Err(PolicyError::NoRoles(roles_path));
    }
    let rel = |p: &Path| p.strip_prefix(repo).unwrap_or(p).display().to_string();
    let mut docs = Vec::new();
    let roles = match load_roles(&roles_path) {
        Ok(r) => {
            docs.push(Checked {
                kind: "roles",
                file: rel(&roles_path),
                config: None,
                error: None,
            });
            Some(r)
        }
        Err(e) => {
            docs.push(Checked {
                kind: "roles",
                file: rel(&roles_path),
                config: None,
                error: Some(problem(&e, &roles_path, &rel)),
            });
            None
        }
    };
    for fr_path in find_frs(repo) {
        let config = fr_path.with_file_name("config.yaml");
        let config = config.exists().then(|| rel(&config));
        let error = match &roles {
            Some(r) => load_thread(r, &fr_path).err(),
            // Without a valid roles.yaml the FR can still be checked on its own.
            None => protocol::load::load_fr(&fr_path)
                .and_then(|_| protocol::load::load_config_for(&fr_path))
                .err(),
        };
        docs.push(Checked {
            kind: "fr",
            file: rel(&fr_path),
            config,
            error: error.map(|e| problem(&e, &fr_path, &rel)),
        });
    }
    let valid = docs.iter().all(|d| d.error.is_none());
    out.document(&Report {
        valid,
        repo: repo.display().to_string(),
        documents: &docs,
    });
    for d in &docs {
        let subject = match &d.config {
            Some(c) => format!("{} (+ {c})", d.file),
            None => d.file.clone(),
        };
        match &d.error {
            None => out.mark(Mark::Ok, subject, ""),
            Some(p) => out.mark(Mark::Fail, subject, &p.message),
        }
    }
    let frs = docs.iter().filter(|d| d.kind == "fr").count();
    if frs == 0 {
        out.mark(Mark::Warn, "no FR-<n>.yaml found", "nothing to run yet");
    }
    Ok(if valid {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

/// The located error as data; the message is the full `file:line:col: field: what` line.
fn problem(e: &LoadError, default_file: &Path, rel: &dyn Fn(&Path) -> String) -> Problem {
    let file = match e {
        LoadError::Merge { path, .. } => path.as_path(),
        _ => default_file,
    };
    let pos = e.position();
    Problem {
        file: rel(file),
        line: pos.map(|p| p.line),
        column: pos.map(|p| p.column),
        message: e.to_string(),
    }
}
