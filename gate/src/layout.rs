//! Where the gate finds things in the state directory (INTERFACES.md "State directory"), and
//! reading/writing its own decisions there.
//!
//! Nothing read here is trusted because of where it lies: role artifacts are verified against
//! role keys, and the gate's earlier decisions are verified against the gate's key before they
//! count (the run directory is the orchestrator's, so it could drop or swap files, never forge
//! them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use protocol::artifact::{
    verify_signature, ArtifactError, DsseEnvelope, KeyPair, PublicKey, Signer,
};
use protocol::canonical::sha256;
use protocol::roles::RoleName;

use crate::decision::Decision;
use crate::inputs::{ArtifactBytes, KeySource, RoleKeys};
use crate::integration::INTEGRATION_DIR;
use crate::sign::DECISION_KIND;

/// Errors reading or writing the state directory.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The run id could name a path outside the runs directory.
    #[error(
        "run id `{0}` is not of the form <FR-id>-<timestamp>-<hex> (letters, digits, '-', 'T')"
    )]
    BadRunId(String),
    /// The run directory does not exist.
    #[error("no run directory {0}")]
    NoRun(PathBuf),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A key file is unusable.
    #[error("key: {0}")]
    Key(#[source] ArtifactError),
    /// Neither `<state>/keys/gate` nor the run's per-run keys hold a gate key.
    #[error("no gate key: neither {state} nor {per_run} exists")]
    NoGateKey {
        /// `<state>/keys/gate/ed25519.key`.
        state: PathBuf,
        /// `<run>/keys/gate/ed25519.key`.
        per_run: PathBuf,
    },
    /// A decision file is not a valid gate decision for this run.
    #[error("decision {path} is not a gate decision for this run signed by the gate: {reason}")]
    BadDecision {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A gate decision read back from the run directory, verified.
#[derive(Debug, Clone)]
pub struct StoredDecision {
    /// `n` in `decision-<n>.dsse.json`.
    pub n: u32,
    /// The file.
    pub path: PathBuf,
    /// Hex SHA-256 of the envelope bytes.
    pub sha256: String,
    /// The decision.
    pub decision: Decision,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// A run id is used as a path component: only `[A-Za-z0-9-]`, not empty, not starting with '-'.
pub fn check_run_id(run: &str) -> Result<(), LayoutError> {
    let ok = !run.is_empty()
        && run.len() <= 128
        && !run.starts_with('-')
        && run.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(LayoutError::BadRunId(run.to_owned()))
    }
}

/// Reads a file without following a symlink in its place: the run directory belongs to the
/// orchestrator's user, and a set-id gate must not read a file of its own (its key) through a
/// link planted there.
fn read_nofollow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn read(path: &Path) -> Result<Vec<u8>, LayoutError> {
    read_nofollow(path).map_err(|source| LayoutError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, LayoutError> {
    match read_nofollow(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LayoutError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

impl StateDir {
    /// The state directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<state>/integration.git`.
    pub fn integration(&self) -> PathBuf {
        self.root.join(INTEGRATION_DIR)
    }

    /// `<state>/runs/<run>`, which must exist.
    pub fn run_dir(&self, run: &str) -> Result<PathBuf, LayoutError> {
        check_run_id(run)?;
        let dir = self.root.join("runs").join(run);
        // A real directory, not a symlink to somewhere the gate can write or read.
        let real_dir =
            |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_dir());
        let artifacts = dir.join("artifacts");
        let absent_or_dir =
            std::fs::symlink_metadata(&artifacts).map_or(true, |m| m.file_type().is_dir());
        if real_dir(&dir) && absent_or_dir {
            Ok(dir)
        } else {
            Err(LayoutError::NoRun(dir))
        }
    }

    /// The run's artifacts as stored (missing ones are `None`).
    pub fn artifacts(&self, run: &str) -> Result<ArtifactBytes, LayoutError> {
        let dir = self.run_dir(run)?;
        let a = dir.join("artifacts");
        Ok(ArtifactBytes {
            work_plan: read_opt(&dir.join("WORK_PLAN.json"))?,
            plan: read_opt(&a.join("plan.dsse.json"))?,
            test_results: read_opt(&a.join("test_results.dsse.json"))?,
            review: read_opt(&a.join("review.dsse.json"))?,
            progress: read_opt(&a.join("progress.dsse.json"))?,
            ledger: read_opt(&a.join("ledger.dsse.json"))?,
        })
    }

    /// The role public keys: `<state>/keys/<role>/ed25519.pub` when setup wrote them (every
    /// role), else the run's per-run keys (weaker mode).
    pub fn role_keys(&self, run: &str) -> Result<RoleKeys, LayoutError> {
        let state_keys = self.root.join("keys");
        let (base, source) = if RoleName::ALL
            .iter()
            .all(|r| state_keys.join(r.as_str()).join("ed25519.pub").is_file())
        {
            (state_keys, KeySource::State)
        } else {
            (self.run_dir(run)?.join("keys"), KeySource::PerRun)
        };
        let mut keys = BTreeMap::new();
        for role in RoleName::ALL {
            let path = base.join(role.as_str()).join("ed25519.pub");
            if path.is_file() {
                let k = PublicKey::read(&path).map_err(LayoutError::Key)?;
                keys.insert(role, k.to_bytes());
            }
        }
        Ok(RoleKeys { keys, source })
    }

    fn gate_key_paths(&self, run: &str) -> Result<(PathBuf, PathBuf), LayoutError> {
        Ok((
            self.root.join("keys/gate"),
            self.run_dir(run)?.join("keys/gate"),
        ))
    }

    /// The gate's signing key: `<state>/keys/gate/ed25519.key` (written by `orchestrate
    /// setup`), else the run's per-run gate key, which the gate creates on first use when there
    /// is neither (weaker mode: receipts say so).
    pub fn gate_key(&self, run: &str) -> Result<(KeyPair, KeySource), LayoutError> {
        let (state, per_run) = self.gate_key_paths(run)?;
        for (dir, source) in [(&state, KeySource::State), (&per_run, KeySource::PerRun)] {
            let path = dir.join("ed25519.key");
            if path.is_file() {
                return Ok((
                    KeyPair::read_private(&path).map_err(LayoutError::Key)?,
                    source,
                ));
            }
        }
        std::fs::create_dir_all(&per_run).map_err(|source| LayoutError::Write {
            path: per_run.clone(),
            source,
        })?;
        let key = KeyPair::generate();
        key.write_private(&per_run.join("ed25519.key"))
            .map_err(LayoutError::Key)?;
        key.public()
            .write(&per_run.join("ed25519.pub"))
            .map_err(LayoutError::Key)?;
        Ok((key, KeySource::PerRun))
    }

    /// The gate's public key, from the same place as [`StateDir::gate_key`].
    pub fn gate_public(&self, run: &str) -> Result<PublicKey, LayoutError> {
        let (state, per_run) = self.gate_key_paths(run)?;
        for dir in [&state, &per_run] {
            let path = dir.join("ed25519.pub");
            if path.is_file() {
                return PublicKey::read(&path).map_err(LayoutError::Key);
            }
        }
        Err(LayoutError::NoGateKey {
            state: state.join("ed25519.pub"),
            per_run: per_run.join("ed25519.pub"),
        })
    }

    /// Every `artifacts/decision-<n>.dsse.json` of the run, verified under the gate's key, in
    /// order. A file that does not verify is an error: somebody tampered with the run directory.
    pub fn decisions(&self, run: &str) -> Result<Vec<StoredDecision>, LayoutError> {
        let dir = self.run_dir(run)?.join("artifacts");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(LayoutError::Read { path: dir, source }),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| LayoutError::Read {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = decision_number(&name) {
                found.push((n, entry.path()));
            }
        }
        found.sort();
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.gate_public(run)?;
        found
            .into_iter()
            .map(|(n, path)| open_decision(&path, n, run, &key))
            .collect()
    }

    /// Writes a signed decision as the next `decision-<n>.dsse.json` (never overwriting).
    pub fn write_decision(&self, run: &str, bytes: &[u8]) -> Result<StoredDecision, LayoutError> {
        use std::io::Write as _;
        let dir = self.run_dir(run)?.join("artifacts");
        std::fs::create_dir_all(&dir).map_err(|source| LayoutError::Write {
            path: dir.clone(),
            source,
        })?;
        let n = self.decisions(run)?.last().map_or(1, |d| d.n + 1);
        let path = dir.join(format!("decision-{n}.dsse.json"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| LayoutError::Write {
                path: path.clone(),
                source,
            })?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|source| LayoutError::Write {
                path: path.clone(),
                source,
            })?;
        let key = self.gate_public(run)?;
        open_decision(&path, n, run, &key)
    }
}

fn decision_number(name: &str) -> Option<u32> {
    name.strip_prefix("decision-")?
        .strip_suffix(".dsse.json")?
        .parse()
        .ok()
}

/// Reads and verifies one decision file.
pub fn open_decision(
    path: &Path,
    n: u32,
    run: &str,
    key: &PublicKey,
) -> Result<StoredDecision, LayoutError> {
    let bytes = read(path)?;
    let bad = |reason: String| LayoutError::BadDecision {
        path: path.to_owned(),
        reason,
    };
    let env: DsseEnvelope = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let st = verify_signature(&env, key).map_err(|e| bad(e.to_string()))?;
    let p = &st.predicate;
    if p.role != Signer::Gate || p.kind != DECISION_KIND || p.run_id != run {
        return Err(bad(format!(
            "signed by {} as `{}` for run `{}`",
            p.role, p.kind, p.run_id
        )));
    }
    let decision: Decision = st.body().map_err(|e| bad(e.to_string()))?;
    Ok(StoredDecision {
        n,
        path: path.to_owned(),
        sha256: sha256(&bytes).to_hex(),
        decision,
    })
}
