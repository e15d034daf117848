//! `keep_test_evidence`: files kept only when their hashes are the signed ones, and the signed
//! changed-line figure must be what the kept lcov and the trees give.

use super::*;
use protocol::artifact::{sign_artifact, KeyPair, Statement, Subject};
use protocol::canonical::Digest32;
use protocol::RoleName;

const LIB_BASE: &str = "pub fn a() -> u32 {\n    1\n}\n";
const LIB_NEW: &str = "pub fn a() -> u32 {\n    1\n}\n\npub fn b(x: u32) -> u32 {\n    if x > 1 {\n        return 2;\n    }\n    x\n}\n";

struct Fx {
    _tmp: tempfile::TempDir,
    dir: RunDir,
    key: KeyPair,
    src: PathBuf,
    base: PathBuf,
    tree: PathBuf,
    lcov: String,
}

impl Fx {
    fn new() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(tmp.path(), "FR-1-20261123T000000-abcd");
        let (base, tree, src) = (
            tmp.path().join("base"),
            tmp.path().join("tree"),
            tmp.path().join("src"),
        );
        for d in [&base, &tree, &src] {
            std::fs::create_dir_all(d.join("src")).unwrap();
        }
        std::fs::write(base.join("src/lib.rs"), LIB_BASE).unwrap();
        std::fs::write(tree.join("src/lib.rs"), LIB_NEW).unwrap();
        // b() ran once with x = 1: lines 5, 6 and 9 hit, 7 (the early return) never.
        let lcov = format!(
            "SF:{}\nDA:1,3\nDA:2,3\nDA:5,1\nDA:6,1\nDA:7,0\nDA:9,1\nend_of_record\n",
            tree.join("src/lib.rs").display()
        );
        Fx {
            _tmp: tmp,
            dir,
            key: KeyPair::from_seed([7; 32]),
            src,
            base,
            tree,
            lcov,
        }
    }

    /// Writes the evidence files and signs `pct` with their hashes.
    fn sign(&self, pct: Option<f64>) -> TestResults {
        let junit = b"<testsuites/>\n".to_vec();
        std::fs::write(self.src.join(JUNIT_FILE), &junit).unwrap();
        std::fs::write(self.src.join(LCOV_FILE), &self.lcov).unwrap();
        let results = TestResults {
            iteration: 1,
            commit: "c".into(),
            commands: vec![],
            tests: vec![],
            changed_lines_coverage_pct: pct,
        };
        let st = Statement::new(
            vec![
                Subject::file(JUNIT_FILE, &junit),
                Subject::file(LCOV_FILE, self.lcov.as_bytes()),
            ],
            "FR-1-20261123T000000-abcd",
            RoleName::TestRunner,
            "test_results",
            &Digest32([1; 32]),
            &results,
        )
        .unwrap();
        let env = sign_artifact(&self.key, &st).unwrap();
        layout::write_json(&self.dir.artifact("test_results"), &env).unwrap();
        results
    }

    fn keep(&self, results: &TestResults) -> Result<KeptEvidence, EvidenceError> {
        keep_test_evidence(
            &self.dir,
            &self.key.public(),
            &self.src,
            results,
            &self.base,
            &self.tree,
            80,
        )
    }
}

#[test]
fn signed_files_are_kept_and_the_figure_recomputed() {
    let fx = Fx::new();
    let results = fx.sign(Some(75.0));
    let kept = fx.keep(&results).unwrap();
    assert!(kept.junit_signed);
    let cov = kept.coverage.unwrap();
    // Changed lines 4..=10 of which 5, 6, 7, 9 are instrumented and 7 is not covered.
    assert_eq!((cov.covered, cov.instrumented), (3, 4));
    assert_eq!(cov.files[0].uncovered_lines, vec![7]);
    assert_eq!(
        std::fs::read_to_string(fx.dir.evidence(LCOV_FILE)).unwrap(),
        fx.lcov
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.dir.evidence("coverage.json")).unwrap()).unwrap();
    assert_eq!(report["changed_lines_pct"], 75.0);
    assert_eq!(report["threshold_pct"], 80);
    assert_eq!(report["files"][0]["file"], "src/lib.rs");
}

#[test]
fn an_lcov_swapped_after_signing_is_refused() {
    let fx = Fx::new();
    let results = fx.sign(Some(75.0));
    let forged = fx.lcov.replace("DA:7,0", "DA:7,1");
    std::fs::write(fx.src.join(LCOV_FILE), forged).unwrap();
    match fx.keep(&results) {
        Err(EvidenceError::Digest { file, .. }) => assert_eq!(file, LCOV_FILE),
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(
        !fx.dir.evidence(LCOV_FILE).exists(),
        "a forged file is not kept"
    );
}

#[test]
fn a_signed_figure_the_lcov_does_not_give_is_refused() {
    let fx = Fx::new();
    let results = fx.sign(Some(100.0));
    match fx.keep(&results) {
        Err(EvidenceError::Figure { signed, computed }) => {
            assert_eq!(signed, Some(100.0));
            assert_eq!(computed, Some(75.0));
        }
        other => panic!("expected a figure mismatch, got {other:?}"),
    }
}

#[test]
fn another_key_does_not_open_the_artifact() {
    let fx = Fx::new();
    let results = fx.sign(Some(75.0));
    let other = KeyPair::from_seed([8; 32]);
    let r = keep_test_evidence(
        &fx.dir,
        &other.public(),
        &fx.src,
        &results,
        &fx.base,
        &fx.tree,
        80,
    );
    assert!(matches!(r, Err(EvidenceError::Artifact { .. })), "{r:?}");
}

#[test]
fn a_plan_may_not_lower_the_frs_coverage_threshold() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/textkit/frs/FR-12.yaml"),
    )
    .unwrap();
    let fr: protocol::fr::Fr = protocol::load::parse_yaml(Path::new("FR-12.yaml"), &text).unwrap();
    assert_eq!(
        coverage_lowered(0, &fr).as_deref(),
        Some("coverage_min_pct 0 < the FR's 80")
    );
    assert_eq!(
        coverage_lowered(79, &fr).as_deref(),
        Some("coverage_min_pct 79 < the FR's 80")
    );
    assert_eq!(coverage_lowered(80, &fr), None);
    assert_eq!(coverage_lowered(95, &fr), None);
    let mut none = fr.clone();
    none.coverage = None;
    assert_eq!(coverage_lowered(0, &none), None);
}
