//! `WORK_PLAN.json`: what the planner commits the run to.
//!
//! The orchestrator validates it, it is immutable for the run, and its hash (`WorkPlan::hash`)
//! is bound into every later artifact, so an artifact from another plan cannot be passed off
//! as this run's.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::canonical::{self, tagged_hash, CanonicalError, Digest32};
use crate::fr::{is_fr_id, RiskClass, TestRef};
use crate::stop::StopCode;

/// Domain tag of plan hashes.
pub const PLAN_HASH_DOMAIN: &str = "orchestrate/plan/v1";

/// The work plan of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkPlan {
    /// Unique id of the plan (appears in every agent commit message).
    pub plan_id: String,
    /// The FRs this plan implements.
    pub fr_ids: Vec<String>,
    /// Declared target files (repository-relative paths) the change may touch.
    pub targets: Vec<String>,
    /// What is expected to change in each target.
    pub expected_changes: Vec<ExpectedChange>,
    /// Risk class.
    pub risk_class: RiskClass,
    /// Minimum coverage of changed lines, percent.
    pub coverage_min_pct: u8,
    /// Most iterations.
    pub iteration_cap: u32,
    /// Consecutive iterations without progress before STOP_NO_PROGRESS.
    pub no_progress_cap: u32,
    /// Most tool calls.
    pub tool_call_cap: u32,
    /// Most files the change may touch.
    pub file_cap: u32,
    /// Wall-clock ceiling, seconds.
    pub runtime_seconds: u64,
    /// Budget limits and thresholds.
    pub budget: PlanBudget,
    /// Branch and promotion policy.
    pub branch: BranchPolicy,
    /// Security gate policy.
    pub security_gate: SecurityGatePolicy,
    /// Stop conditions in force; must include every mandatory one.
    pub stop_conditions: Vec<StopCode>,
    /// Approved test commands (argv strings, never a shell).
    pub test_commands: Vec<String>,
    /// Acceptance tests that must pass (copied from the FR so the gate decides from artifacts).
    #[serde(default)]
    pub acceptance_tests: Vec<PlannedTest>,
}

/// One acceptance test the gate will require.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlannedTest {
    /// The FR's criterion id, e.g. `AC-1`.
    pub criterion: String,
    /// The test.
    pub test: TestRef,
}

/// An expected change to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedChange {
    /// Repository-relative path; must be one of the targets.
    pub path: String,
    /// Kind of change.
    pub change: ChangeKind,
    /// What changes, in words.
    pub description: String,
}

/// Kind of change to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new file.
    Create,
    /// An edit of an existing file.
    Modify,
    /// A removed file.
    Delete,
}

/// Budget limits and thresholds of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBudget {
    /// Cost ceilings.
    pub limits: BudgetLimits,
    /// Warn at this percentage.
    pub warn_pct: u8,
    /// Pause for a human at this percentage.
    pub escalate_pct: u8,
    /// Stop at this percentage.
    pub stop_pct: u8,
}

/// Cost ceilings, USD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetLimits {
    /// Ceiling for one model request.
    pub per_request_usd: f64,
    /// Ceiling for the run.
    pub per_run_usd: f64,
}

/// Branch and promotion policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchPolicy {
    /// The agent branch, `agent/<FR>/<run>`.
    pub agent_branch: String,
    /// How the work may be promoted.
    pub promotion: PromotionPolicy,
}

/// How an agent branch may be promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionPolicy {
    /// Branch the gate fast-forwards after its checks, e.g. `staging`.
    pub staging_branch: String,
    /// Branch a human approval promotes to, e.g. `main`.
    pub main_branch: String,
    /// Only fast-forwards (never a force push or merge commit); must be true.
    pub fast_forward_only: bool,
    /// staging -> main needs a human approver; must be true.
    pub require_human_approval: bool,
}

/// What the security gate blocks on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityGatePolicy {
    /// A finding of any of these severities blocks promotion; must include critical and high.
    pub block_severities: Vec<Severity>,
}

/// Severity of a security finding (SARIF maps critical/high to `error`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// A plan that parses but cannot be accepted. Every variant names the field.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A required string is empty.
    #[error("{field}: must not be empty")]
    Empty {
        /// Field path.
        field: &'static str,
    },
    /// An FR id is malformed.
    #[error("fr_ids[{index}]: `{id}` is not of the form FR-<number>")]
    BadFrId {
        /// Index.
        index: usize,
        /// The id.
        id: String,
    },
    /// A target is not a clean repository-relative path.
    #[error(
        "{field}: `{path}` must be a repository-relative path without `..`, `.` or empty segments"
    )]
    BadTarget {
        /// Field path.
        field: String,
        /// The path.
        path: String,
    },
    /// An expected change is about a file that is not a declared target.
    #[error("expected_changes[{index}].path: `{path}` is not one of the declared targets")]
    ChangeOutsideTargets {
        /// Index.
        index: usize,
        /// The path.
        path: String,
    },
    /// More targets than the file cap allows.
    #[error("targets: {count} targets exceed file_cap ({cap})")]
    TargetsAboveFileCap {
        /// Number of targets.
        count: usize,
        /// The cap.
        cap: u32,
    },
    /// A cap is zero.
    #[error("{field}: must be greater than 0")]
    ZeroCap {
        /// Field name.
        field: &'static str,
    },
    /// no_progress_cap above iteration_cap.
    #[error("no_progress_cap: {no_progress} is larger than iteration_cap ({iterations})")]
    NoProgressAboveIterations {
        /// no_progress_cap.
        no_progress: u32,
        /// iteration_cap.
        iterations: u32,
    },
    /// Coverage above 100.
    #[error("coverage_min_pct: {value} is above 100")]
    CoverageAbove100 {
        /// The value.
        value: u8,
    },
    /// A budget is not a positive amount or per-request exceeds per-run.
    #[error("budget.limits: per_request_usd ({per_request}) and per_run_usd ({per_run}) must be positive and per_request_usd <= per_run_usd")]
    BadBudget {
        /// per_request_usd.
        per_request: f64,
        /// per_run_usd.
        per_run: f64,
    },
    /// Thresholds out of order or above 100.
    #[error("budget: thresholds must satisfy 0 < warn_pct ({warn}) <= escalate_pct ({escalate}) <= stop_pct ({stop}) <= 100")]
    Thresholds {
        /// warn_pct.
        warn: u8,
        /// escalate_pct.
        escalate: u8,
        /// stop_pct.
        stop: u8,
    },
    /// The agent branch is not under `agent/`.
    #[error("branch.agent_branch: `{branch}` must start with `agent/`: agents never write other branches")]
    BadAgentBranch {
        /// The branch.
        branch: String,
    },
    /// Promotion policy weaker than the design allows.
    #[error("branch.promotion.{field}: must be true")]
    WeakPromotion {
        /// Field name.
        field: &'static str,
    },
    /// The security gate does not block a severity it must.
    #[error("security_gate.block_severities: must include `{missing:?}`")]
    GateTooWeak {
        /// The missing severity.
        missing: Severity,
    },
    /// A mandatory stop condition is missing.
    #[error("stop_conditions: must include {missing}")]
    MissingStopCondition {
        /// The missing code.
        missing: StopCode,
    },
    /// No test commands.
    #[error("test_commands: empty: the run could not validate anything")]
    NoTestCommands,
    /// An empty test command.
    #[error("test_commands[{index}]: empty command")]
    EmptyTestCommand {
        /// Index.
        index: usize,
    },
}

impl WorkPlan {
    /// The plan hash: `tagged_hash("orchestrate/plan/v1", canonical JSON)`.
    pub fn hash(&self) -> Result<Digest32, CanonicalError> {
        let bytes = canonical::to_vec(self)?;
        Ok(tagged_hash(PLAN_HASH_DOMAIN, &[&bytes]))
    }

    /// Checks the plan on its own: shapes, caps, and the non-negotiable policies (agent branch,
    /// fast-forward only, human approval, critical/high block, mandatory stop conditions).
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.plan_id.trim().is_empty() {
            return Err(PlanError::Empty { field: "plan_id" });
        }
        if self.fr_ids.is_empty() {
            return Err(PlanError::Empty { field: "fr_ids" });
        }
        for (index, id) in self.fr_ids.iter().enumerate() {
            if !is_fr_id(id) {
                return Err(PlanError::BadFrId {
                    index,
                    id: id.clone(),
                });
            }
        }
        if self.targets.is_empty() {
            return Err(PlanError::Empty { field: "targets" });
        }
        for (i, t) in self.targets.iter().enumerate() {
            if !is_clean_relative_path(t) {
                return Err(PlanError::BadTarget {
                    field: format!("targets[{i}]"),
                    path: t.clone(),
                });
            }
        }
        for (index, c) in self.expected_changes.iter().enumerate() {
            if !self.targets.contains(&c.path) {
                return Err(PlanError::ChangeOutsideTargets {
                    index,
                    path: c.path.clone(),
                });
            }
        }
        for (field, v) in [
            ("iteration_cap", u64::from(self.iteration_cap)),
            ("no_progress_cap", u64::from(self.no_progress_cap)),
            ("tool_call_cap", u64::from(self.tool_call_cap)),
            ("file_cap", u64::from(self.file_cap)),
            ("runtime_seconds", self.runtime_seconds),
        ] {
            if v == 0 {
                return Err(PlanError::ZeroCap { field });
            }
        }
        if self.targets.len() > self.file_cap as usize {
            return Err(PlanError::TargetsAboveFileCap {
                count: self.targets.len(),
                cap: self.file_cap,
            });
        }
        if self.no_progress_cap > self.iteration_cap {
            return Err(PlanError::NoProgressAboveIterations {
                no_progress: self.no_progress_cap,
                iterations: self.iteration_cap,
            });
        }
        if self.coverage_min_pct > 100 {
            return Err(PlanError::CoverageAbove100 {
                value: self.coverage_min_pct,
            });
        }
        self.validate_budget()?;
        self.validate_policies()?;
        if self.test_commands.is_empty() {
            return Err(PlanError::NoTestCommands);
        }
        for (index, c) in self.test_commands.iter().enumerate() {
            if c.split_whitespace().next().is_none() {
                return Err(PlanError::EmptyTestCommand { index });
            }
        }
        Ok(())
    }

    fn validate_budget(&self) -> Result<(), PlanError> {
        let b = &self.budget;
        let (req, run) = (b.limits.per_request_usd, b.limits.per_run_usd);
        if !(req.is_finite() && run.is_finite() && req > 0.0 && run > 0.0 && req <= run) {
            return Err(PlanError::BadBudget {
                per_request: req,
                per_run: run,
            });
        }
        if !(b.warn_pct > 0
            && b.warn_pct <= b.escalate_pct
            && b.escalate_pct <= b.stop_pct
            && b.stop_pct <= 100)
        {
            return Err(PlanError::Thresholds {
                warn: b.warn_pct,
                escalate: b.escalate_pct,
                stop: b.stop_pct,
            });
        }
        Ok(())
    }

    fn validate_policies(&self) -> Result<(), PlanError> {
        let branch = &self.branch;
        if !branch.agent_branch.starts_with("agent/") || branch.agent_branch.len() <= 6 {
            return Err(PlanError::BadAgentBranch {
                branch: branch.agent_branch.clone(),
            });
        }
        let p = &branch.promotion;
        if p.staging_branch.trim().is_empty() {
            return Err(PlanError::Empty {
                field: "branch.promotion.staging_branch",
            });
        }
        if p.main_branch.trim().is_empty() {
            return Err(PlanError::Empty {
                field: "branch.promotion.main_branch",
            });
        }
        if !p.fast_forward_only {
            return Err(PlanError::WeakPromotion {
                field: "fast_forward_only",
            });
        }
        if !p.require_human_approval {
            return Err(PlanError::WeakPromotion {
                field: "require_human_approval",
            });
        }
        for missing in [Severity::Critical, Severity::High] {
            if !self.security_gate.block_severities.contains(&missing) {
                return Err(PlanError::GateTooWeak { missing });
            }
        }
        for missing in StopCode::MANDATORY {
            if !self.stop_conditions.contains(&missing) {
                return Err(PlanError::MissingStopCondition { missing });
            }
        }
        Ok(())
    }
}

/// Whether `p` is a clean repository-relative path: no leading `/`, no `.`/`..`/empty segments.
pub fn is_clean_relative_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\0')
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
