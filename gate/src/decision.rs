//! The gate's decision: what it checked, with which evidence, and what it concluded.
//!
//! A decision is data only: every field comes from the inputs, nothing from the clock or the
//! environment, and every collection is ordered, so the same inputs always serialise to the same
//! canonical bytes (and, ed25519 being deterministic, to the same signature).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Schema tag inside every decision.
pub const DECISION_SCHEMA: &str = "orchestrate/gate-decision/v1";

/// What the gate was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Fast-forward `staging` to the run's agent branch tip.
    PromoteStaging,
    /// Fast-forward `main` to the run's promoted commit (a human approval).
    ApproveMain,
    /// Refuse the run for good (a human decision, with a reason).
    Reject,
    /// Put the protected refs back to where they were before the run's promotions.
    Rollback,
}

impl Action {
    /// Stable name used in file names and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::PromoteStaging => "promote_staging",
            Action::ApproveMain => "approve_main",
            Action::Reject => "reject",
            Action::Rollback => "rollback",
        }
    }
}

/// Outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check passed; the ref may move.
    Pass,
    /// At least one check failed; nothing moves.
    Fail,
    /// Every check passed but policy wants a human first (high risk class).
    Hold,
}

/// Result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Verified from the evidence.
    Pass,
    /// The evidence contradicts the requirement (or is missing where it is required).
    Fail,
    /// Nothing verified it either way (not configured, or no evidence): never counted as a pass,
    /// always listed in the receipt.
    Uncertain,
}

/// One check, with the evidence it looked at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Stable check name (see gate/README.md).
    pub name: String,
    /// Outcome.
    pub status: CheckStatus,
    /// Evidence, by name: hashes of the artifacts and objects looked at, counts, ids.
    pub evidence: BTreeMap<String, String>,
    /// Human-readable reasons, one per problem (empty when it passed).
    pub detail: Vec<String>,
}

impl Check {
    /// A new check with no evidence yet, passing until told otherwise.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            status: CheckStatus::Pass,
            evidence: BTreeMap::new(),
            detail: Vec::new(),
        }
    }

    /// Records evidence.
    pub fn with(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.evidence.insert(key.to_owned(), value.into());
        self
    }

    /// Marks the check failed with a reason.
    pub fn fail(&mut self, why: impl Into<String>) -> &mut Self {
        self.status = CheckStatus::Fail;
        self.detail.push(why.into());
        self
    }

    /// Marks the check uncertain with a reason (a failure stays a failure).
    pub fn uncertain(&mut self, why: impl Into<String>) -> &mut Self {
        if self.status == CheckStatus::Pass {
            self.status = CheckStatus::Uncertain;
        }
        self.detail.push(why.into());
        self
    }
}

/// The identity of a human actor, as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// uid.
    pub uid: u32,
    /// User name, when the user database has one.
    pub user: Option<String>,
}

/// The whole decision. Canonical JSON of this value is what the gate signs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// [`DECISION_SCHEMA`].
    pub schema: String,
    /// What was asked.
    pub action: Action,
    /// The run.
    pub run_id: String,
    /// The plan's id, when the plan artifact could be read.
    pub plan_id: Option<String>,
    /// The plan's hash (`WorkPlan::hash`), when the plan artifact could be read.
    pub plan_hash: Option<String>,
    /// The ref the action moves (or would have moved).
    pub target_ref: String,
    /// Its value before.
    pub from: Option<String>,
    /// Its value after (if the verdict passes).
    pub to: Option<String>,
    /// Conclusion.
    pub verdict: Verdict,
    /// Every check, in a fixed order.
    pub checks: Vec<Check>,
    /// What no check covered, sorted.
    pub uncertain: Vec<String>,
    /// The human who asked (approve, reject, rollback).
    pub actor: Option<Actor>,
    /// A reason given by the human (reject) or the policy (hold).
    pub reason: Option<String>,
}

impl Decision {
    /// Names of failed checks.
    pub fn failed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .map(|c| c.name.as_str())
            .collect()
    }
}
