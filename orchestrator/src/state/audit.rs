//! Appending to the hash-chained audit trail.
//!
//! Row `seq` (1, 2, ...) stores `hash = tagged_hash(AUDIT_DOMAIN, [prev_hash, entry])` where
//! `entry` is the canonical JSON of `{seq, ts, run_id, kind, body}` and `prev_hash` is row
//! `seq - 1`'s hash (32 zero bytes for row 1). The body is stored as its canonical JSON text, so
//! verification hashes the stored bytes without parsing or re-serialising them.

use std::fmt;
use std::str::FromStr;

use protocol::canonical::{self, Digest32};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior};
use serde::{Serialize, Serializer};

use super::{now_ms, Store, StoreError};

/// Domain tag of audit hashes: a hash computed for anything else can never pass as one.
pub const AUDIT_DOMAIN: &str = "orchestrate/audit/v1";

/// One event to append. The store assigns its sequence number and timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The run it belongs to, if any (setup, policy changes and the like have none).
    pub run_id: Option<String>,
    /// What happened, as a short dotted name (`run.started`, `stop`, `gate.decision`, ...).
    pub kind: String,
    /// Details. Never put a secret's value here: the audit trail is read by people.
    pub body: serde_json::Value,
}

impl Event {
    /// An event outside any run.
    pub fn new(kind: impl Into<String>, body: serde_json::Value) -> Self {
        Self {
            run_id: None,
            kind: kind.into(),
            body,
        }
    }

    /// An event of run `run_id`.
    pub fn for_run(
        run_id: impl Into<String>,
        kind: impl Into<String>,
        body: serde_json::Value,
    ) -> Self {
        Self {
            run_id: Some(run_id.into()),
            kind: kind.into(),
            body,
        }
    }
}

/// The newest row of the chain: its sequence number and hash. `seq == 0` with a zero hash is the
/// empty chain. Written as `SEQ:HEX` into receipts and accepted by `audit verify --expect-head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditHead {
    /// Sequence number of the newest row (0 when the chain is empty).
    pub seq: u64,
    /// Its hash (the genesis value, 32 zero bytes, when empty).
    pub hash: Digest32,
}

impl AuditHead {
    /// The head of an empty chain; also the `prev_hash` of row 1.
    pub const GENESIS: AuditHead = AuditHead {
        seq: 0,
        hash: Digest32([0u8; 32]),
    };
}

impl fmt::Display for AuditHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash.to_hex())
    }
}

/// `--expect-head` text that is not `SEQ:HEX`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit head {input:?} is not SEQ:HASH (a decimal sequence number, a colon, 64 hex digits)")]
pub struct ParseHeadError {
    /// What was given.
    pub input: String,
}

impl FromStr for AuditHead {
    type Err = ParseHeadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseHeadError {
            input: s.to_string(),
        };
        let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
        let seq = seq.parse::<u64>().map_err(|_| bad())?;
        let hash = Digest32::from_hex(hash).ok_or_else(bad)?;
        Ok(AuditHead { seq, hash })
    }
}

impl Serialize for AuditHead {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("AuditHead", 2)?;
        st.serialize_field("seq", &self.seq)?;
        st.serialize_field("hash", &self.hash.to_hex())?;
        st.end()
    }
}

/// Writes the canonical JSON of `{seq, ts, run_id, kind, body}` into `out` (cleared first).
///
/// Built by hand, keys in canonical (byte) order, so that verification can reuse one buffer and
/// the stored body bytes; a unit test checks it equals `protocol::canonical::to_vec` of the same
/// object. `body` must already be canonical JSON.
pub fn entry_bytes(
    out: &mut Vec<u8>,
    seq: u64,
    ts: i64,
    run_id: Option<&str>,
    kind: &str,
    body: &[u8],
) {
    out.clear();
    out.extend_from_slice(b"{\"body\":");
    out.extend_from_slice(body);
    out.extend_from_slice(b",\"kind\":");
    push_json_str(out, kind);
    out.extend_from_slice(b",\"run_id\":");
    match run_id {
        Some(r) => push_json_str(out, r),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"ts\":");
    out.extend_from_slice(ts.to_string().as_bytes());
    out.push(b'}');
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping, so the bytes match what canonical::to_vec produces. Writing a &str
    // into a Vec cannot fail; if it ever did, the hash would not verify, which is loud enough.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The hash of an audit row, given its predecessor's hash and its canonical entry bytes.
pub fn entry_hash(prev: &Digest32, entry: &[u8]) -> Digest32 {
    canonical::tagged_hash(AUDIT_DOMAIN, &[&prev.0, entry])
}

impl Store {
    /// The newest row of the chain ([`AuditHead::GENESIS`] when empty).
    pub fn head(&self) -> Result<AuditHead, StoreError> {
        read_head(&self.conn)
    }

    /// Appends one event in its own transaction and returns the new head.
    pub fn append(&mut self, event: &Event) -> Result<AuditHead, StoreError> {
        self.append_batch(std::slice::from_ref(event))
    }

    /// Appends `events` in order, in one transaction (all or none), and returns the new head.
    pub fn append_batch(&mut self, events: &[Event]) -> Result<AuditHead, StoreError> {
        // IMMEDIATE takes the write lock before reading the head, so two writers cannot both
        // extend the same head.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| StoreError::Transaction {
                step: "begin",
                source,
            })?;
        let head = append_in(&tx, events)?;
        tx.commit().map_err(|source| StoreError::Transaction {
            step: "commit",
            source,
        })?;
        Ok(head)
    }
}

fn read_head(conn: &rusqlite::Connection) -> Result<AuditHead, StoreError> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(|source| StoreError::ReadHead { source })?;
    let Some((seq, hash)) = row else {
        return Ok(AuditHead::GENESIS);
    };
    // A negative seq cannot come from this store; treat it like any other corrupt head.
    let seq_u = u64::try_from(seq).map_err(|_| StoreError::CorruptHead {
        seq: 0,
        len: hash.len(),
    })?;
    let hash: [u8; 32] = hash
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::CorruptHead {
            seq: seq_u,
            len: hash.len(),
        })?;
    Ok(AuditHead {
        seq: seq_u,
        hash: Digest32(hash),
    })
}

fn append_in(tx: &Transaction<'_>, events: &[Event]) -> Result<AuditHead, StoreError> {
    let mut head = read_head(tx)?;
    let ts = now_ms()?;
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO events (seq, run_id, ts, kind, body, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(|source| StoreError::Append {
            seq: head.seq.saturating_add(1),
            source,
        })?;
    let mut entry = Vec::with_capacity(256);
    for ev in events {
        let seq = head
            .seq
            .checked_add(1)
            .ok_or(StoreError::SeqOverflow { seq: head.seq })?;
        let seq_i = i64::try_from(seq).map_err(|_| StoreError::SeqOverflow { seq: head.seq })?;
        let body = canonical::to_vec(&ev.body).map_err(|source| StoreError::Canonical {
            kind: ev.kind.clone(),
            source,
        })?;
        // Bound as TEXT straight from the bytes that were hashed: no re-encoding in between.
        let body_text = ToSqlOutput::Borrowed(ValueRef::Text(&body));
        entry_bytes(&mut entry, seq, ts, ev.run_id.as_deref(), &ev.kind, &body);
        let hash = entry_hash(&head.hash, &entry);
        stmt.execute(rusqlite::params![
            seq_i,
            ev.run_id,
            ts,
            ev.kind,
            body_text,
            &head.hash.0[..],
            &hash.0[..],
        ])
        .map_err(|source| StoreError::Append { seq, source })?;
        head = AuditHead { seq, hash };
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hand_built_entry_equals_canonical_json() {
        let body = json!({"z": [1, 2], "a": {"y": "q\"uote\n", "b": null}, "é": 1.5});
        let body_bytes = canonical::to_vec(&body).unwrap();
        for run_id in [None, Some("run-\u{1}\"x")] {
            let mut out = Vec::new();
            entry_bytes(&mut out, 42, -7, run_id, "kind/\\x", &body_bytes);
            let expected = canonical::to_vec(&json!({
                "seq": 42, "ts": -7, "run_id": run_id, "kind": "kind/\\x", "body": body
            }))
            .unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn head_text_round_trips_and_rejects_garbage() {
        let h = AuditHead {
            seq: 17,
            hash: canonical::sha256(b"x"),
        };
        assert_eq!(h.to_string().parse::<AuditHead>(), Ok(h));
        for bad in [
            "",
            "17",
            "x:00",
            "17:abc",
            &format!("-1:{}", h.hash.to_hex()),
        ] {
            assert!(bad.parse::<AuditHead>().is_err(), "{bad:?} parsed");
        }
    }
}
