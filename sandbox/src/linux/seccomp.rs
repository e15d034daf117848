//! seccomp: compiled in the helper before `fork`, installed LAST in the child, just before `execve`,
//! so every earlier step (mounts, pivot_root, setuid) can still make the calls the filter denies.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::plan::SeccompPlan;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: unknown syscall name {0:?} on this architecture")]
    UnknownSyscall(String),
    #[error("seccomp: building the filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("seccomp: this architecture is not supported")]
    Arch,
    #[error("seccomp: installing the filter: {0}")]
    Install(#[from] seccompiler::Error),
}

/// Two programs: EPERM for the deny list (incl. namespace-creating `clone`), ENOSYS for the rest.
pub struct Compiled {
    programs: Vec<BpfProgram>,
}

const CLONE_NS_FLAGS: [i32; 8] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    0x80, // CLONE_NEWTIME, only valid in clone3/unshare but denied anyway
];

fn arch() -> Result<TargetArch, SeccompError> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Ok(TargetArch::aarch64)
    } else {
        Err(SeccompError::Arch)
    }
}

/// Syscall number for a name in the plan.
pub fn syscall_number(name: &str) -> Option<i64> {
    let n = match name {
        "ptrace" => libc::SYS_ptrace,
        "process_vm_readv" => libc::SYS_process_vm_readv,
        "process_vm_writev" => libc::SYS_process_vm_writev,
        "mount" => libc::SYS_mount,
        "umount2" => libc::SYS_umount2,
        "pivot_root" => libc::SYS_pivot_root,
        "unshare" => libc::SYS_unshare,
        "setns" => libc::SYS_setns,
        "keyctl" => libc::SYS_keyctl,
        "add_key" => libc::SYS_add_key,
        "request_key" => libc::SYS_request_key,
        "bpf" => libc::SYS_bpf,
        "perf_event_open" => libc::SYS_perf_event_open,
        "kexec_load" => libc::SYS_kexec_load,
        "kexec_file_load" => libc::SYS_kexec_file_load,
        "init_module" => libc::SYS_init_module,
        "finit_module" => libc::SYS_finit_module,
        "delete_module" => libc::SYS_delete_module,
        "io_uring_setup" => libc::SYS_io_uring_setup,
        "io_uring_enter" => libc::SYS_io_uring_enter,
        "io_uring_register" => libc::SYS_io_uring_register,
        "open_by_handle_at" => libc::SYS_open_by_handle_at,
        "clone3" => libc::SYS_clone3,
        "clone" => libc::SYS_clone,
        _ => return None,
    };
    Some(n)
}

fn number(name: &str) -> Result<i64, SeccompError> {
    syscall_number(name).ok_or_else(|| SeccompError::UnknownSyscall(name.to_owned()))
}

/// Builds the BPF programs for `plan`.
pub fn compile(plan: &SeccompPlan) -> Result<Compiled, SeccompError> {
    let arch = arch()?;
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for name in &plan.eperm {
        eperm.insert(number(name)?, vec![]);
    }
    if plan.deny_clone_namespaces {
        // One rule per flag: rules for a syscall are OR-ed, and MaskedEq tests (arg & flag) == flag.
        let mut rules = Vec::new();
        for flag in CLONE_NS_FLAGS {
            let bit = u64::from(flag.unsigned_abs());
            let cond = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(bit),
                bit,
            )?;
            rules.push(SeccompRule::new(vec![cond])?);
        }
        eperm.insert(libc::SYS_clone, rules);
    }
    let eperm_errno = u32::try_from(libc::EPERM).unwrap_or(1);
    let enosys_errno = u32::try_from(libc::ENOSYS).unwrap_or(38);
    let mut programs = vec![BpfProgram::try_from(SeccompFilter::new(
        eperm,
        SeccompAction::Allow,
        SeccompAction::Errno(eperm_errno),
        arch,
    )?)?];
    if !plan.enosys.is_empty() {
        let mut enosys: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for name in &plan.enosys {
            enosys.insert(number(name)?, vec![]);
        }
        programs.push(BpfProgram::try_from(SeccompFilter::new(
            enosys,
            SeccompAction::Allow,
            SeccompAction::Errno(enosys_errno),
            arch,
        )?)?);
    }
    Ok(Compiled { programs })
}

impl Compiled {
    /// Installs the filters on the calling thread (no_new_privs must already be set).
    pub fn install(&self) -> Result<(), SeccompError> {
        for p in &self.programs {
            seccompiler::apply_filter(p)?;
        }
        Ok(())
    }
}
