//! Signing the gate's decisions with the gate's own key, as `protocol::artifact` envelopes
//! (DSSE around an in-toto Statement whose subject is the commit the decision is about).

use protocol::artifact::{sign_artifact, ArtifactError, KeyPair, Statement, Subject};
use protocol::canonical::{self, CanonicalError, Digest32};

use crate::decision::Decision;

/// Predicate kind of a gate decision.
pub const DECISION_KIND: &str = "gate_decision";

/// Errors from signing.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// Building or signing the statement failed.
    #[error("signing the gate decision: {0}")]
    Artifact(#[from] ArtifactError),
    /// Writing the envelope as canonical JSON failed.
    #[error("writing the signed decision: {0}")]
    Canonical(#[from] CanonicalError),
}

/// The plan hash a decision is bound to; all zeros when no verified plan existed (the decision
/// then fails and says so in its checks).
pub fn decision_plan_hash(d: &Decision) -> Digest32 {
    d.plan_hash
        .as_deref()
        .and_then(Digest32::from_hex)
        .unwrap_or(Digest32([0; 32]))
}

/// Signs `decision` and returns the canonical envelope bytes. Deterministic: canonical JSON,
/// and ed25519 signatures do not use randomness.
pub fn sign_decision(key: &KeyPair, decision: &Decision) -> Result<Vec<u8>, SignError> {
    let subject = match &decision.to {
        Some(commit) => vec![Subject::commit(decision.target_ref.clone(), commit.clone())],
        None => Vec::new(),
    };
    let statement = Statement::new(
        subject,
        decision.run_id.clone(),
        protocol::artifact::Signer::Gate,
        DECISION_KIND,
        &decision_plan_hash(decision),
        decision,
    )?;
    let env = sign_artifact(key, &statement)?;
    Ok(canonical::to_vec(&env)?)
}
