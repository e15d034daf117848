//! The role-specific part of a `task` frame (`Task::input`): what the orchestrator sends each
//! role besides the common fields. The orchestrator builds these with the same types, so the
//! JSON shapes cannot drift apart.

use std::path::PathBuf;

use protocol::fr::{Fr, FrLimits, TestRef};
use protocol::frame::TestResults;
use serde::{Deserialize, Serialize};

/// Planner: the FR and the run's effective limits (strictest of FR, config.yaml, roles.yaml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerInput {
    /// The run.
    pub run_id: String,
    /// The validated FR.
    pub fr: Fr,
    /// Effective run limits.
    pub limits: FrLimits,
    /// Effective cost ceiling of the run, USD.
    pub cost_usd: f64,
    /// Ceiling for one model request, USD.
    pub per_request_usd: f64,
    /// Budget thresholds (percent).
    pub warn_pct: u8,
    /// Pause threshold (percent).
    pub escalate_pct: u8,
    /// Stop threshold (percent).
    pub stop_pct: u8,
    /// The run's agent branch.
    pub agent_branch: String,
    /// Approved test commands.
    pub test_commands: Vec<String>,
    /// Read-only view of the repository at the base commit.
    pub repo: PathBuf,
}

/// Codegen: where the recorded session is and where to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodegenInput {
    /// The recorded session (replay driver).
    pub session: PathBuf,
    /// The writable view of the repository (overlay, or a copy in the weaker mode).
    pub worktree: PathBuf,
    /// The `command` driver: the CLI to run and its task (absent: replay `session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandTask>,
    /// The `llm` driver: the model, the task and the previous iteration's test results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmTask>,
}

/// What the `llm` driver needs for one iteration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmTask {
    /// roles.yaml `roles.codegen.llm`.
    pub settings: protocol::roles::LlmSettings,
    /// The first user message: the FR's objective, scope and acceptance.
    pub task: String,
    /// The plan's targets (named in the built-in system prompt).
    pub targets: Vec<String>,
    /// The previous iteration's test results, in words (empty in iteration 1): the result of the
    /// model's `run_tests` call.
    #[serde(default)]
    pub feedback: Vec<String>,
    /// Model requests this iteration may make: the smaller of `llm.max_turns` and the tool calls
    /// the plan has left.
    pub max_turns: u32,
    /// One model request is abandoned after this many seconds.
    pub timeout_s: u64,
}

/// What the `command` driver runs for one iteration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandTask {
    /// roles.yaml `roles.codegen.command`.
    pub settings: protocol::roles::CommandSettings,
    /// The task text given to the CLI (`{task}`): the FR's objective, scope and acceptance.
    pub task: String,
    /// The CLI is killed after this many seconds.
    pub timeout_s: u64,
}

/// Test-runner: the candidate tree (read-only) and a scratch directory for builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRunnerInput {
    /// The tree to test.
    pub tree: PathBuf,
    /// Scratch directory (CARGO_TARGET_DIR lives below it).
    pub scratch: PathBuf,
    /// Coverage to measure, when the plan sets a threshold (absent on the baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<CoverageTask>,
}

/// What the test-runner needs to measure coverage of a change: the first `cargo test` command
/// runs through `cargo llvm-cov`, and the change is the difference from `base_tree` to the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageTask {
    /// The base commit's tree (read-only).
    pub base_tree: PathBuf,
    /// The coverage run is killed after this many seconds.
    pub timeout_s: u64,
    /// The FR's own coverage command (`{lcov}` is replaced by the tracefile's path); absent:
    /// the first `cargo test` command runs through `cargo llvm-cov`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// Progress-evaluator: the previous and the current results and the acceptance tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressInput {
    /// Results of the previous iteration (or the baseline).
    pub previous: TestResults,
    /// Results of this iteration.
    pub current: TestResults,
    /// The acceptance tests of the plan.
    pub acceptance: Vec<TestRef>,
}

/// One budget dimension cost-control watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// `wall_clock_s`, `tool_calls`, `iterations`, `cost_usd`.
    pub dimension: String,
    /// Used so far.
    pub used: f64,
    /// The ceiling.
    pub limit: f64,
}

/// Cost-control: usage of each dimension and the thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostInput {
    /// Each dimension.
    pub usage: Vec<Usage>,
    /// Model spend so far, USD (the gateway reports it; 0 without model calls).
    pub spent_usd: f64,
    /// The run's cost ceiling, USD.
    pub limit_usd: f64,
    /// Warn at this percentage.
    pub warn_pct: u8,
    /// Pause at this percentage.
    pub escalate_pct: u8,
    /// Stop at this percentage.
    pub stop_pct: u8,
}

/// Security-review: the base and candidate trees and the policy to check against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// The base commit's tree.
    pub base_tree: PathBuf,
    /// The candidate's tree.
    pub candidate_tree: PathBuf,
    /// roles.yaml `protected_paths`.
    pub protected_paths: Vec<String>,
    /// Files the plan expects to change.
    pub expected_files: u64,
}
