//! Signed role artifacts: a DSSE envelope around an in-toto Statement v1.
//!
//! The payload is the canonical JSON of the statement; the signature is ed25519 over DSSE's
//! pre-authentication encoding (PAE) of payload type and payload, so the type cannot be swapped
//! under a valid signature. The predicate binds the artifact to one run, one role and one plan
//! hash: a clean review from another run, or from a role forging another's output, is refused by
//! [`verify_artifact`] even when its signature is valid for the key presented.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::canonical::{self, sha256, CanonicalError, Digest32};
use crate::frame::{check_protocol, FrameError, PROTOCOL_VERSION};
use crate::roles::RoleName;

/// DSSE payload type of every artifact.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Our predicate type.
pub const PREDICATE_TYPE: &str = "https://orchestrate.dev/artifact/v1";

/// Who signed an artifact: one of the six roles, the gate, or the orchestrator.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Signer {
    /// Planner.
    Planner,
    /// Codegen.
    Codegen,
    /// Security review.
    SecurityReview,
    /// Test runner.
    TestRunner,
    /// Cost control.
    CostControl,
    /// Progress evaluator.
    ProgressEvaluator,
    /// The promotion gate.
    Gate,
    /// The orchestrator (receipts, audit heads).
    Orchestrator,
}

impl From<RoleName> for Signer {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::Planner => Signer::Planner,
            RoleName::Codegen => Signer::Codegen,
            RoleName::SecurityReview => Signer::SecurityReview,
            RoleName::TestRunner => Signer::TestRunner,
            RoleName::CostControl => Signer::CostControl,
            RoleName::ProgressEvaluator => Signer::ProgressEvaluator,
        }
    }
}

impl Signer {
    /// The stable kebab-case name (the role names, plus `gate` and `orchestrator`).
    pub fn as_str(self) -> &'static str {
        match self {
            Signer::Planner => "planner",
            Signer::Codegen => "codegen",
            Signer::SecurityReview => "security-review",
            Signer::TestRunner => "test-runner",
            Signer::CostControl => "cost-control",
            Signer::ProgressEvaluator => "progress-evaluator",
            Signer::Gate => "gate",
            Signer::Orchestrator => "orchestrator",
        }
    }
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DsseEnvelope {
    /// Always [`PAYLOAD_TYPE`].
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 (standard) of the canonical statement JSON.
    pub payload: String,
    /// Signatures; exactly one is produced and accepted.
    pub signatures: Vec<DsseSignature>,
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DsseSignature {
    /// Hex SHA-256 of the raw 32-byte public key.
    pub keyid: String,
    /// Base64 (standard) of the 64-byte ed25519 signature.
    pub sig: String,
}

/// An in-toto Statement v1 with our predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// What the artifact is about (a commit, a file).
    pub subject: Vec<Subject>,
    /// Always [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// Ours.
    pub predicate: Predicate,
}

/// An in-toto subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// Name (a path, a branch, a commit description).
    pub name: String,
    /// Its digest(s).
    pub digest: SubjectDigest,
}

/// Digests of a subject: a file's SHA-256 and/or a git commit id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectDigest {
    /// Hex SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Git commit id (hex).
    #[serde(rename = "gitCommit", default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
}

impl Subject {
    /// A git commit subject.
    pub fn commit(name: impl Into<String>, commit: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            digest: SubjectDigest {
                sha256: None,
                git_commit: Some(commit.into()),
            },
        }
    }

    /// A file (or blob) subject, digested with plain SHA-256.
    pub fn file(name: impl Into<String>, contents: &[u8]) -> Self {
        Self {
            name: name.into(),
            digest: SubjectDigest {
                sha256: Some(sha256(contents).to_hex()),
                git_commit: None,
            },
        }
    }
}

/// Our predicate: which run, which signer, which plan, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    /// The run.
    pub run_id: String,
    /// Who produced it.
    pub role: Signer,
    /// What it is: `plan`, `test_results`, `review`, `progress`, `ledger`, `gate_decision`,
    /// `receipt`, ...
    pub kind: String,
    /// Hex hash of the run's WORK_PLAN (`WorkPlan::hash`).
    pub plan_hash: String,
    /// Protocol version of the signer.
    pub protocol: String,
    /// The artifact's content.
    pub body: serde_json::Value,
}

impl Statement {
    /// A statement with our types and the current protocol version.
    pub fn new<T: Serialize>(
        subject: Vec<Subject>,
        run_id: impl Into<String>,
        role: impl Into<Signer>,
        kind: impl Into<String>,
        plan_hash: &Digest32,
        body: &T,
    ) -> Result<Self, ArtifactError> {
        let body = serde_json::to_value(body).map_err(|source| ArtifactError::Body { source })?;
        Ok(Self {
            type_: STATEMENT_TYPE.to_owned(),
            subject,
            predicate_type: PREDICATE_TYPE.to_owned(),
            predicate: Predicate {
                run_id: run_id.into(),
                role: role.into(),
                kind: kind.into(),
                plan_hash: plan_hash.to_hex(),
                protocol: PROTOCOL_VERSION.to_owned(),
                body,
            },
        })
    }

    /// The body as a typed value.
    pub fn body<T: serde::de::DeserializeOwned>(&self) -> Result<T, ArtifactError> {
        serde_json::from_value(self.predicate.body.clone())
            .map_err(|source| ArtifactError::Body { source })
    }
}

/// Why an artifact could not be signed, verified, or a key file used.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The statement could not be written as canonical JSON.
    #[error("artifact statement cannot be canonicalised: {source}")]
    Canonical {
        /// Why.
        #[source]
        source: CanonicalError,
    },
    /// The body could not be converted to or from JSON.
    #[error("artifact body does not convert to/from JSON: {source}")]
    Body {
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// payloadType is not in-toto.
    #[error("artifact payloadType is `{found}`, expected `{PAYLOAD_TYPE}`")]
    PayloadType {
        /// What it was.
        found: String,
    },
    /// Not exactly one signature.
    #[error("artifact has {count} signatures, exactly one is accepted")]
    SignatureCount {
        /// How many.
        count: usize,
    },
    /// Signed by another key than the one presented.
    #[error("artifact was signed by key {found}, expected {expected}")]
    WrongKey {
        /// The envelope's keyid.
        found: String,
        /// The presented key's id.
        expected: String,
    },
    /// Base64 of payload or signature is invalid.
    #[error("artifact {field} is not valid base64: {source}")]
    Base64 {
        /// `payload` or `sig`.
        field: &'static str,
        /// Why.
        #[source]
        source: base64::DecodeError,
    },
    /// The signature is malformed or does not verify.
    #[error("artifact signature does not verify: {source}")]
    BadSignature {
        /// Why.
        #[source]
        source: ed25519_dalek::SignatureError,
    },
    /// The payload is not a statement.
    #[error("artifact payload is not an in-toto statement: {source}")]
    Payload {
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The payload is not in canonical form (it was re-encoded after signing).
    #[error("artifact payload is not canonical JSON")]
    NotCanonical,
    /// `_type` or `predicateType` is not ours.
    #[error("artifact {field} is `{found}`, expected `{expected}`")]
    WrongType {
        /// `_type` or `predicateType`.
        field: &'static str,
        /// What it was.
        found: String,
        /// What it must be.
        expected: &'static str,
    },
    /// Produced by another role than expected.
    #[error("artifact was produced by {found}, expected {expected}")]
    WrongRole {
        /// Its role.
        found: Signer,
        /// Expected role.
        expected: Signer,
    },
    /// From another run.
    #[error("artifact belongs to run `{found}`, expected run `{expected}`")]
    WrongRun {
        /// Its run.
        found: String,
        /// Expected run.
        expected: String,
    },
    /// Bound to another plan.
    #[error("artifact is bound to plan {found}, expected plan {expected}")]
    WrongPlan {
        /// Its plan hash.
        found: String,
        /// Expected plan hash.
        expected: String,
    },
    /// Protocol version missing, malformed, or another major.
    #[error("artifact protocol version: {source}")]
    Protocol {
        /// Why.
        #[source]
        source: FrameError,
    },
    /// A key file could not be read or written.
    #[error("{}: {source}", path.display())]
    KeyIo {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A key file is not a valid PKCS#8 / SPKI PEM ed25519 key.
    #[error("{}: not an ed25519 key in PEM form: {reason}", path.display())]
    KeyFormat {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// An ed25519 signing key.
pub struct KeyPair {
    signing: SigningKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret half.
        write!(f, "KeyPair({})", self.public().keyid())
    }
}

/// An ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.keyid())
    }
}

impl KeyPair {
    /// A fresh key from the OS's random source.
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// A key from a 32-byte seed (tests and deterministic fixtures).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: self.signing.verifying_key(),
        }
    }

    /// Writes the private key as PKCS#8 PEM, mode 0600, refusing to overwrite an existing file.
    pub fn write_private(&self, path: &Path) -> Result<(), ArtifactError> {
        let pem =
            self.signing
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| ArtifactError::KeyFormat {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
        write_new(path, pem.as_bytes(), 0o600)
    }

    /// Reads a PKCS#8 PEM private key.
    pub fn read_private(path: &Path) -> Result<Self, ArtifactError> {
        let text = std::fs::read_to_string(path).map_err(|source| ArtifactError::KeyIo {
            path: path.to_owned(),
            source,
        })?;
        let signing = SigningKey::from_pkcs8_pem(&text).map_err(|e| ArtifactError::KeyFormat {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self { signing })
    }

    fn sign_bytes(&self, msg: &[u8]) -> Signature {
        self.signing.sign(msg)
    }
}

impl PublicKey {
    /// Hex SHA-256 of the raw 32-byte key.
    pub fn keyid(&self) -> String {
        sha256(self.key.as_bytes()).to_hex()
    }

    /// The raw 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// From raw 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, ArtifactError> {
        VerifyingKey::from_bytes(bytes)
            .map(|key| Self { key })
            .map_err(|source| ArtifactError::BadSignature { source })
    }

    /// Writes the key as SPKI PEM (mode 0644), refusing to overwrite an existing file.
    pub fn write(&self, path: &Path) -> Result<(), ArtifactError> {
        let pem =
            self.key
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| ArtifactError::KeyFormat {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
        write_new(path, pem.as_bytes(), 0o644)
    }

    /// Reads an SPKI PEM public key.
    pub fn read(path: &Path) -> Result<Self, ArtifactError> {
        let text = std::fs::read_to_string(path).map_err(|source| ArtifactError::KeyIo {
            path: path.to_owned(),
            source,
        })?;
        let key =
            VerifyingKey::from_public_key_pem(&text).map_err(|e| ArtifactError::KeyFormat {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self { key })
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ArtifactError> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|source| ArtifactError::KeyIo {
            path: path.to_owned(),
            source,
        })
}

/// DSSE pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs a statement: canonical JSON payload, ed25519 over its PAE.
pub fn sign_artifact(key: &KeyPair, statement: &Statement) -> Result<DsseEnvelope, ArtifactError> {
    let payload =
        canonical::to_vec(statement).map_err(|source| ArtifactError::Canonical { source })?;
    let sig = key.sign_bytes(&pae(PAYLOAD_TYPE, &payload));
    Ok(DsseEnvelope {
        payload_type: PAYLOAD_TYPE.to_owned(),
        payload: B64.encode(&payload),
        signatures: vec![DsseSignature {
            keyid: key.public().keyid(),
            sig: B64.encode(sig.to_bytes()),
        }],
    })
}

/// Verifies an artifact and returns its statement: signed by `key`, untouched, produced by
/// `expected_role` for run `expected_run` under plan `expected_plan_hash`, with our major
/// protocol version.
pub fn verify_artifact(
    env: &DsseEnvelope,
    expected_role: impl Into<Signer>,
    expected_run: &str,
    expected_plan_hash: &Digest32,
    key: &PublicKey,
) -> Result<Statement, ArtifactError> {
    let statement = verify_signature(env, key)?;
    let p = &statement.predicate;
    let expected_role = expected_role.into();
    if p.role != expected_role {
        return Err(ArtifactError::WrongRole {
            found: p.role,
            expected: expected_role,
        });
    }
    if p.run_id != expected_run {
        return Err(ArtifactError::WrongRun {
            found: p.run_id.clone(),
            expected: expected_run.to_owned(),
        });
    }
    if p.plan_hash != expected_plan_hash.to_hex() {
        return Err(ArtifactError::WrongPlan {
            found: p.plan_hash.clone(),
            expected: expected_plan_hash.to_hex(),
        });
    }
    check_protocol(&p.protocol).map_err(|source| ArtifactError::Protocol { source })?;
    Ok(statement)
}

/// Checks only the envelope, the signature and the statement's types; returns the statement.
/// Use [`verify_artifact`] unless the caller checks role, run and plan itself.
pub fn verify_signature(env: &DsseEnvelope, key: &PublicKey) -> Result<Statement, ArtifactError> {
    if env.payload_type != PAYLOAD_TYPE {
        return Err(ArtifactError::PayloadType {
            found: env.payload_type.clone(),
        });
    }
    let [sig] = env.signatures.as_slice() else {
        return Err(ArtifactError::SignatureCount {
            count: env.signatures.len(),
        });
    };
    let keyid = key.keyid();
    if sig.keyid != keyid {
        return Err(ArtifactError::WrongKey {
            found: sig.keyid.clone(),
            expected: keyid,
        });
    }
    let payload = B64
        .decode(&env.payload)
        .map_err(|source| ArtifactError::Base64 {
            field: "payload",
            source,
        })?;
    let sig_bytes = B64
        .decode(&sig.sig)
        .map_err(|source| ArtifactError::Base64 {
            field: "sig",
            source,
        })?;
    let signature = Signature::from_slice(&sig_bytes)
        .map_err(|source| ArtifactError::BadSignature { source })?;
    key.key
        .verify_strict(&pae(&env.payload_type, &payload), &signature)
        .map_err(|source| ArtifactError::BadSignature { source })?;
    let statement: Statement =
        serde_json::from_slice(&payload).map_err(|source| ArtifactError::Payload { source })?;
    let canonical =
        canonical::to_vec(&statement).map_err(|source| ArtifactError::Canonical { source })?;
    if canonical != payload {
        return Err(ArtifactError::NotCanonical);
    }
    if statement.type_ != STATEMENT_TYPE {
        return Err(ArtifactError::WrongType {
            field: "_type",
            found: statement.type_.clone(),
            expected: STATEMENT_TYPE,
        });
    }
    if statement.predicate_type != PREDICATE_TYPE {
        return Err(ArtifactError::WrongType {
            field: "predicateType",
            found: statement.predicate_type.clone(),
            expected: PREDICATE_TYPE,
        });
    }
    Ok(statement)
}

#[cfg(test)]
#[path = "artifact_tests.rs"]
mod tests;
