//! `roles.yaml`: who may read, write, run and send what, with which limits.
//!
//! The platform owner writes this file; every role process, the gate and the orchestrator read it.
//! Field names are the contract (see `/roles.yaml` and `schemas/roles.schema.json`); validation
//! (in `roles_validate.rs`) refuses a file that would leave a role with an unclear or unsafe policy.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::frame::MessageKind;

pub use crate::roles_validate::{ProtectedPaths, RolesError};

/// The whole `roles.yaml` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolesFile {
    /// Schema version of this file; only `1` exists.
    pub version: u32,
    /// Containment settings shared by every role.
    pub sandbox: SandboxSettings,
    /// One policy per role; all six roles must be present.
    #[schemars(schema_with = "roles_map_schema")]
    pub roles: BTreeMap<RoleName, RolePolicy>,
    /// The promotion gate's OS identity.
    pub gate: ServiceUser,
    /// The orchestrator's OS identity.
    pub orchestrator: ServiceUser,
    /// Cost budgets and their thresholds.
    pub budgets: Budgets,
    /// Globs (from the repository root) that no agent diff may touch.
    pub protected_paths: Vec<String>,
    /// OS users allowed to promote staging to main.
    pub approvers: Vec<String>,
    /// The model gateway cost-control runs for each run; absent: no role can reach a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySettings>,
    /// What the gate does with a review finding, by severity and by rule id. Absent: critical and
    /// high block, the rest are notes.
    #[serde(default)]
    pub severity_policy: SeverityPolicy,
    /// Thresholds of the anomaly rules the orchestrator checks each iteration, and which of them
    /// may stop a run. Absent: the defaults below.
    #[serde(default)]
    pub anomaly: AnomalyPolicy,
}

/// What an anomaly rule does when it fires.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyAction {
    /// An audit event only.
    Event,
    /// An audit event, and a stop with the rule's reason code at its stop threshold.
    Stop,
}

/// `anomaly:` — thresholds of the per-iteration anomaly rules and whether each may stop the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyPolicy {
    /// Changed lines allowed per plan target before `diff_size` fires.
    pub lines_per_target: u64,
    /// `diff_size` stops beyond this multiple of the allowance.
    pub diff_stop_factor: u64,
    /// `repeated_call` fires at this many identical tool calls in one iteration.
    pub repeat_event: u32,
    /// ...and stops at this many.
    pub repeat_stop: u32,
    /// `cost_jump` fires above this multiple of the earlier iterations' mean.
    pub jump_factor: f64,
    /// Per rule (`file_type`, `diff_size`, `dependency`, `critical_path`, `repeated_call`,
    /// `cost_jump`): `stop` or `event`. A rule not listed keeps its default.
    pub actions: BTreeMap<String, AnomalyAction>,
}

/// The anomaly rules, by name, with their default action.
pub const ANOMALY_RULES: [(&str, AnomalyAction); 6] = [
    ("file_type", AnomalyAction::Stop),
    ("diff_size", AnomalyAction::Stop),
    ("dependency", AnomalyAction::Stop),
    ("critical_path", AnomalyAction::Stop),
    ("repeated_call", AnomalyAction::Stop),
    ("cost_jump", AnomalyAction::Event),
];

impl Default for AnomalyPolicy {
    fn default() -> Self {
        AnomalyPolicy {
            lines_per_target: 400,
            diff_stop_factor: 3,
            repeat_event: 3,
            repeat_stop: 10,
            jump_factor: 3.0,
            actions: BTreeMap::new(),
        }
    }
}

impl AnomalyPolicy {
    /// Whether rule `rule` may stop the run.
    pub fn stops(&self, rule: &str) -> bool {
        let default = ANOMALY_RULES
            .iter()
            .find(|(r, _)| *r == rule)
            .map_or(AnomalyAction::Event, |(_, a)| *a);
        self.actions.get(rule).copied().unwrap_or(default) == AnomalyAction::Stop
    }
}

/// What the gate does with a review finding.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingAction {
    /// Listed in the receipt; nothing waits.
    Note,
    /// The gate holds the promotion until an approver lifts the hold.
    Human,
    /// The gate fails the promotion.
    Block,
}

impl FindingAction {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingAction::Note => "note",
            FindingAction::Human => "human",
            FindingAction::Block => "block",
        }
    }
}

/// `severity_policy:` — an action per severity, and per-rule overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeverityPolicy {
    /// Critical findings (must be `block`).
    pub critical: FindingAction,
    /// High findings.
    pub high: FindingAction,
    /// Medium findings.
    pub medium: FindingAction,
    /// Low findings.
    pub low: FindingAction,
    /// Informational findings (SARIF `note`).
    pub info: FindingAction,
    /// Overrides by rule id, e.g. `{ rule: ORC-DEP-BUMP-MAJOR, action: human }`; a rule ending
    /// in `*` is a prefix (`ORC-DEP-*`). An exact id wins over a prefix, a longer prefix over a
    /// shorter one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleAction>,
}

/// One per-rule override of the severity policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleAction {
    /// A rule id (`ORC-SECRET-AWS-KEY`) or a prefix ending in `*` (`ORC-DEP-*`).
    pub rule: String,
    /// What the gate does with that rule's findings.
    pub action: FindingAction,
}

impl Default for SeverityPolicy {
    /// The gate's rule before the policy existed: zero critical or high findings.
    fn default() -> Self {
        SeverityPolicy {
            critical: FindingAction::Block,
            high: FindingAction::Block,
            medium: FindingAction::Note,
            low: FindingAction::Note,
            info: FindingAction::Note,
            rules: Vec::new(),
        }
    }
}

impl SeverityPolicy {
    /// The action for a finding of rule `rule_id` at `severity`.
    pub fn action(&self, rule_id: &str, severity: crate::plan::Severity) -> FindingAction {
        let exact = self.rules.iter().find(|r| r.rule == rule_id);
        let prefix = || {
            self.rules
                .iter()
                .filter_map(|r| {
                    let p = r.rule.strip_suffix('*')?;
                    rule_id.starts_with(p).then_some((p.len(), r.action))
                })
                .max_by_key(|(len, _)| *len)
                .map(|(_, a)| a)
        };
        if let Some(r) = exact {
            return r.action;
        }
        if let Some(a) = prefix() {
            return a;
        }
        use crate::plan::Severity;
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Info => self.info,
        }
    }
}

/// The `roles:` map as editors should see it: the six role names as properties, all required,
/// nothing else (a map keyed by an enum would only say "any key").
fn roles_map_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let policy = generator.subschema_for::<RolePolicy>();
    let properties: serde_json::Map<String, serde_json::Value> = RoleName::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), policy.clone().to_value()))
        .collect();
    let required: Vec<&str> = RoleName::ALL.iter().map(|r| r.as_str()).collect();
    schemars::json_schema!({
        "description": "One policy per role; all six roles must be present.",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The six roles. The kebab-case strings are stable: they name OS users' policies, key files and
/// audit rows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RoleName {
    /// Turns the FR into a WORK_PLAN.
    Planner,
    /// Writes the change.
    Codegen,
    /// Reviews the diff with deterministic rules.
    SecurityReview,
    /// Runs the approved test commands.
    TestRunner,
    /// Runs the model gateway and keeps the cost ledger.
    CostControl,
    /// Judges whether an iteration made progress.
    ProgressEvaluator,
}

impl RoleName {
    /// All six roles, in pipeline order.
    pub const ALL: [RoleName; 6] = [
        RoleName::Planner,
        RoleName::Codegen,
        RoleName::SecurityReview,
        RoleName::TestRunner,
        RoleName::CostControl,
        RoleName::ProgressEvaluator,
    ];

    /// The stable kebab-case name, e.g. `security-review`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Planner => "planner",
            RoleName::Codegen => "codegen",
            RoleName::SecurityReview => "security-review",
            RoleName::TestRunner => "test-runner",
            RoleName::CostControl => "cost-control",
            RoleName::ProgressEvaluator => "progress-evaluator",
        }
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the six role names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`, expected one of: planner, codegen, security-review, test-runner, cost-control, progress-evaluator")]
pub struct UnknownRole(pub String);

impl FromStr for RoleName {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoleName::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// One role's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePolicy {
    /// The OS user the role runs as.
    pub user: String,
    /// Readable paths: a placeholder (`{repo}`, `{volume}`, `{scratch}`, `{toolchain}`, optionally
    /// followed by `/sub/path`) or an absolute path.
    pub read: Vec<String>,
    /// Writable paths: only placeholders that live on the sandbox volume
    /// (`{repo}`, `{volume}`, `{scratch}`).
    pub write: Vec<String>,
    /// Network access.
    pub network: Network,
    /// argv prefixes the role may execute (never a shell).
    pub commands: Vec<String>,
    /// Message kinds the role may send to the orchestrator.
    pub messages: Vec<MessageKind>,
    /// Resource limits.
    pub limits: Limits,
    /// What drives the role.
    pub driver: Driver,
    /// The coding-agent CLI the `command` driver runs (codegen only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSettings>,
    /// The model and limits of the built-in `llm` driver's tool loop (codegen only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSettings>,
}

impl RolePolicy {
    /// Whether this role may send a message of `kind`.
    pub fn may_send(&self, kind: MessageKind) -> bool {
        self.messages.contains(&kind)
    }

    /// Whether `command` (split on whitespace) starts with one of the role's command prefixes,
    /// compared word by word so `cargo test` covers `cargo test --lib` but not `cargo testx`.
    pub fn may_run(&self, command: &str) -> bool {
        self.commands.iter().any(|p| command_has_prefix(command, p))
    }
}

/// Whether `command` starts with `prefix`, word by word (whitespace-separated).
pub fn command_has_prefix(command: &str, prefix: &str) -> bool {
    let mut cmd = command.split_whitespace();
    let mut any = false;
    for word in prefix.split_whitespace() {
        any = true;
        if cmd.next() != Some(word) {
            return false;
        }
    }
    any
}

/// Network policy of a role: `none`, `gateway`, or `{allowlist: [host:port, ...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// Loopback only, in a network namespace of its own.
    None,
    /// Only the cost-control gateway's unix socket.
    Gateway,
    /// The gateway plus these `host:port` destinations.
    Allowlist(Vec<String>),
}

/// Resource limits of one role process. All values must be positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPU time (RLIMIT_CPU), seconds.
    pub cpu_seconds: u64,
    /// Memory (cgroup memory limit), MiB.
    pub memory_mb: u64,
    /// Processes and threads (cgroup pids limit).
    pub pids: u64,
    /// Wall-clock time, enforced by the orchestrator, seconds.
    pub wall_seconds: u64,
    /// Open files (RLIMIT_NOFILE).
    pub nofile: u64,
    /// Largest file the role may write (RLIMIT_FSIZE), MiB.
    pub fsize_mb: u64,
}

/// What drives a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// Built-in deterministic logic, no model.
    Deterministic,
    /// Applies a recorded agent session.
    Replay,
    /// Runs a coding-agent CLI inside the sandbox.
    Command,
    /// Built-in tool loop against a model API through the gateway.
    Llm,
}

impl Driver {
    /// The stable snake_case name, as written in roles.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Deterministic => "deterministic",
            Driver::Replay => "replay",
            Driver::Command => "command",
            Driver::Llm => "llm",
        }
    }
}

/// Containment settings shared by every role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// Layers that must be live for a role to start (unless `--allow-weaker`).
    pub require: Vec<Layer>,
    /// Absolute system paths bound read-only into every role's root.
    pub system_read: Vec<String>,
    /// Environment variables that may pass into a role.
    pub env_allow: Vec<String>,
    /// The per-run sandbox volume.
    pub volume: VolumeSettings,
}

/// A containment layer. The snake_case strings are stable (manifests and `doctor` print them).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Per-role OS user and group.
    Identity,
    /// Mount namespace, minimal root, overlay repo view.
    Mount,
    /// PID namespace.
    Pid,
    /// IPC namespace.
    Ipc,
    /// UTS namespace.
    Uts,
    /// Network namespace with loopback only.
    Network,
    /// Landlock filesystem and TCP rules.
    Landlock,
    /// seccomp syscall filter.
    Seccomp,
    /// Resource rlimits.
    Rlimits,
    /// cgroup memory and pids limits.
    Cgroups,
    /// Empty environment plus an allowlist.
    Env,
}

impl Layer {
    /// Every layer, in the order they are listed in the design.
    pub const ALL: [Layer; 11] = [
        Layer::Identity,
        Layer::Mount,
        Layer::Pid,
        Layer::Ipc,
        Layer::Uts,
        Layer::Network,
        Layer::Landlock,
        Layer::Seccomp,
        Layer::Rlimits,
        Layer::Cgroups,
        Layer::Env,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Identity => "identity",
            Layer::Mount => "mount",
            Layer::Pid => "pid",
            Layer::Ipc => "ipc",
            Layer::Uts => "uts",
            Layer::Network => "network",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Rlimits => "rlimits",
            Layer::Cgroups => "cgroups",
            Layer::Env => "env",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a layer name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown containment layer `{0}`")]
pub struct UnknownLayer(pub String);

impl FromStr for Layer {
    type Err = UnknownLayer;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Layer::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownLayer(s.to_owned()))
    }
}

/// The per-run sandbox volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeSettings {
    /// Plain directory, or a loop-mounted ext4 image that caps disk writes.
    pub kind: VolumeKind,
    /// Size of the ext4 image (and the write quota), MiB.
    pub size_mb: u64,
}

/// How the sandbox volume is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VolumeKind {
    /// A directory in the state dir (no disk quota).
    Directory,
    /// A loop-mounted ext4 image of `size_mb`.
    Ext4,
}

/// An OS identity of a service process (gate, orchestrator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceUser {
    /// OS user name.
    pub user: String,
}

/// Cost budgets (USD) and the percentages at which cost-control warns, pauses for a human, stops.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Ceiling for one model request.
    pub per_request_usd: f64,
    /// Ceiling for one run.
    pub per_run_usd: f64,
    /// Ceiling for a calendar month.
    pub per_month_usd: f64,
    /// Warn at this percentage of a budget.
    pub warn_pct: u8,
    /// Pause for a human at this percentage.
    pub escalate_pct: u8,
    /// Stop at this percentage.
    pub stop_pct: u8,
}

/// The model gateway (roles.yaml `gateway:`): where cost-control sends model requests, the file
/// holding the upstream key, and what each model costs. Budgets come from `budgets:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// The upstream provider.
    pub upstream: UpstreamSettings,
    /// Price table by exact model name; a model missing here is refused (it cannot be estimated).
    pub prices: BTreeMap<String, ModelPrice>,
    /// Output cap injected into requests that carry none, so the estimate bounds the real cost.
    #[serde(default = "default_max_output_tokens")]
    pub default_max_output_tokens: u64,
    /// Loopback TCP port of the relay inside a model-calling role's network namespace (the only
    /// TCP port its Landlock rules allow).
    #[serde(default = "default_relay_port")]
    pub relay_port: u16,
}

fn default_max_output_tokens() -> u64 {
    4096
}

fn default_relay_port() -> u16 {
    18080
}

/// Where model requests go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// `https://host[:port][/prefix]` (TLS spoken by the gateway itself, server certificate checked
    /// against the webpki roots or `ca_file`) or `http://host:port[/prefix]`.
    pub base_url: String,
    /// File holding the upstream API key; the run makes it readable by cost-control's user only.
    pub api_key_file: String,
    /// PEM file of a private CA an `https` upstream's certificate chains to (instead of the
    /// public webpki roots). Read by the orchestrator when the run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// Price of one model, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Input (prompt) tokens.
    pub input_usd_per_mtok: f64,
    /// Output (completion) tokens.
    pub output_usd_per_mtok: f64,
}

/// The coding-agent CLI the `command` driver runs inside the codegen sandbox. In every string,
/// `{task}` is the FR text, `{base_url}` the relay's base URL (`http://127.0.0.1:<port>/v1`),
/// `{home}` the role's throwaway HOME and `{worktree}` the tree it edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandSettings {
    /// argv (never a shell); `argv[0]` is looked up on the role's PATH.
    pub argv: Vec<String>,
    /// Extra environment of the CLI.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The variable that carries the run's gateway token (the CLI's "API key").
    pub token_env: String,
    /// Files written (below `{home}`) before the CLI starts, e.g. its config.
    #[serde(default)]
    pub files: Vec<CommandFile>,
}

/// The built-in `llm` driver (codegen): a tool loop (list, read, write, apply a patch, ask for the
/// approved tests, finish) against the gateway's OpenAI-compatible Chat Completions API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// Model name sent upstream; it needs a price in `gateway.prices`.
    pub model: String,
    /// `max_tokens` of each request (the gateway's estimate bounds the cost with it).
    #[serde(default = "default_llm_max_output_tokens")]
    pub max_output_tokens: u64,
    /// Model requests per iteration at most (the plan's tool-call cap applies as well).
    #[serde(default = "default_llm_max_turns")]
    pub max_turns: u32,
    /// System prompt; absent: the built-in one (tools, work-tree rules, the plan's targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
}

fn default_llm_max_output_tokens() -> u64 {
    4096
}

fn default_llm_max_turns() -> u32 {
    40
}

/// A file the `command` driver writes before starting the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandFile {
    /// Path, starting with `{home}/`.
    pub path: String,
    /// Content (placeholders replaced).
    pub content: String,
}

impl RolesFile {
    /// The policy of `role`; validation guarantees all six are present.
    pub fn role(&self, role: RoleName) -> Option<&RolePolicy> {
        self.roles.get(&role)
    }
}

#[cfg(test)]
#[path = "roles_tests.rs"]
mod tests;
