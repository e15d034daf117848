//! One thread: an FR, the `config.yaml` of its directory and `roles.yaml`, loaded, validated and
//! merged into the limits a run of that FR must obey. This is what `orchestrate policy check`
//! reports on and what `orchestrate start` preflights.
//!
//! A merge error (config.yaml loosening a limit, a test command the test-runner may not run) is
//! located in the file that holds the offending value, like a parse error.

use std::path::{Path, PathBuf};

use crate::config::ThreadConfig;
use crate::fr::{Fr, FrLimits};
use crate::load::{load_config, load_fr, LoadError, Position};
use crate::locate::locate;
use crate::merge::{
    effective_cost_ceiling_usd, effective_coverage, effective_role_limits, effective_run_limits,
    effective_test_commands, MergeError,
};
use crate::roles::{Limits, RoleName, RolesFile};

/// An FR with its thread config, and the effective (strictest) limits of a run of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    /// Where the FR is.
    pub fr_path: PathBuf,
    /// The FR.
    pub fr: Fr,
    /// `config.yaml` next to the FR, when there is one.
    pub config_path: Option<PathBuf>,
    /// Its content (the default, no overrides, when there is none).
    pub config: ThreadConfig,
    /// Run ceilings: the stricter of the FR and config.yaml.
    pub run_limits: FrLimits,
    /// Cost ceiling: the stricter of the run ceiling and roles.yaml's per-run budget.
    pub cost_ceiling_usd: f64,
    /// Per-role limits: the stricter of roles.yaml and config.yaml, in pipeline order.
    pub role_limits: Vec<(RoleName, Limits)>,
    /// The approved test commands.
    pub test_commands: Vec<String>,
}

/// Loads the FR at `fr_path` and its directory's config.yaml, and merges them with `roles`.
pub fn load_thread(roles: &RolesFile, fr_path: &Path) -> Result<Thread, LoadError> {
    let mut fr = load_fr(fr_path)?;
    let candidate = fr_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("config.yaml");
    let (config_path, config) = if candidate.exists() {
        let c = load_config(&candidate)?;
        (Some(candidate), c)
    } else {
        (None, ThreadConfig::default())
    };
    let located = |e: MergeError| merge_error(e, fr_path, config_path.as_deref());
    let run_limits = effective_run_limits(&fr, &config).map_err(located)?;
    let mut role_limits = Vec::with_capacity(RoleName::ALL.len());
    for role in RoleName::ALL {
        role_limits.push((
            role,
            effective_role_limits(roles, &config, role).map_err(located)?,
        ));
    }
    let test_commands = effective_test_commands(roles, &fr, &config).map_err(located)?;
    fr.coverage = effective_coverage(&fr, &config).map_err(located)?;
    Ok(Thread {
        fr_path: fr_path.to_owned(),
        cost_ceiling_usd: effective_cost_ceiling_usd(roles, &run_limits),
        fr,
        config_path,
        config,
        run_limits,
        role_limits,
        test_commands,
    })
}

/// Attaches the file and position to a merge error: loosening and config test commands are in
/// config.yaml, an acceptance test's command is in the FR.
fn merge_error(source: MergeError, fr_path: &Path, config_path: Option<&Path>) -> LoadError {
    let (path, field) = match &source {
        MergeError::Loosens { field, .. } => (config_path.unwrap_or(fr_path), field.clone()),
        MergeError::CommandNotAllowed { file, field, .. } => {
            let in_config = file == "config.yaml";
            let path = match (in_config, config_path) {
                (true, Some(c)) => c,
                _ => fr_path,
            };
            (path, field.clone())
        }
        MergeError::MissingRole { role } => (fr_path, format!("roles.{role}")),
        MergeError::CoverageAbove100 { .. } => (
            config_path.unwrap_or(fr_path),
            "coverage.changed_lines_min_pct".to_owned(),
        ),
    };
    let at: Option<Position> = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| locate(&text, &field));
    LoadError::Merge {
        path: path.to_owned(),
        at,
        source: Box::new(source),
    }
}

#[cfg(test)]
#[path = "thread_tests.rs"]
mod tests;
