//! The jail helper: a fresh single-threaded process (the `orchestrate-jail` binary, or a hidden
//! subcommand that calls [`jail_main`]) started by [`super::launch`]. It unshares the pid
//! namespace (and the user namespace in unprivileged mode), forks the child that becomes pid 1
//! (see `child.rs` for the in-child order), creates the cgroup while the child builds its
//! sandbox, enforces the wall clock, cleans up and writes the [`LaunchReport`].
//!
//! Fds it is started with: 3 = the serialized plan (read to EOF), 4 = where the report goes,
//! 5.. = fds to pass to the command, in `plan.pass_fds` order.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::Instant;

use super::child::{self, ChildMsg, Prepared, FORWARDED};
use super::workslot::{self, Slot};
use super::{cgroup, premount, seccomp, sys};
use crate::plan::{Layer, Plan};
use crate::report::{Exit, LaunchReport, LayerReport, LayerStatus, SetupFailure};

pub const PLAN_FD: RawFd = 3;
pub const REPORT_FD: RawFd = 4;
pub const PASS_FD_BASE: RawFd = 5;
/// Sent to the helper by [`super::launch::Running::kill_all`]: kill every process of the launch
/// now (as the wall clock does), then clean up and report.
pub const KILL_ALL: libc::c_int = libc::SIGUSR1;

/// Entry point of the helper process; returns the exit code to pass through.
pub fn jail_main() -> i32 {
    // SAFETY: the launcher placed the plan pipe's read end at PLAN_FD for this process alone.
    let mut plan_file = unsafe { std::fs::File::from_raw_fd(PLAN_FD) };
    let mut text = Vec::new();
    let report = match plan_file
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice::<Plan>(&text).map_err(|e| e.to_string()))
    {
        Ok(plan) => {
            drop(plan_file);
            supervise(&plan)
        }
        Err(e) => LaunchReport {
            role: String::new(),
            layers: Vec::new(),
            exit: None,
            wall_killed: false,
            setup_failure: Some(SetupFailure {
                layer: None,
                error: format!("reading the plan from fd {PLAN_FD}: {e}"),
            }),
            exec_failure: None,
            elapsed_ms: 0,
        },
    };
    if let Ok(json) = serde_json::to_vec(&report) {
        // The launcher reads this; if it is gone there is nobody left to tell.
        let _ = sys::write_all(REPORT_FD, &json);
    }
    sys::close(REPORT_FD);
    report.exit_code()
}

pub(super) struct Supervisor<'a> {
    plan: &'a Plan,
    report: LaunchReport,
    start: Instant,
}

impl<'a> Supervisor<'a> {
    /// A report for `plan` with its switched-off layers, timed from `start`.
    pub(super) fn new(plan: &'a Plan, start: Instant) -> Supervisor<'a> {
        Supervisor {
            plan,
            start,
            report: LaunchReport {
                role: plan.role.clone(),
                layers: plan
                    .switched_off
                    .iter()
                    .map(|l| LayerReport {
                        layer: *l,
                        status: LayerStatus::Skipped {
                            reason: "switched off for this launch".to_owned(),
                        },
                    })
                    .collect(),
                exit: None,
                wall_killed: false,
                setup_failure: None,
                exec_failure: None,
                elapsed_ms: 0,
            },
        }
    }

    /// Records a helper-side layer outcome; `Err(())` means: fail closed, stop here.
    pub(super) fn outcome(&mut self, layer: Layer, result: Result<(), String>) -> Result<(), ()> {
        let status = match result {
            Ok(()) => LayerStatus::Applied,
            Err(error) => {
                if self.plan.require.contains(&layer) && !self.plan.allow_weaker {
                    self.report.setup_failure = Some(SetupFailure {
                        layer: Some(layer),
                        error,
                    });
                    return Err(());
                }
                LayerStatus::Unavailable { reason: error }
            }
        };
        self.report.layers.push(LayerReport { layer, status });
        Ok(())
    }

    /// Reads what the child reported; true when it reported a setup failure.
    pub(super) fn read_child(&mut self, status_r: RawFd) -> bool {
        read_messages(status_r, &mut self.report);
        self.report.setup_failure.is_some()
    }

    pub(super) fn fail(&mut self, error: String) -> LaunchReport {
        self.report.setup_failure = Some(SetupFailure { layer: None, error });
        self.finish()
    }

    /// Every path out of `supervise` ends here, after the child (if any) was killed and reaped.
    pub(super) fn finish(&mut self) -> LaunchReport {
        self.report.elapsed_ms =
            u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Report in the fixed layer order, whatever order the steps ran in.
        self.report.layers.sort_by_key(|l| l.layer);
        self.report.clone()
    }
}

fn cstrings<I: IntoIterator<Item = Vec<u8>>>(items: I) -> Result<Vec<CString>, String> {
    items
        .into_iter()
        .map(|b| CString::new(b).map_err(|e| format!("argument or variable with NUL: {e}")))
        .collect()
}

/// The command's argv and environment as C strings (the plan's environment, or this process's
/// when the plan keeps it).
pub(super) fn exec_strings(plan: &Plan) -> Result<(Vec<CString>, Vec<CString>), String> {
    let argv = cstrings(plan.argv.iter().map(|a| a.clone().into_bytes()))?;
    let env = match &plan.env {
        Some(vars) => cstrings(vars.iter().map(|(k, v)| format!("{k}={v}").into_bytes())),
        None => cstrings(std::env::vars_os().map(|(k, v)| {
            let mut b = k.into_encoded_bytes();
            b.push(b'=');
            b.extend(v.into_encoded_bytes());
            b
        })),
    }?;
    Ok((argv, env))
}

/// Signals the helper waits for (blocked, with no-op handlers so a forwarded signal is not lost);
/// and it becomes the subreaper of the command's orphans (when there is no pid namespace).
pub(super) fn block_signals() -> Result<libc::sigset_t, String> {
    let mut signals = vec![libc::SIGCHLD, KILL_ALL];
    signals.extend(FORWARDED);
    let set = sys::sigset(&signals).map_err(|e| format!("sigset: {e}"))?;
    for sig in FORWARDED.into_iter().chain([KILL_ALL]) {
        sys::set_noop_handler(sig).map_err(|e| format!("signal handler {sig}: {e}"))?;
    }
    sys::sigprocmask(libc::SIG_BLOCK, &set).map_err(|e| format!("sigprocmask: {e}"))?;
    let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    Ok(set)
}

/// Runs the plan and returns what happened.
pub fn supervise(plan: &Plan) -> LaunchReport {
    let mut s = Supervisor::new(plan, Instant::now());
    let (argv, env) = match exec_strings(plan) {
        Ok(x) => x,
        Err(e) => return s.fail(e),
    };
    let compiled = match &plan.seccomp {
        Some(sp) => match seccomp::compile(sp) {
            Ok(c) => Some(c),
            Err(e) => {
                if s.outcome(Layer::Seccomp, Err(e.to_string())).is_err() {
                    return s.finish();
                }
                None
            }
        },
        None => None,
    };
    let set = match block_signals() {
        Ok(set) => set,
        Err(e) => return s.fail(e),
    };
    if plan.namespaces.user {
        if let Err(e) = super::userns::enter() {
            return s.fail(format!("user namespace: {e}"));
        }
    }
    if plan.namespaces.pid {
        let r = sys::unshare(libc::CLONE_NEWPID).map_err(|e| format!("unshare(CLONE_NEWPID): {e}"));
        if s.outcome(Layer::Pid, r).is_err() {
            return s.finish();
        }
    }
    let (status_r, status_w) = match sys::pipe_cloexec() {
        Ok(p) => p,
        Err(e) => return s.fail(format!("status pipe: {e}")),
    };
    let (go_r, go_w) = match sys::pipe_cloexec() {
        Ok(p) => p,
        Err(e) => return s.fail(format!("go pipe: {e}")),
    };
    // Without it, a writable overlay cannot be had: pid 1 fails the mount layer, naming why.
    let (premount_h, premount_c) = premount::channel().ok().unzip();
    let prep = Prepared {
        plan,
        seccomp: compiled.as_ref(),
        argv,
        env,
        pass_from: (0..plan.pass_fds.len())
            .map(|i| PASS_FD_BASE + i32::try_from(i).unwrap_or(0))
            .collect(),
        premount: premount_c.as_ref().map(AsRawFd::as_raw_fd),
    };
    let helper = sys::getpid();
    let pid = match sys::fork() {
        Ok(0) => {
            sys::close(status_r);
            sys::close(go_w);
            if let Some(h) = &premount_h {
                sys::close(h.as_raw_fd());
            }
            child::run(&prep, status_w, helper, go_r)
        }
        Ok(pid) => pid,
        Err(e) => return s.fail(format!("fork: {e}")),
    };
    sys::close(status_w);
    sys::close(go_r);
    for fd in &prep.pass_from {
        sys::close(*fd);
    }
    drop(premount_c);
    // While pid 1 builds its namespaces on the other core. The work dir's slot is held until
    // the launch is over.
    let slot = premount_h.and_then(|h| premount::send(plan, &h));
    supervise_forked(s, pid, status_r, go_w, &set, slot.as_ref())
}

/// The helper's side once pid 1 (`pid`) is forked: the cgroup, "go", the wall clock, cleanup and
/// the report. `status_r` and `go_w` are the helper's ends of the child's pipes; `slot`, the
/// overlay work dir this launch holds, whose set-aside markers are swept while the helper waits.
pub(super) fn supervise_forked(
    mut s: Supervisor<'_>,
    pid: libc::pid_t,
    status_r: RawFd,
    go_w: RawFd,
    set: &libc::sigset_t,
    slot: Option<&Slot>,
) -> LaunchReport {
    let plan = s.plan;
    // The cgroup is made while the child builds its namespaces and root on the other core; the
    // child joins it on "g" before pivot_root, and nothing of the role runs before that.
    let (cg, go) = match make_cgroup(&mut s, pid) {
        Ok(cg) => {
            let go: &[u8] = if cg.is_some() { b"g" } else { b"n" };
            (cg, go)
        }
        Err(()) => {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = sys::waitpid(pid, 0);
            sys::close(go_w);
            sys::close(status_r);
            return s.finish();
        }
    };
    let released = sys::write_all(go_w, go);
    sys::close(go_w);
    if let Err(e) = released {
        // Most likely the child already failed (EPIPE): its own message says why.
        let _ = sys::kill(pid, libc::SIGKILL);
        let _ = sys::waitpid(pid, 0);
        if let Some(cg) = cg {
            let _ = cg.remove();
        }
        read_messages(status_r, &mut s.report);
        sys::close(status_r);
        if s.report.setup_failure.is_some() {
            return s.finish();
        }
        return s.fail(format!("releasing the child: {e}"));
    }
    // Idle until the command exits: earlier launches' markers, one at a time.
    let mut trash = slot.map(Slot::trash).unwrap_or_default();
    let mut sweep = || {
        trash
            .pop()
            .map(|dir| workslot::remove_trash(&dir))
            .is_some()
    };
    let (status, wall_killed) =
        wait_with_deadline(pid, set, plan.wall_seconds, s.start, &mut sweep);
    s.report.wall_killed = wall_killed;
    if !plan.namespaces.pid || wall_killed {
        // Without a pid namespace, the command's leftovers share the child's process group.
        let _ = sys::kill(-pid, libc::SIGKILL);
    }
    if let Some(cg) = cg {
        if let Err(e) = cg.remove() {
            eprintln!("orchestrate-jail: {e}");
        }
    }
    reap_orphans();
    read_messages(status_r, &mut s.report);
    sys::close(status_r);
    if s.report.exit.is_none()
        && s.report.setup_failure.is_none()
        && s.report.exec_failure.is_none()
    {
        s.report.exit = status.map(Exit::from_wait_status);
    }
    s.finish()
}

/// Creates the launch's cgroup and moves `pid` into every hierarchy the child cannot join itself
/// (cgroup v2, which has no `tasks` file). `Ok(None)`: no cgroup, and the report says why;
/// `Err(())`: the layer is required and failed, so the launch fails closed.
fn make_cgroup(s: &mut Supervisor<'_>, pid: libc::pid_t) -> Result<Option<cgroup::Cgroup>, ()> {
    let Some(cp) = &s.plan.cgroup else {
        if !s.plan.switched_off.contains(&Layer::Cgroups) {
            let r = Err("no memory/pids cgroup controllers on this host".to_owned());
            s.outcome(Layer::Cgroups, r)?;
        }
        return Ok(None);
    };
    let cg = match cgroup::Cgroup::create(cp) {
        Ok(cg) => cg,
        Err(e) => {
            s.outcome(Layer::Cgroups, Err(e.to_string()))?;
            return Ok(None);
        }
    };
    let r = cg
        .join_paths(pid, &cg.without_tasks())
        .map_err(|e| e.to_string());
    match r {
        Ok(()) => {
            // The child reports it instead if moving itself in (v1) fails.
            s.outcome(Layer::Cgroups, Ok(()))?;
            Ok(Some(cg))
        }
        Err(e) => {
            s.outcome(Layer::Cgroups, Err(e))?;
            Ok(None)
        }
    }
}

/// Waits for pid 1, forwarding signals and enforcing the wall clock. `idle` is given the time
/// while nothing is pending, one step per call (it returns false when it has nothing left).
fn wait_with_deadline(
    pid: libc::pid_t,
    set: &libc::sigset_t,
    wall_seconds: u64,
    start: Instant,
    idle: &mut dyn FnMut() -> bool,
) -> (Option<i32>, bool) {
    let deadline_ms = wall_seconds.saturating_mul(1000);
    let mut killed = false;
    let mut busy = true;
    loop {
        match sys::waitpid(pid, libc::WNOHANG) {
            Ok(Some((_, status))) => return (Some(status), killed),
            Ok(None) => {}
            Err(_) => return (None, killed),
        }
        if busy && !sys::any_pending(set) {
            busy = idle();
            if busy {
                continue;
            }
        }
        let elapsed = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let timeout = if killed || wall_seconds == 0 {
            None
        } else {
            Some(deadline_ms.saturating_sub(elapsed))
        };
        match sys::sigtimedwait(set, timeout) {
            Ok(None) => {
                // SIGKILL to pid 1 of the namespace kills every process in it.
                let _ = sys::kill(pid, libc::SIGKILL);
                let _ = sys::kill(-pid, libc::SIGKILL);
                killed = true;
            }
            Ok(Some(sig)) if FORWARDED.contains(&sig) => {
                let _ = sys::kill(pid, sig);
            }
            Ok(Some(KILL_ALL)) => {
                let _ = sys::kill(pid, libc::SIGKILL);
                let _ = sys::kill(-pid, libc::SIGKILL);
            }
            Ok(Some(_)) => {}
            Err(_) => {
                return (
                    sys::waitpid(pid, 0).ok().flatten().map(|(_, st)| st),
                    killed,
                )
            }
        }
    }
}

fn reap_orphans() {
    while let Ok(Some(_)) = sys::waitpid(-1, libc::WNOHANG) {}
}

fn read_messages(fd: RawFd, report: &mut LaunchReport) {
    // Every writer is gone or exec'd by now; non-blocking guards against a leaked write end.
    let _ = sys::set_nonblocking(fd);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = sys::read(fd, &mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<ChildMsg>(line) {
            Ok(ChildMsg::Layer(l)) => {
                report.layers.retain(|x| x.layer != l.layer);
                report.layers.push(l);
            }
            Ok(ChildMsg::Fatal(f)) => report.setup_failure = Some(f),
            Ok(ChildMsg::ExecFailed(e)) => report.exec_failure = Some(e),
            Ok(ChildMsg::Exit(e)) => report.exit = Some(e),
            Err(_) => {}
        }
    }
}
