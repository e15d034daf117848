//! Containment for orchestrate's role processes.
//!
//! `plan` turns one role's policy into data (pure, tested everywhere); `linux` applies it in a
//! fixed order: namespaces → mounts → pivot_root → Landlock → identity → close fds → setsid →
//! seccomp → exec. `volume` lays out the run's sandbox volume, `probe` says what this host can do,
//! `exec` is `orchestrate sandbox exec`.

#[cfg(target_os = "linux")]
pub mod exec;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod macos;
pub mod plan;
#[cfg(target_os = "linux")]
pub mod probe;
pub mod report;
pub mod setup;
pub mod volume;
#[cfg(target_os = "linux")]
pub mod volume_ext4;
pub mod volume_fs;
