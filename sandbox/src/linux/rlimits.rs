//! rlimits, set in the child after the fds are placed (a low RLIMIT_NOFILE would make moving them
//! high fail) and before setsid and seccomp; lowering needs no privilege, soft == hard keeps the
//! role from raising them, and they survive execve.

use std::io;

use super::sys;
use crate::plan::Rlimit;

#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("setrlimit({name}, {value}): {source}")]
    Set {
        name: &'static str,
        value: u64,
        source: io::Error,
    },
}

fn resource(l: Rlimit) -> (libc::__rlimit_resource_t, &'static str, u64) {
    match l {
        Rlimit::Cpu(v) => (libc::RLIMIT_CPU, "RLIMIT_CPU", v),
        Rlimit::As(v) => (libc::RLIMIT_AS, "RLIMIT_AS", v),
        Rlimit::Nproc(v) => (libc::RLIMIT_NPROC, "RLIMIT_NPROC", v),
        Rlimit::Fsize(v) => (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE", v),
        Rlimit::Nofile(v) => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", v),
        Rlimit::Core(v) => (libc::RLIMIT_CORE, "RLIMIT_CORE", v),
    }
}

/// Sets every limit (soft = hard, so the role cannot raise it back).
pub fn apply(limits: &[Rlimit]) -> Result<(), RlimitError> {
    for l in limits {
        let (res, name, value) = resource(*l);
        sys::setrlimit(res, value).map_err(|source| RlimitError::Set {
            name,
            value,
            source,
        })?;
    }
    Ok(())
}
