//! Anomaly rules the orchestrator checks on every iteration, after the change scan: file types,
//! diff size against the plan, dependency changes, critical directories, repeated identical tool
//! calls and a sudden jump in cost. Pure functions over what the iteration produced; each hit is
//! an audit event, and the rules whose [`Policy`] says so stop the run with their reason code.
//!
//! | rule              | fires when                                                    | stop                                        |
//! |-------------------|---------------------------------------------------------------|---------------------------------------------|
//! | `file_type`       | a changed file is a binary, archive, library or executable    | STOP_SECURITY_VIOLATION                     |
//! | `diff_size`       | lines added + deleted > `lines_per_target` × plan targets     | STOP_SCOPE_EXCEEDED at `diff_stop_factor` × |
//! | `dependency`      | a dependency manifest or lock file changed                    | STOP_SECURITY_VIOLATION if the FR forbids new dependencies |
//! | `critical_path`   | build scripts, cargo config, hooks, CI, editor tasks           | STOP_SECURITY_VIOLATION                     |
//! | `repeated_call`   | one (tool, args) made `repeat_event` times in one iteration    | STOP_NO_PROGRESS at `repeat_stop`           |
//! | `cost_jump`       | an iteration's tool calls or spend > `jump_factor` × the mean of the earlier ones | event only (the budget stops) |

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use protocol::StopCode;
use serde::{Deserialize, Serialize};

/// The rule that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A file of a type outside the policy.
    FileType,
    /// The diff is far larger than the plan.
    DiffSize,
    /// A dependency manifest or lock file changed.
    Dependency,
    /// A file in a critical directory changed.
    CriticalPath,
    /// The same tool call, again and again.
    RepeatedCall,
    /// An iteration cost far more than the earlier ones.
    CostJump,
}

impl Rule {
    /// The name roles.yaml's `anomaly.actions` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::FileType => "file_type",
            Rule::DiffSize => "diff_size",
            Rule::Dependency => "dependency",
            Rule::CriticalPath => "critical_path",
            Rule::RepeatedCall => "repeated_call",
            Rule::CostJump => "cost_jump",
        }
    }
}

/// One hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// The rule.
    pub rule: Rule,
    /// What exactly, for the event and the terminal.
    pub detail: String,
    /// The stop it causes, when the policy stops on it.
    pub stop: Option<StopCode>,
}

/// Thresholds and switches. [`Policy::default`] is what runs use.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Extensions (lower case, without the dot) no agent change may carry.
    pub forbidden_extensions: Vec<&'static str>,
    /// Changed lines allowed per plan target before `diff_size` fires.
    pub lines_per_target: u64,
    /// `diff_size` stops the run beyond this multiple of the allowance.
    pub diff_stop_factor: u64,
    /// Globs of critical paths.
    pub critical: Vec<&'static str>,
    /// `repeated_call` fires at this many identical calls in one iteration...
    pub repeat_event: usize,
    /// ...and stops the run at this many.
    pub repeat_stop: usize,
    /// `cost_jump` fires when an iteration exceeds this multiple of the earlier iterations' mean...
    pub jump_factor: f64,
    /// ...and at least this many tool calls...
    pub jump_min_calls: u64,
    /// ...or at least this many USD.
    pub jump_min_usd: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            forbidden_extensions: vec![
                "exe", "dll", "so", "dylib", "a", "o", "obj", "lib", "bin", "elf", "jar", "class",
                "pyc", "wasm", "zip", "tar", "gz", "tgz", "bz2", "xz", "7z", "rar", "deb", "rpm",
                "apk", "msi", "dmg", "iso", "img",
            ],
            lines_per_target: 400,
            diff_stop_factor: 3,
            critical: vec![
                "**/build.rs",
                ".cargo/**",
                "**/.cargo/**",
                "rust-toolchain",
                "rust-toolchain.toml",
                ".githooks/**",
                ".husky/**",
                ".pre-commit-config.yaml",
                ".github/**",
                ".gitlab-ci.yml",
                ".ci/**",
                ".gitattributes",
                ".gitmodules",
                ".envrc",
                ".vscode/**",
                ".devcontainer/**",
                "**/.npmrc",
                "**/pip.conf",
            ],
            repeat_event: 3,
            repeat_stop: 10,
            jump_factor: 3.0,
            jump_min_calls: 20,
            jump_min_usd: 0.5,
        }
    }
}

impl Policy {
    /// The defaults with roles.yaml's `anomaly:` thresholds.
    pub fn from_roles(p: &protocol::roles::AnomalyPolicy) -> Self {
        Policy {
            lines_per_target: p.lines_per_target,
            diff_stop_factor: p.diff_stop_factor,
            repeat_event: usize::try_from(p.repeat_event).unwrap_or(usize::MAX),
            repeat_stop: usize::try_from(p.repeat_stop).unwrap_or(usize::MAX),
            jump_factor: p.jump_factor,
            ..Policy::default()
        }
    }
}

/// [`check`] with roles.yaml's per-rule actions applied: a rule set to `event` never stops.
pub fn check_with(obs: &Observation<'_>, roles: &protocol::roles::AnomalyPolicy) -> Vec<Anomaly> {
    let mut hits = check(obs, &Policy::from_roles(roles));
    for a in &mut hits {
        if !roles.stops(a.rule.as_str()) {
            a.stop = None;
        }
    }
    hits
}

/// Lines a file gained and lost (`git diff --numstat`); `None` for a binary file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLines {
    /// Repository-relative path.
    pub path: String,
    /// Added and deleted lines; `None` when git sees a binary file.
    pub lines: Option<(u64, u64)>,
}

/// Parses `git diff --numstat` output (`added<TAB>deleted<TAB>path`, `-` for binary files).
pub fn parse_numstat(text: &str) -> Vec<FileLines> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, '\t');
            let (a, d, p) = (it.next()?, it.next()?, it.next()?);
            let lines = match (a.parse::<u64>(), d.parse::<u64>()) {
                (Ok(a), Ok(d)) => Some((a, d)),
                _ => None,
            };
            Some(FileLines {
                path: p.to_owned(),
                lines,
            })
        })
        .collect()
}

/// What one iteration spent, kept per run so a jump can be told from a steady pace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The iteration.
    pub iteration: u32,
    /// Tool calls the agent made in it.
    pub tool_calls: u64,
    /// Model spend the last ledger reported (cumulative, USD).
    pub spent_usd: f64,
}

/// Everything the rules look at.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// The candidate's changes against the base, with line counts.
    pub files: &'a [FileLines],
    /// Number of targets in the plan.
    pub plan_targets: usize,
    /// The FR forbids new dependencies (its security constraints say so).
    pub no_new_dependencies: bool,
    /// This iteration's tool calls as (tool, canonical args).
    pub calls: &'a [(String, String)],
    /// Earlier iterations, oldest first.
    pub history: &'a [Sample],
    /// This iteration.
    pub current: Sample,
}

const DEPENDENCY_FILES: [&str; 12] = [
    "Cargo.toml",
    "Cargo.lock",
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "pyproject.toml",
    "poetry.lock",
    "Pipfile",
    "Pipfile.lock",
    "go.mod",
];

fn is_dependency_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    DEPENDENCY_FILES.contains(&name)
        || (name.starts_with("requirements") && name.ends_with(".txt"))
        || name == "go.sum"
}

fn extension(path: &str) -> Option<String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty()).then(|| ext.to_ascii_lowercase())
}

fn glob_set(globs: &[&str]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        // The default globs are constants known to parse; a bad one is skipped, not a panic.
        if let Ok(g) = Glob::new(g) {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

/// Runs every rule; hits in rule order.
pub fn check(obs: &Observation<'_>, policy: &Policy) -> Vec<Anomaly> {
    let mut out = Vec::new();
    file_types(obs, policy, &mut out);
    diff_size(obs, policy, &mut out);
    dependencies(obs, &mut out);
    critical_paths(obs, policy, &mut out);
    repeated_calls(obs, policy, &mut out);
    cost_jump(obs, policy, &mut out);
    out
}

fn file_types(obs: &Observation<'_>, policy: &Policy, out: &mut Vec<Anomaly>) {
    for f in obs.files {
        let ext = extension(&f.path);
        let forbidden = ext
            .as_deref()
            .is_some_and(|e| policy.forbidden_extensions.contains(&e));
        if forbidden || f.lines.is_none() {
            let why = if forbidden {
                format!(".{} files are outside the policy", ext.unwrap_or_default())
            } else {
                "binary content".to_owned()
            };
            out.push(Anomaly {
                rule: Rule::FileType,
                detail: format!("{}: {why}", f.path),
                stop: Some(StopCode::SecurityViolation),
            });
        }
    }
}

fn diff_size(obs: &Observation<'_>, policy: &Policy, out: &mut Vec<Anomaly>) {
    let lines: u64 = obs
        .files
        .iter()
        .filter_map(|f| f.lines)
        .map(|(a, d)| a + d)
        .sum();
    let allowed = policy
        .lines_per_target
        .saturating_mul(u64::try_from(obs.plan_targets.max(1)).unwrap_or(u64::MAX));
    if lines > allowed {
        let stop_at = allowed.saturating_mul(policy.diff_stop_factor);
        out.push(Anomaly {
            rule: Rule::DiffSize,
            detail: format!(
                "{lines} changed lines for {} planned target(s) (allowance {allowed}, stop above {stop_at})",
                obs.plan_targets
            ),
            stop: (lines > stop_at).then_some(StopCode::ScopeExceeded),
        });
    }
}

fn dependencies(obs: &Observation<'_>, out: &mut Vec<Anomaly>) {
    for f in obs.files.iter().filter(|f| is_dependency_file(&f.path)) {
        out.push(Anomaly {
            rule: Rule::Dependency,
            detail: if obs.no_new_dependencies {
                format!("{} changed and the FR says: no new dependencies", f.path)
            } else {
                format!("{} changed", f.path)
            },
            stop: obs
                .no_new_dependencies
                .then_some(StopCode::SecurityViolation),
        });
    }
}

fn critical_paths(obs: &Observation<'_>, policy: &Policy, out: &mut Vec<Anomaly>) {
    let set = glob_set(&policy.critical);
    for f in obs.files.iter().filter(|f| set.is_match(&f.path)) {
        out.push(Anomaly {
            rule: Rule::CriticalPath,
            detail: format!(
                "{} is in a critical location (runs at build, commit or CI time)",
                f.path
            ),
            stop: Some(StopCode::SecurityViolation),
        });
    }
}

fn repeated_calls(obs: &Observation<'_>, policy: &Policy, out: &mut Vec<Anomaly>) {
    let mut counts: BTreeMap<&(String, String), usize> = BTreeMap::new();
    for c in obs.calls {
        *counts.entry(c).or_default() += 1;
    }
    for ((tool, args), n) in counts {
        if n >= policy.repeat_event {
            out.push(Anomaly {
                rule: Rule::RepeatedCall,
                detail: format!("{tool} {args} made {n} times in one iteration"),
                stop: (n >= policy.repeat_stop).then_some(StopCode::NoProgress),
            });
        }
    }
}

fn cost_jump(obs: &Observation<'_>, policy: &Policy, out: &mut Vec<Anomaly>) {
    if obs.history.is_empty() {
        return;
    }
    let n = obs.history.len() as f64;
    let mean_calls = obs.history.iter().map(|s| s.tool_calls as f64).sum::<f64>() / n;
    let calls = obs.current.tool_calls as f64;
    if calls >= policy.jump_min_calls as f64 && calls > policy.jump_factor * mean_calls.max(1.0) {
        out.push(Anomaly {
            rule: Rule::CostJump,
            detail: format!(
                "{} tool calls in iteration {}, {:.1} per iteration before",
                obs.current.tool_calls, obs.current.iteration, mean_calls
            ),
            stop: None,
        });
    }
    // Spend per iteration: differences of the cumulative figures.
    let mut spent: Vec<f64> = Vec::with_capacity(obs.history.len() + 1);
    let mut last = 0.0;
    for s in obs.history.iter().chain(std::iter::once(&obs.current)) {
        spent.push((s.spent_usd - last).max(0.0));
        last = s.spent_usd;
    }
    if let Some((now, before)) = spent.split_last() {
        let mean = before.iter().sum::<f64>() / before.len().max(1) as f64;
        if *now >= policy.jump_min_usd && *now > policy.jump_factor * mean {
            out.push(Anomaly {
                rule: Rule::CostJump,
                detail: format!(
                    "{now:.2} USD spent since the last ledger, {mean:.2} USD per iteration before"
                ),
                stop: None,
            });
        }
    }
}

/// True when an FR's security constraints forbid new dependencies.
pub fn forbids_new_dependencies(constraints: &[String]) -> bool {
    constraints.iter().any(|c| {
        let c = c.to_ascii_lowercase();
        c.contains("no new dependenc") || c.contains("no dependency change")
    })
}

#[cfg(test)]
#[path = "anomaly_tests.rs"]
mod tests;
