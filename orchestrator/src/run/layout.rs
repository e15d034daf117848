//! Where a run keeps its files: `<state>/runs/<run-id>/` (see INTERFACES.md). Pure path logic
//! plus small writers that create parents and name the file in their error.

use std::path::{Path, PathBuf};

use protocol::RoleName;

/// Errors writing a run's files.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A directory could not be created.
    #[error("creating {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A value could not be serialised.
    #[error("serialising {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
}

/// The paths of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    /// `<state>/runs/<run-id>`.
    pub root: PathBuf,
}

impl RunDir {
    /// The run directory of `run_id` under `state`.
    pub fn new(state: &Path, run_id: &str) -> Self {
        Self {
            root: state.join("runs").join(run_id),
        }
    }
    /// `WORK_PLAN.json`.
    pub fn work_plan(&self) -> PathBuf {
        self.root.join("WORK_PLAN.json")
    }
    /// `artifacts/<name>.dsse.json`.
    pub fn artifact(&self, name: &str) -> PathBuf {
        self.root
            .join("artifacts")
            .join(format!("{name}.dsse.json"))
    }
    /// `agent.bundle`.
    pub fn bundle(&self) -> PathBuf {
        self.root.join("agent.bundle")
    }
    /// `manifest.json`.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.json")
    }
    /// `evidence/<name>`.
    pub fn evidence(&self, name: &str) -> PathBuf {
        self.root.join("evidence").join(name)
    }
    /// `logs/<role>.log`.
    pub fn log(&self, role: RoleName) -> PathBuf {
        self.root.join("logs").join(format!("{role}.log"))
    }
    /// `logs/` (role logs and `run.log`).
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// `keys/<role>/ed25519.key` (per-run keys of the weaker mode).
    pub fn key(&self, role: RoleName) -> PathBuf {
        self.root
            .join("keys")
            .join(role.as_str())
            .join("ed25519.key")
    }
    /// `volume/`: the run's sandbox volume (base, work, candidates, scratch).
    pub fn volume(&self) -> PathBuf {
        self.root.join("volume")
    }
    /// `quarantine/`: what a stop set aside.
    pub fn quarantine(&self) -> PathBuf {
        self.root.join("quarantine")
    }
    /// `diff.patch`: the diff snapshot of the agent branch against the base.
    pub fn diff(&self) -> PathBuf {
        self.root.join("diff.patch")
    }
    /// `checkpoint.json`: where resume continues from.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.json")
    }
    /// `STOP`: a human asked the run to stop (`orchestrate stop`).
    pub fn stop_request(&self) -> PathBuf {
        self.root.join("STOP")
    }
    /// `orchestrator.pid`: the process driving the run.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("orchestrator.pid")
    }
}

/// Creates `path`'s parent directories.
pub fn parent_dirs(path: &Path) -> Result<(), LayoutError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| LayoutError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Writes bytes, creating parents.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    parent_dirs(path)?;
    std::fs::write(path, bytes).map_err(|source| LayoutError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes pretty JSON with a trailing newline.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), LayoutError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| LayoutError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    write(path, &bytes)
}

/// A run id: `<FR-id>-<yyyymmddThhmmss>-<4 hex>` (UTC).
pub fn new_run_id(fr_id: &str, unix_secs: u64, rand16: u16) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_secs);
    format!("{fr_id}-{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}-{rand16:04x}")
}

/// UTC calendar fields of a Unix time (Howard Hinnant's days-from-civil inverse).
fn civil(t: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = i64::try_from(t / 86_400).unwrap_or(0);
    let rem = t % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    let small = |v: i64| u32::try_from(v).unwrap_or(0);
    let rem = u32::try_from(rem).unwrap_or(0);
    (y, small(m), small(d), rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_have_the_documented_shape() {
        // 2026-11-23T10:44:49Z
        assert_eq!(
            new_run_id("FR-12", 1_795_430_689, 0xbeef),
            "FR-12-20261123T104449-beef"
        );
        assert_eq!(new_run_id("FR-1", 0, 1), "FR-1-19700101T000000-0001");
    }
}
