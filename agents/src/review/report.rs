//! What the rule engine's callers need around a list of findings: the blocking decision, counts
//! per severity, the conversion to the signed protocol type, and readable text grouped by
//! severity (what `orchestrate scan` and `orchestrate review` print).

use super::finding::{Finding, Severity};
use super::rules;
use serde::Serialize;
use std::fmt::Write as _;

/// Findings per severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Critical findings.
    pub critical: usize,
    /// High findings.
    pub high: usize,
    /// Medium findings.
    pub medium: usize,
    /// Low findings.
    pub low: usize,
    /// Notes.
    pub note: usize,
}

impl Counts {
    /// Counts `findings` by severity.
    pub fn of(findings: &[Finding]) -> Self {
        let mut c = Counts::default();
        for f in findings {
            match f.severity {
                Severity::Critical => c.critical += 1,
                Severity::High => c.high += 1,
                Severity::Medium => c.medium += 1,
                Severity::Low => c.low += 1,
                Severity::Note => c.note += 1,
            }
        }
        c
    }

    /// The count of one severity.
    pub fn get(&self, s: Severity) -> usize {
        match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Note => self.note,
        }
    }
}

/// True when a finding at or above `threshold` exists.
pub fn blocks(findings: &[Finding], threshold: Severity) -> bool {
    findings.iter().any(|f| f.severity >= threshold)
}

/// The protocol's severity for ours (`note` is the protocol's `info`).
pub fn to_protocol_severity(s: Severity) -> protocol::plan::Severity {
    match s {
        Severity::Critical => protocol::plan::Severity::Critical,
        Severity::High => protocol::plan::Severity::High,
        Severity::Medium => protocol::plan::Severity::Medium,
        Severity::Low => protocol::plan::Severity::Low,
        Severity::Note => protocol::plan::Severity::Info,
    }
}

/// Ours for the protocol's severity.
pub fn from_protocol_severity(s: protocol::plan::Severity) -> Severity {
    match s {
        protocol::plan::Severity::Critical => Severity::Critical,
        protocol::plan::Severity::High => Severity::High,
        protocol::plan::Severity::Medium => Severity::Medium,
        protocol::plan::Severity::Low => Severity::Low,
        protocol::plan::Severity::Info => Severity::Note,
    }
}

/// A finding as the signed `Review` body carries it.
pub fn to_protocol(f: &Finding) -> protocol::frame::Finding {
    protocol::frame::Finding {
        rule_id: f.rule_id.clone(),
        severity: to_protocol_severity(f.severity),
        file: f.file.clone(),
        line: (f.line > 0).then_some(u64::from(f.line)),
        message: f.message.clone(),
        evidence_sha256: f.evidence.clone(),
    }
}

/// A finding read back from a signed `Review` body.
pub fn from_protocol(f: &protocol::frame::Finding) -> Finding {
    Finding {
        rule_id: f.rule_id.clone(),
        severity: from_protocol_severity(f.severity),
        file: f.file.clone(),
        line: f.line.and_then(|l| u32::try_from(l).ok()).unwrap_or(0),
        message: f.message.clone(),
        evidence: f.evidence_sha256.clone(),
    }
}

/// Readable text: one block per severity (most severe first), each finding as
/// `file:line  RULE-ID  message`, followed once per rule by what the rule means; then a
/// one-line summary. Only rule names, messages and hashes are printed, never evidence.
pub fn render_text(findings: &[Finding]) -> String {
    let mut s = String::new();
    let counts = Counts::of(findings);
    for sev in Severity::ALL {
        let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == sev).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(s, "{} ({})", sev.as_str().to_uppercase(), group.len());
        let mut explained: Vec<&str> = Vec::new();
        for f in &group {
            let place = match (f.file.is_empty(), f.line) {
                (true, _) => "(whole change)".to_string(),
                (false, 0) => f.file.clone(),
                (false, n) => format!("{}:{n}", f.file),
            };
            let _ = writeln!(s, "  {place}  {}  {}", f.rule_id, f.message);
            let _ = writeln!(s, "      evidence sha256 {}", f.evidence);
            if !explained.contains(&f.rule_id.as_str()) {
                explained.push(&f.rule_id);
                if let Some(r) = rules::by_id(&f.rule_id) {
                    let _ = writeln!(s, "      why: {}", r.help);
                }
            }
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "{} finding(s): {} critical, {} high, {} medium, {} low, {} note",
        findings.len(),
        counts.critical,
        counts.high,
        counts.medium,
        counts.low,
        counts.note
    );
    s
}
