//! The `runs` table: one row per run, updated as the run moves on. Unlike `events` it is
//! mutable state, not evidence; every change worth proving is also an audit event.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{now_ms, Store, StoreError};

/// A run to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    /// The run's id.
    pub run_id: String,
    /// The FR it works on.
    pub fr_id: String,
    /// Its initial status.
    pub status: String,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: String,
    /// The FR it works on.
    pub fr_id: String,
    /// Current status (values are the run engine's).
    pub status: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Last update, milliseconds since the Unix epoch.
    pub updated_at: i64,
    /// Hash of the run's WORK_PLAN once validated.
    pub plan_hash: Option<String>,
    /// Stop reason code, when the run was stopped.
    pub stop_reason: Option<String>,
}

const COLUMNS: &str = "run_id, fr_id, status, created_at, updated_at, plan_hash, stop_reason";

fn from_row(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        run_id: r.get(0)?,
        fr_id: r.get(1)?,
        status: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
        plan_hash: r.get(5)?,
        stop_reason: r.get(6)?,
    })
}

impl Store {
    /// Records a new run. Fails if the id exists.
    pub fn create_run(&self, run: &NewRun) -> Result<RunRecord, StoreError> {
        let now = now_ms()?;
        self.conn
            .execute(
                "INSERT INTO runs (run_id, fr_id, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![run.run_id, run.fr_id, run.status, now],
            )
            .map_err(|source| StoreError::Run {
                step: "creating",
                run_id: run.run_id.clone(),
                source,
            })?;
        Ok(RunRecord {
            run_id: run.run_id.clone(),
            fr_id: run.fr_id.clone(),
            status: run.status.clone(),
            created_at: now,
            updated_at: now,
            plan_hash: None,
            stop_reason: None,
        })
    }

    /// Sets a run's status (and its stop reason, when it stopped).
    pub fn set_run_status(
        &self,
        run_id: &str,
        status: &str,
        stop_reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms()?;
        self.update_run(
            run_id,
            "UPDATE runs SET status = ?2, stop_reason = ?3, updated_at = ?4 WHERE run_id = ?1",
            params![run_id, status, stop_reason, now],
        )
    }

    /// Records the hash of the run's validated WORK_PLAN.
    pub fn set_run_plan_hash(&self, run_id: &str, plan_hash: &str) -> Result<(), StoreError> {
        let now = now_ms()?;
        self.update_run(
            run_id,
            "UPDATE runs SET plan_hash = ?2, updated_at = ?3 WHERE run_id = ?1",
            params![run_id, plan_hash, now],
        )
    }

    fn update_run(
        &self,
        run_id: &str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(sql, params)
            .map_err(|source| StoreError::Run {
                step: "updating",
                run_id: run_id.to_string(),
                source,
            })?;
        if n == 0 {
            return Err(StoreError::NoSuchRun {
                run_id: run_id.to_string(),
            });
        }
        Ok(())
    }

    /// One run, if it exists.
    pub fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM runs WHERE run_id = ?1"),
                [run_id],
                from_row,
            )
            .optional()
            .map_err(|source| StoreError::Run {
                step: "reading",
                run_id: run_id.to_string(),
                source,
            })
    }

    /// All runs, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let err = |source| StoreError::ListRuns { source };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM runs ORDER BY created_at DESC, run_id"
            ))
            .map_err(err)?;
        let rows = stmt.query_map([], from_row).map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }
}
