use super::*;
use protocol::artifact::{sign_artifact, KeyPair, Statement, Subject};
use protocol::frame::Finding as PFinding;
use protocol::plan::Severity as PSeverity;

const RUN: &str = "FR-12-20260101T120000-ab12";

fn review_body() -> Review {
    Review {
        iteration: 2,
        commit: "0123abcd".into(),
        findings: vec![PFinding {
            rule_id: "ORC-SECRET-GITHUB-TOKEN".into(),
            severity: PSeverity::Critical,
            file: "ci/push.sh".into(),
            line: Some(3),
            message: "GitHub token (40 characters, value withheld)".into(),
            evidence_sha256: "ab".repeat(32),
        }],
    }
}

fn write_artifact(state: &Path, signer: Signer, run_in_artifact: &str, key: &KeyPair) {
    let st = Statement::new(
        vec![Subject::commit("agent", "0123abcd")],
        run_in_artifact,
        signer,
        "review",
        &protocol::canonical::sha256(b"plan"),
        &review_body(),
    )
    .unwrap();
    let env = sign_artifact(key, &st).unwrap();
    let dir = state.join("runs").join(RUN).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("review.dsse.json"),
        serde_json::to_string(&env).unwrap(),
    )
    .unwrap();
}

fn install_key(state: &Path, key: &KeyPair) {
    let dir = state.join("keys/security-review");
    std::fs::create_dir_all(&dir).unwrap();
    key.public().write(&dir.join("ed25519.pub")).unwrap();
}

#[test]
fn signed_review_loads_verified_with_its_findings() {
    let state = tempfile::tempdir().unwrap();
    let key = KeyPair::generate();
    install_key(state.path(), &key);
    write_artifact(state.path(), Signer::SecurityReview, RUN, &key);
    let (review, sig) = load(state.path(), RUN).unwrap();
    assert!(matches!(sig, Signature::Verified { .. }), "{sig:?}");
    assert_eq!(review, review_body());
}

#[test]
fn review_signed_by_another_key_role_or_run_is_invalid() {
    let state = tempfile::tempdir().unwrap();
    let key = KeyPair::generate();
    install_key(state.path(), &key);
    write_artifact(
        state.path(),
        Signer::SecurityReview,
        RUN,
        &KeyPair::generate(),
    );
    assert!(matches!(
        load(state.path(), RUN).unwrap().1,
        Signature::Invalid { .. }
    ));
    write_artifact(state.path(), Signer::Codegen, RUN, &key);
    assert!(matches!(
        load(state.path(), RUN).unwrap().1,
        Signature::Invalid { .. }
    ));
    write_artifact(state.path(), Signer::SecurityReview, "FR-12-other", &key);
    assert!(matches!(
        load(state.path(), RUN).unwrap().1,
        Signature::Invalid { .. }
    ));
}

#[test]
fn review_without_a_key_is_shown_unchecked() {
    let state = tempfile::tempdir().unwrap();
    write_artifact(
        state.path(),
        Signer::SecurityReview,
        RUN,
        &KeyPair::generate(),
    );
    assert_eq!(load(state.path(), RUN).unwrap().1, Signature::Unchecked);
}

#[test]
fn run_ids_that_leave_the_runs_directory_are_refused() {
    let state = tempfile::tempdir().unwrap();
    for bad in ["../x", "..", "a/b", ""] {
        assert!(
            matches!(load(state.path(), bad), Err(ReviewError::BadRunId { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        load(state.path(), RUN),
        Err(ReviewError::NotFound { .. })
    ));
}
