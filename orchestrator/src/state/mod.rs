//! The orchestrator's state store: one SQLite database (WAL) in a state directory outside the
//! repository and outside every role's view.
//!
//! Two kinds of data live here:
//! - `runs`: one row per run, whose status is updated as the run moves on;
//! - `events`: the audit trail, append-only and hash-chained. Each row's hash covers the previous
//!   row's hash and the row's own canonical content, so an edit, a reorder or a deletion in the
//!   middle breaks the chain ([`Store::verify`]); a truncation of the newest rows is caught only
//!   against a head kept elsewhere (`expect_head`). SQL triggers refuse UPDATE and DELETE on
//!   `events`, which stops accidents and honest code; an attacker who can write the file can drop
//!   them, which is what the chain is for.

mod audit;
mod paths;
mod run_events;
mod runs;
mod schema;
mod verify;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub use audit::{entry_bytes, entry_hash, AuditHead, Event, ParseHeadError, AUDIT_DOMAIN};
pub use paths::default_state_dir;
pub use run_events::RunEvent;
pub use runs::{NewRun, RunRecord};
pub use verify::{Problem, VerifyError, VerifyReport};

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "state.db";

/// Errors from opening the store and from writing to it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory could not be created.
    #[error("creating state directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The database is absent and the caller asked not to create it.
    #[error("no state database at {path}")]
    Missing {
        /// The database file.
        path: PathBuf,
    },
    /// Restricting the permissions of the directory or the database failed.
    #[error("restricting permissions of {path}: {source}")]
    Permissions {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// SQLite could not open the database file.
    #[error("opening database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// A connection setting (journal mode, synchronous, busy timeout) failed.
    #[error("setting {setting} on the state database: {source}")]
    Configure {
        /// The setting.
        setting: &'static str,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The database was written by a newer orchestrate.
    #[error("state database {path} has schema version {found}; this orchestrate knows up to {supported}")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Version found in `user_version`.
        found: i64,
        /// Highest version this binary migrates to.
        supported: i64,
    },
    /// A schema migration failed.
    #[error("migrating state database to schema version {version}: {source}")]
    Migrate {
        /// The version being migrated to.
        version: i64,
        /// Cause.
        source: rusqlite::Error,
    },
    /// Starting or committing a write transaction failed.
    #[error("{step} transaction on the state database: {source}")]
    Transaction {
        /// "begin" or "commit".
        step: &'static str,
        /// Cause.
        source: rusqlite::Error,
    },
    /// Reading the current head of the audit chain failed.
    #[error("reading the audit head: {source}")]
    ReadHead {
        /// Cause.
        source: rusqlite::Error,
    },
    /// The newest audit row holds a hash that is not 32 bytes: the chain cannot be extended.
    #[error("audit row {seq} holds a {len}-byte hash; run `orchestrate audit verify`")]
    CorruptHead {
        /// The row.
        seq: u64,
        /// Length of the stored hash.
        len: usize,
    },
    /// An event body could not be written as canonical JSON.
    #[error("event {kind}: body is not representable as canonical JSON: {source}")]
    Canonical {
        /// The event kind.
        kind: String,
        /// Cause.
        source: protocol::canonical::CanonicalError,
    },
    /// The audit chain reached the largest sequence number SQLite can hold.
    #[error("audit chain is full at seq {seq}")]
    SeqOverflow {
        /// The last sequence number.
        seq: u64,
    },
    /// The system clock is before 1970 or beyond what an i64 of milliseconds holds.
    #[error("system clock is unusable for timestamps")]
    Clock,
    /// Inserting an audit row failed.
    #[error("appending audit event seq {seq}: {source}")]
    Append {
        /// The row being written.
        seq: u64,
        /// Cause.
        source: rusqlite::Error,
    },
    /// A query or update on the `runs` table failed.
    #[error("{step} run {run_id}: {source}")]
    Run {
        /// What was being done ("creating", "updating", "reading").
        step: &'static str,
        /// The run.
        run_id: String,
        /// Cause.
        source: rusqlite::Error,
    },
    /// Listing runs failed.
    #[error("listing runs: {source}")]
    ListRuns {
        /// Cause.
        source: rusqlite::Error,
    },
    /// An update named a run that does not exist.
    #[error("no run {run_id}")]
    NoSuchRun {
        /// The run.
        run_id: String,
    },
}

/// An open state store. Not `Sync`: one per thread (or behind the actor that owns it).
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the store in `dir`, creating the directory (mode 0700) and the database (mode 0600)
    /// if needed, and migrating the schema to the current version.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(dir)?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        restrict_file(&path)?;
        Self::init(conn, path)
    }

    /// Opens an existing store without creating anything on disk (for read commands such as
    /// `audit verify`, which must not conjure an empty, "valid" database where one was expected).
    pub fn open_existing(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::Missing { path });
        }
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Self::init(conn, path)
    }

    fn init(mut conn: Connection, path: PathBuf) -> Result<Self, StoreError> {
        configure(&conn)?;
        schema::migrate(&mut conn, &path)?;
        Ok(Self { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|source| StoreError::Configure {
            setting: "busy_timeout",
            source,
        })?;
    // WAL lets `audit verify` and `status` read while a run appends; under WAL, NORMAL only
    // risks the last transactions on power loss (never corruption), and the head written into
    // receipts detects exactly that kind of loss.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|source| StoreError::Configure {
            setting: "journal_mode=WAL",
            source,
        })?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|source| StoreError::Configure {
            setting: "synchronous=NORMAL",
            source,
        })?;
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(unix)]
fn restrict_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        StoreError::Permissions {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(not(unix))]
fn restrict_file(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> Result<i64, StoreError> {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| StoreError::Clock)?;
    i64::try_from(d.as_millis()).map_err(|_| StoreError::Clock)
}
