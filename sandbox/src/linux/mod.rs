//! Applying a [`crate::plan::Plan`] on Linux.
//!
//! Order, end to end: `launch` (in the orchestrator, spawns the helper) → `jail` (helper: cgroup,
//! user ns in unprivileged mode, pid ns, fork, wall clock) → `child` (pid 1: mount/net/ipc/uts ns →
//! `mounts` → pivot_root → `rlimits` → `fence` (Landlock) → identity → close fds → setsid →
//! fork the command → `seccomp` LAST → execve).

pub mod cgroup;
mod child;
mod fence;
pub mod jail;
pub mod launch;
mod mounts;
mod retire;
mod rlimits;
pub mod seccomp;
pub mod sys;
mod userns;
