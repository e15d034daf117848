//! The message bodies roles and the orchestrator exchange inside frames (see `frame`).
//!
//! Every body is tagged by `kind`; `MessageKind` is the same set of strings `roles.yaml` uses in
//! a role's `messages` list, so routing is a lookup, not a translation.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fr::TestRef;
use crate::plan::{Severity, WorkPlan};
use crate::stop::StopCode;

/// A message body, tagged by `kind` (snake_case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// planner -> orchestrator: the proposed plan.
    Plan(PlanMsg),
    /// codegen/planner -> orchestrator: a tool call, counted against the plan's cap.
    ToolCall(ToolCall),
    /// codegen -> orchestrator: the iteration's change is written and ready to commit.
    ChangeReady(ChangeReady),
    /// test-runner -> orchestrator: results of the approved test commands.
    TestResults(TestResults),
    /// security-review -> orchestrator: findings on the diff.
    Review(Review),
    /// progress-evaluator -> orchestrator: did the iteration make progress?
    Progress(Progress),
    /// cost-control -> orchestrator: the cost ledger so far.
    Ledger(Ledger),
    /// cost-control -> orchestrator: a budget threshold was crossed.
    BudgetEvent(BudgetEvent),
    /// any role -> orchestrator: a log line.
    Log(Log),
    /// orchestrator -> role: work to do.
    Task(Task),
    /// orchestrator -> role: the verdict on a tool call.
    ToolResult(ToolResult),
    /// orchestrator -> role: stop now.
    Shutdown(Shutdown),
}

/// The kind of a message; the strings are those of `roles.yaml`'s `messages` lists.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// See [`Message::Plan`].
    Plan,
    /// See [`Message::ToolCall`].
    ToolCall,
    /// See [`Message::ChangeReady`].
    ChangeReady,
    /// See [`Message::TestResults`].
    TestResults,
    /// See [`Message::Review`].
    Review,
    /// See [`Message::Progress`].
    Progress,
    /// See [`Message::Ledger`].
    Ledger,
    /// See [`Message::BudgetEvent`].
    BudgetEvent,
    /// See [`Message::Log`].
    Log,
    /// See [`Message::Task`].
    Task,
    /// See [`Message::ToolResult`].
    ToolResult,
    /// See [`Message::Shutdown`].
    Shutdown,
}

impl MessageKind {
    /// Every kind.
    pub const ALL: [MessageKind; 12] = [
        MessageKind::Plan,
        MessageKind::ToolCall,
        MessageKind::ChangeReady,
        MessageKind::TestResults,
        MessageKind::Review,
        MessageKind::Progress,
        MessageKind::Ledger,
        MessageKind::BudgetEvent,
        MessageKind::Log,
        MessageKind::Task,
        MessageKind::ToolResult,
        MessageKind::Shutdown,
    ];

    /// The stable snake_case string.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Plan => "plan",
            MessageKind::ToolCall => "tool_call",
            MessageKind::ChangeReady => "change_ready",
            MessageKind::TestResults => "test_results",
            MessageKind::Review => "review",
            MessageKind::Progress => "progress",
            MessageKind::Ledger => "ledger",
            MessageKind::BudgetEvent => "budget_event",
            MessageKind::Log => "log",
            MessageKind::Task => "task",
            MessageKind::ToolResult => "tool_result",
            MessageKind::Shutdown => "shutdown",
        }
    }

    /// Whether only the orchestrator sends this kind (to a role).
    pub fn is_from_orchestrator(self) -> bool {
        matches!(
            self,
            MessageKind::Task | MessageKind::ToolResult | MessageKind::Shutdown
        )
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a message kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message kind `{0}`")]
pub struct UnknownKind(pub String);

impl FromStr for MessageKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

impl Message {
    /// The kind of this message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Plan(_) => MessageKind::Plan,
            Message::ToolCall(_) => MessageKind::ToolCall,
            Message::ChangeReady(_) => MessageKind::ChangeReady,
            Message::TestResults(_) => MessageKind::TestResults,
            Message::Review(_) => MessageKind::Review,
            Message::Progress(_) => MessageKind::Progress,
            Message::Ledger(_) => MessageKind::Ledger,
            Message::BudgetEvent(_) => MessageKind::BudgetEvent,
            Message::Log(_) => MessageKind::Log,
            Message::Task(_) => MessageKind::Task,
            Message::ToolResult(_) => MessageKind::ToolResult,
            Message::Shutdown(_) => MessageKind::Shutdown,
        }
    }
}

/// The planner's proposed plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanMsg {
    /// The plan.
    pub plan: WorkPlan,
}

/// A tool call an agent wants to make (or has made, for accounting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// Id unique within the run, echoed in the `tool_result`.
    pub call_id: u64,
    /// Tool name, e.g. `write_file`, `read_file`, `run`.
    pub tool: String,
    /// Tool arguments as the driver gave them.
    #[serde(default)]
    pub args: serde_json::Value,
}

/// The orchestrator's verdict on a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolResult {
    /// The `call_id` of the tool call.
    pub call_id: u64,
    /// Whether the call may proceed.
    pub allowed: bool,
    /// Why it was refused (stop code), if it was.
    #[serde(default)]
    pub stop: Option<StopCode>,
    /// Output or explanation.
    #[serde(default)]
    pub output: serde_json::Value,
}

/// Codegen's change for an iteration is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeReady {
    /// Iteration number, from 1.
    pub iteration: u32,
    /// Files the agent says it changed (the orchestrator checks the volume, not this list).
    pub files: Vec<String>,
    /// Summary in words.
    #[serde(default)]
    pub summary: String,
}

/// Outcome of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    /// Passed.
    Passed,
    /// Failed.
    Failed,
    /// Ignored or skipped.
    Ignored,
}

/// One test's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestOutcome {
    /// Test name as reported by the command.
    pub name: String,
    /// The command that ran it.
    pub command: String,
    /// Outcome.
    pub status: TestStatus,
}

/// One command's run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRun {
    /// The command.
    pub command: String,
    /// Exit code; `None` when killed by a signal.
    pub exit_code: Option<i32>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
    /// SHA-256 (hex) of the captured output, the evidence.
    pub output_sha256: String,
}

/// Test results of an iteration (or of the baseline, iteration 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestResults {
    /// Iteration; 0 is the baseline on the base commit.
    pub iteration: u32,
    /// The commit tested.
    pub commit: String,
    /// Each command run.
    pub commands: Vec<CommandRun>,
    /// Each test's outcome.
    pub tests: Vec<TestOutcome>,
    /// Coverage of changed lines, percent, when measured.
    #[serde(default)]
    pub changed_lines_coverage_pct: Option<f64>,
}

impl TestResults {
    /// Number of failed tests.
    pub fn failed(&self) -> usize {
        self.tests
            .iter()
            .filter(|t| t.status == TestStatus::Failed)
            .count()
    }

    /// Whether `test` passed (matched by command and name).
    pub fn passed(&self, test: &TestRef) -> bool {
        self.tests.iter().any(|t| {
            t.status == TestStatus::Passed && t.name == test.name && t.command == test.command
        })
    }
}

/// One security finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// Rule id, e.g. `secret.aws-key`.
    pub rule_id: String,
    /// Severity.
    pub severity: Severity,
    /// Repository-relative file.
    pub file: String,
    /// 1-based line, when the finding is about one.
    #[serde(default)]
    pub line: Option<u64>,
    /// What was found, in words (never the secret itself).
    pub message: String,
    /// SHA-256 (hex) of the evidence, so it can be matched without being copied.
    pub evidence_sha256: String,
}

/// The security review of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// Iteration reviewed.
    pub iteration: u32,
    /// Commit reviewed.
    pub commit: String,
    /// Findings, possibly none.
    pub findings: Vec<Finding>,
}

/// The progress verdict of an iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Iteration judged.
    pub iteration: u32,
    /// Whether it made progress.
    pub progressed: bool,
    /// Score (higher is better), e.g. acceptance tests passing.
    pub score: f64,
    /// Whether the done criteria are met.
    pub done: bool,
    /// Why, in words.
    pub reason: String,
}

/// The cost ledger so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    /// Model requests made.
    pub requests: u64,
    /// Input tokens.
    pub tokens_in: u64,
    /// Output tokens.
    pub tokens_out: u64,
    /// Spent so far, USD.
    pub spent_usd: f64,
    /// The run's ceiling, USD.
    pub limit_usd: f64,
}

/// Which budget threshold was crossed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BudgetLevel {
    /// warn_pct reached.
    Warn,
    /// escalate_pct reached: pause for a human.
    Escalate,
    /// stop_pct reached: STOP_BUDGET_EXCEEDED.
    Stop,
}

/// A budget threshold was crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetEvent {
    /// Threshold crossed.
    pub level: BudgetLevel,
    /// Spent so far, USD.
    pub spent_usd: f64,
    /// The ceiling, USD.
    pub limit_usd: f64,
    /// spent / limit, percent.
    pub pct: f64,
}

/// Log level.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

/// A log line from a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// Level.
    pub level: LogLevel,
    /// The text.
    pub message: String,
}

/// Work for a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Id unique within the run.
    pub task_id: u64,
    /// The FR.
    pub fr_id: String,
    /// Iteration (0 = baseline / planning).
    pub iteration: u32,
    /// Hex plan hash, once a plan exists.
    #[serde(default)]
    pub plan_hash: Option<String>,
    /// The plan, once it exists.
    #[serde(default)]
    pub plan: Option<WorkPlan>,
    /// Base commit of the run.
    #[serde(default)]
    pub base_commit: Option<String>,
    /// Commit to test or review.
    #[serde(default)]
    pub candidate_commit: Option<String>,
    /// Test commands to run (test-runner).
    #[serde(default)]
    pub test_commands: Vec<String>,
    /// Feedback from the previous iteration (failing tests, findings), in words.
    #[serde(default)]
    pub feedback: Vec<String>,
    /// Role-specific input the fields above do not cover.
    #[serde(default)]
    pub input: serde_json::Value,
}

/// Stop now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    /// Why, when the run stopped for a reason.
    #[serde(default)]
    pub stop: Option<StopCode>,
    /// In words.
    #[serde(default)]
    pub reason: String,
}
