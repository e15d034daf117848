//! A run's test evidence as `orchestrate review` shows it: the signed test results, whether
//! `evidence/junit.xml` and `evidence/lcov.info` are the files the test-runner signed, and the
//! coverage the run computed (`evidence/coverage.json`).

use std::fmt::Write as _;
use std::path::Path;

use protocol::artifact::{self, DsseEnvelope, PublicKey, Signer, Statement};
use protocol::canonical::sha256;
use protocol::frame::{TestResults, TestStatus};
use serde::Serialize;

use crate::roles::test_runner::{JUNIT_FILE, LCOV_FILE};

/// One evidence file against the hash the test-runner signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileCheck {
    /// `junit.xml` or `lcov.info`.
    pub file: String,
    /// Hash in the signed artifact.
    pub signed_sha256: Option<String>,
    /// Hash of the file in `evidence/` (absent: no such file).
    pub sha256: Option<String>,
    /// Both present and equal.
    pub matches: bool,
}

/// The test evidence of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestEvidence {
    /// `verified`, `unchecked` (no key) or why it did not verify.
    pub signature: String,
    /// Iteration of the last signed results.
    pub iteration: u32,
    /// Passed, failed, ignored tests.
    pub passed: usize,
    /// Failed tests.
    pub failed: usize,
    /// Ignored tests.
    pub ignored: usize,
    /// The signed changed-line coverage.
    pub changed_lines_coverage_pct: Option<f64>,
    /// The evidence files.
    pub files: Vec<FileCheck>,
    /// `evidence/coverage.json`, when the run measured coverage.
    pub coverage: Option<serde_json::Value>,
}

impl TestEvidence {
    /// A signature that did not verify, or a file that is not the signed one.
    pub fn tampered(&self) -> bool {
        (self.signature != "verified" && self.signature != "unchecked")
            || self
                .files
                .iter()
                .any(|f| f.signed_sha256.is_some() && !f.matches)
    }
}

fn decode(env: &DsseEnvelope) -> Option<Statement> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&env.payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Reads `run_dir`'s test evidence; `None` when the run has no signed test results.
pub fn read(run_dir: &Path, run: &str, key: Option<&PublicKey>) -> Option<TestEvidence> {
    let bytes = std::fs::read(run_dir.join("artifacts/test_results.dsse.json")).ok()?;
    let env: DsseEnvelope = serde_json::from_slice(&bytes).ok()?;
    let (statement, signature) = match key {
        None => (decode(&env)?, "unchecked".to_owned()),
        Some(k) => match artifact::verify_signature(&env, k) {
            Ok(st) if st.predicate.role != Signer::TestRunner => {
                let why = format!("signed as {}, not test-runner", st.predicate.role);
                (st, why)
            }
            Ok(st) if st.predicate.run_id != run => {
                let why = format!("artifact of run {}, not {run}", st.predicate.run_id);
                (st, why)
            }
            Ok(st) => (st, "verified".to_owned()),
            Err(e) => (decode(&env)?, e.to_string()),
        },
    };
    let results: TestResults = statement.body().ok()?;
    let count = |s: TestStatus| results.tests.iter().filter(|t| t.status == s).count();
    let files = [JUNIT_FILE, LCOV_FILE]
        .iter()
        .map(|name| {
            let signed = statement
                .subject
                .iter()
                .find(|s| s.name == *name)
                .and_then(|s| s.digest.sha256.clone());
            let found = std::fs::read(run_dir.join("evidence").join(name))
                .ok()
                .map(|b| sha256(&b).to_hex());
            FileCheck {
                file: (*name).to_owned(),
                matches: signed.is_some() && signed == found,
                signed_sha256: signed,
                sha256: found,
            }
        })
        .collect();
    let coverage = std::fs::read(run_dir.join("evidence/coverage.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    Some(TestEvidence {
        signature,
        iteration: results.iteration,
        passed: count(TestStatus::Passed),
        failed: count(TestStatus::Failed),
        ignored: count(TestStatus::Ignored),
        changed_lines_coverage_pct: results.changed_lines_coverage_pct,
        files,
        coverage,
    })
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// The text `orchestrate review` prints.
pub fn render(t: &TestEvidence) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "tests (iteration {}): {} passed, {} failed, {} ignored; signature: {}",
        t.iteration, t.passed, t.failed, t.ignored, t.signature
    );
    for f in &t.files {
        let state = match (&f.signed_sha256, &f.sha256) {
            (None, None) => "not produced".to_owned(),
            (None, Some(h)) => format!("sha256 {} (not signed)", short(h)),
            (Some(h), None) => format!("MISSING (signed sha256 {})", short(h)),
            (Some(_), Some(h)) if f.matches => {
                format!("evidence/{} sha256 {} = signed", f.file, short(h))
            }
            (Some(sg), Some(h)) => format!(
                "TAMPERED: sha256 {} but the test-runner signed {}",
                short(h),
                short(sg)
            ),
        };
        let _ = writeln!(s, "  {:<10} {state}", f.file);
    }
    match (&t.changed_lines_coverage_pct, &t.coverage) {
        (Some(p), Some(c)) => {
            let _ = writeln!(
                s,
                "coverage of changed lines: {p:.1} % ({}/{} lines; threshold {} %)",
                c["covered"], c["instrumented"], c["threshold_pct"]
            );
            for f in c["files"].as_array().into_iter().flatten() {
                if f["changed_instrumented"] == 0 {
                    let _ = writeln!(
                        s,
                        "  {}: no instrumented changed line",
                        f["file"].as_str().unwrap_or("?")
                    );
                    continue;
                }
                let uncovered = f["uncovered_lines"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  {}: {}/{} changed lines covered{}",
                    f["file"].as_str().unwrap_or("?"),
                    f["changed_covered"],
                    f["changed_instrumented"],
                    if uncovered.is_empty() {
                        String::new()
                    } else {
                        format!("; not covered: {uncovered}")
                    }
                );
            }
        }
        (Some(p), None) => {
            let _ = writeln!(s, "coverage of changed lines: {p:.1} % (signed)");
        }
        (None, _) => {
            let _ = writeln!(s, "coverage of changed lines: not measured");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::artifact::{sign_artifact, KeyPair, Subject};

    const RUN: &str = "FR-1-20261123T000000-abcd";

    fn write(dir: &Path, key: &KeyPair, junit: &[u8], lcov: &[u8]) {
        let results = TestResults {
            iteration: 2,
            commit: "c".into(),
            commands: vec![],
            tests: vec![protocol::frame::TestOutcome {
                name: "a".into(),
                command: "cargo test".into(),
                status: TestStatus::Passed,
            }],
            changed_lines_coverage_pct: Some(75.0),
        };
        let st = Statement::new(
            vec![
                Subject::file(JUNIT_FILE, junit),
                Subject::file(LCOV_FILE, lcov),
            ],
            RUN,
            Signer::TestRunner,
            "test_results",
            &protocol::canonical::Digest32([1; 32]),
            &results,
        )
        .unwrap();
        let env = sign_artifact(key, &st).unwrap();
        std::fs::create_dir_all(dir.join("artifacts")).unwrap();
        std::fs::create_dir_all(dir.join("evidence")).unwrap();
        std::fs::write(
            dir.join("artifacts/test_results.dsse.json"),
            serde_json::to_vec(&env).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join("evidence").join(JUNIT_FILE), junit).unwrap();
        std::fs::write(dir.join("evidence").join(LCOV_FILE), lcov).unwrap();
        std::fs::write(
            dir.join("evidence/coverage.json"),
            r#"{"threshold_pct":80,"changed_lines_pct":75.0,"instrumented":4,"covered":3,
                "files":[{"file":"src/lib.rs","changed_instrumented":4,"changed_covered":3,"uncovered_lines":[7]}]}"#,
        )
        .unwrap();
    }

    #[test]
    fn signed_files_match_and_the_coverage_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::from_seed([3; 32]);
        write(dir.path(), &key, b"<testsuites/>", b"SF:x\nend_of_record\n");
        let t = read(dir.path(), RUN, Some(&key.public())).unwrap();
        assert_eq!(t.signature, "verified");
        assert!(t.files.iter().all(|f| f.matches), "{t:?}");
        assert!(!t.tampered());
        let text = render(&t);
        assert!(text.contains("1 passed, 0 failed"), "{text}");
        assert!(
            text.contains("75.0 % (3/4 lines; threshold 80 %)"),
            "{text}"
        );
        assert!(
            text.contains("src/lib.rs: 3/4 changed lines covered; not covered: 7"),
            "{text}"
        );
    }

    #[test]
    fn a_replaced_lcov_or_another_key_is_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::from_seed([3; 32]);
        write(dir.path(), &key, b"<testsuites/>", b"SF:x\nend_of_record\n");
        std::fs::write(dir.path().join("evidence").join(LCOV_FILE), b"SF:y\n").unwrap();
        let t = read(dir.path(), RUN, Some(&key.public())).unwrap();
        assert!(t.tampered());
        assert!(render(&t).contains("TAMPERED"), "{}", render(&t));
        let other = KeyPair::from_seed([4; 32]);
        write(dir.path(), &key, b"<testsuites/>", b"SF:x\nend_of_record\n");
        let t = read(dir.path(), RUN, Some(&other.public())).unwrap();
        assert_ne!(t.signature, "verified");
        assert!(t.tampered());
        // Without a key the signature is unchecked, not tampering.
        assert!(!read(dir.path(), RUN, None).unwrap().tampered());
    }
}
