//! The child: pid 1 of the launch's pid namespace. Order (DESIGN.md, "Containment"):
//! unshare(mount, net, ipc, uts) → mounts → pivot_root → Landlock → identity
//! (setgroups, setgid, setuid, no_new_privs) → close fds → rlimits → setsid → fork the command:
//! seccomp LAST, then execve. The child stays behind as init: reaps, forwards signals, and
//! reports the command's exit.
//!
//! Runs only in the single-threaded jail helper's fork, never in the orchestrator's.

use std::ffi::CString;
use std::fmt::Display;
use std::os::fd::RawFd;

use serde::{Deserialize, Serialize};

use super::{fence, mounts, seccomp, sys};
use crate::plan::{Layer, Plan};
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
    /// cgroup v1 `tasks` files the child writes "0" to, moving itself into the launch's cgroup.
    pub self_join: Vec<RawFd>,
}

struct Ctx<'a> {
    plan: &'a Plan,
    status: RawFd,
}

impl Ctx<'_> {
    fn send(&self, msg: &ChildMsg) {
        if let Ok(mut line) = serde_json::to_vec(msg) {
            line.push(b'\n');
            // The helper may be gone (then we are about to be killed anyway).
            let _ = sys::write_all(self.status, &line);
        }
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
    let plan = prep.plan;
    let ctx = Ctx { plan, status };
    // If the helper dies, so does this init, and with it the whole pid namespace.
    if let Err(e) = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) {
        ctx.fatal(None, format!("prctl(PR_SET_PDEATHSIG): {e}"));
    }
    // SAFETY-free check of the pdeathsig race: the helper may have died before prctl.
    if std::os::unix::process::parent_id() != helper.unsigned_abs() && sys::getpid() != 1 {
        sys::exit_now(125);
    }

    // Into the launch's cgroup before anything else is allocated or started.
    for fd in &prep.self_join {
        if let Err(e) = sys::write_all(*fd, b"0") {
            ctx.outcome(
                Layer::Cgroups,
                Err(format!("moving into the cgroup (tasks): {e}")),
            );
        }
        sys::close(*fd);
    }

    let ns = plan.namespaces;
    let mut mount_ns = false;
    if ns.mount {
        mount_ns = sys::unshare(libc::CLONE_NEWNS).is_ok();
        if !mount_ns {
            ctx.outcome(Layer::Mount, Err("unshare(CLONE_NEWNS) failed"));
        }
    }
    if ns.ipc {
        ctx.outcome(
            Layer::Ipc,
            sys::unshare(libc::CLONE_NEWIPC).map_err(|e| format!("unshare(CLONE_NEWIPC): {e}")),
        );
    }
    if ns.uts {
        let r = sys::unshare(libc::CLONE_NEWUTS)
            .and_then(|()| sys::sethostname(format!("orchestrate-{}", plan.role).as_bytes()))
            .map_err(|e| format!("unshare(CLONE_NEWUTS)/sethostname: {e}"));
        ctx.outcome(Layer::Uts, r);
    }
    if ns.net {
        let r = sys::unshare(libc::CLONE_NEWNET)
            .map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))
            .and_then(|()| sys::loopback_up().map_err(|e| format!("bringing lo up: {e}")));
        ctx.outcome(Layer::Network, r);
    }
    if let Some(root) = &plan.new_root {
        if mount_ns {
            // Never mount outside a private mount namespace: it would land on the host.
            ctx.outcome(Layer::Mount, mounts::build_and_pivot(root));
        }
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
    // Wait until the helper has put us in the cgroup. Joining costs an RCU grace period (10-20 ms
    // on cgroup v1), so it runs while we build the sandbox above; nothing has forked yet, so every
    // process of the role starts inside the cgroup.
    let mut byte = [0u8; 1];
    match sys::read(go, &mut byte) {
        Ok(1) => {}
        _ => sys::exit_now(125),
    }
    sys::close(go);
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
    let command = match sys::fork() {
        Ok(0) => exec_command(prep, &ctx),
        Ok(pid) => pid,
        Err(e) => ctx.fatal(None, format!("fork of the command: {e}")),
    };
    if let Some(filter) = prep.seccomp {
        // init is confined as well; it only waits, kills and writes.
        let _ = filter.install();
    }
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
    // seccomp LAST: nothing after this line needs a denied syscall.
    if let Some(filter) = prep.seccomp {
        ctx.outcome(Layer::Seccomp, filter.install());
    }
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
