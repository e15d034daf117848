//! The security-review rule engine: deterministic rules over a diff (unified diff text or two
//! trees) and over plain files. Every finding carries a stable rule id, a severity, a place and a
//! SHA-256 of its evidence; a matched secret is never copied anywhere.
//!
//! Speed: all line rules share one Aho-Corasick keyword automaton; regexes run only on lines where
//! a keyword occurs (see `engine`).

pub mod deps;
pub mod diff;
mod engine;
mod finding;
pub mod git;
mod paths;
pub mod report;
pub mod rules;
pub mod sarif;
pub mod secrets;
mod tests_weak;
mod text;
mod tree;

pub use finding::{evidence_hash, normalize, Finding, ParseSeverityError, Severity};
pub use rules::{Category, Rule};
pub use tree::{diff_trees, scan_tree};

use diff::FileDiff;
use engine::{Doc, Engine, Mode};
use regex::bytes::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Default multiple of the expected diff size beyond which `ORC-DIFF-SIZE` fires.
pub const DEFAULT_SIZE_FACTOR: f64 = 3.0;

/// Full file contents before and after the change, for rules that need more than the hunks
/// (dependency manifests).
pub trait FileSource: Send + Sync {
    /// Contents before the change (`None`: absent).
    fn before(&self, path: &str) -> Option<Vec<u8>>;
    /// Contents after the change (`None`: absent).
    fn after(&self, path: &str) -> Option<Vec<u8>>;
}

/// What the scan is checked against: the run's policy and plan.
#[derive(Default)]
pub struct ScanContext {
    /// Globs no diff may touch (roles.yaml `protected_paths`).
    pub protected_paths: Vec<String>,
    /// Allowed extensions (`rs`, `toml`) or file names (`Makefile`); empty means no policy.
    pub allowed_extensions: Vec<String>,
    /// Lines (added + removed) the plan expects the diff to change.
    pub expected_diff_lines: Option<u64>,
    /// Files the plan expects the diff to change.
    pub expected_files: Option<u64>,
    /// Multiple of the expected size that is "far beyond" (default [`DEFAULT_SIZE_FACTOR`]).
    pub size_factor: Option<f64>,
    /// Run only these categories (`None`: all).
    pub only: Option<BTreeSet<Category>>,
    /// Before/after contents for manifest comparison; without it a modified manifest is
    /// reported as `ORC-DEP-UNRESOLVED` (a new one is read from the diff itself).
    pub sources: Option<Box<dyn FileSource>>,
}

impl std::fmt::Debug for ScanContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanContext")
            .field("protected_paths", &self.protected_paths)
            .field("allowed_extensions", &self.allowed_extensions)
            .field("expected_diff_lines", &self.expected_diff_lines)
            .field("expected_files", &self.expected_files)
            .field("size_factor", &self.size_factor)
            .field("only", &self.only)
            .field("sources", &self.sources.as_ref().map(|_| "<file source>"))
            .finish()
    }
}

impl ScanContext {
    /// Whether a category runs.
    pub fn enabled(&self, c: Category) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&c))
    }
}

/// Errors of the scans that touch the filesystem or git.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Listing or reading a tree.
    #[error("cannot read {path}: {source}")]
    Walk {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Starting git.
    #[error("cannot run git {args}: {source}")]
    GitSpawn {
        /// Arguments.
        args: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// git exited with an error.
    #[error("git {args} failed ({status}): {stderr}")]
    GitFailed {
        /// Arguments.
        args: String,
        /// Exit status.
        status: std::process::ExitStatus,
        /// What git said.
        stderr: String,
    },
}

fn engine_or_finding(out: &mut Vec<Finding>) -> Option<&'static Engine> {
    match Engine::get() {
        Ok(e) => Some(e),
        Err(e) => {
            out.push(Finding::new(
                &rules::SCAN_ENGINE,
                "",
                0,
                e.to_string(),
                b"engine",
            ));
            None
        }
    }
}

/// Scans a unified diff (`git diff` output or plain `diff -u`).
pub fn scan_diff(diff: &str, ctx: &ScanContext) -> Vec<Finding> {
    let files = diff::parse(diff);
    scan_file_diffs(&files, ctx)
}

/// Scans the change from tree `before` to tree `after` (files compared byte for byte; added lines
/// are the lines of the new file that the old one does not have as often).
pub fn scan_trees(
    before: &std::path::Path,
    after: &std::path::Path,
    ctx: &ScanContext,
) -> Result<Vec<Finding>, ReviewError> {
    let files = tree::diff_trees(before, after)?;
    let mut out = if ctx.sources.is_some() {
        scan_file_diffs(&files, ctx)
    } else {
        let src = tree::DirSource::new(before, after);
        let with = ScanContext {
            protected_paths: ctx.protected_paths.clone(),
            allowed_extensions: ctx.allowed_extensions.clone(),
            expected_diff_lines: ctx.expected_diff_lines,
            expected_files: ctx.expected_files,
            size_factor: ctx.size_factor,
            only: ctx.only.clone(),
            sources: Some(Box::new(src)),
        };
        scan_file_diffs(&files, &with)
    };
    normalize(&mut out);
    Ok(out)
}

/// Scans already-parsed file diffs.
pub fn scan_file_diffs(files: &[FileDiff], ctx: &ScanContext) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(engine) = engine_or_finding(&mut out) else {
        return out;
    };
    let protected = paths::protected_set(&ctx.protected_paths, &mut out);
    let enabled = |c: Category| ctx.enabled(c);
    let mut manifests: Vec<&FileDiff> = Vec::new();
    for f in files {
        paths::check_file(f, &protected, &ctx.allowed_extensions, &enabled, &mut out);
        if enabled(Category::Tests) {
            tests_weak::check_file(f, &mut out);
        }
        let path = f.path();
        if !f.binary && !f.added_lines.is_empty() {
            let doc = Doc {
                file: path,
                buf: f.added.as_bytes(),
                line_map: Some(&f.added_lines),
            };
            engine::scan(engine, &doc, Mode::Diff, &enabled, &mut out);
            if enabled(Category::Network) {
                ip_literals(f, &mut out);
            }
        }
        if f.is_new
            && path.rsplit('/').next() == Some("build.rs")
            && enabled(Category::Dependencies)
        {
            out.push(Finding::new(
                &rules::DEP_BUILD_SCRIPT,
                path,
                0,
                format!("new build script {path}"),
                path.as_bytes(),
            ));
        }
        if deps::is_manifest(path) {
            manifests.push(f);
        }
    }
    if enabled(Category::Dependencies) {
        dependencies(&manifests, ctx, &mut out);
    }
    if enabled(Category::Files) {
        paths::check_size(
            files,
            ctx.expected_diff_lines,
            ctx.expected_files,
            ctx.size_factor.unwrap_or(DEFAULT_SIZE_FACTOR),
            &mut out,
        );
    }
    normalize(&mut out);
    out
}

fn dependencies(manifests: &[&FileDiff], ctx: &ScanContext, out: &mut Vec<Finding>) {
    let mut before = BTreeMap::new();
    let mut after = BTreeMap::new();
    for f in manifests {
        let path = f.path().to_string();
        let old = f.old_path.as_deref();
        let new = f.new_path.as_deref();
        match &ctx.sources {
            Some(src) => {
                if let Some(b) = old.and_then(|p| src.before(p)) {
                    before.insert(path.clone(), b);
                }
                if let Some(a) = new.and_then(|p| src.after(p)) {
                    after.insert(path, a);
                }
            }
            None if f.is_new => {
                after.insert(path, f.added.clone().into_bytes());
            }
            None if f.is_deleted => {
                before.insert(path, f.removed.clone().into_bytes());
            }
            None => out.push(Finding::new(
                &rules::DEP_UNRESOLVED,
                &path,
                0,
                format!("{path} changed; run with file contents (git or trees) to classify"),
                path.as_bytes(),
            )),
        }
    }
    out.extend(deps::compare(&before, &after));
}

fn ip_regex() -> Option<&'static Regex> {
    static R: OnceLock<Option<Regex>> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(r"(?-u)(?:^|[^\w.])((?:\d{1,3}\.){3}\d{1,3})(?::\d{1,5})?(?:[^\w.]|$)").ok()
    })
    .as_ref()
}

/// IPv4 literals in added lines (loopback, unspecified and broadcast addresses excepted). Runs
/// without a keyword prefilter, which is fine: only a diff's added lines go through it.
fn ip_literals(f: &FileDiff, out: &mut Vec<Finding>) {
    let Some(re) = ip_regex() else { return };
    for (n, line) in f.added_iter() {
        if line.bytes().filter(|b| *b == b'.').count() < 3 {
            continue;
        }
        for c in re.captures_iter(line.as_bytes()) {
            let Some(ip) = c.get(1) else { continue };
            let Ok(s) = std::str::from_utf8(ip.as_bytes()) else {
                continue;
            };
            let Ok(addr) = s.parse::<std::net::Ipv4Addr>() else {
                continue;
            };
            if addr.is_loopback() || addr.is_unspecified() || addr.is_broadcast() {
                continue;
            }
            out.push(Finding::new(
                &rules::NET_IP,
                f.path(),
                n,
                format!("IP address literal {addr}"),
                ip.as_bytes(),
            ));
        }
    }
}
