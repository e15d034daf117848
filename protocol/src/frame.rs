//! Length-prefixed JSON frames between a role and the orchestrator.
//!
//! Wire format: a 4-byte big-endian length, then that many bytes of JSON (one [`Envelope`]).
//! A frame longer than [`MAX_FRAME_BYTES`] is refused from its header alone, before a byte of
//! its body is buffered, so a hostile role cannot make the orchestrator allocate.
//! The incremental [`FrameDecoder`] recovers after a bad frame (it skips exactly the declared
//! length), so the orchestrator can log the violation, count it against the role, and go on.

use std::io::{self, Read, Write};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::message::{
    BudgetEvent, BudgetLevel, ChangeReady, CommandRun, Finding, Ledger, Log, LogLevel, Message,
    MessageKind, PlanMsg, Progress, Review, Shutdown, Task, TestOutcome, TestResults, TestStatus,
    ToolCall, ToolResult, UnknownKind,
};
use crate::roles::RoleName;

/// Largest frame body accepted or sent: 1 MiB.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Version of the frame and artifact protocol. Peers must agree on the major version.
pub const PROTOCOL_VERSION: &str = "1.0.0";

/// Major version of [`PROTOCOL_VERSION`].
pub const PROTOCOL_MAJOR: u64 = 1;

/// One frame's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Protocol version of the sender (semver string).
    pub protocol: String,
    /// The run.
    pub run_id: String,
    /// The role that sent it (role -> orchestrator) or that it is for (orchestrator -> role).
    pub role: RoleName,
    /// Sequence number, per direction, from 0; strictly increasing.
    pub seq: u64,
    /// The message.
    pub body: Message,
    /// The signed artifact of `body`, when the message is a role's result (plan, test results,
    /// review, progress, ledger): the role signs with its own key, the orchestrator verifies and
    /// stores it. Absent on every other message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<crate::artifact::DsseEnvelope>,
}

impl Envelope {
    /// An envelope with this crate's protocol version.
    pub fn new(run_id: impl Into<String>, role: RoleName, seq: u64, body: Message) -> Self {
        Self {
            protocol: PROTOCOL_VERSION.to_owned(),
            run_id: run_id.into(),
            role,
            seq,
            body,
            artifact: None,
        }
    }
}

/// A frame that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The header declares a body larger than the limit.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversized {
        /// Declared (or, when sending, actual) length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: {have} of {need} bytes")]
    Truncated {
        /// Bytes received.
        have: usize,
        /// Bytes the frame needed (header + body, or just the header when it is incomplete).
        need: usize,
    },
    /// The body is not valid JSON or not a valid envelope.
    #[error("frame body is not a valid envelope: {source}")]
    BadJson {
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The protocol field is not a semver version.
    #[error("frame protocol version `{value}` is not a semantic version: {source}")]
    BadVersion {
        /// The field's value.
        value: String,
        /// Why.
        #[source]
        source: semver::Error,
    },
    /// The peer speaks another major version.
    #[error(
        "frame protocol version {got} is incompatible with ours ({ours}): major versions differ"
    )]
    IncompatibleVersion {
        /// Their version.
        got: String,
        /// Ours.
        ours: &'static str,
    },
    /// The body's `kind` is not one we know.
    #[error("frame has unknown message kind `{kind}`")]
    UnknownKind {
        /// The kind as received.
        kind: String,
    },
    /// Reading or writing the stream failed.
    #[error("frame I/O failed: {source}")]
    Io {
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Encodes an envelope, refusing one whose body exceeds [`MAX_FRAME_BYTES`].
pub fn try_encode(env: &Envelope) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(env).map_err(|source| FrameError::BadJson { source })?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::Oversized {
            len: body.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    let len = u32::try_from(body.len()).map_err(|_| FrameError::Oversized {
        len: body.len(),
        max: MAX_FRAME_BYTES,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes one frame body (without its header) into an envelope, checking the protocol major
/// version and the message kind before the typed parse so the error says which it was.
pub fn decode_body(body: &[u8]) -> Result<Envelope, FrameError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|source| FrameError::BadJson { source })?;
    if let Some(proto) = value.get("protocol").and_then(|p| p.as_str()) {
        check_protocol(proto)?;
    }
    if let Some(kind) = value
        .get("body")
        .and_then(|b| b.get("kind"))
        .and_then(|k| k.as_str())
    {
        if kind.parse::<MessageKind>().is_err() {
            return Err(FrameError::UnknownKind {
                kind: kind.to_owned(),
            });
        }
    }
    serde_json::from_value(value).map_err(|source| FrameError::BadJson { source })
}

/// Checks that `version` is semver with our major version.
pub fn check_protocol(version: &str) -> Result<(), FrameError> {
    let v = semver::Version::parse(version).map_err(|source| FrameError::BadVersion {
        value: version.to_owned(),
        source,
    })?;
    if v.major != PROTOCOL_MAJOR {
        return Err(FrameError::IncompatibleVersion {
            got: version.to_owned(),
            ours: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

/// Incremental decoder: feed it bytes as they arrive, take frames out.
///
/// After an oversized header it discards exactly the declared body length without buffering it;
/// after a bad body it has already consumed that frame. Either way the next frame decodes.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    skip: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes. Bytes belonging to an oversized frame are dropped here.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.skip > 0 {
            let n = self.skip.min(bytes.len());
            self.skip -= n;
            bytes = &bytes[n..];
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed, or the error of the frame
    /// at the front (which is then consumed).
    pub fn next_frame(&mut self) -> Result<Option<Envelope>, FrameError> {
        if self.skip > 0 || self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME_BYTES {
            let buffered = self.buf.len() - 4;
            let dropped = buffered.min(len);
            self.buf.drain(..4 + dropped);
            self.skip = len - dropped;
            return Err(FrameError::Oversized {
                len,
                max: MAX_FRAME_BYTES,
            });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let result = decode_body(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        result.map(Some)
    }

    /// Bytes buffered for a frame not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len() + self.skip
    }

    /// Call at end of stream: an error if a partial frame is left.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.skip > 0 {
            return Err(FrameError::Truncated {
                have: 0,
                need: self.skip,
            });
        }
        match self.buf.len() {
            0 => Ok(()),
            n if n < 4 => Err(FrameError::Truncated { have: n, need: 4 }),
            n => {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                Err(FrameError::Truncated {
                    have: n,
                    need: 4 + len as usize,
                })
            }
        }
    }
}

/// Reads one frame. `Ok(None)` on a clean end of stream (no byte of a new frame read);
/// an oversized header is refused before its body is read.
pub fn read_frame<R: Read>(r: &mut R) -> Result<Option<Envelope>, FrameError> {
    let mut header = [0u8; 4];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Ok(None);
    }
    if got < 4 {
        return Err(FrameError::Truncated { have: got, need: 4 });
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::Oversized {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    let mut body = vec![0u8; len];
    let got = read_full(r, &mut body)?;
    if got < len {
        return Err(FrameError::Truncated {
            have: 4 + got,
            need: 4 + len,
        });
    }
    decode_body(&body).map(Some)
}

/// Writes one frame and flushes; refuses an oversized envelope without writing anything.
pub fn write_frame<W: Write>(w: &mut W, env: &Envelope) -> Result<(), FrameError> {
    let bytes = try_encode(env)?;
    w.write_all(&bytes)
        .and_then(|()| w.flush())
        .map_err(|source| FrameError::Io { source })
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(FrameError::Io { source }),
        }
    }
    Ok(filled)
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
