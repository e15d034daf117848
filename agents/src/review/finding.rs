//! What a rule reports: a finding names the rule, the place and a hash of the evidence, never the
//! evidence itself, so a finding can be logged, signed and published without leaking a secret.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How much a finding matters. Ordered: `Critical > High > Medium > Low > Note`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational only.
    Note,
    /// Worth a glance.
    Low,
    /// A human should look before promotion.
    Medium,
    /// Blocks promotion by default.
    High,
    /// Blocks promotion; a leaked credential or a change to what guards the run.
    Critical,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Note,
    ];

    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Note => "note",
        }
    }

    /// SARIF `level` for this severity.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Critical | Severity::High => "error",
            Severity::Medium => "warning",
            Severity::Low | Severity::Note => "note",
        }
    }

    /// GitHub code scanning's `security-severity` score (0.0–10.0) for this severity.
    pub fn security_score(self) -> &'static str {
        match self {
            Severity::Critical => "9.5",
            Severity::High => "8.0",
            Severity::Medium => "5.5",
            Severity::Low => "3.0",
            Severity::Note => "1.0",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the five severity names.
#[derive(Debug, thiserror::Error)]
#[error("unknown severity {0:?}: expected critical, high, medium, low or note")]
pub struct ParseSeverityError(pub String);

impl FromStr for Severity {
    type Err = ParseSeverityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "critical" => Ok(Severity::Critical),
            "high" => Ok(Severity::High),
            "medium" => Ok(Severity::Medium),
            "low" => Ok(Severity::Low),
            "note" | "info" => Ok(Severity::Note),
            _ => Err(ParseSeverityError(s.to_string())),
        }
    }
}

/// One result of one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule id such as `ORC-SECRET-AWS-KEY-ID`.
    pub rule_id: String,
    /// The rule's severity.
    pub severity: Severity,
    /// Repository-relative path (`/`-separated).
    pub file: String,
    /// 1-based line in the new version of the file; 0 when the finding concerns the whole file.
    pub line: u32,
    /// What was found, in words. Never contains a matched secret.
    pub message: String,
    /// Lower-case hex SHA-256 of the matched value (`sha256sum` of the exact bytes), so two runs
    /// can tell whether they saw the same secret without either keeping it.
    pub evidence: String,
}

impl Finding {
    /// Builds a finding for `rule`, hashing `evidence` and dropping it.
    pub fn new(
        rule: &crate::review::rules::Rule,
        file: &str,
        line: u32,
        message: String,
        evidence: &[u8],
    ) -> Self {
        Finding {
            rule_id: rule.id.to_string(),
            severity: rule.severity,
            file: file.to_string(),
            line,
            message,
            evidence: evidence_hash(evidence),
        }
    }
}

/// Hex SHA-256 of the evidence bytes.
pub fn evidence_hash(evidence: &[u8]) -> String {
    protocol::canonical::sha256(evidence).to_hex()
}

/// Sorts findings most severe first, then by file, line and rule, and drops exact duplicates:
/// output must be the same for the same input whatever the walk order.
pub fn normalize(findings: &mut Vec<Finding>) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.file.cmp(&b.file))
            .then_with(|| a.line.cmp(&b.line))
            .then_with(|| a.rule_id.cmp(&b.rule_id))
            .then_with(|| a.evidence.cmp(&b.evidence))
    });
    findings.dedup();
}
