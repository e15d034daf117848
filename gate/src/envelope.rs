//! Opening role artifacts. Everything about the envelope is `protocol::artifact::verify_artifact`
//! (DSSE, in-toto types, signature under the expected role's key, role, run, plan hash, protocol
//! version); this module adds only what is the gate's: the artifact *kind* in the predicate (a
//! progress verdict must not pass as a review) and the typed body.

use protocol::artifact::{verify_artifact, ArtifactError, DsseEnvelope, PublicKey};
use protocol::canonical::Digest32;
use protocol::frame::{Ledger, PlanMsg, Progress, Review, TestResults};
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
    /// Rejected by `verify_artifact` (signature, types, role, run, plan, protocol).
    #[error("{0}")]
    Artifact(#[source] ArtifactError),
    /// Another kind of artifact (a progress verdict passed off as a review).
    #[error("artifact kind `{found}`, expected `{expected}`")]
    Kind {
        /// Kind in the predicate.
        found: String,
        /// Kind expected.
        expected: &'static str,
    },
    /// The body does not have the expected shape.
    #[error("body: {0}")]
    Body(#[source] serde_json::Error),
}

impl OpenError {
    /// True when the signature was fine but the artifact belongs to another run or plan: a
    /// replay, reported by the gate as a broken chain rather than a forged signature.
    pub fn is_chain_break(&self) -> bool {
        matches!(
            self,
            OpenError::Artifact(ArtifactError::WrongRun { .. } | ArtifactError::WrongPlan { .. })
        )
    }
}

/// A verified artifact.
#[derive(Debug, Clone)]
pub struct Opened<T> {
    /// The body.
    pub body: T,
    /// Hex SHA-256 of the envelope bytes as stored.
    pub digest: String,
    /// keyid of the key that verified it.
    pub key_id: String,
}

/// What an artifact must be bound to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The hash of the run's WORK_PLAN.json.
    pub plan_hash: &'a Digest32,
}

fn open<T: DeserializeOwned>(
    bytes: &[u8],
    role: RoleName,
    kind: &'static str,
    bind: Binding<'_>,
    key: &[u8; 32],
) -> Result<(Opened<serde_json::Value>, Result<T, serde_json::Error>), OpenError> {
    let env: DsseEnvelope = serde_json::from_slice(bytes).map_err(OpenError::Json)?;
    let key = PublicKey::from_bytes(key).map_err(OpenError::Key)?;
    let st = verify_artifact(&env, role, bind.run_id, bind.plan_hash, &key)
        .map_err(OpenError::Artifact)?;
    if st.predicate.kind != kind {
        return Err(OpenError::Kind {
            found: st.predicate.kind.clone(),
            expected: kind,
        });
    }
    let typed = serde_json::from_value::<T>(st.predicate.body.clone());
    Ok((
        Opened {
            body: st.predicate.body,
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
    bind: Binding<'_>,
    key: &[u8; 32],
) -> Result<Opened<T>, OpenError> {
    let (o, body) = open::<T>(bytes, role, kind, bind, key)?;
    Ok(Opened {
        body: body.map_err(OpenError::Body)?,
        digest: o.digest,
        key_id: o.key_id,
    })
}

/// The planner's plan; the body is the WorkPlan itself or `{"plan": WorkPlan}`.
pub fn open_plan(
    bytes: &[u8],
    bind: Binding<'_>,
    key: &[u8; 32],
) -> Result<Opened<WorkPlan>, OpenError> {
    let (o, plan) = open::<WorkPlan>(bytes, RoleName::Planner, "plan", bind, key)?;
    let plan = match plan {
        Ok(p) => p,
        Err(_) => {
            serde_json::from_value::<PlanMsg>(o.body.clone())
                .map_err(OpenError::Body)?
                .plan
        }
    };
    Ok(Opened {
        body: plan,
        digest: o.digest,
        key_id: o.key_id,
    })
}

/// Test results.
pub fn open_test_results(
    bytes: &[u8],
    bind: Binding<'_>,
    key: &[u8; 32],
) -> Result<Opened<TestResults>, OpenError> {
    typed(bytes, RoleName::TestRunner, "test_results", bind, key)
}

/// Security review.
pub fn open_review(
    bytes: &[u8],
    bind: Binding<'_>,
    key: &[u8; 32],
) -> Result<Opened<Review>, OpenError> {
    typed(bytes, RoleName::SecurityReview, "review", bind, key)
}

/// Progress verdict.
pub fn open_progress(
    bytes: &[u8],
    bind: Binding<'_>,
    key: &[u8; 32],
) -> Result<Opened<Progress>, OpenError> {
    typed(bytes, RoleName::ProgressEvaluator, "progress", bind, key)
}

/// Cost ledger.
pub fn open_ledger(
    bytes: &[u8],
    bind: Binding<'_>,
    key: &[u8; 32],
) -> Result<Opened<Ledger>, OpenError> {
    typed(bytes, RoleName::CostControl, "ledger", bind, key)
}
