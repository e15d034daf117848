//! The launch's cgroup (v1 `memory` + `pids`, or v2): created and limited by the helper while the
//! child builds its namespaces, joined by the child (v1: it moves itself) before it mounts
//! anything or starts the command, emptied and removed after.

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

    /// The `cgroup.procs` files of hierarchies without a v1 `tasks` file (cgroup v2): the child
    /// cannot move itself there with [`join_self`], so the helper writes its pid
    /// ([`Cgroup::join_paths`]).
    pub fn without_tasks(&self) -> Vec<PathBuf> {
        self.plan
            .join
            .iter()
            .filter(|p| !p.with_file_name("tasks").exists())
            .cloned()
            .collect()
    }

    /// Writes `pid` to each of `procs` (the files [`Cgroup::without_tasks`] names).
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

/// In the child: moves the calling process into the launch's cgroup by writing "0" to each v1
/// `tasks` file of `join` (hierarchies without one were joined by the helper).
///
/// A thread moving itself skips the global threadgroup lock that moving a process by pid takes,
/// and with it an RCU grace period: about 10 ms per launch on this kind of host. The child is
/// still root here (before the identity switch) and still sees the host's /sys/fs/cgroup (before
/// pivot_root); it is single-threaded, so the thread is the whole process.
pub fn join_self(join: &[PathBuf]) -> Result<(), CgroupError> {
    use std::io::Write;
    for procs in join {
        let tasks = procs.with_file_name("tasks");
        let written = match std::fs::OpenOptions::new().write(true).open(&tasks) {
            Ok(mut f) => f.write_all(b"0"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => Err(e),
        };
        written.map_err(|source| CgroupError::Write {
            path: tasks,
            value: "0".to_owned(),
            source,
        })?;
    }
    Ok(())
}
