//! A launch whose pid 1 is forked before its plan exists. Building the namespaces (a network
//! namespace above all, ~0.5 ms here) is the slowest kernel work of a launch and needs nothing
//! of the policy but which namespaces, known from the command line (or guessed from it: the
//! `orchestrate` front forks before clap has parsed it). So `orchestrate sandbox exec` forks
//! pid 1 first; it builds its namespaces on one core while the CLI loads roles.yaml, prepares the
//! volume and builds the plan on the other, then receives the plan on a pipe and goes on exactly
//! as a launch from [`super::jail::supervise`] does.
//!
//! Nothing runs in the sandbox before the plan arrives: the child only unshares and waits. If the
//! caller fails before it has a plan (a bad roles.yaml, a command line that was not
//! `sandbox exec` after all), dropping [`Early`] kills and reaps the child. If the plan asks for
//! other namespaces than the guess (layers switched off), the early child is dropped and the plan
//! runs the usual way.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use super::child::{self, Prepared};
use super::jail::{self, Supervisor};
use super::{premount, sys};
use crate::plan::{Layer, Namespaces, Plan};
use crate::report::LaunchReport;

/// pid 1 of a launch, forked and building its namespaces, waiting for its plan.
pub struct Early {
    pid: libc::pid_t,
    ns: Namespaces,
    start: Instant,
    set: libc::sigset_t,
    /// The helper's ends of the status, plan and go pipes.
    status_r: RawFd,
    plan_w: RawFd,
    go_w: RawFd,
    /// The helper's end of the channel for the writable overlay (`premount.rs`), if it opened.
    premount: Option<OwnedFd>,
    /// Still ours to kill and reap (false once handed to the supervisor).
    live: bool,
}

impl Early {
    /// Forks pid 1 of a launch that will have namespaces `ns`. The calling process
    /// must be single-threaded (the CLI); it becomes the launch's helper. `Err`: nothing was
    /// started (the caller launches the usual way, which reports the failing layer).
    pub fn start(ns: Namespaces) -> Result<Early, String> {
        let start = Instant::now();
        if ns.user {
            // Unprivileged: the user namespace would have to be this process's own.
            return Err("not root: launched the usual way".to_owned());
        }
        let set = jail::block_signals()?;
        let (status_r, status_w) = sys::pipe_cloexec().map_err(|e| format!("status pipe: {e}"))?;
        let (plan_r, plan_w) = sys::pipe_cloexec().map_err(|e| format!("plan pipe: {e}"))?;
        let (go_r, go_w) = sys::pipe_cloexec().map_err(|e| format!("go pipe: {e}"))?;
        // Without it, a writable overlay cannot be had: pid 1 fails the mount layer, naming why.
        let (premount_h, premount_c) = premount::channel().ok().unzip();
        let helper = sys::getpid();
        // clone(CLONE_NEWPID), not unshare + fork: this process goes on to spawn git and tar
        // (materialising the volume), which must not land in the launch's pid namespace.
        let flags = if ns.pid { libc::CLONE_NEWPID } else { 0 };
        match sys::fork_with(flags, &mut || {
            sys::close(status_r);
            sys::close(plan_w);
            sys::close(go_w);
            if let Some(h) = &premount_h {
                sys::close(h.as_raw_fd());
            }
            let pm = premount_c.as_ref().map(AsRawFd::as_raw_fd);
            child_main(ns, helper, status_w, plan_r, go_r, pm)
        }) {
            Ok(pid) => {
                sys::close(status_w);
                sys::close(plan_r);
                sys::close(go_r);
                drop(premount_c);
                Ok(Early {
                    pid,
                    ns,
                    start,
                    set,
                    status_r,
                    plan_w,
                    go_w,
                    premount: premount_h,
                    live: true,
                })
            }
            Err(e) => {
                for fd in [status_r, status_w, plan_r, plan_w, go_r, go_w] {
                    sys::close(fd);
                }
                let _ = sys::sigprocmask(libc::SIG_UNBLOCK, &set);
                Err(format!("clone: {e}"))
            }
        }
    }

    /// Hands `plan` to the waiting child and supervises the launch to its end.
    pub fn run(mut self, plan: &Plan) -> LaunchReport {
        if plan.namespaces != self.ns || !plan.pass_fds.is_empty() {
            drop(self);
            return jail::supervise(plan);
        }
        let mut s = Supervisor::new(plan, self.start);
        if let Err(e) = jail::exec_strings(plan) {
            drop(self);
            return s.fail(e);
        }
        if self.ns.pid && s.outcome(Layer::Pid, Ok(())).is_err() {
            return s.finish();
        }
        let sent = serde_json::to_vec(plan)
            .map_err(|e| e.to_string())
            .and_then(|json| sys::write_all(self.plan_w, &json).map_err(|e| e.to_string()));
        sys::close(self.plan_w);
        self.live = false;
        if let Err(e) = sent {
            // The child is gone or going; its own message, if any, says why.
            let _ = sys::kill(self.pid, libc::SIGKILL);
            let _ = sys::waitpid(self.pid, 0);
            sys::close(self.go_w);
            let failed = s.read_child(self.status_r);
            sys::close(self.status_r);
            return if failed {
                s.finish()
            } else {
                s.fail(format!("sending the plan to the child: {e}"))
            };
        }
        // While pid 1 finishes its namespaces and starts on the root. The work dir's slot is
        // held until the launch is over.
        let slot = self.premount.take().and_then(|h| premount::send(plan, &h));
        jail::supervise_forked(
            s,
            self.pid,
            self.status_r,
            self.go_w,
            &self.set,
            slot.as_ref(),
        )
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        let _ = sys::kill(self.pid, libc::SIGKILL);
        let _ = sys::waitpid(self.pid, 0);
        for fd in [self.status_r, self.plan_w, self.go_w] {
            sys::close(fd);
        }
        // Back to how the caller was (it may exec the engine next): nothing else of this launch
        // is waiting for a signal, and orphans are not ours to reap.
        let _ = sys::sigprocmask(libc::SIG_UNBLOCK, &self.set);
        let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 0);
    }
}

/// The early child: namespaces now, the plan when it comes, then the usual rest. Never returns.
fn child_main(
    ns: Namespaces,
    helper: libc::pid_t,
    status: RawFd,
    plan_r: RawFd,
    go: RawFd,
    premount: Option<RawFd>,
) -> ! {
    child::die_with_helper(helper, status);
    let entered = child::enter_namespaces(ns);
    // SAFETY: the plan pipe's read end was made for this child alone and nothing else owns it.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(plan_r) };
    let mut json = Vec::new();
    if pipe.read_to_end(&mut json).is_err() || json.is_empty() {
        // The caller gave up before it had a plan: nothing to run.
        sys::exit_now(125);
    }
    drop(pipe);
    let Ok(plan) = serde_json::from_slice::<Plan>(&json) else {
        sys::exit_now(125)
    };
    let (argv, env) = match jail::exec_strings(&plan) {
        Ok(x) => x,
        Err(_) => sys::exit_now(125),
    };
    let compiled = child::compile_seccomp(&plan, status);
    let prep = Prepared {
        plan: &plan,
        seccomp: compiled.as_ref(),
        argv,
        env,
        pass_from: Vec::new(),
        premount,
    };
    child::finish(&prep, status, go, entered)
}
