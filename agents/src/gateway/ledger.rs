//! The spend ledger: one row per booked model request in a SQLite file (WAL), shared by all runs,
//! so a run's and the month's spend survive a restart of the gateway or the orchestrator.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

/// Ledger errors.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Opening or preparing the database failed.
    #[error("open ledger {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// A booking could not be written.
    #[error("book spend for run {run} in ledger {path}: {source}")]
    Book {
        /// The database file.
        path: PathBuf,
        /// Run id.
        run: String,
        /// Cause.
        source: rusqlite::Error,
    },
    /// A total could not be read.
    #[error("read totals from ledger {path}: {source}")]
    Read {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
}

/// One booked request.
#[derive(Debug, Clone, PartialEq)]
pub struct Booking<'a> {
    /// Run id.
    pub run: &'a str,
    /// `YYYY-MM`.
    pub month: &'a str,
    /// Model.
    pub model: &'a str,
    /// Input tokens.
    pub tokens_in: u64,
    /// Output tokens.
    pub tokens_out: u64,
    /// Cost, USD.
    pub usd: f64,
    /// `usage` when the response reported it, `estimate` when it did not and the estimate was booked.
    pub source: &'a str,
}

/// Totals over a set of bookings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// Requests booked.
    pub requests: u64,
    /// Input tokens.
    pub tokens_in: u64,
    /// Output tokens.
    pub tokens_out: u64,
    /// USD.
    pub usd: f64,
}

/// The ledger database.
#[derive(Debug)]
pub struct SpendLedger {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gateway_spend (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    month TEXT NOT NULL,
    at_unix INTEGER NOT NULL,
    model TEXT NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    usd REAL NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gateway_spend_month ON gateway_spend(month);
CREATE INDEX IF NOT EXISTS gateway_spend_run ON gateway_spend(run_id);
";

impl SpendLedger {
    /// Open (creating if needed) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let err = |source| LedgerError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    /// Append one booking.
    pub fn book(&self, b: &Booking<'_>) -> Result<(), LedgerError> {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.conn
            .execute(
                "INSERT INTO gateway_spend (run_id, month, at_unix, model, tokens_in, tokens_out, usd, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![b.run, b.month, at as i64, b.model, b.tokens_in as i64, b.tokens_out as i64, b.usd, b.source],
            )
            .map(|_| ())
            .map_err(|source| LedgerError::Book { path: self.path.clone(), run: b.run.to_owned(), source })
    }

    fn totals(&self, column: &str, key: &str) -> Result<Totals, LedgerError> {
        let sql = format!(
            "SELECT COUNT(*), COALESCE(SUM(tokens_in),0), COALESCE(SUM(tokens_out),0), COALESCE(SUM(usd),0.0)
             FROM gateway_spend WHERE {column} = ?1"
        );
        self.conn
            .query_row(&sql, params![key], |r| {
                Ok(Totals {
                    requests: r.get::<_, i64>(0)?.max(0) as u64,
                    tokens_in: r.get::<_, i64>(1)?.max(0) as u64,
                    tokens_out: r.get::<_, i64>(2)?.max(0) as u64,
                    usd: r.get(3)?,
                })
            })
            .map_err(|source| LedgerError::Read {
                path: self.path.clone(),
                source,
            })
    }

    /// Totals of one run.
    pub fn run_totals(&self, run: &str) -> Result<Totals, LedgerError> {
        self.totals("run_id", run)
    }

    /// Totals of one calendar month (`YYYY-MM`), all runs.
    pub fn month_totals(&self, month: &str) -> Result<Totals, LedgerError> {
        self.totals("month", month)
    }
}

/// The current UTC month as `YYYY-MM`.
pub fn current_month() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    month_of_unix(secs)
}

/// `YYYY-MM` of a Unix time (UTC), by the civil-from-days algorithm.
pub fn month_of_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_from_unix_time() {
        assert_eq!(month_of_unix(0), "1970-01");
        assert_eq!(
            month_of_unix(951_782_400),
            "2000-02-29".get(..7).unwrap_or_default()
        );
        assert_eq!(month_of_unix(1_798_761_599), "2026-12");
        assert_eq!(month_of_unix(1_798_761_600), "2027-01");
    }

    #[test]
    fn bookings_survive_reopening_and_are_split_by_run_and_month() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        {
            let l = SpendLedger::open(&path).unwrap();
            let b = Booking {
                run: "r1",
                month: "2026-11",
                model: "m",
                tokens_in: 10,
                tokens_out: 5,
                usd: 0.5,
                source: "usage",
            };
            l.book(&b).unwrap();
            l.book(&Booking {
                run: "r2",
                usd: 0.25,
                ..b.clone()
            })
            .unwrap();
            l.book(&Booking {
                month: "2026-10",
                usd: 9.0,
                ..b
            })
            .unwrap();
        }
        let l = SpendLedger::open(&path).unwrap();
        assert_eq!(
            l.month_totals("2026-11").unwrap(),
            Totals {
                requests: 2,
                tokens_in: 20,
                tokens_out: 10,
                usd: 0.75
            }
        );
        assert_eq!(l.run_totals("r1").unwrap().usd, 9.5);
        assert_eq!(l.run_totals("nope").unwrap(), Totals::default());
    }
}
