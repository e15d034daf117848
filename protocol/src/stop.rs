//! Stop reason codes: why a run ended without promotion.
//!
//! The strings are stable: they appear in audit events, receipts, exit reports and scripts that
//! grep for them. Renaming one is a protocol break.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a run stopped. Serialised as its SCREAMING string, e.g. `STOP_NO_PROGRESS`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum StopCode {
    /// A containment layer or security rule was violated.
    #[serde(rename = "STOP_SECURITY_VIOLATION")]
    SecurityViolation,
    /// A secret showed up where it must not (diff, log, model traffic).
    #[serde(rename = "STOP_SECRET_EXPOSURE")]
    SecretExposure,
    /// A role tried to read, write or reach something its policy does not grant.
    #[serde(rename = "STOP_UNAUTHORIZED_ACCESS")]
    UnauthorizedAccess,
    /// The run's cost reached the stop threshold of its budget.
    #[serde(rename = "STOP_BUDGET_EXCEEDED")]
    BudgetExceeded,
    /// Too many iterations in a row without measurable progress.
    #[serde(rename = "STOP_NO_PROGRESS")]
    NoProgress,
    /// The run's wall-clock ceiling was reached.
    #[serde(rename = "STOP_RUNTIME_EXCEEDED")]
    RuntimeExceeded,
    /// The change touched files outside the FR's declared scope or the plan's targets.
    #[serde(rename = "STOP_SCOPE_EXCEEDED")]
    ScopeExceeded,
    /// The iteration cap was reached before the done criteria were met.
    #[serde(rename = "STOP_ITERATION_CAP")]
    IterationCap,
    /// The agent made more tool calls than the plan allows.
    #[serde(rename = "STOP_TOOL_CALL_CAP")]
    ToolCallCap,
    /// The change touched more files than the plan allows.
    #[serde(rename = "STOP_FILE_CAP")]
    FileCap,
    /// A role process crashed or exited without its result.
    #[serde(rename = "STOP_ROLE_CRASHED")]
    RoleCrashed,
    /// The test suite already failed on the base commit, so no change could be judged.
    #[serde(rename = "STOP_BASELINE_RED")]
    BaselineRed,
    /// A human stopped the run.
    #[serde(rename = "STOP_HUMAN")]
    Human,
    /// The FR has no executable acceptance criterion.
    #[serde(rename = "STOP_MISSING_ACCEPTANCE")]
    MissingAcceptance,
    /// A role sent a message kind its policy does not allow.
    #[serde(rename = "STOP_FORBIDDEN_MESSAGE")]
    ForbiddenMessage,
    /// A role sent malformed, oversized or out-of-sequence frames.
    #[serde(rename = "STOP_PROTOCOL_VIOLATION")]
    ProtocolViolation,
    /// A containment layer the policy requires could not be applied.
    #[serde(rename = "STOP_CONTAINMENT_UNAVAILABLE")]
    ContainmentUnavailable,
}

impl StopCode {
    /// Every stop code, in declaration order.
    pub const ALL: [StopCode; 17] = [
        StopCode::SecurityViolation,
        StopCode::SecretExposure,
        StopCode::UnauthorizedAccess,
        StopCode::BudgetExceeded,
        StopCode::NoProgress,
        StopCode::RuntimeExceeded,
        StopCode::ScopeExceeded,
        StopCode::IterationCap,
        StopCode::ToolCallCap,
        StopCode::FileCap,
        StopCode::RoleCrashed,
        StopCode::BaselineRed,
        StopCode::Human,
        StopCode::MissingAcceptance,
        StopCode::ForbiddenMessage,
        StopCode::ProtocolViolation,
        StopCode::ContainmentUnavailable,
    ];

    /// The stop conditions every WORK_PLAN must list: the six the design names as mandatory.
    pub const MANDATORY: [StopCode; 6] = [
        StopCode::SecurityViolation,
        StopCode::SecretExposure,
        StopCode::UnauthorizedAccess,
        StopCode::BudgetExceeded,
        StopCode::NoProgress,
        StopCode::RuntimeExceeded,
    ];

    /// The stable string, e.g. `STOP_NO_PROGRESS`.
    pub fn as_str(self) -> &'static str {
        match self {
            StopCode::SecurityViolation => "STOP_SECURITY_VIOLATION",
            StopCode::SecretExposure => "STOP_SECRET_EXPOSURE",
            StopCode::UnauthorizedAccess => "STOP_UNAUTHORIZED_ACCESS",
            StopCode::BudgetExceeded => "STOP_BUDGET_EXCEEDED",
            StopCode::NoProgress => "STOP_NO_PROGRESS",
            StopCode::RuntimeExceeded => "STOP_RUNTIME_EXCEEDED",
            StopCode::ScopeExceeded => "STOP_SCOPE_EXCEEDED",
            StopCode::IterationCap => "STOP_ITERATION_CAP",
            StopCode::ToolCallCap => "STOP_TOOL_CALL_CAP",
            StopCode::FileCap => "STOP_FILE_CAP",
            StopCode::RoleCrashed => "STOP_ROLE_CRASHED",
            StopCode::BaselineRed => "STOP_BASELINE_RED",
            StopCode::Human => "STOP_HUMAN",
            StopCode::MissingAcceptance => "STOP_MISSING_ACCEPTANCE",
            StopCode::ForbiddenMessage => "STOP_FORBIDDEN_MESSAGE",
            StopCode::ProtocolViolation => "STOP_PROTOCOL_VIOLATION",
            StopCode::ContainmentUnavailable => "STOP_CONTAINMENT_UNAVAILABLE",
        }
    }

    /// One line for a person reading a receipt or a terminal.
    pub fn description(self) -> &'static str {
        match self {
            StopCode::SecurityViolation => "a security rule or containment layer was violated",
            StopCode::SecretExposure => "a secret appeared in the change, a log or model traffic",
            StopCode::UnauthorizedAccess => {
                "a role tried to read, write or reach something its policy does not grant"
            }
            StopCode::BudgetExceeded => "the run's cost reached the stop threshold of its budget",
            StopCode::NoProgress => "too many iterations in a row made no measurable progress",
            StopCode::RuntimeExceeded => "the run's wall-clock ceiling was reached",
            StopCode::ScopeExceeded => "the change touched files outside the FR's declared scope",
            StopCode::IterationCap => "the iteration cap was reached before the work was done",
            StopCode::ToolCallCap => "the agent made more tool calls than the plan allows",
            StopCode::FileCap => "the change touched more files than the plan allows",
            StopCode::RoleCrashed => "a role process crashed or exited without its result",
            StopCode::BaselineRed => "the test suite already fails on the base commit",
            StopCode::Human => "a person stopped the run",
            StopCode::MissingAcceptance => "the FR has no executable acceptance criterion",
            StopCode::ForbiddenMessage => "a role sent a message kind its policy does not allow",
            StopCode::ProtocolViolation => "a role sent malformed or oversized frames",
            StopCode::ContainmentUnavailable => {
                "a containment layer the policy requires could not be applied"
            }
        }
    }
}

impl fmt::Display for StopCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the stop codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stop code `{0}`")]
pub struct UnknownStopCode(pub String);

impl FromStr for StopCode {
    type Err = UnknownStopCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StopCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownStopCode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_through_from_str_and_serde() {
        for code in StopCode::ALL {
            assert_eq!(code.as_str().parse::<StopCode>(), Ok(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<StopCode>(&json).unwrap(), code);
            assert!(!code.description().is_empty());
        }
    }

    #[test]
    fn unknown_string_is_rejected() {
        assert_eq!(
            "STOP_NOPE".parse::<StopCode>(),
            Err(UnknownStopCode("STOP_NOPE".into()))
        );
    }

    #[test]
    fn strings_are_distinct() {
        let mut all: Vec<_> = StopCode::ALL.iter().map(|c| c.as_str()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), StopCode::ALL.len());
    }
}
