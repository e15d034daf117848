//! Evidence files of a run: the test-runner's JUnit XML and lcov (kept only when their hashes
//! match its signed result, with the changed-line coverage computed again from them), JUnit
//! rendered from the results when the test-runner left none, and SARIF 2.1.0 of the review
//! (rendered by the review engine's own SARIF writer).

use std::path::{Path, PathBuf};

use agents::roles::test_runner::{JUNIT_FILE, LCOV_FILE};
use protocol::artifact::{verify_signature, DsseEnvelope, PublicKey};
use protocol::canonical::sha256;
use protocol::frame::{Review, TestResults, TestStatus};

use super::layout::{self, LayoutError, RunDir};

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

/// Why the test-runner's evidence files could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// Writing into the run directory failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The signed artifact on disk does not open with the test-runner's key.
    #[error("reopening the signed test results {path}: {detail}")]
    Artifact {
        /// The artifact file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// A file the signed result names is missing or unreadable.
    #[error("reading the test-runner's {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file's hash differs from the one the test-runner signed.
    #[error("{file}: sha256 {found} is not the signed {signed}")]
    Digest {
        /// Subject name.
        file: String,
        /// Hash in the signed artifact.
        signed: String,
        /// Hash of the file found.
        found: String,
    },
    /// The lcov file does not parse.
    #[error("evidence/lcov.info: {source}")]
    Lcov {
        /// Cause.
        source: agents::coverage::lcov::LcovError,
    },
    /// The trees could not be compared.
    #[error("diffing {base} against {tree}: {detail}")]
    Diff {
        /// Base tree.
        base: PathBuf,
        /// Candidate tree.
        tree: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The signed changed-line figure is not what the signed lcov and the run's diff give.
    #[error("the signed changed-line coverage {signed:?} % differs from {computed:?} % computed from evidence/lcov.info and the run's diff")]
    Figure {
        /// In the signed results.
        signed: Option<f64>,
        /// Recomputed here.
        computed: Option<f64>,
    },
}

/// What [`keep_test_evidence`] kept and computed.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptEvidence {
    /// `evidence/junit.xml` came from the test-runner (false: rendered from the results).
    pub junit_signed: bool,
    /// Changed-line and per-file coverage, when the test-runner signed an lcov file.
    pub coverage: Option<agents::coverage::ChangedCoverage>,
}

/// `evidence/coverage.json`: the numbers the gate's coverage check stands on, per file.
#[derive(Debug, serde::Serialize)]
pub struct CoverageReport<'a> {
    /// The plan's threshold, percent.
    pub threshold_pct: u8,
    /// Changed-line coverage of the whole change, percent (absent: nothing instrumented changed).
    pub changed_lines_pct: Option<f64>,
    /// Per file.
    #[serde(flatten)]
    pub coverage: &'a agents::coverage::ChangedCoverage,
}

/// Keeps the test-runner's evidence files: each file its signed artifact names by hash
/// (`junit.xml`, `lcov.info`) is read from `src` (the test-runner's `<scratch>/evidence`),
/// checked against that hash and copied to `evidence/`. From the lcov and the diff base → tree
/// the changed-line and per-file coverage are computed again and must give the signed figure;
/// `evidence/coverage.json` records them. Without a signed JUnit file it is rendered from the
/// results.
pub fn keep_test_evidence(
    dir: &RunDir,
    key: &PublicKey,
    src: &Path,
    results: &TestResults,
    base: &Path,
    tree: &Path,
    threshold_pct: u8,
) -> Result<KeptEvidence, EvidenceError> {
    let art = dir.artifact("test_results");
    let opened = std::fs::read(&art)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<DsseEnvelope>(&b).map_err(|e| e.to_string()))
        .and_then(|env| verify_signature(&env, key).map_err(|e| e.to_string()))
        .map_err(|detail| EvidenceError::Artifact {
            path: art.clone(),
            detail,
        })?;
    let mut kept = KeptEvidence {
        junit_signed: false,
        coverage: None,
    };
    let mut lcov_bytes = None;
    for subject in &opened.subject {
        let Some(signed) = &subject.digest.sha256 else {
            continue;
        };
        let name = subject.name.as_str();
        if name != JUNIT_FILE && name != LCOV_FILE {
            continue;
        }
        let path = src.join(name);
        let bytes = std::fs::read(&path).map_err(|source| EvidenceError::Read {
            path: path.clone(),
            source,
        })?;
        let found = sha256(&bytes).to_hex();
        if &found != signed {
            return Err(EvidenceError::Digest {
                file: name.to_owned(),
                signed: signed.clone(),
                found,
            });
        }
        layout::write(&dir.evidence(name), &bytes)?;
        if name == JUNIT_FILE {
            kept.junit_signed = true;
        } else {
            lcov_bytes = Some(bytes);
        }
    }
    if !kept.junit_signed {
        write_junit(&dir.evidence(JUNIT_FILE), results)?;
    }
    let Some(bytes) = lcov_bytes else {
        return Ok(kept);
    };
    let lcov = agents::coverage::lcov::parse(&String::from_utf8_lossy(&bytes))
        .map_err(|source| EvidenceError::Lcov { source })?;
    let lcov = agents::roles::test_runner::relative(&lcov, tree);
    let diff = agents::review::diff_trees(base, tree).map_err(|e| EvidenceError::Diff {
        base: base.to_path_buf(),
        tree: tree.to_path_buf(),
        detail: e.to_string(),
    })?;
    let coverage = agents::coverage::compute(&diff, &lcov);
    let computed = coverage.pct();
    let same = match (computed, results.changed_lines_coverage_pct) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        (None, None) => true,
        _ => false,
    };
    if !same {
        return Err(EvidenceError::Figure {
            signed: results.changed_lines_coverage_pct,
            computed,
        });
    }
    layout::write_json(
        &dir.evidence("coverage.json"),
        &CoverageReport {
            threshold_pct,
            changed_lines_pct: computed,
            coverage: &coverage,
        },
    )?;
    kept.coverage = Some(coverage);
    Ok(kept)
}

/// Why a plan's coverage threshold is looser than the FR's, if it is: the gate judges coverage
/// by the plan's threshold, so a plan may not lower the FR's.
pub fn coverage_lowered(plan_min_pct: u8, fr: &protocol::fr::Fr) -> Option<String> {
    let fr_min = fr.coverage.as_ref().map_or(0, |c| c.changed_lines_min_pct);
    (plan_min_pct < fr_min).then(|| format!("coverage_min_pct {plan_min_pct} < the FR's {fr_min}"))
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
#[path = "evidence_tests.rs"]
mod keep_tests;

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
