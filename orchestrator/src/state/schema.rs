//! Schema migrations, keyed by SQLite's `user_version`.
//!
//! Each entry of [`MIGRATIONS`] takes the database from version `i` to `i + 1` and runs in one
//! transaction together with the `user_version` bump, so a crash leaves either the old or the new
//! schema. Never edit a shipped migration: append a new one.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // v1: runs, the audit chain, and the triggers that make `events` append-only.
    r#"
    CREATE TABLE runs (
        run_id      TEXT PRIMARY KEY NOT NULL,
        fr_id       TEXT NOT NULL,
        status      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        plan_hash   TEXT,
        stop_reason TEXT
    ) STRICT;

    CREATE TABLE events (
        seq       INTEGER PRIMARY KEY NOT NULL,
        run_id    TEXT,
        ts        INTEGER NOT NULL,
        kind      TEXT NOT NULL,
        body      TEXT NOT NULL,
        prev_hash BLOB NOT NULL,
        hash      BLOB NOT NULL
    ) STRICT;

    CREATE INDEX events_by_run ON events(run_id, seq);

    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE refused'); END;

    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE refused'); END;
    "#,
];

/// Names of the triggers that guard `events`; `verify` reports any that has gone missing.
pub(super) const GUARD_TRIGGERS: &[&str] = &["events_no_update", "events_no_delete"];

/// The schema version this binary writes.
pub(super) fn current_version() -> i64 {
    // MIGRATIONS is a short constant list; its length always fits.
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let supported = current_version();
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|source| StoreError::Migrate { version: 0, source })?;
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip_while(|(i, _)| i64::try_from(*i).unwrap_or(i64::MAX) < found)
    {
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        let err = |source| StoreError::Migrate { version, source };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        // Another process may have migrated between our read and our lock.
        let now: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if now >= version {
            continue;
        }
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}
