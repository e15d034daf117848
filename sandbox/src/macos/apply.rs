//! Runs the macOS plans (macOS only; not exercised in CI). Every command runs by argv with an
//! empty environment; the first failure stops the sequence and names the command.

use std::io;
use std::process::{Command, ExitStatus};

use super::{Cmd, SANDBOX_EXEC};

/// A command of a plan that failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// It could not be started.
    #[error("running {cmd}: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Cause.
        source: io::Error,
    },
    /// It exited unsuccessfully.
    #[error("{cmd} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Exit status.
        status: ExitStatus,
        /// What it printed.
        stderr: String,
    },
}

/// Runs `cmds` in order.
pub fn run_all(cmds: &[Cmd]) -> Result<(), ApplyError> {
    for c in cmds {
        let out = Command::new(&c.program)
            .args(&c.args)
            .env_clear()
            .output()
            .map_err(|source| ApplyError::Spawn {
                cmd: c.to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(ApplyError::Failed {
                cmd: c.to_string(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
    }
    Ok(())
}

/// `sandbox-exec -p PROFILE -- ARGV...`, ready for the caller to set env, uid and stdio.
pub fn sandboxed(profile: &str, argv: &[String]) -> Command {
    let mut cmd = Command::new(SANDBOX_EXEC);
    cmd.arg("-p").arg(profile).arg("--").args(argv);
    cmd
}
