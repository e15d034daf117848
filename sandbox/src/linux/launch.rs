//! The library side of a launch, safe to call from the multi-threaded orchestrator: it only spawns
//! the single-threaded jail helper (std's spawn; the pre-exec hook does nothing but `dup2`, which is
//! async-signal-safe), hands it the plan on a pipe and reads its report back. Every namespace,
//! mount and privilege change happens in the helper (see `jail.rs`).

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::jail::{KILL_ALL, PASS_FD_BASE, PLAN_FD, REPORT_FD};
use super::sys;
use crate::plan::Plan;
use crate::report::LaunchReport;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("jail helper {path:?} not found next to {exe:?}; set ORCHESTRATE_JAIL")]
    HelperNotFound { path: PathBuf, exe: PathBuf },
    #[error("pipe for the jail helper: {0}")]
    Pipe(#[source] io::Error),
    #[error("starting the jail helper {path:?}: {source}")]
    Spawn { path: PathBuf, source: io::Error },
    #[error("sending the plan to the jail helper: {0}")]
    SendPlan(#[source] io::Error),
    #[error("serializing the plan: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("reading the jail helper's report: {0}")]
    ReadReport(#[source] io::Error),
    #[error("the jail helper exited ({status}) without a readable report: {source}")]
    NoReport {
        status: std::process::ExitStatus,
        source: serde_json::Error,
    },
    #[error("waiting for the jail helper: {0}")]
    Wait(#[source] io::Error),
}

/// How to start the jail helper: a program plus leading arguments (e.g. the `orchestrate` binary
/// and its hidden `__jail` subcommand, or the `orchestrate-jail` binary with none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launcher {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl Launcher {
    /// The current executable with `args` in front (e.g. `orchestrate sandbox __jail`).
    pub fn this_exe(args: &[&str]) -> Result<Launcher, LaunchError> {
        let exe = std::env::current_exe().map_err(|source| LaunchError::Spawn {
            path: PathBuf::from("/proc/self/exe"),
            source,
        })?;
        Ok(Launcher {
            program: exe,
            args: args.iter().map(OsString::from).collect(),
        })
    }

    /// `$ORCHESTRATE_JAIL`, else `orchestrate-jail` next to the current executable (or its parent
    /// directory, where cargo puts binaries when the caller is a test in `deps/`).
    pub fn find() -> Result<Launcher, LaunchError> {
        if let Some(p) = std::env::var_os("ORCHESTRATE_JAIL") {
            return Ok(Launcher {
                program: PathBuf::from(p),
                args: Vec::new(),
            });
        }
        let exe = std::env::current_exe().map_err(|_| LaunchError::HelperNotFound {
            path: PathBuf::from("orchestrate-jail"),
            exe: PathBuf::new(),
        })?;
        let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
        for candidate in [
            dir.join("orchestrate-jail"),
            dir.join("../orchestrate-jail"),
        ] {
            if candidate.is_file() {
                return Ok(Launcher {
                    program: candidate,
                    args: Vec::new(),
                });
            }
        }
        Err(LaunchError::HelperNotFound {
            path: dir.join("orchestrate-jail"),
            exe,
        })
    }
}

/// The command's stdio (the helper passes its own stdio through to the command).
pub struct Stdio3 {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl Stdio3 {
    pub fn inherit() -> Stdio3 {
        Stdio3 {
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
        }
    }

    /// No stdin, captured stdout and stderr.
    pub fn piped() -> Stdio3 {
        Stdio3 {
            stdin: Stdio::null(),
            stdout: Stdio::piped(),
            stderr: Stdio::piped(),
        }
    }
}

/// A launched role process: the helper's `Child` (take its stdout/stderr) and the report pipe.
pub struct Running {
    pub child: Child,
    report: std::fs::File,
}

impl Running {
    /// The helper's pid: SIGTERM/SIGINT are forwarded to the command; SIGKILL tears the whole
    /// sandbox down (its pid 1 dies with the helper).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills every process of the launch (the pid namespace's init, so the whole namespace; the
    /// process group and the cgroup when those are the bound), then the helper cleans up and
    /// reports; call [`Running::wait`] for the report.
    pub fn kill_all(&self) -> std::io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
        sys::kill(pid, super::jail::KILL_ALL)
    }

    /// The helper's `Child` and the pipe its report arrives on, for a caller that supervises the
    /// launch its own way (the run engine's role actors). Read the pipe to its end after the
    /// helper exits: the report is written once every process of the launch is gone.
    pub fn into_parts(self) -> (Child, std::fs::File) {
        (self.child, self.report)
    }

    /// Waits for the command and returns the report.
    pub fn wait(mut self) -> Result<LaunchReport, LaunchError> {
        let mut text = Vec::new();
        self.report
            .read_to_end(&mut text)
            .map_err(LaunchError::ReadReport)?;
        let status = self.child.wait().map_err(LaunchError::Wait)?;
        serde_json::from_slice(&text).map_err(|source| LaunchError::NoReport { status, source })
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    let (r, w) = sys::pipe_cloexec().map_err(LaunchError::Pipe)?;
    // SAFETY: pipe2 just returned these two fds and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(r), OwnedFd::from_raw_fd(w)) })
}

/// Dups `fd` above every fd number the pre-exec hook writes to, so no `dup2` clobbers a source.
fn high(fd: RawFd) -> Result<OwnedFd, LaunchError> {
    let n = sys::dup_cloexec_at_least(fd, 100).map_err(LaunchError::Pipe)?;
    // SAFETY: F_DUPFD_CLOEXEC just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Starts the helper for `plan`. `pass` are the fds for `plan.pass_fds`, in the same order.
pub fn spawn(
    launcher: &Launcher,
    plan: &Plan,
    io: Stdio3,
    pass: &[BorrowedFd<'_>],
) -> Result<Running, LaunchError> {
    let json = serde_json::to_vec(plan).map_err(LaunchError::Serialize)?;
    let (plan_r, plan_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let mut moves: Vec<(OwnedFd, RawFd)> = vec![
        (high(plan_r.as_raw_fd())?, PLAN_FD),
        (high(report_w.as_raw_fd())?, REPORT_FD),
    ];
    for (i, fd) in pass.iter().enumerate() {
        moves.push((
            high(fd.as_raw_fd())?,
            PASS_FD_BASE + RawFd::try_from(i).unwrap_or(0),
        ));
    }
    drop((plan_r, report_w));
    let raw: Vec<(RawFd, RawFd)> = moves.iter().map(|(fd, to)| (fd.as_raw_fd(), *to)).collect();
    let mut cmd = Command::new(&launcher.program);
    cmd.args(&launcher.args)
        .stdin(io.stdin)
        .stdout(io.stdout)
        .stderr(io.stderr);
    let parent = sys::getpid();
    // SAFETY: the hook runs between fork and exec in a copy of a multi-threaded process; it calls
    // only prctl, getppid and dup2, which are async-signal-safe, and allocates nothing (`raw`
    // and `parent` were built before).
    unsafe {
        cmd.pre_exec(move || {
            // The sandbox dies with whoever launched it: a killed orchestrator leaves no role
            // working. KILL_ALL (not SIGKILL) so the helper still tears down and cleans up.
            sys::prctl(libc::PR_SET_PDEATHSIG, KILL_ALL as libc::c_ulong)?;
            if libc::getppid() != parent {
                // The launcher died before prctl: nothing will ever send the signal.
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            for (from, to) in &raw {
                sys::dup2(*from, *to)?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| LaunchError::Spawn {
        path: launcher.program.clone(),
        source,
    })?;
    drop(moves);
    let mut plan_w = std::fs::File::from(plan_w);
    plan_w.write_all(&json).map_err(LaunchError::SendPlan)?;
    drop(plan_w);
    Ok(Running {
        child,
        report: std::fs::File::from(report_r),
    })
}

/// Runs `plan` to completion with inherited stdio.
pub fn run(launcher: &Launcher, plan: &Plan) -> Result<LaunchReport, LaunchError> {
    spawn(launcher, plan, Stdio3::inherit(), &[])?.wait()
}

/// Runs `plan` to completion, capturing the command's stdout and stderr.
pub fn run_captured(
    launcher: &Launcher,
    plan: &Plan,
) -> Result<(LaunchReport, Vec<u8>, Vec<u8>), LaunchError> {
    let mut running = spawn(launcher, plan, Stdio3::piped(), &[])?;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let stderr = running.child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_end(&mut buf);
        }
        buf
    });
    if let Some(mut o) = running.child.stdout.take() {
        o.read_to_end(&mut out).map_err(LaunchError::ReadReport)?;
    }
    if let Ok(buf) = err_thread.join() {
        err = buf;
    }
    let report = running.wait()?;
    Ok((report, out, err))
}
