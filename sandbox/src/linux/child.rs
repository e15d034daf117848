//! The child: pid 1 of the launch's pid namespace. Order (DESIGN.md, "Containment"):
//! unshare(mount, net, ipc, uts) → mounts → pivot_root → Landlock → identity
//! (setgroups, setgid, setuid, no_new_privs) → close fds → rlimits → setsid → seccomp (LAST:
//! installed once here, inherited by the command) → start the command with
//! `clone(CLONE_VM | CLONE_VFORK)`, which resets its signals and execs. The child stays behind as
//! init: reaps, forwards signals, and reports the command's exit.
//!
//! Runs only in the single-threaded jail helper's fork, never in the orchestrator's.

use std::ffi::CString;
use std::fmt::Display;
use std::os::fd::RawFd;

use serde::{Deserialize, Serialize};

use super::{fence, mounts, seccomp, sys};
use crate::plan::{Layer, Namespaces, Plan};
use crate::report::{ExecFailure, Exit, LayerReport, LayerStatus, SetupFailure};

/// Messages from the child to the helper over the status pipe, one JSON line each.
#[derive(Debug, Serialize, Deserialize)]
pub enum ChildMsg {
    Layer(LayerReport),
    Fatal(SetupFailure),
    ExecFailed(ExecFailure),
    Exit(Exit),
}

/// Signals the helper and init forward to the command instead of dying from them.
pub const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// What the helper prepared before forking.
pub struct Prepared<'a> {
    pub plan: &'a Plan,
    pub seccomp: Option<&'a seccomp::Compiled>,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// Fds handed to the helper at 5.. (in `plan.pass_fds` order).
    pub pass_from: Vec<RawFd>,
    /// pid 1's end of the channel the helper sends the writable overlay on (`premount.rs`).
    pub premount: Option<RawFd>,
}

struct Ctx<'a> {
    plan: &'a Plan,
    status: RawFd,
}

/// Writes one message line to the helper.
fn send_to(status: RawFd, msg: &ChildMsg) {
    if let Ok(mut line) = serde_json::to_vec(msg) {
        line.push(b'\n');
        // The helper may be gone (then we are about to be killed anyway).
        let _ = sys::write_all(status, &line);
    }
}

impl Ctx<'_> {
    fn send(&self, msg: &ChildMsg) {
        send_to(self.status, msg);
    }

    /// Records a layer's outcome; a required layer that failed ends the launch (fail closed).
    fn outcome<E: Display>(&self, layer: Layer, result: Result<(), E>) -> bool {
        match result {
            Ok(()) => {
                self.send(&ChildMsg::Layer(LayerReport {
                    layer,
                    status: LayerStatus::Applied,
                }));
                true
            }
            Err(e) => {
                if self.plan.require.contains(&layer) && !self.plan.allow_weaker {
                    self.fatal(Some(layer), e);
                }
                self.send(&ChildMsg::Layer(LayerReport {
                    layer,
                    status: LayerStatus::Unavailable {
                        reason: e.to_string(),
                    },
                }));
                false
            }
        }
    }

    fn fatal<E: Display>(&self, layer: Option<Layer>, e: E) -> ! {
        self.send(&ChildMsg::Fatal(SetupFailure {
            layer,
            error: e.to_string(),
        }));
        sys::exit_now(125)
    }
}

/// Entry point after `fork`; never returns.
pub fn run(prep: &Prepared<'_>, status: RawFd, helper: libc::pid_t, go: RawFd) -> ! {
    die_with_helper(helper, status);
    let entered = enter_namespaces(prep.plan.namespaces);
    finish(prep, status, go, entered)
}

/// First thing in the child: if the helper dies, so does this init, and with it the whole pid
/// namespace.
pub(super) fn die_with_helper(helper: libc::pid_t, status: RawFd) {
    if let Err(e) = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) {
        send_to(
            status,
            &ChildMsg::Fatal(SetupFailure {
                layer: None,
                error: format!("prctl(PR_SET_PDEATHSIG): {e}"),
            }),
        );
        sys::exit_now(125);
    }
    // The helper may have died before prctl: then nothing will ever send the signal.
    if std::os::unix::process::parent_id() != helper.unsigned_abs() && sys::getpid() != 1 {
        sys::exit_now(125);
    }
}

/// What entering the namespaces gave: each layer's outcome, in order, reported (and failed
/// closed on) once the plan is at hand, and whether there is a private mount namespace to
/// mount in.
pub(super) struct Entered {
    outcomes: Vec<(Layer, Result<(), String>)>,
    mount_ns: bool,
}

/// unshare(mount, ipc, uts, net) and bring lo up. Needs nothing of the plan but which namespaces,
/// so it can run before the plan exists (`early.rs`); the host name waits for the plan.
pub(super) fn enter_namespaces(ns: Namespaces) -> Entered {
    let mut outcomes = Vec::new();
    let mut mount_ns = false;
    if ns.mount {
        mount_ns = sys::unshare(libc::CLONE_NEWNS).is_ok();
        if !mount_ns {
            outcomes.push((Layer::Mount, Err("unshare(CLONE_NEWNS) failed".to_owned())));
        }
    }
    if ns.ipc {
        let r = sys::unshare(libc::CLONE_NEWIPC).map_err(|e| format!("unshare(CLONE_NEWIPC): {e}"));
        outcomes.push((Layer::Ipc, r));
    }
    if ns.uts {
        let r = sys::unshare(libc::CLONE_NEWUTS).map_err(|e| format!("unshare(CLONE_NEWUTS): {e}"));
        outcomes.push((Layer::Uts, r));
    }
    if ns.net {
        let r = sys::unshare(libc::CLONE_NEWNET)
            .map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))
            .and_then(|()| sys::loopback_up().map_err(|e| format!("bringing lo up: {e}")));
        outcomes.push((Layer::Network, r));
    }
    Entered { outcomes, mount_ns }
}

/// Everything after the namespaces: report them, join the cgroup on "go", build the root, fence,
/// switch identity, then start the command and stay behind as its init. Never returns.
pub(super) fn finish(prep: &Prepared<'_>, status: RawFd, go: RawFd, entered: Entered) -> ! {
    let plan = prep.plan;
    let ctx = Ctx { plan, status };
    for (layer, r) in entered.outcomes {
        let r = match layer {
            // The role's own host name, now that the plan names the role.
            Layer::Uts => r.and_then(|()| {
                sys::sethostname(format!("orchestrate-{}", plan.role).as_bytes())
                    .map_err(|e| format!("sethostname: {e}"))
            }),
            _ => r,
        };
        ctx.outcome(layer, r);
    }
    // Never mount outside a private mount namespace: it would land on the host.
    let root = plan.new_root.as_ref().filter(|_| entered.mount_ns);
    let built = root.map(|r| mounts::build(r, prep.premount));
    // Wait until the helper has made the launch's cgroup (it did so while we built the
    // namespaces and the root), then move into it: while we still see the host's /sys/fs/cgroup
    // (before pivot_root) and are still root, and before anything of the role runs or forks.
    let mut byte = [0u8; 1];
    match sys::read(go, &mut byte) {
        Ok(1) if byte[0] == b'g' => {
            if let Some(cg) = &plan.cgroup {
                if let Err(e) = super::cgroup::join_self(&cg.join) {
                    ctx.outcome(Layer::Cgroups, Err(format!("moving into the cgroup: {e}")));
                }
            }
        }
        Ok(1) => {}
        _ => sys::exit_now(125),
    }
    sys::close(go);
    if let (Some(root), Some(built)) = (root, built) {
        ctx.outcome(Layer::Mount, built.and_then(|()| mounts::pivot(root)));
    }
    if let Ok(cwd) = CString::new(plan.cwd.as_os_str().as_encoded_bytes()) {
        if let Err(e) = sys::chdir(&cwd) {
            ctx.fatal(None, format!("chdir {:?}: {e}", plan.cwd));
        }
    }
    if let Some(rules) = &plan.landlock {
        ctx.outcome(Layer::Landlock, fence::apply(rules));
    }
    if let Some(id) = plan.identity {
        let r = sys::setgroups_empty()
            .and_then(|()| sys::setresgid(id.gid))
            .and_then(|()| sys::setresuid(id.uid))
            .map_err(|e| {
                format!(
                    "setgroups/setresgid/setresuid to {}:{}: {e}",
                    id.uid, id.gid
                )
            })
            .and_then(|()| {
                if sys::geteuid() == id.uid && sys::getegid() == id.gid {
                    Ok(())
                } else {
                    Err("identity did not change".to_owned())
                }
            });
        ctx.outcome(Layer::Identity, r);
    }
    if let Err(e) = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1) {
        ctx.fatal(None, format!("prctl(PR_SET_NO_NEW_PRIVS): {e}"));
    }
    let status = match place_fds(prep, status) {
        Ok(fd) => fd,
        Err(e) => ctx.fatal(None, format!("placing inherited fds: {e}")),
    };
    let ctx = Ctx { plan, status };
    // After the fds are placed (moving them high must not hit RLIMIT_NOFILE); lowering a limit
    // needs no privilege, and every limit is soft == hard, so the role cannot raise it back.
    if let Some(limits) = &plan.rlimits {
        ctx.outcome(Layer::Rlimits, super::rlimits::apply(limits));
    }
    // No controlling terminal: the command cannot TIOCSTI keystrokes into the engineer's shell.
    if let Err(e) = sys::setsid() {
        ctx.fatal(None, format!("setsid: {e}"));
    }
    if plan.env.is_some() {
        ctx.send(&ChildMsg::Layer(LayerReport {
            layer: Layer::Env,
            status: LayerStatus::Applied,
        }));
    }
    // seccomp before the command is started, so one install confines init and the command
    // alike (the command inherits it); after this, init only clones, waits, kills and writes,
    // and the command only resets its signals and execs.
    if let Some(filter) = prep.seccomp {
        ctx.outcome(Layer::Seccomp, filter.install());
    }
    let command = match sys::vfork_exec(&mut || exec_command(prep, &ctx)) {
        Ok(pid) => pid,
        Err(e) => ctx.fatal(None, format!("starting the command: {e}")),
    };
    let exit = init_loop(command);
    ctx.send(&ChildMsg::Exit(exit));
    sys::exit_now(exit.code())
}

/// Moves passed fds to their target numbers and closes every other fd but stdio and the status pipe.
fn place_fds(prep: &Prepared<'_>, status: RawFd) -> std::io::Result<RawFd> {
    const HIGH: RawFd = 1000;
    let status_high = sys::dup_cloexec_at_least(status, HIGH)?;
    let mut temps = Vec::new();
    for from in &prep.pass_from {
        temps.push(sys::dup_cloexec_at_least(*from, HIGH)?);
    }
    for (tmp, target) in temps.iter().zip(&prep.plan.pass_fds) {
        sys::dup2(*tmp, *target)?;
    }
    let mut keep: Vec<RawFd> = prep.plan.pass_fds.clone();
    keep.push(status_high);
    keep.sort_unstable();
    let mut next: RawFd = 3;
    for k in keep {
        if k > next {
            sys::close_range(next.unsigned_abs(), (k - 1).unsigned_abs())?;
        }
        next = k + 1;
    }
    sys::close_range(next.unsigned_abs(), u32::MAX)?;
    Ok(status_high)
}

fn exec_command(prep: &Prepared<'_>, ctx: &Ctx<'_>) -> ! {
    let all = sys::sigset(&[
        libc::SIGCHLD,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
    ]);
    for sig in FORWARDED {
        sys::set_default_handler(sig);
    }
    if let Ok(set) = all {
        if let Err(e) = sys::sigprocmask(libc::SIG_UNBLOCK, &set) {
            ctx.fatal(None, format!("sigprocmask: {e}"));
        }
    }
    let Some(file) = prep.argv.first() else {
        ctx.fatal(None, "empty argv")
    };
    let err = sys::execvpe(file, &prep.argv, &prep.env);
    ctx.send(&ChildMsg::ExecFailed(ExecFailure {
        errno: err.raw_os_error().unwrap_or(0),
        error: format!("execve {:?}: {err}", prep.plan.argv.first()),
    }));
    sys::exit_now(127)
}

/// init: wait for signals (already blocked by the helper), forward them, reap everything.
fn init_loop(command: libc::pid_t) -> Exit {
    let set = match sys::sigset(&[
        libc::SIGCHLD,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
    ]) {
        Ok(s) => s,
        Err(_) => return wait_only(command),
    };
    let mut result = None;
    loop {
        // Reap first: SIGCHLD may have arrived before we got here.
        while let Ok(Some((pid, status))) = sys::waitpid(-1, libc::WNOHANG) {
            if pid == command {
                result = Some(Exit::from_wait_status(status));
            }
        }
        if let Some(exit) = result {
            return exit;
        }
        match sys::sigtimedwait(&set, None) {
            Ok(Some(sig)) if FORWARDED.contains(&sig) => {
                let _ = sys::kill(command, sig);
            }
            Ok(_) => {}
            Err(_) => return wait_only(command),
        }
    }
}

fn wait_only(command: libc::pid_t) -> Exit {
    loop {
        match sys::waitpid(command, 0) {
            Ok(Some((_, status))) => return Exit::from_wait_status(status),
            Ok(None) => {}
            Err(_) => return Exit::Code(125),
        }
    }
}

/// In a child that got its plan late (`early.rs`): the plan's seccomp filter, compiled here;
/// a failure is reported as the layer's outcome (and fails closed when the layer is required).
pub(super) fn compile_seccomp(plan: &Plan, status: RawFd) -> Option<seccomp::Compiled> {
    let sp = plan.seccomp.as_ref()?;
    match seccomp::compile(sp) {
        Ok(c) => Some(c),
        Err(e) => {
            Ctx { plan, status }.outcome(Layer::Seccomp, Err(e));
            None
        }
    }
}
