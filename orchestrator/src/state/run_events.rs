//! Reading one run's events back (for `orchestrate log` and `status`). Read-only queries.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError};

/// One stored event of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvent {
    /// Sequence number in the chain.
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    /// Kind.
    pub kind: String,
    /// Body.
    pub body: serde_json::Value,
}

impl Store {
    /// The events of `run_id` with `seq > after`, oldest first.
    pub fn run_events(&self, run_id: &str, after: i64) -> Result<Vec<RunEvent>, StoreError> {
        let err = |source| StoreError::Run {
            step: "reading events of",
            run_id: run_id.to_owned(),
            source,
        };
        let mut stmt = self
            .conn
            .prepare("SELECT seq, ts, kind, body FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq")
            .map_err(err)?;
        let rows = stmt
            .query_map(params![run_id, after], |r| {
                let body: String = r.get(3)?;
                Ok(RunEvent {
                    seq: r.get(0)?,
                    ts: r.get(1)?,
                    kind: r.get(2)?,
                    body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }
}
