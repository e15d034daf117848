//! `orchestrate scan`: the security-review rule engine on its own, over a path (whole files:
//! secrets and hidden characters), a git range or the staged change (every rule, with manifests
//! compared in full). Exit 1 when a finding at or above `--fail-on` exists, so it works as a CI
//! step and as a pre-commit hook (`orchestrate scan --staged`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use agents::review::{
    self, git, report, rules, sarif, Category, Finding, ReviewError, ScanContext, Severity,
};
use clap::Args;
use serde::Serialize;

use super::context::{Context, ContextError};
use super::exit::{ExitCode, Failure};
use super::output::{Mark, Output};

/// `orchestrate scan [PATH | --diff BASE..HEAD | --staged] [--sarif FILE] [--json]`
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// File or directory to scan as whole files (default: the repository).
    #[arg(value_name = "PATH", conflicts_with_all = ["diff", "staged"])]
    path: Option<PathBuf>,
    /// Scan the change BASE..HEAD of the repository with every rule (`REV` alone means REV..HEAD).
    #[arg(long, value_name = "BASE..HEAD", conflicts_with = "staged")]
    diff: Option<String>,
    /// Scan what `git commit` would record (index against HEAD): the pre-commit hook mode.
    #[arg(long)]
    staged: bool,
    /// Also write the findings as SARIF 2.1.0 to FILE.
    #[arg(long, value_name = "FILE")]
    sarif: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// Lowest severity that fails the scan (exit 1): critical, high, medium, low or note.
    #[arg(long, value_name = "SEVERITY", default_value = "high")]
    fail_on: Severity,
    /// roles.yaml whose protected_paths the diff is checked against (default: the repository's
    /// roles.yaml when it exists).
    #[arg(long, value_name = "FILE")]
    roles: Option<PathBuf>,
    /// Only these rule categories (comma-separated: secrets, dependencies, paths, files, tests,
    /// persistence, network, pragmas, injection, config).
    #[arg(long, value_name = "CATEGORIES", value_delimiter = ',')]
    only: Vec<String>,
    /// Print the rule catalogue (id, severity, category, name) and exit.
    #[arg(long)]
    list_rules: bool,
}

impl ScanArgs {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        self.json
    }
}

/// Errors of `orchestrate scan`.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The repository could not be resolved.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// A category name that does not exist.
    #[error("unknown rule category {name:?} in --only")]
    Category {
        /// The name given.
        name: String,
    },
    /// The path to scan does not exist.
    #[error("{path} does not exist")]
    NoPath {
        /// The path.
        path: PathBuf,
    },
    /// roles.yaml did not load.
    #[error("loading {path}: {source}")]
    Roles {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Box<protocol::load::LoadError>,
    },
    /// git did not give the diff (bad revision, not a repository).
    #[error("getting the diff: {0}")]
    Git(#[source] ReviewError),
    /// Walking or reading the tree.
    #[error("scanning: {0}")]
    Scan(#[source] ReviewError),
    /// The SARIF file could not be written.
    #[error("writing SARIF to {path}: {source}")]
    WriteSarif {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl Failure for ScanError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ScanError::Context(e) => e.exit_code(),
            ScanError::Category { .. }
            | ScanError::NoPath { .. }
            | ScanError::Roles { .. }
            | ScanError::Git(_) => ExitCode::Usage,
            ScanError::Scan(_) | ScanError::WriteSarif { .. } => ExitCode::Internal,
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    mode: &'static str,
    target: String,
    fail_on: Severity,
    blocking: bool,
    counts: report::Counts,
    findings: &'a [Finding],
}

fn categories(names: &[String]) -> Result<Option<BTreeSet<Category>>, ScanError> {
    if names.is_empty() {
        return Ok(None);
    }
    names
        .iter()
        .map(|n| Category::parse(n.trim()).ok_or_else(|| ScanError::Category { name: n.clone() }))
        .collect::<Result<BTreeSet<_>, _>>()
        .map(Some)
}

fn protected_paths(repo: &Path, roles: Option<&Path>) -> Result<Vec<String>, ScanError> {
    let path = match roles {
        Some(p) => p.to_path_buf(),
        None => {
            let p = repo.join("roles.yaml");
            if !p.is_file() {
                return Ok(Vec::new());
            }
            p
        }
    };
    let file = protocol::load::load_roles(&path).map_err(|source| ScanError::Roles {
        path: path.clone(),
        source: Box::new(source),
    })?;
    Ok(file.protected_paths)
}

/// Runs the scan the arguments describe and returns its findings, the mode and the target.
fn scan(ctx: &Context, args: &ScanArgs) -> Result<(Vec<Finding>, &'static str, String), ScanError> {
    let only = categories(&args.only)?;
    if let Some(p) = &args.path {
        if !p.exists() {
            return Err(ScanError::NoPath { path: p.clone() });
        }
        let c = ScanContext {
            only,
            ..ScanContext::default()
        };
        let f = review::scan_tree(p, &c).map_err(ScanError::Scan)?;
        return Ok((f, "tree", p.display().to_string()));
    }
    let repo = ctx.repo()?;
    let spec = match (&args.diff, args.staged) {
        (Some(range), _) => git::DiffSpec::parse_range(range),
        (None, true) => git::DiffSpec::Staged,
        (None, false) => {
            let c = ScanContext {
                only,
                ..ScanContext::default()
            };
            let f = review::scan_tree(&repo, &c).map_err(ScanError::Scan)?;
            return Ok((f, "tree", repo.display().to_string()));
        }
    };
    let text = git::diff(&repo, &spec).map_err(ScanError::Git)?;
    let c = ScanContext {
        protected_paths: protected_paths(&repo, args.roles.as_deref())?,
        only,
        sources: Some(Box::new(git::GitSource::new(&repo, spec.clone()))),
        ..ScanContext::default()
    };
    let (mode, target) = match &spec {
        git::DiffSpec::Range { base, head } => ("diff", format!("{base}..{head}")),
        git::DiffSpec::Staged => ("staged", "index against HEAD".to_string()),
    };
    Ok((review::scan_diff(&text, &c), mode, target))
}

fn list_rules(out: &Output) -> ExitCode {
    let all = rules::all();
    if out.is_json() {
        out.document(&all);
    } else {
        for r in all {
            out.line(format!(
                "{:<38} {:<8} {:<12} {}",
                r.id,
                r.severity.as_str(),
                format!("{:?}", r.category).to_lowercase(),
                r.name
            ));
        }
    }
    ExitCode::Ok
}

/// Runs `orchestrate scan`.
pub fn run(ctx: &Context, out: &Output, args: &ScanArgs) -> Result<ExitCode, ScanError> {
    if args.list_rules {
        return Ok(list_rules(out));
    }
    let (findings, mode, target) = scan(ctx, args)?;
    tracing::info!(mode, findings = findings.len(), "scan finished");
    if let Some(path) = &args.sarif {
        let doc = sarif::to_sarif(&findings, env!("CARGO_PKG_VERSION"));
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        std::fs::write(path, text + "\n").map_err(|source| ScanError::WriteSarif {
            path: path.clone(),
            source,
        })?;
    }
    let blocking = report::blocks(&findings, args.fail_on);
    if out.is_json() {
        out.document(&Report {
            mode,
            target,
            fail_on: args.fail_on,
            blocking,
            counts: report::Counts::of(&findings),
            findings: &findings,
        });
    } else {
        out.line(format!("scan of {target} ({mode})"));
        if !findings.is_empty() {
            out.line(report::render_text(&findings).trim_end());
        }
        let verdict = format!("no finding at or above {}", args.fail_on);
        if blocking {
            out.mark(
                Mark::Fail,
                "scan",
                format!("findings at or above {}", args.fail_on),
            );
        } else {
            out.mark(Mark::Ok, "scan", verdict);
        }
    }
    Ok(if blocking {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
