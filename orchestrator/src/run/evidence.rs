//! Evidence files derived from signed results: JUnit XML of the test results and SARIF 2.1.0 of
//! the review (rendered by the review engine's own SARIF writer).

use std::path::Path;

use protocol::frame::{Review, TestResults, TestStatus};

use super::layout::{self, LayoutError};

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML of one iteration's results.
pub fn junit(results: &TestResults) -> String {
    let failed = results
        .tests
        .iter()
        .filter(|t| t.status == TestStatus::Failed)
        .count();
    let skipped = results
        .tests
        .iter()
        .filter(|t| t.status == TestStatus::Ignored)
        .count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"iteration-{}\" tests=\"{}\" failures=\"{failed}\" skipped=\"{skipped}\">\n",
        results.iteration,
        results.tests.len()
    );
    for t in &results.tests {
        out.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml_escape(&t.command),
            xml_escape(&t.name)
        ));
        match t.status {
            TestStatus::Passed => out.push_str("/>\n"),
            TestStatus::Failed => out.push_str("><failure message=\"failed\"/></testcase>\n"),
            TestStatus::Ignored => out.push_str("><skipped/></testcase>\n"),
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Writes `evidence/junit.xml`.
pub fn write_junit(path: &Path, results: &TestResults) -> Result<(), LayoutError> {
    layout::write(path, junit(results).as_bytes())
}

/// Writes `evidence/review.sarif`.
pub fn write_sarif(path: &Path, review: &Review) -> Result<(), LayoutError> {
    use agents::review::{Finding, Severity};
    let findings: Vec<Finding> = review
        .findings
        .iter()
        .map(|f| Finding {
            rule_id: f.rule_id.clone(),
            severity: match f.severity {
                protocol::plan::Severity::Critical => Severity::Critical,
                protocol::plan::Severity::High => Severity::High,
                protocol::plan::Severity::Medium => Severity::Medium,
                protocol::plan::Severity::Low => Severity::Low,
                protocol::plan::Severity::Info => Severity::Note,
            },
            file: f.file.clone(),
            line: f.line.and_then(|l| u32::try_from(l).ok()).unwrap_or(0),
            message: f.message.clone(),
            evidence: f.evidence_sha256.clone(),
        })
        .collect();
    let sarif = agents::review::sarif::to_sarif(&findings, env!("CARGO_PKG_VERSION"));
    layout::write_json(path, &sarif)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::frame::TestOutcome;

    #[test]
    fn junit_counts_and_escapes() {
        let r = TestResults {
            iteration: 2,
            commit: "c".into(),
            commands: vec![],
            tests: vec![
                TestOutcome {
                    name: "a<b".into(),
                    command: "cargo test".into(),
                    status: TestStatus::Passed,
                },
                TestOutcome {
                    name: "c".into(),
                    command: "cargo test".into(),
                    status: TestStatus::Failed,
                },
            ],
            changed_lines_coverage_pct: None,
        };
        let x = junit(&r);
        assert!(
            x.contains("tests=\"2\" failures=\"1\" skipped=\"0\""),
            "{x}"
        );
        assert!(x.contains("name=\"a&lt;b\"/>"), "{x}");
        assert!(x.contains("<failure"), "{x}");
    }
}
