//! Getting a diff and file contents from git, for `orchestrate scan --diff/--staged` and the
//! security-review role. git runs with a fixed argument vector (never a shell), with external
//! diff drivers and textconv disabled so a repository's config cannot run commands here.

use super::{FileSource, ReviewError};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffSpec {
    /// `BASE..HEAD` (or any two revisions).
    Range {
        /// Old revision.
        base: String,
        /// New revision.
        head: String,
    },
    /// The index against HEAD (what `git commit` would record).
    Staged,
}

impl DiffSpec {
    /// Parses `BASE..HEAD`; a single revision means `REV..HEAD`.
    pub fn parse_range(s: &str) -> Self {
        match s.split_once("..") {
            Some((b, h)) => DiffSpec::Range {
                base: if b.is_empty() {
                    "HEAD".into()
                } else {
                    b.to_string()
                },
                head: if h.is_empty() {
                    "HEAD".into()
                } else {
                    h.trim_start_matches('.').to_string()
                },
            },
            None => DiffSpec::Range {
                base: s.to_string(),
                head: "HEAD".into(),
            },
        }
    }
}

fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, ReviewError> {
    let joined = args.join(" ");
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "core.quotePath=true",
            "-c",
            "diff.external=",
            "-c",
            "core.fsmonitor=false",
        ])
        .args(args)
        .output()
        .map_err(|source| ReviewError::GitSpawn {
            args: joined.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(ReviewError::GitFailed {
            args: joined,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// The unified diff for `spec` in `repo`, with full binary markers and no renames folded away.
pub fn diff(repo: &Path, spec: &DiffSpec) -> Result<String, ReviewError> {
    let mut args = vec![
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        "--no-renames",
        "-U3",
    ];
    let range;
    match spec {
        DiffSpec::Range { base, head } => {
            range = format!("{base}..{head}");
            args.push(&range);
        }
        DiffSpec::Staged => args.push("--cached"),
    }
    args.push("--");
    Ok(String::from_utf8_lossy(&git(repo, &args)?).into_owned())
}

/// File contents at the two sides of a [`DiffSpec`].
#[derive(Debug)]
pub struct GitSource {
    repo: PathBuf,
    spec: DiffSpec,
}

impl GitSource {
    /// Contents for `spec` in `repo`.
    pub fn new(repo: &Path, spec: DiffSpec) -> Self {
        GitSource {
            repo: repo.to_path_buf(),
            spec,
        }
    }

    fn show(&self, object: String) -> Option<Vec<u8>> {
        git(&self.repo, &["show", "--no-textconv", &object]).ok()
    }
}

impl FileSource for GitSource {
    fn before(&self, path: &str) -> Option<Vec<u8>> {
        match &self.spec {
            DiffSpec::Range { base, .. } => self.show(format!("{base}:{path}")),
            DiffSpec::Staged => self.show(format!("HEAD:{path}")),
        }
    }
    fn after(&self, path: &str) -> Option<Vec<u8>> {
        match &self.spec {
            DiffSpec::Range { head, .. } => self.show(format!("{head}:{path}")),
            DiffSpec::Staged => self.show(format!(":{path}")),
        }
    }
}
