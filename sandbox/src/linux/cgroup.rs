//! The launch's cgroup (v1 `memory` + `pids`, or v2): created and limited by the helper before the
//! child runs anything, joined by the child's pid before it is released, emptied and removed after.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::sys;
use crate::plan::CgroupPlan;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("creating cgroup {path:?}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("writing {value:?} to {path:?}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("removing cgroup {path:?}: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

/// A created cgroup; `Drop` kills what is left in it and removes it.
pub struct Cgroup {
    plan: CgroupPlan,
    created: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_owned(),
        source,
    })
}

impl Cgroup {
    /// Creates the directories and writes the limits.
    pub fn create(plan: &CgroupPlan) -> Result<Cgroup, CgroupError> {
        let mut cg = Cgroup {
            plan: plan.clone(),
            created: Vec::new(),
        };
        for dir in &plan.create {
            match std::fs::create_dir(dir) {
                Ok(()) => cg.created.push(dir.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(CgroupError::Create {
                        path: dir.clone(),
                        source,
                    })
                }
            }
        }
        for (path, value) in &plan.writes {
            // v2's subtree_control may already hold the controllers; writing again is harmless.
            write(path, value)?;
        }
        Ok(cg)
    }

    /// Moves `pid` into the cgroup (every hierarchy).
    /// Opens, for each hierarchy to join, the cgroup v1 `tasks` file, for the child to move
    /// itself by writing "0" (the calling thread; the child is single-threaded, so the whole
    /// process). A thread moving itself skips the global threadgroup lock that moving a process
    /// by pid takes, and with it an RCU grace period: about 10 ms per launch on this kind of host.
    /// The opener's (root's) credentials are the ones the kernel checks, so the write works
    /// after the child has dropped them. Hierarchies without `tasks` (cgroup v2) are left in
    /// `rest` for [`Cgroup::join_paths`].
    pub fn open_self_join(&self) -> (Vec<std::os::fd::OwnedFd>, Vec<PathBuf>) {
        let mut fds = Vec::new();
        let mut rest = Vec::new();
        for procs in &self.plan.join {
            let tasks = procs.with_file_name("tasks");
            match std::fs::OpenOptions::new().write(true).open(&tasks) {
                Ok(f) => fds.push(std::os::fd::OwnedFd::from(f)),
                Err(_) => rest.push(procs.clone()),
            }
        }
        (fds, rest)
    }

    /// Writes `pid` to each of `procs` (the `cgroup.procs` files `open_self_join` left).
    pub fn join_paths(&self, pid: libc::pid_t, procs: &[PathBuf]) -> Result<(), CgroupError> {
        for p in procs {
            write(p, &pid.to_string())?;
        }
        Ok(())
    }

    /// Pids still in the cgroup.
    pub fn pids(&self) -> Vec<libc::pid_t> {
        let mut out = Vec::new();
        for procs in &self.plan.join {
            if let Ok(text) = std::fs::read_to_string(procs) {
                out.extend(
                    text.lines()
                        .filter_map(|l| l.trim().parse::<libc::pid_t>().ok()),
                );
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// SIGKILLs every process in the cgroup until it is empty (bounded: a fork bomb is capped by pids.max).
    pub fn kill_all(&self) {
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // Already gone is fine.
                let _ = sys::kill(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills what is left and removes the launch's cgroup directories.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.cleanup()
    }

    fn cleanup(&mut self) -> Result<(), CgroupError> {
        self.kill_all();
        let mut result = Ok(());
        for dir in self.plan.remove.iter().filter(|d| self.created.contains(d)) {
            // The kernel frees a cgroup shortly after its last task is reaped: retry briefly.
            let mut last = None;
            for _ in 0..200 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if let Some(source) = last {
                result = Err(CgroupError::Remove {
                    path: dir.clone(),
                    source,
                });
            }
        }
        self.created.clear();
        result
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Errors were reported by `remove` when the caller used it; a drop is the failure path.
        let _ = self.cleanup();
    }
}
