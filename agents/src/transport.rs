//! The role side of the frame socket: the fd the orchestrator passed (`ORCHESTRATE_FRAME_FD`,
//! normally 3), blocking reads and writes of [`protocol::frame`] envelopes, and this role's
//! signing key (`ORCHESTRATE_KEY`). A role opens no other socket.

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use protocol::artifact::{sign_artifact, ArtifactError, DsseEnvelope, KeyPair, Statement, Subject};
use protocol::canonical::Digest32;
use protocol::frame::{read_frame, write_frame, Envelope, FrameError, Message};
use protocol::RoleName;
use serde::Serialize;

/// Env var naming the inherited frame socket fd.
pub const FRAME_FD_ENV: &str = "ORCHESTRATE_FRAME_FD";
/// Env var naming the role's private key file.
pub const KEY_ENV: &str = "ORCHESTRATE_KEY";

/// Errors of the transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `ORCHESTRATE_FRAME_FD` is missing or not a number.
    #[error("{FRAME_FD_ENV} is missing or not an fd number: {value:?}")]
    NoFd {
        /// What the variable held.
        value: Option<String>,
    },
    /// The fd is not an open socket.
    #[error("frame fd {fd} is not an open socket")]
    NotSocket {
        /// The fd.
        fd: RawFd,
    },
    /// Reading or writing a frame failed.
    #[error("frame on fd {fd}: {source}")]
    Frame {
        /// The fd.
        fd: RawFd,
        /// Cause.
        source: FrameError,
    },
    /// `ORCHESTRATE_KEY` is missing.
    #[error("{KEY_ENV} is not set: this role signs its results and has no key")]
    NoKey,
    /// The key could not be read or a statement not signed.
    #[error("signing key {path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Cause.
        source: ArtifactError,
    },
    /// A statement could not be built or signed.
    #[error("signing the {kind} artifact: {source}")]
    Sign {
        /// Artifact kind.
        kind: &'static str,
        /// Cause.
        source: ArtifactError,
    },
}

/// One role's end of the frame socket.
pub struct Transport {
    stream: UnixStream,
    fd: RawFd,
    run_id: String,
    role: RoleName,
    seq: u64,
    key: Option<KeyPair>,
}

impl Transport {
    /// Opens the socket named by `ORCHESTRATE_FRAME_FD` and the key named by `ORCHESTRATE_KEY`
    /// (the key is optional here and required by [`Transport::sign`]).
    pub fn from_env(run_id: String, role: RoleName) -> Result<Self, TransportError> {
        let value = std::env::var(FRAME_FD_ENV).ok();
        let fd: RawFd =
            value
                .as_deref()
                .and_then(|v| v.parse().ok())
                .ok_or(TransportError::NoFd {
                    value: value.clone(),
                })?;
        // SAFETY: F_GETFD only queries the descriptor table; an invalid fd yields -1.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(TransportError::NotSocket { fd });
        }
        // SAFETY: the orchestrator passed this fd to this process for exactly this use; nothing
        // else in the process opens or owns it, so the stream becomes its only owner.
        let stream = unsafe { UnixStream::from_raw_fd(fd) };
        let key = match std::env::var_os(KEY_ENV) {
            None => None,
            Some(p) => {
                let path = PathBuf::from(p);
                Some(
                    KeyPair::read_private(&path)
                        .map_err(|source| TransportError::Key { path, source })?,
                )
            }
        };
        Ok(Self {
            stream,
            fd,
            run_id,
            role,
            seq: 0,
            key,
        })
    }

    /// The next frame from the orchestrator; `None` when it closed the socket.
    pub fn recv(&mut self) -> Result<Option<Envelope>, TransportError> {
        read_frame(&mut self.stream).map_err(|source| TransportError::Frame {
            fd: self.fd,
            source,
        })
    }

    /// Sends `body`, with `artifact` when it is a signed result.
    pub fn send(
        &mut self,
        body: Message,
        artifact: Option<DsseEnvelope>,
    ) -> Result<(), TransportError> {
        let mut env = Envelope::new(self.run_id.clone(), self.role, self.seq, body);
        env.artifact = artifact;
        self.seq += 1;
        write_frame(&mut self.stream, &env).map_err(|source| TransportError::Frame {
            fd: self.fd,
            source,
        })
    }

    /// Writes raw bytes on the socket (only the recorded-misbehaviour replay uses this, to send
    /// what a broken or hostile role would).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Signs `body` as this role's artifact of `kind` about `subject`, bound to `plan_hash`.
    pub fn sign<T: Serialize>(
        &self,
        kind: &'static str,
        subject: Vec<Subject>,
        plan_hash: &Digest32,
        body: &T,
    ) -> Result<DsseEnvelope, TransportError> {
        let key = self.key.as_ref().ok_or(TransportError::NoKey)?;
        let statement = Statement::new(
            subject,
            self.run_id.clone(),
            self.role,
            kind,
            plan_hash,
            body,
        )
        .map_err(|source| TransportError::Sign { kind, source })?;
        sign_artifact(key, &statement).map_err(|source| TransportError::Sign { kind, source })
    }
}
