//! `orchestrate review RUN`: the security review of a run, read from the run's signed artifact
//! (`<state>/runs/<RUN>/artifacts/review.dsse.json`), its signature checked against the
//! security-review public key (`<state>/keys/security-review/ed25519.pub`, else the run's own
//! `<state>/runs/<RUN>/keys/security-review/ed25519.pub`). Text grouped by severity by default;
//! `--json` prints the findings; `--sarif [FILE]` writes SARIF 2.1.0 (stdout without FILE).
//! Exit 1 when a finding of high or critical severity exists or the signature does not verify.

use std::path::{Path, PathBuf};

use agents::review::{report, sarif, Finding, Severity};
use base64::Engine as _;
use clap::Args;
use protocol::artifact::{self, DsseEnvelope, PublicKey, Signer, Statement};
use protocol::frame::Review;
use serde::Serialize;

use super::context::{Context, ContextError};
use super::exit::{ExitCode, Failure};
use super::output::{Mark, Output};

/// `orchestrate review RUN [--sarif [FILE]] [--json]`
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The run id (`FR-12-20260101T120000-ab12`).
    #[arg(value_name = "RUN")]
    run: String,
    /// Write SARIF 2.1.0 to FILE, or to stdout instead of the text when FILE is omitted.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    sarif: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

impl ReviewArgs {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        self.json
    }
}

/// Errors of `orchestrate review`.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The state directory could not be resolved.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The run id would leave the runs directory.
    #[error("{run:?} is not a run id")]
    BadRunId {
        /// What was given.
        run: String,
    },
    /// The run or its review artifact does not exist.
    #[error("no review artifact for run {run} at {path}")]
    NotFound {
        /// The run.
        run: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// Reading a file.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The artifact is not a DSSE envelope with a statement and a review body.
    #[error("{path} is not a review artifact: {detail}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The public key file does not parse.
    #[error("reading public key {path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: artifact::ArtifactError,
    },
    /// Writing the SARIF file.
    #[error("writing SARIF to {path}: {source}")]
    WriteSarif {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl Failure for ReviewError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ReviewError::Context(e) => e.exit_code(),
            ReviewError::BadRunId { .. } | ReviewError::NotFound { .. } => ExitCode::Usage,
            ReviewError::Malformed { .. } => ExitCode::Failed,
            ReviewError::Read { .. } | ReviewError::Key { .. } | ReviewError::WriteSarif { .. } => {
                ExitCode::Internal
            }
        }
    }
}

/// How far the artifact's origin was checked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Signature {
    /// Signed by the security-review key for this run.
    Verified {
        /// Key id (hex SHA-256 of the public key).
        keyid: String,
        /// Key file used.
        key: PathBuf,
    },
    /// No security-review public key was found: the content is shown, its origin unproven.
    Unchecked,
    /// The signature, role or run does not match: the content must not be trusted.
    Invalid {
        /// Why.
        reason: String,
    },
}

/// A run id is one path component of letters, digits, `-`, `_` and `.`, not `.` or `..`.
fn valid_run_id(run: &str) -> bool {
    !run.is_empty()
        && run != "."
        && run != ".."
        && run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn key_path(state: &Path, run_dir: &Path) -> Option<PathBuf> {
    [
        state.join("keys/security-review/ed25519.pub"),
        run_dir.join("keys/security-review/ed25519.pub"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

fn decode_unverified(env: &DsseEnvelope) -> Result<Statement, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&env.payload)
        .map_err(|e| format!("payload is not base64: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("payload is not a statement: {e}"))
}

/// Reads the run's review artifact and checks its signature when a key is available.
pub fn load(state: &Path, run: &str) -> Result<(Review, Signature), ReviewError> {
    if !valid_run_id(run) {
        return Err(ReviewError::BadRunId {
            run: run.to_string(),
        });
    }
    let run_dir = state.join("runs").join(run);
    let path = run_dir.join("artifacts/review.dsse.json");
    if !path.is_file() {
        return Err(ReviewError::NotFound {
            run: run.to_string(),
            path,
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ReviewError::Read {
        path: path.clone(),
        source,
    })?;
    let malformed = |detail: String| ReviewError::Malformed {
        path: path.clone(),
        detail,
    };
    let env: DsseEnvelope = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    let (statement, signature) = match key_path(state, &run_dir) {
        Some(kp) => {
            let key = PublicKey::read(&kp).map_err(|source| ReviewError::Key {
                path: kp.clone(),
                source,
            })?;
            match artifact::verify_signature(&env, &key) {
                Ok(st) => {
                    let p = &st.predicate;
                    let sig = if p.role != Signer::SecurityReview {
                        Signature::Invalid {
                            reason: format!("signed as {}, not security-review", p.role),
                        }
                    } else if p.run_id != run {
                        Signature::Invalid {
                            reason: format!("artifact of run {}, not {run}", p.run_id),
                        }
                    } else {
                        Signature::Verified {
                            keyid: key.keyid(),
                            key: kp,
                        }
                    };
                    (st, sig)
                }
                Err(e) => (
                    decode_unverified(&env).map_err(malformed)?,
                    Signature::Invalid {
                        reason: e.to_string(),
                    },
                ),
            }
        }
        None => (
            decode_unverified(&env).map_err(malformed)?,
            Signature::Unchecked,
        ),
    };
    let review: Review = statement
        .body()
        .map_err(|e| malformed(format!("body is not a review: {e}")))?;
    Ok((review, signature))
}

#[derive(Serialize)]
struct Doc<'a> {
    run: &'a str,
    commit: &'a str,
    iteration: u32,
    signature: &'a Signature,
    counts: report::Counts,
    findings: &'a [Finding],
    /// The signed test results and evidence files (JUnit, lcov, coverage), when the run has them.
    tests: Option<&'a agents::coverage::summary::TestEvidence>,
}

/// The run's test evidence, its signature checked with the test-runner's key when one exists.
fn test_evidence(state: &Path, run: &str) -> Option<agents::coverage::summary::TestEvidence> {
    let run_dir = state.join("runs").join(run);
    let key = [
        state.join("keys/test-runner/ed25519.pub"),
        run_dir.join("keys/test-runner/ed25519.pub"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .and_then(|p| PublicKey::read(&p).ok());
    agents::coverage::summary::read(&run_dir, run, key.as_ref())
}

/// Runs `orchestrate review`.
pub fn run(ctx: &Context, out: &Output, args: &ReviewArgs) -> Result<ExitCode, ReviewError> {
    let state = ctx.state_dir()?;
    let (review, signature) = load(&state, &args.run)?;
    let findings: Vec<Finding> = review.findings.iter().map(report::from_protocol).collect();
    let tests = test_evidence(&state, &args.run);
    let sarif_to_stdout = args.sarif.as_deref() == Some(Path::new("-"));
    if let Some(path) = &args.sarif {
        let doc = sarif::to_sarif(&findings, env!("CARGO_PKG_VERSION"));
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
        if sarif_to_stdout {
            print!("{text}");
        } else {
            std::fs::write(path, text).map_err(|source| ReviewError::WriteSarif {
                path: path.clone(),
                source,
            })?;
        }
    }
    if out.is_json() {
        out.document(&Doc {
            run: &args.run,
            commit: &review.commit,
            iteration: review.iteration,
            signature: &signature,
            counts: report::Counts::of(&findings),
            findings: &findings,
            tests: tests.as_ref(),
        });
    } else if !sarif_to_stdout {
        out.line(format!(
            "review of run {} (iteration {}, commit {})",
            args.run, review.iteration, review.commit
        ));
        match &signature {
            Signature::Verified { keyid, .. } => out.mark(
                Mark::Ok,
                "signature",
                format!("security-review key {keyid}"),
            ),
            Signature::Unchecked => out.mark(
                Mark::Warn,
                "signature",
                "not checked: no security-review public key found",
            ),
            Signature::Invalid { reason } => out.mark(Mark::Fail, "signature", reason),
        }
        out.line(report::render_text(&findings).trim_end());
        if let Some(t) = &tests {
            out.line(agents::coverage::summary::render(t).trim_end());
        }
    }
    let bad_sig = matches!(signature, Signature::Invalid { .. })
        || tests.as_ref().is_some_and(|t| t.tampered());
    Ok(if bad_sig || report::blocks(&findings, Severity::High) {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}

#[cfg(test)]
#[path = "review_tests.rs"]
mod tests;
