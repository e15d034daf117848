//! SARIF 2.1.0 output: every rule of the catalogue with its help text, and one result per
//! finding with its location and the evidence hash as a partial fingerprint.

use super::finding::Finding;
use super::rules;
use serde_json::{json, Value};

/// The schema URI written into `$schema`.
pub const SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// Percent-encodes a relative path into a URI reference (unreserved characters and `/` kept).
fn uri(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds the SARIF log for `findings`, naming the tool version `version`.
pub fn to_sarif(findings: &[Finding], version: &str) -> Value {
    let catalogue = rules::all();
    let rule_objs: Vec<Value> = catalogue
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name.replace(' ', ""),
                "shortDescription": { "text": r.name },
                "fullDescription": { "text": r.help },
                "help": { "text": r.help },
                "defaultConfiguration": { "level": r.severity.sarif_level() },
                "properties": {
                    "tags": ["security", format!("{:?}", r.category).to_lowercase()],
                    "security-severity": r.severity.security_score(),
                    "severity": r.severity.as_str(),
                },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut physical = json!({ "artifactLocation": { "uri": uri(&f.file) } });
            if f.line > 0 {
                physical["region"] = json!({ "startLine": f.line });
            }
            let mut result = json!({
                "ruleId": f.rule_id,
                "level": f.severity.sarif_level(),
                "message": { "text": f.message },
                "partialFingerprints": { "evidenceHash/v1": f.evidence },
                "properties": { "severity": f.severity.as_str() },
            });
            if let Some(i) = catalogue.iter().position(|r| r.id == f.rule_id) {
                result["ruleIndex"] = json!(i);
            }
            if !f.file.is_empty() {
                result["locations"] = json!([{ "physicalLocation": physical }]);
            }
            result
        })
        .collect();
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "orchestrate-review",
                    "semanticVersion": version,
                    "version": version,
                    "rules": rule_objs,
                }
            },
            "results": results,
        }]
    })
}
