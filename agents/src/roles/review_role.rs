//! Security-review as a role: the rule engine (`crate::review`) over base and candidate trees,
//! findings converted to the protocol's shape.

use protocol::frame::{Finding, Review};
use protocol::plan::Severity;

use super::input::ReviewInput;
use crate::review::{self, ScanContext};

/// Converts one engine finding to the protocol's.
pub fn to_protocol(f: &review::Finding) -> Finding {
    Finding {
        rule_id: f.rule_id.clone(),
        severity: match f.severity {
            review::Severity::Critical => Severity::Critical,
            review::Severity::High => Severity::High,
            review::Severity::Medium => Severity::Medium,
            review::Severity::Low => Severity::Low,
            review::Severity::Note => Severity::Info,
        },
        file: f.file.clone(),
        line: (f.line > 0).then_some(u64::from(f.line)),
        message: f.message.clone(),
        evidence_sha256: f.evidence.clone(),
    }
}

/// Reviews the change from the base tree to the candidate tree.
pub fn review(
    input: &ReviewInput,
    iteration: u32,
    commit: &str,
) -> Result<Review, review::ReviewError> {
    let ctx = ScanContext {
        protected_paths: input.protected_paths.clone(),
        expected_files: Some(input.expected_files),
        ..ScanContext::default()
    };
    let findings = review::scan_trees(&input.base_tree, &input.candidate_tree, &ctx)?;
    Ok(Review {
        iteration,
        commit: commit.to_owned(),
        findings: findings.iter().map(to_protocol).collect(),
    })
}
