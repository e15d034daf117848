//! `orchestrate init`: write the starting policy into a repository — `roles.yaml` (the
//! project's default role policy), an example FR and its thread's `config.yaml` — without ever
//! overwriting a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::context::{Context, ContextError};
use super::exit::{ExitCode, Failure};
use super::output::{Mark, Output};

/// The files `init` writes, relative to the repository root, with their content.
pub const FILES: &[(&str, &str)] = &[
    ("roles.yaml", include_str!("../../../roles.yaml")),
    ("frs/FR-1.yaml", include_str!("../../templates/FR-1.yaml")),
    (
        "frs/config.yaml",
        include_str!("../../templates/config.yaml"),
    ),
];

/// `orchestrate init`
#[derive(Debug, Args)]
pub struct InitArgs {}

/// Errors of `orchestrate init`.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The repository could not be resolved.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Files exist that `init` would write; nothing was written.
    #[error("refusing to overwrite {}; nothing was written", list(.paths))]
    WouldOverwrite {
        /// Every existing file.
        paths: Vec<PathBuf>,
    },
    /// Creating a directory failed.
    #[error("creating directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Failure for InitError {
    fn exit_code(&self) -> ExitCode {
        match self {
            InitError::Context(e) => e.exit_code(),
            InitError::WouldOverwrite { .. } => ExitCode::Usage,
            InitError::CreateDir { .. } | InitError::Write { .. } => ExitCode::Internal,
        }
    }
}

/// Runs `orchestrate init`.
pub fn run(ctx: &Context, out: &Output, _args: &InitArgs) -> Result<ExitCode, InitError> {
    let repo = ctx.repo()?;
    write_all(&repo)?;
    for (rel, _) in FILES {
        out.mark(Mark::Ok, repo.join(rel).display(), "written");
    }
    out.line("next: edit frs/FR-1.yaml, then run `orchestrate policy check`");
    Ok(ExitCode::Ok)
}

/// Writes every file of [`FILES`] under `repo`, or none if any already exists.
pub fn write_all(repo: &Path) -> Result<(), InitError> {
    // symlink_metadata: a dangling symlink is an existing name too, and writing through it
    // would land somewhere else.
    let existing: Vec<PathBuf> = FILES
        .iter()
        .map(|(rel, _)| repo.join(rel))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    if !existing.is_empty() {
        return Err(InitError::WouldOverwrite { paths: existing });
    }
    for (rel, content) in FILES {
        let path = repo.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| InitError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        // create_new: if a file appeared since the check above, fail rather than clobber it.
        let write = |path: &Path| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            f.write_all(content.as_bytes())?;
            f.sync_all()
        };
        write(&path).map_err(|source| InitError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}
