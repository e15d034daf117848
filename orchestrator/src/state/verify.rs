//! Verifying the audit chain: recompute every row's hash in order, streaming (one row in memory
//! at a time), and name the first row that does not fit.
//!
//! Checks per row, in this order, so the reported cause is the most specific one:
//! 1. the row's columns have the types the store writes (a hash is 32 bytes, ...);
//! 2. its seq follows the previous row's seq by one (a gap: rows deleted in the middle);
//! 3. its prev_hash equals the previous row's hash (rows reordered, deleted and renumbered, or a
//!    predecessor rewritten with a recomputed hash);
//! 4. its hash equals the recomputed hash (its content was edited).
//!
//! Then, against an expected head kept elsewhere: the row at that seq must carry that hash, and
//! the chain must reach it (a chain that ends early was truncated). Finally the triggers that
//! guard the table must still exist: dropping them is itself a sign of tampering.

use std::fmt;

use protocol::canonical::Digest32;
use rusqlite::types::ValueRef;
use serde::{Serialize, Serializer};

use super::audit::{entry_bytes, entry_hash, AuditHead};
use super::schema::GUARD_TRIGGERS;
use super::Store;

/// Errors that stop verification before it reaches a verdict (the database could not be read).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Preparing or stepping the query over `events` failed.
    #[error("reading audit events: {source}")]
    ReadEvents {
        /// Cause.
        source: rusqlite::Error,
    },
    /// Reading the schema to check the guard triggers failed.
    #[error("reading the guard triggers of the audit table: {source}")]
    ReadTriggers {
        /// Cause.
        source: rusqlite::Error,
    },
}

/// The first thing wrong with the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// A column has a type or size the store never writes.
    MalformedRow {
        /// The row.
        seq: i64,
        /// The column.
        column: &'static str,
    },
    /// A sequence number is missing before this row: rows were deleted in the middle.
    SeqGap {
        /// The row found.
        seq: u64,
        /// The row that should have come next.
        expected_seq: u64,
    },
    /// This row does not link to its predecessor: rows were reordered, or deleted and
    /// renumbered, or the predecessor was rewritten with a recomputed hash.
    PrevHashMismatch {
        /// The row.
        seq: u64,
        /// Its stored prev_hash.
        #[serde(serialize_with = "hex")]
        stored: Digest32,
        /// The previous row's hash.
        #[serde(serialize_with = "hex")]
        expected: Digest32,
    },
    /// The row's content (seq, ts, run_id, kind or body) was edited after it was written.
    ContentEdited {
        /// The row.
        seq: u64,
        /// Its stored hash.
        #[serde(serialize_with = "hex")]
        stored: Digest32,
        /// The hash of its current content.
        #[serde(serialize_with = "hex")]
        computed: Digest32,
    },
    /// The row at the expected head's seq carries another hash: the chain was rewritten.
    HeadMismatch {
        /// The expected head's seq.
        seq: u64,
        /// The expected hash.
        #[serde(serialize_with = "hex")]
        expected: Digest32,
        /// The hash found at that seq.
        #[serde(serialize_with = "hex")]
        found: Digest32,
    },
    /// The chain ends before the expected head: its newest rows were deleted.
    Truncated {
        /// The last row present.
        end_seq: u64,
        /// The expected head's seq.
        expected_seq: u64,
    },
    /// A trigger that makes `events` append-only is gone: someone dropped it.
    GuardMissing {
        /// The trigger's name.
        trigger: &'static str,
    },
}

fn hex<S: Serializer>(d: &Digest32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.to_hex())
}

impl Problem {
    /// The row the problem is about, if it is about a row.
    pub fn seq(&self) -> Option<i64> {
        let s = match self {
            Problem::MalformedRow { seq, .. } => return Some(*seq),
            Problem::SeqGap { seq, .. }
            | Problem::PrevHashMismatch { seq, .. }
            | Problem::ContentEdited { seq, .. }
            | Problem::HeadMismatch { seq, .. } => *seq,
            Problem::Truncated { end_seq, .. } => *end_seq,
            Problem::GuardMissing { .. } => return None,
        };
        i64::try_from(s).ok()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MalformedRow { seq, column } => {
                write!(f, "row seq {seq}: column {column} has a type or size the store never writes")
            }
            Problem::SeqGap { seq, expected_seq } => write!(
                f,
                "row seq {seq} follows seq {}: rows {expected_seq}..{} were deleted",
                expected_seq.saturating_sub(1),
                seq.saturating_sub(1)
            ),
            Problem::PrevHashMismatch { seq, stored, expected } => write!(
                f,
                "row seq {seq} does not link to its predecessor (prev_hash {stored}, previous row's hash {expected}): rows reordered, renumbered or rewritten"
            ),
            Problem::ContentEdited { seq, stored, computed } => write!(
                f,
                "row seq {seq} was edited: stored hash {stored}, hash of its content {computed}"
            ),
            Problem::HeadMismatch { seq, expected, found } => write!(
                f,
                "row seq {seq} has hash {found} but the expected head is {seq}:{expected}: the chain was rewritten"
            ),
            Problem::Truncated { end_seq, expected_seq } => write!(
                f,
                "chain ends at seq {end_seq} but expected head is seq {expected_seq}: newest rows were deleted"
            ),
            Problem::GuardMissing { trigger } => write!(
                f,
                "trigger {trigger} that makes the audit table append-only is missing"
            ),
        }
    }
}

/// The outcome of [`Store::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Rows whose hash was recomputed and found right.
    pub rows_verified: u64,
    /// The newest good row (the chain's head when `problem` is `None`).
    pub head: AuditHead,
    /// The head the chain was checked against, if one was given.
    pub expected_head: Option<AuditHead>,
    /// The first problem found; `None` means the chain is intact.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_valid(&self) -> bool {
        self.problem.is_none()
    }
}

impl Store {
    /// Recomputes the whole chain in order and returns the first problem, if any. With
    /// `expect_head` (a head recorded elsewhere, such as in a receipt), also detects a rewritten
    /// or truncated chain.
    pub fn verify(&self, expect_head: Option<AuditHead>) -> Result<VerifyReport, VerifyError> {
        let mut report = VerifyReport {
            rows_verified: 0,
            head: AuditHead::GENESIS,
            expected_head: expect_head,
            problem: None,
        };
        let walked = self.walk_chain(expect_head, &mut report)?;
        report.problem = walked;
        if report.problem.is_none() {
            if let Some(exp) = expect_head {
                report.problem = check_reached(&report.head, &exp);
            }
        }
        if report.problem.is_none() {
            report.problem = self.missing_guard()?;
        }
        Ok(report)
    }

    fn walk_chain(
        &self,
        expect_head: Option<AuditHead>,
        report: &mut VerifyReport,
    ) -> Result<Option<Problem>, VerifyError> {
        let read = |source| VerifyError::ReadEvents { source };
        // One statement is one consistent snapshot under WAL, even while a run appends.
        let mut stmt = self
            .conn
            .prepare("SELECT seq, ts, run_id, kind, body, prev_hash, hash FROM events ORDER BY seq")
            .map_err(read)?;
        let mut rows = stmt.query([]).map_err(read)?;
        let mut entry = Vec::with_capacity(512);
        while let Some(row) = rows.next().map_err(read)? {
            let raw_seq: i64 = match row.get_ref(0).map_err(read)? {
                ValueRef::Integer(i) => i,
                _ => return Ok(Some(malformed(report, "seq"))),
            };
            let Ok(seq) = u64::try_from(raw_seq) else {
                return Ok(Some(Problem::MalformedRow {
                    seq: raw_seq,
                    column: "seq",
                }));
            };
            let bad = |column| Problem::MalformedRow {
                seq: raw_seq,
                column,
            };
            let ValueRef::Integer(ts) = row.get_ref(1).map_err(read)? else {
                return Ok(Some(bad("ts")));
            };
            let run_id = match row.get_ref(2).map_err(read)? {
                ValueRef::Null => None,
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(s) => Some(s),
                    Err(_) => return Ok(Some(bad("run_id"))),
                },
                _ => return Ok(Some(bad("run_id"))),
            };
            let kind = match row.get_ref(3).map_err(read)? {
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(s) => s,
                    Err(_) => return Ok(Some(bad("kind"))),
                },
                _ => return Ok(Some(bad("kind"))),
            };
            let ValueRef::Text(body) = row.get_ref(4).map_err(read)? else {
                return Ok(Some(bad("body")));
            };
            let Some(prev_hash) = digest(row.get_ref(5).map_err(read)?) else {
                return Ok(Some(bad("prev_hash")));
            };
            let Some(hash) = digest(row.get_ref(6).map_err(read)?) else {
                return Ok(Some(bad("hash")));
            };

            let expected_seq = report.head.seq.saturating_add(1);
            if seq != expected_seq {
                return Ok(Some(Problem::SeqGap { seq, expected_seq }));
            }
            if prev_hash != report.head.hash {
                return Ok(Some(Problem::PrevHashMismatch {
                    seq,
                    stored: prev_hash,
                    expected: report.head.hash,
                }));
            }
            entry_bytes(&mut entry, seq, ts, run_id, kind, body);
            let computed = entry_hash(&prev_hash, &entry);
            if computed != hash {
                return Ok(Some(Problem::ContentEdited {
                    seq,
                    stored: hash,
                    computed,
                }));
            }
            if let Some(exp) = expect_head {
                if exp.seq == seq && exp.hash != hash {
                    return Ok(Some(Problem::HeadMismatch {
                        seq,
                        expected: exp.hash,
                        found: hash,
                    }));
                }
            }
            report.rows_verified += 1;
            report.head = AuditHead { seq, hash };
        }
        Ok(None)
    }

    fn missing_guard(&self) -> Result<Option<Problem>, VerifyError> {
        let err = |source| VerifyError::ReadTriggers { source };
        let mut stmt = self
            .conn
            .prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'events' AND name = ?1")
            .map_err(err)?;
        for trigger in GUARD_TRIGGERS {
            let n: i64 = stmt.query_row([trigger], |r| r.get(0)).map_err(err)?;
            if n == 0 {
                return Ok(Some(Problem::GuardMissing { trigger }));
            }
        }
        Ok(None)
    }
}

fn malformed(report: &VerifyReport, column: &'static str) -> Problem {
    // The seq itself is unreadable: name the row by its position after the last good one.
    let seq = i64::try_from(report.head.seq.saturating_add(1)).unwrap_or(i64::MAX);
    Problem::MalformedRow { seq, column }
}

fn digest(v: ValueRef<'_>) -> Option<Digest32> {
    match v {
        ValueRef::Blob(b) => <[u8; 32]>::try_from(b).ok().map(Digest32),
        _ => None,
    }
}

fn check_reached(head: &AuditHead, expected: &AuditHead) -> Option<Problem> {
    if head.seq < expected.seq {
        return Some(Problem::Truncated {
            end_seq: head.seq,
            expected_seq: expected.seq,
        });
    }
    // Reached: the row at expected.seq was compared during the walk. Only the empty-chain case
    // (expected seq 0) is left, whose hash must be the genesis value.
    if expected.seq == 0 && expected.hash != AuditHead::GENESIS.hash {
        return Some(Problem::HeadMismatch {
            seq: 0,
            expected: expected.hash,
            found: AuditHead::GENESIS.hash,
        });
    }
    None
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
