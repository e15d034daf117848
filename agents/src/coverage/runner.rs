//! Running the coverage command: `cargo llvm-cov` for Rust, or the command an FR names for other
//! languages, as long as it writes lcov. The argument vector is built in one place
//! ([`CoverageCommand::cargo_llvm_cov`]), the process runs through `duct` with its stdout and
//! stderr captured (they are the test run's evidence) and a deadline after which it is killed;
//! every failure is an error naming the step, never a panic.

use super::lcov::{self, Lcov, LcovError};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A command that runs the tests and writes an lcov tracefile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoverageCommand {
    /// Program (`cargo`).
    pub program: OsString,
    /// Arguments.
    pub args: Vec<OsString>,
    /// Working directory (the project).
    pub dir: PathBuf,
    /// Extra environment (target dir, profile locations in scratch).
    pub env: Vec<(OsString, OsString)>,
    /// Where the tracefile is written.
    pub lcov_path: PathBuf,
    /// Killed after this long.
    pub timeout: Duration,
}

impl CoverageCommand {
    /// `cargo llvm-cov --lcov --output-path LCOV [--workspace]` in `project`, with the build
    /// (and the `.profraw` profiles, which cargo-llvm-cov keeps under the target dir) in
    /// `target_dir`: inside the test-runner's sandbox the toolchain is read-only and only
    /// scratch is writable.
    pub fn cargo_llvm_cov(
        project: &Path,
        target_dir: &Path,
        lcov_path: &Path,
        workspace: bool,
        timeout: Duration,
    ) -> Self {
        let mut args: Vec<OsString> = vec![
            "llvm-cov".into(),
            "--lcov".into(),
            "--output-path".into(),
            lcov_path.as_os_str().to_owned(),
        ];
        if workspace {
            args.push("--workspace".into());
        }
        CoverageCommand {
            program: "cargo".into(),
            args,
            dir: project.to_path_buf(),
            env: vec![
                ("CARGO_TARGET_DIR".into(), target_dir.as_os_str().to_owned()),
                ("CARGO_TERM_COLOR".into(), "never".into()),
            ],
            lcov_path: lcov_path.to_path_buf(),
            timeout,
        }
    }

    /// `cargo test ARGS` turned into `cargo llvm-cov --lcov --output-path LCOV ARGS` (the
    /// test-runner's approved command measured instead of run plainly; cargo-llvm-cov takes
    /// `cargo test`'s arguments), offline, with the build in `target_dir`.
    pub fn for_cargo_test(
        project: &Path,
        target_dir: &Path,
        lcov_path: &Path,
        test_args: &[&str],
        timeout: Duration,
    ) -> Self {
        let mut c = Self::cargo_llvm_cov(project, target_dir, lcov_path, false, timeout);
        c.args.extend(test_args.iter().map(OsString::from));
        c.env.push(("CARGO_NET_OFFLINE".into(), "true".into()));
        c
    }

    /// The command line as one string, for logs and the artifact.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(self.args.iter())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command and reads the tracefile it wrote.
    pub fn run(&self) -> Result<CoverageRun, CoverageError> {
        let start = Instant::now();
        let mut expr = duct::cmd(&self.program, &self.args)
            .dir(&self.dir)
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        let handle = expr.start().map_err(|source| CoverageError::Spawn {
            command: self.display(),
            source,
        })?;
        let finished = handle
            .wait_timeout(self.timeout)
            .map_err(|source| CoverageError::Wait {
                command: self.display(),
                source,
            })?
            .cloned();
        let Some(output) = finished else {
            // The deadline passed: kill, reap, and report what it printed so far is lost.
            let _ = handle.kill();
            return Err(CoverageError::Timeout {
                command: self.display(),
                timeout: self.timeout,
            });
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let duration = start.elapsed();
        let exit_code = output.status.code();
        // Failing tests are a result, not an error: cargo llvm-cov still writes the report
        // for the tests that ran only when they all pass, so a missing tracefile after a
        // non-zero exit is reported with the output attached.
        let lcov = match lcov::read(&self.lcov_path) {
            Ok(l) => l,
            Err(LcovError::Read { .. }) if !output.status.success() => {
                return Err(CoverageError::Failed {
                    command: self.display(),
                    exit_code,
                    stderr_tail: tail(&stderr, 2000),
                    stdout,
                    stderr,
                })
            }
            Err(source) => return Err(CoverageError::Lcov { source }),
        };
        Ok(CoverageRun {
            command: self.display(),
            exit_code,
            stdout,
            stderr,
            duration,
            lcov,
        })
    }
}

/// What one coverage run produced.
#[derive(Clone, Debug)]
pub struct CoverageRun {
    /// The command line.
    pub command: String,
    /// Exit code (`None`: killed by a signal).
    pub exit_code: Option<i32>,
    /// Captured stdout (libtest's output for cargo llvm-cov).
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// Wall time.
    pub duration: Duration,
    /// The tracefile.
    pub lcov: Lcov,
}

/// Why a coverage run gave no tracefile.
#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    /// The program could not be started (not installed: run scripts/setup.sh).
    #[error("cannot start `{command}` (is cargo-llvm-cov installed? scripts/setup.sh installs it): {source}")]
    Spawn {
        /// Command line.
        command: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for it failed.
    #[error("waiting for `{command}`: {source}")]
    Wait {
        /// Command line.
        command: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// It ran past its deadline and was killed.
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    Timeout {
        /// Command line.
        command: String,
        /// The deadline.
        timeout: Duration,
    },
    /// It failed without writing a tracefile.
    #[error("`{command}` exited with {exit_code:?} and wrote no lcov file; stderr ends with: {stderr_tail}")]
    Failed {
        /// Command line.
        command: String,
        /// Exit code.
        exit_code: Option<i32>,
        /// Last part of stderr, for the message.
        stderr_tail: String,
        /// Full stdout (test output).
        stdout: String,
        /// Full stderr.
        stderr: String,
    },
    /// The tracefile is unreadable or malformed.
    #[error("reading the coverage report: {source}")]
    Lcov {
        /// Cause.
        #[source]
        source: LcovError,
    },
}

fn tail(s: &str, max: usize) -> String {
    let start = s.len().saturating_sub(max);
    let mut i = start;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    s[i..].trim().to_string()
}
