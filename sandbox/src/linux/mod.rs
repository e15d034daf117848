//! Applying a [`crate::plan::Plan`] on Linux.
//!
//! Order, end to end: `launch` (in the orchestrator, spawns the helper) → `jail` (helper: user ns
//! in unprivileged mode, pid ns, fork, then the cgroup while the child works, wall clock) →
//! `child` (pid 1: mount/net/ipc/uts ns → `mounts` builds the root → joins the `cgroup` →
//! pivot_root → `fence` (Landlock) → identity → close fds → `rlimits` → setsid → `seccomp` LAST
//! → the command, started with clone(CLONE_VM | CLONE_VFORK) → execve). `early` is the CLI's
//! variant: pid 1 forked before the plan exists, building its namespaces meanwhile.

pub mod cgroup;
mod child;
pub mod early;
mod fence;
pub mod jail;
pub mod launch;
mod mount_api;
mod mounts;
mod premount;
mod rlimits;
pub mod seccomp;
pub mod sys;
mod userns;
mod workslot;
