use super::*;

use crate::canonical::sha256;

const RUN: &str = "FR-12-20261123T100000-abcd";

fn plan_hash() -> Digest32 {
    sha256(b"the plan")
}

fn statement(run: &str, role: RoleName) -> Statement {
    Statement::new(
        vec![Subject::commit(
            "agent/FR-12",
            "0123456789abcdef0123456789abcdef01234567",
        )],
        run,
        role,
        "review",
        &plan_hash(),
        &serde_json::json!({"findings": [], "blocking": 0}),
    )
    .unwrap()
}

fn review_key() -> KeyPair {
    KeyPair::from_seed([7; 32])
}

#[test]
fn a_signed_artifact_verifies_and_returns_its_statement() {
    let key = review_key();
    let env = sign_artifact(&key, &statement(RUN, RoleName::SecurityReview)).unwrap();
    assert_eq!(env.payload_type, PAYLOAD_TYPE);
    let st = verify_artifact(
        &env,
        RoleName::SecurityReview,
        RUN,
        &plan_hash(),
        &key.public(),
    )
    .unwrap();
    assert_eq!(st, statement(RUN, RoleName::SecurityReview));
    assert_eq!(st.predicate.protocol, crate::frame::PROTOCOL_VERSION);
}

#[test]
fn signing_is_deterministic() {
    let key = review_key();
    let a = sign_artifact(&key, &statement(RUN, RoleName::SecurityReview)).unwrap();
    let b = sign_artifact(&key, &statement(RUN, RoleName::SecurityReview)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn wrong_key_is_rejected() {
    // codegen signs a "clean review": the review key does not verify it.
    let codegen = KeyPair::from_seed([9; 32]);
    let env = sign_artifact(&codegen, &statement(RUN, RoleName::SecurityReview)).unwrap();
    let err = verify_artifact(
        &env,
        RoleName::SecurityReview,
        RUN,
        &plan_hash(),
        &review_key().public(),
    )
    .unwrap_err();
    assert!(matches!(err, ArtifactError::WrongKey { .. }), "{err}");
    // Claiming the review key's id does not help: the signature itself fails.
    let mut forged = env.clone();
    forged.signatures[0].keyid = review_key().public().keyid();
    let err = verify_artifact(
        &forged,
        RoleName::SecurityReview,
        RUN,
        &plan_hash(),
        &review_key().public(),
    )
    .unwrap_err();
    assert!(matches!(err, ArtifactError::BadSignature { .. }), "{err}");
}

#[test]
fn every_changed_payload_byte_is_rejected() {
    let key = review_key();
    let env = sign_artifact(&key, &statement(RUN, RoleName::SecurityReview)).unwrap();
    let payload = B64.decode(&env.payload).unwrap();
    for i in (0..payload.len()).step_by(7) {
        let mut p = payload.clone();
        p[i] ^= 0x01;
        let mut bad = env.clone();
        bad.payload = B64.encode(&p);
        assert!(
            verify_artifact(
                &bad,
                RoleName::SecurityReview,
                RUN,
                &plan_hash(),
                &key.public()
            )
            .is_err(),
            "flipping byte {i} went unnoticed"
        );
    }
    let mut sig = B64.decode(&env.signatures[0].sig).unwrap();
    sig[0] ^= 0x80;
    let mut bad = env.clone();
    bad.signatures[0].sig = B64.encode(&sig);
    assert!(matches!(
        verify_artifact(
            &bad,
            RoleName::SecurityReview,
            RUN,
            &plan_hash(),
            &key.public()
        ),
        Err(ArtifactError::BadSignature { .. })
    ));
}

#[test]
fn wrong_role_is_rejected() {
    // A validly signed test-runner artifact presented as the review.
    let key = review_key();
    let env = sign_artifact(&key, &statement(RUN, RoleName::TestRunner)).unwrap();
    let err = verify_artifact(
        &env,
        RoleName::SecurityReview,
        RUN,
        &plan_hash(),
        &key.public(),
    )
    .unwrap_err();
    assert!(matches!(err, ArtifactError::WrongRole { .. }), "{err}");
}

#[test]
fn artifact_of_another_run_is_rejected() {
    let key = review_key();
    let env = sign_artifact(
        &key,
        &statement("FR-12-20261122T090000-ffff", RoleName::SecurityReview),
    )
    .unwrap();
    let err = verify_artifact(
        &env,
        RoleName::SecurityReview,
        RUN,
        &plan_hash(),
        &key.public(),
    )
    .unwrap_err();
    assert!(matches!(err, ArtifactError::WrongRun { .. }), "{err}");
}

#[test]
fn artifact_of_another_plan_is_rejected() {
    let key = review_key();
    let env = sign_artifact(&key, &statement(RUN, RoleName::SecurityReview)).unwrap();
    let err = verify_artifact(
        &env,
        RoleName::SecurityReview,
        RUN,
        &sha256(b"other plan"),
        &key.public(),
    )
    .unwrap_err();
    assert!(matches!(err, ArtifactError::WrongPlan { .. }), "{err}");
}

#[test]
fn incompatible_protocol_major_is_rejected() {
    let key = review_key();
    let mut st = statement(RUN, RoleName::SecurityReview);
    st.predicate.protocol = "2.0.0".to_owned();
    let env = sign_artifact(&key, &st).unwrap();
    let err = verify_artifact(
        &env,
        RoleName::SecurityReview,
        RUN,
        &plan_hash(),
        &key.public(),
    )
    .unwrap_err();
    assert!(matches!(err, ArtifactError::Protocol { .. }), "{err}");
}

#[test]
fn a_second_signature_or_other_payload_type_is_rejected() {
    let key = review_key();
    let env = sign_artifact(&key, &statement(RUN, RoleName::SecurityReview)).unwrap();
    let mut two = env.clone();
    two.signatures.push(env.signatures[0].clone());
    assert!(matches!(
        verify_signature(&two, &key.public()),
        Err(ArtifactError::SignatureCount { count: 2 })
    ));
    let mut other = env.clone();
    other.payload_type = "text/plain".to_owned();
    assert!(matches!(
        verify_signature(&other, &key.public()),
        Err(ArtifactError::PayloadType { .. })
    ));
}

#[test]
fn keys_round_trip_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate();
    key.write_private(&dir.path().join("k")).unwrap();
    key.public().write(&dir.path().join("k.pub")).unwrap();
    let back = KeyPair::read_private(&dir.path().join("k")).unwrap();
    assert_eq!(back.public(), key.public());
    assert_eq!(
        PublicKey::read(&dir.path().join("k.pub")).unwrap(),
        key.public()
    );
}
