//! Functional Requirements (`FR-<n>.yaml`): one unit of agent work.
//!
//! An FR is refused before anything runs unless every acceptance criterion names an executable
//! test (a command and a test name): "done" must be something a machine can check.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::roles_validate::parse_glob;

/// A Functional Requirement document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fr {
    /// `FR-<n>`; must match the file name `FR-<n>.yaml`.
    pub id: String,
    /// One-line title.
    pub title: String,
    /// Who owns the requirement.
    pub owner: String,
    /// What the change must achieve.
    pub objective: String,
    /// What is explicitly out of scope.
    #[serde(default)]
    pub non_goals: Vec<String>,
    /// Paths the work may read and write (globs from the repository root).
    pub paths: FrPaths,
    /// Acceptance criteria, each mapped to an executable test. At least one.
    pub acceptance: Vec<AcceptanceCriterion>,
    /// Security constraints and prohibited actions.
    pub security: Security,
    /// Run ceilings.
    pub limits: FrLimits,
    /// Coverage requirement on changed lines.
    #[serde(default)]
    pub coverage: Option<Coverage>,
    /// Risk class.
    pub risk: RiskClass,
    /// Done criteria, in words.
    #[serde(default)]
    pub done: Vec<String>,
    /// Rollback criteria, in words.
    #[serde(default)]
    pub rollback: Vec<String>,
}

/// Allowed paths of an FR: globs relative to the repository root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrPaths {
    /// What the work may read.
    pub inputs: Vec<String>,
    /// What the work may change. The thread's scope: any other changed file is out of scope.
    pub outputs: Vec<String>,
}

/// One acceptance criterion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptanceCriterion {
    /// Criterion id, e.g. `AC-1`.
    pub id: String,
    /// What it checks, in words.
    pub description: String,
    /// The executable test that decides it.
    pub test: TestRef,
}

/// An executable test: the command to run and the test name it must report as passed.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct TestRef {
    /// argv as one string (split on whitespace, never given to a shell), e.g. `cargo test`.
    pub command: String,
    /// The test's name as the command reports it.
    pub name: String,
}

/// Security constraints of an FR.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// Constraints the change must respect.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// Actions that are prohibited.
    #[serde(default)]
    pub prohibited: Vec<String>,
}

/// Run ceilings of an FR (config.yaml may tighten them, never loosen).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrLimits {
    /// Cost ceiling for the run, USD.
    pub cost_usd: f64,
    /// Wall-clock ceiling for the run, seconds.
    pub runtime_seconds: u64,
    /// Iteration cap.
    pub iterations: u32,
    /// Consecutive iterations without progress before STOP_NO_PROGRESS.
    pub no_progress: u32,
    /// Most files the change may touch.
    pub files: u32,
    /// Most tool calls the agent may make.
    pub tool_calls: u32,
}

/// Coverage requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// Minimum line coverage of changed lines, percent (0-100).
    pub changed_lines_min_pct: u8,
    /// For projects `cargo llvm-cov` cannot measure: a command (argv split on whitespace, never
    /// a shell) that runs the tests and writes an lcov tracefile to `{lcov}`, e.g.
    /// `pytest --cov=. --cov-report=lcov:{lcov}`. It must be covered by roles.yaml's
    /// test-runner `commands`. Absent: the first `cargo test` command runs through
    /// `cargo llvm-cov`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// Risk class of an FR or plan.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RiskClass {
    /// Low risk.
    Low,
    /// Medium risk.
    Medium,
    /// High risk.
    High,
}

/// An FR that parses but cannot be run. Every variant names the field.
#[derive(Debug, thiserror::Error)]
pub enum FrError {
    /// The id is not `FR-<n>`.
    #[error("id: `{id}` is not of the form FR-<number>")]
    BadId {
        /// The id.
        id: String,
    },
    /// The id does not match the file name.
    #[error("id: `{id}` does not match the file name `{file}`: an FR's id and file name must agree (FR-12 lives in FR-12.yaml)")]
    IdMismatch {
        /// The id.
        id: String,
        /// The file name.
        file: String,
    },
    /// A required text field is empty.
    #[error("{field}: must not be empty")]
    Empty {
        /// Field path.
        field: &'static str,
    },
    /// No acceptance criteria.
    #[error("acceptance: no acceptance criteria: every FR needs at least one, each naming an executable test")]
    NoAcceptance,
    /// An acceptance criterion without an executable test.
    #[error("{field}: empty: every acceptance criterion must name an executable test (a command and a test name)")]
    MissingTest {
        /// Field path, e.g. `acceptance[1].test.name`.
        field: String,
    },
    /// Two criteria share an id.
    #[error("{field}: duplicate acceptance id `{id}`")]
    DuplicateCriterion {
        /// Field path.
        field: String,
        /// The id.
        id: String,
    },
    /// A path glob is invalid, absolute or climbs out of the repository.
    #[error("{field}: `{pattern}` is not a repository-relative glob: {reason}")]
    BadPathGlob {
        /// Field path, e.g. `paths.outputs[0]`.
        field: String,
        /// The glob.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A limit is zero or not a positive amount.
    #[error("limits.{field}: {value} must be greater than 0")]
    BadLimit {
        /// Field name.
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// no_progress larger than iterations can never trigger.
    #[error("limits.no_progress: {no_progress} is larger than limits.iterations ({iterations}), so it could never trigger")]
    NoProgressAboveIterations {
        /// no_progress.
        no_progress: u32,
        /// iterations.
        iterations: u32,
    },
    /// Coverage above 100.
    #[error("coverage.changed_lines_min_pct: {value} is above 100")]
    CoverageAbove100 {
        /// The value.
        value: u8,
    },
    /// No outputs: the work could not change anything.
    #[error("paths.outputs: empty: an FR must declare which files the work may change")]
    NoOutputs,
    /// A coverage command that does not say where the lcov goes.
    #[error("coverage.command: `{command}` must contain `{{lcov}}`, the path the tracefile is written to")]
    CoverageCommandNoLcov {
        /// The command.
        command: String,
    },
}

impl FrError {
    /// The field path the error is about.
    pub fn field(&self) -> String {
        match self {
            FrError::BadId { .. } | FrError::IdMismatch { .. } => "id".into(),
            FrError::Empty { field } => (*field).into(),
            FrError::NoAcceptance => "acceptance".into(),
            FrError::MissingTest { field }
            | FrError::DuplicateCriterion { field, .. }
            | FrError::BadPathGlob { field, .. } => field.clone(),
            FrError::BadLimit { field, .. } => format!("limits.{field}"),
            FrError::NoProgressAboveIterations { .. } => "limits.no_progress".into(),
            FrError::CoverageAbove100 { .. } => "coverage.changed_lines_min_pct".into(),
            FrError::CoverageCommandNoLcov { .. } => "coverage.command".into(),
            FrError::NoOutputs => "paths.outputs".into(),
        }
    }
}

/// Whether `id` is `FR-<digits>`.
pub fn is_fr_id(id: &str) -> bool {
    id.strip_prefix("FR-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl Fr {
    /// Checks everything parsing cannot. `file_name`, when given, must be `<id>.yaml`.
    pub fn validate(&self, file_name: Option<&str>) -> Result<(), FrError> {
        if !is_fr_id(&self.id) {
            return Err(FrError::BadId {
                id: self.id.clone(),
            });
        }
        if let Some(file) = file_name {
            if file != format!("{}.yaml", self.id) {
                return Err(FrError::IdMismatch {
                    id: self.id.clone(),
                    file: file.to_owned(),
                });
            }
        }
        for (field, v) in [
            ("title", &self.title),
            ("owner", &self.owner),
            ("objective", &self.objective),
        ] {
            if v.trim().is_empty() {
                return Err(FrError::Empty { field });
            }
        }
        for (list, globs) in [
            ("paths.inputs", &self.paths.inputs),
            ("paths.outputs", &self.paths.outputs),
        ] {
            for (i, g) in globs.iter().enumerate() {
                check_repo_glob(format!("{list}[{i}]"), g)?;
            }
        }
        if self.paths.outputs.is_empty() {
            return Err(FrError::NoOutputs);
        }
        if self.acceptance.is_empty() {
            return Err(FrError::NoAcceptance);
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, ac) in self.acceptance.iter().enumerate() {
            if ac.id.trim().is_empty() {
                return Err(FrError::MissingTest {
                    field: format!("acceptance[{i}].id"),
                });
            }
            if !ids.insert(ac.id.as_str()) {
                return Err(FrError::DuplicateCriterion {
                    field: format!("acceptance[{i}].id"),
                    id: ac.id.clone(),
                });
            }
            if ac.test.command.split_whitespace().next().is_none() {
                return Err(FrError::MissingTest {
                    field: format!("acceptance[{i}].test.command"),
                });
            }
            if ac.test.name.trim().is_empty() {
                return Err(FrError::MissingTest {
                    field: format!("acceptance[{i}].test.name"),
                });
            }
        }
        let l = &self.limits;
        if !(l.cost_usd.is_finite() && l.cost_usd > 0.0) {
            return Err(FrError::BadLimit {
                field: "cost_usd",
                value: l.cost_usd,
            });
        }
        for (field, v) in [
            ("runtime_seconds", l.runtime_seconds),
            ("iterations", u64::from(l.iterations)),
            ("no_progress", u64::from(l.no_progress)),
            ("files", u64::from(l.files)),
            ("tool_calls", u64::from(l.tool_calls)),
        ] {
            if v == 0 {
                return Err(FrError::BadLimit { field, value: 0.0 });
            }
        }
        if l.no_progress > l.iterations {
            return Err(FrError::NoProgressAboveIterations {
                no_progress: l.no_progress,
                iterations: l.iterations,
            });
        }
        if let Some(c) = &self.coverage {
            if c.changed_lines_min_pct > 100 {
                return Err(FrError::CoverageAbove100 {
                    value: c.changed_lines_min_pct,
                });
            }
            if let Some(cmd) = &c.command {
                if !cmd.split_whitespace().any(|a| a.contains("{lcov}")) {
                    return Err(FrError::CoverageCommandNoLcov {
                        command: cmd.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The distinct test commands of the acceptance criteria, in first-seen order.
    pub fn test_commands(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for ac in &self.acceptance {
            if !out.contains(&ac.test.command) {
                out.push(ac.test.command.clone());
            }
        }
        out
    }
}

/// Checks that `g` is a valid glob relative to the repository root (not absolute, no `..`).
pub(crate) fn check_repo_glob(field: String, g: &str) -> Result<(), FrError> {
    let reason = if g.trim().is_empty() {
        Some("empty".to_owned())
    } else if g.starts_with('/') {
        Some("absolute paths are not allowed".to_owned())
    } else if g.split('/').any(|s| s == "..") {
        Some("`..` is not allowed".to_owned())
    } else {
        parse_glob(g).err().map(|e| e.to_string())
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(FrError::BadPathGlob {
            field,
            pattern: g.to_owned(),
            reason,
        }),
    }
}

#[cfg(test)]
#[path = "fr_tests.rs"]
mod tests;
