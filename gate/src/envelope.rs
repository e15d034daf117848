//! Opening role artifacts with `protocol::artifact`: signature under the expected role's key,
//! the role and kind in the predicate, and the protocol version. Run id and plan hash are
//! returned to the caller rather than checked here, so the decision can report a replayed
//! artifact as a broken chain (its own check) rather than as a bad signature.

use protocol::artifact::{verify_signature, ArtifactError, DsseEnvelope, PublicKey, Signer};
use protocol::frame::{check_protocol, FrameError, Ledger, PlanMsg, Progress, Review, TestResults};
use protocol::plan::WorkPlan;
use protocol::roles::RoleName;
use serde::de::DeserializeOwned;

/// Why an artifact was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Not a DSSE envelope.
    #[error("not a DSSE envelope: {0}")]
    Json(#[source] serde_json::Error),
    /// The public key bytes are not a valid ed25519 key.
    #[error("role public key: {0}")]
    Key(#[source] ArtifactError),
    /// Signature, payload type or statement types rejected.
    #[error("{0}")]
    Signature(#[source] ArtifactError),
    /// Signed by the right key but claims another role.
    #[error("signed as {found}, expected {expected}")]
    Role {
        /// Role in the predicate.
        found: Signer,
        /// Role expected.
        expected: Signer,
    },
    /// Another kind of artifact (a progress verdict passed off as a review).
    #[error("artifact kind `{found}`, expected `{expected}`")]
    Kind {
        /// Kind in the predicate.
        found: String,
        /// Kind expected.
        expected: &'static str,
    },
    /// Protocol major version not ours.
    #[error("protocol version: {0}")]
    Protocol(#[source] FrameError),
    /// The body does not have the expected shape.
    #[error("body: {0}")]
    Body(#[source] ArtifactError),
}

/// A verified artifact.
#[derive(Debug, Clone)]
pub struct Opened<T> {
    /// Run id in the predicate (checked by the caller).
    pub run_id: String,
    /// Plan hash in the predicate (checked by the caller).
    pub plan_hash: String,
    /// The body.
    pub body: T,
    /// Hex SHA-256 of the envelope bytes as stored.
    pub digest: String,
    /// keyid of the key that verified it.
    pub key_id: String,
}

fn open<T: DeserializeOwned>(
    bytes: &[u8],
    role: RoleName,
    kind: &'static str,
    key: &[u8; 32],
) -> Result<(Opened<serde_json::Value>, Option<T>), OpenError> {
    let env: DsseEnvelope = serde_json::from_slice(bytes).map_err(OpenError::Json)?;
    let key = PublicKey::from_bytes(key).map_err(OpenError::Key)?;
    let st = verify_signature(&env, &key).map_err(OpenError::Signature)?;
    let p = &st.predicate;
    let expected = Signer::from(role);
    if p.role != expected {
        return Err(OpenError::Role {
            found: p.role,
            expected,
        });
    }
    if p.kind != kind {
        return Err(OpenError::Kind {
            found: p.kind.clone(),
            expected: kind,
        });
    }
    check_protocol(&p.protocol).map_err(OpenError::Protocol)?;
    let typed = st.body::<T>().ok();
    Ok((
        Opened {
            run_id: p.run_id.clone(),
            plan_hash: p.plan_hash.clone(),
            body: p.body.clone(),
            digest: protocol::canonical::sha256(bytes).to_hex(),
            key_id: key.keyid(),
        },
        typed,
    ))
}

fn typed<T: DeserializeOwned>(
    bytes: &[u8],
    role: RoleName,
    kind: &'static str,
    key: &[u8; 32],
) -> Result<Opened<T>, OpenError> {
    let (o, body) = open::<T>(bytes, role, kind, key)?;
    let body = match body {
        Some(b) => b,
        None => serde_json::from_value(o.body.clone())
            .map_err(|source| OpenError::Body(ArtifactError::Body { source }))?,
    };
    Ok(Opened {
        run_id: o.run_id,
        plan_hash: o.plan_hash,
        body,
        digest: o.digest,
        key_id: o.key_id,
    })
}

/// The planner's plan; the body is the WorkPlan itself or `{"plan": WorkPlan}`.
pub fn open_plan(bytes: &[u8], role: RoleName, key: &[u8; 32]) -> Result<Opened<WorkPlan>, OpenError> {
    let (o, plan) = open::<WorkPlan>(bytes, role, "plan", key)?;
    let plan = match plan {
        Some(p) => p,
        None => serde_json::from_value::<PlanMsg>(o.body.clone())
            .map_err(|source| OpenError::Body(ArtifactError::Body { source }))?
            .plan,
    };
    Ok(Opened {
        run_id: o.run_id,
        plan_hash: o.plan_hash,
        body: plan,
        digest: o.digest,
        key_id: o.key_id,
    })
}

/// Test results.
pub fn open_test_results(
    bytes: &[u8],
    role: RoleName,
    key: &[u8; 32],
) -> Result<Opened<TestResults>, OpenError> {
    typed(bytes, role, "test_results", key)
}

/// Security review.
pub fn open_review(bytes: &[u8], role: RoleName, key: &[u8; 32]) -> Result<Opened<Review>, OpenError> {
    typed(bytes, role, "review", key)
}

/// Progress verdict.
pub fn open_progress(
    bytes: &[u8],
    role: RoleName,
    key: &[u8; 32],
) -> Result<Opened<Progress>, OpenError> {
    typed(bytes, role, "progress", key)
}

/// Cost ledger.
pub fn open_ledger(bytes: &[u8], role: RoleName, key: &[u8; 32]) -> Result<Opened<Ledger>, OpenError> {
    typed(bytes, role, "ledger", key)
}
