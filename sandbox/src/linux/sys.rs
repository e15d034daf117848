//! Raw system calls, one per unsafe block; each wrapper turns -1 into the OS error.
//!
//! Callers after `fork` run in the single-threaded jail helper (never in the multi-threaded
//! orchestrator), so allocating there is allowed; these wrappers themselves never allocate.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes only an integer and affects only the calling process.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// Forks. The caller must be single-threaded (the jail helper is), so the child may allocate.
pub fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: the jail helper is single-threaded, so no lock can be held by another thread at fork.
    cvt(unsafe { libc::fork() })
}

/// `fork`, with extra `clone` flags (e.g. `CLONE_NEWPID`: the child is pid 1 of a new pid
/// namespace while this process stays where it is, so what it spawns later does not land in the
/// child's namespace, as it would after `unshare(CLONE_NEWPID)`). The child runs `f` on a stack
/// of its own, in a copy-on-write copy of this address space as after fork, and exits with what
/// `f` returns. The caller must be single-threaded (no lock can be held at the clone).
pub fn fork_with(
    flags: libc::c_int,
    f: &mut dyn FnMut() -> libc::c_int,
) -> io::Result<libc::pid_t> {
    clone_on_new_stack(flags | libc::SIGCHLD, f)
}

/// Starts a child that shares this address space/// Starts a child that shares this address space (`clone(CLONE_VM | CLONE_VFORK)`, as
/// `posix_spawn` does) and runs `f` on a stack of its own; this process is suspended until the
/// child execs or exits, so nothing runs concurrently in the shared memory. Saves the page-table
/// copy and the copy-on-write faults of a fork. `f` must end in exec or `_exit`; the caller must
/// be single-threaded.
pub fn vfork_exec(f: &mut dyn FnMut() -> libc::c_int) -> io::Result<libc::pid_t> {
    clone_on_new_stack(libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD, f)
}

/// `clone(flags)` with the child running `f` on a fresh stack; this process's mapping of that
/// stack is removed once clone returns (with `CLONE_VFORK`, after the child exec'd or exited;
/// without `CLONE_VM`, the child has its own copy).
fn clone_on_new_stack(
    flags: libc::c_int,
    f: &mut dyn FnMut() -> libc::c_int,
) -> io::Result<libc::pid_t> {
    const STACK: usize = 256 * 1024;
    const GUARD: usize = 4096;
    extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the `&mut &mut dyn FnMut` below, alive until clone returns, which is
        // after this child has exec'd or exited.
        let f = unsafe { &mut *arg.cast::<&mut dyn FnMut() -> libc::c_int>() };
        let code = f();
        exit_now(code)
    }
    // SAFETY: an anonymous private mapping; no pointer is involved.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `base` is the start of the mapping above; the lowest page becomes the guard.
    let guard = cvt(unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) });
    let mut f = f;
    let arg: *mut &mut dyn FnMut() -> libc::c_int = &mut f;
    let pid = guard.and_then(|_| {
        // SAFETY: the stack pointer is the top of a live mapping (stacks grow down on every
        // architecture we build for); `arg` outlives the child's use of it: with CLONE_VM, because
        // CLONE_VFORK suspends us until the child has exec'd or exited; without, because the
        // child has its own copy of this memory.
        cvt(unsafe {
            libc::clone(
                trampoline,
                base.cast::<u8>().add(STACK).cast::<libc::c_void>(),
                flags,
                arg.cast::<libc::c_void>(),
            )
        })
    });
    // SAFETY: the child no longer runs on this mapping of the stack (it exec'd or exited, or it
    // has its own copy).
    unsafe { libc::munmap(base, STACK) };
    pid
}

pub fn mount(
    src: &CStr,
    target: &CStr,
    fstype: &CStr,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let data_ptr = data.map_or(std::ptr::null(), |d| d.as_ptr().cast::<libc::c_void>());
    // SAFETY: every pointer comes from a CStr borrowed for the whole call; data may be null.
    cvt(unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data_ptr,
        )
    })
    .map(drop)
}

/// A character device node at `path` with `mode` (the umask is undone with a chmod).
pub fn mknod_char(path: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    // SAFETY: path is a CStr borrowed for both calls.
    cvt(unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | mode, dev) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::chmod(path.as_ptr(), mode) }).map(drop)
}

pub fn umount2(target: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: target is a CStr borrowed for the call.
    cvt(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: both pointers are CStrs borrowed for the call; pivot_root has no libc wrapper.
    cvt_long(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

pub fn chdir(path: &CStr) -> io::Result<()> {
    // SAFETY: path is a CStr borrowed for the call.
    cvt(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// `MOUNT_ATTR_*` bits of `mount_setattr(2)` (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `struct mount_attr` (linux/mount.h, version 0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets `attr_set` on the one mount at `path` and changes nothing else (flags the kernel locks
/// in a user namespace stay as they are): what a bind remount does in one call and without
/// reading the current flags first. ENOSYS before Linux 5.12.
pub fn mount_setattr(path: &CStr, attr_set: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: path is a live CStr; attr is a valid struct of the size passed, alive for the call.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            0,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

pub fn statvfs_flags(path: &CStr) -> io::Result<libc::c_ulong> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: path is a live CStr; st points to writable memory of the right type.
    cvt(unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: statvfs returned 0, so it filled the struct.
    Ok(unsafe { st.assume_init() }.f_flag)
}

pub fn setgroups_empty() -> io::Result<()> {
    // SAFETY: a zero-length list with a null pointer is the documented way to clear groups.
    cvt(unsafe { libc::setgroups(0, std::ptr::null()) }).map(drop)
}

pub fn setresgid(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: integers only.
    cvt(unsafe { libc::setresgid(gid, gid, gid) }).map(drop)
}

pub fn setresuid(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: integers only. libc's wrapper broadcasts to every thread; the helper has one.
    cvt(unsafe { libc::setresuid(uid, uid, uid) }).map(drop)
}

pub fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the options used here (NO_NEW_PRIVS, PDEATHSIG, CHILD_SUBREAPER) take integers only.
    cvt(unsafe { libc::prctl(option, arg, 0, 0, 0) }).map(drop)
}

/// Closes every fd in `first..=last`.
pub fn close_range(first: libc::c_uint, last: libc::c_uint) -> io::Result<()> {
    // SAFETY: closing fds this process owns; the caller keeps no Rust owner of fds in the range.
    cvt_long(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) }).map(drop)
}

pub fn setsid() -> io::Result<()> {
    // SAFETY: no arguments.
    cvt(unsafe { libc::setsid() }).map(drop)
}

pub fn setrlimit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: lim is a valid rlimit on the stack.
    cvt(unsafe { libc::setrlimit(resource, &lim) }).map(drop)
}

pub fn getrlimit(resource: libc::__rlimit_resource_t) -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid, writable rlimit on the stack.
    cvt(unsafe { libc::getrlimit(resource, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

pub fn sethostname(name: &[u8]) -> io::Result<()> {
    // SAFETY: pointer and length describe the borrowed slice.
    cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integers only.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// waitpid; `Ok(None)` with WNOHANG when nothing changed.
pub fn waitpid(
    pid: libc::pid_t,
    flags: libc::c_int,
) -> io::Result<Option<(libc::pid_t, libc::c_int)>> {
    let mut status = 0;
    // SAFETY: status is a writable int on the stack.
    let ret = cvt(unsafe { libc::waitpid(pid, &mut status, flags) })?;
    Ok((ret != 0).then_some((ret, status)))
}

/// A signal set holding `sigs`.
pub fn sigset(sigs: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: set points to writable sigset_t memory.
    cvt(unsafe { libc::sigemptyset(set.as_mut_ptr()) })?;
    for s in sigs {
        // SAFETY: set was initialised by sigemptyset above.
        cvt(unsafe { libc::sigaddset(set.as_mut_ptr(), *s) })?;
    }
    // SAFETY: initialised by sigemptyset.
    Ok(unsafe { set.assume_init() })
}

/// Whether any signal of `set` is pending (blocked and waiting to be taken).
pub fn any_pending(set: &libc::sigset_t) -> bool {
    let mut pending = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: pending points to writable memory of the right type.
    if unsafe { libc::sigpending(pending.as_mut_ptr()) } == -1 {
        return true;
    }
    // SAFETY: sigpending returned 0, so it filled the set.
    let pending = unsafe { pending.assume_init() };
    (1..libc::SIGRTMIN()).any(|sig| {
        // SAFETY: both sets are initialised; sig is a valid signal number.
        unsafe { libc::sigismember(set, sig) == 1 && libc::sigismember(&pending, sig) == 1 }
    })
}

pub fn sigprocmask(how: libc::c_int, set: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: set is a valid sigset; the old mask is not requested. One thread only.
    cvt(unsafe { libc::sigprocmask(how, set, std::ptr::null_mut()) }).map(drop)
}

extern "C" fn noop_handler(_: libc::c_int) {}

/// Installs a do-nothing handler: pid 1 of a pid namespace only receives signals it handles.
pub fn set_noop_handler(sig: libc::c_int) -> io::Result<()> {
    let handler: extern "C" fn(libc::c_int) = noop_handler;
    // SAFETY: the handler is async-signal-safe (it does nothing).
    let prev = unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    if prev == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn set_default_handler(sig: libc::c_int) {
    // SAFETY: restoring the default disposition has no memory effects.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Waits for a signal in `set` (which must be blocked); `Ok(None)` on timeout.
pub fn sigtimedwait(
    set: &libc::sigset_t,
    timeout_ms: Option<u64>,
) -> io::Result<Option<libc::c_int>> {
    let ts = timeout_ms.map(|ms| libc::timespec {
        tv_sec: libc::time_t::try_from(ms / 1000).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: set and ts outlive the call; siginfo is not requested.
    let ret = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), ts_ptr) };
    if ret == -1 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            Some(libc::EINTR) => Ok(Some(0)),
            _ => Err(err),
        };
    }
    Ok(Some(ret))
}

pub fn pipe_cloexec() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a writable array of two ints.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((fds[0], fds[1]))
}

pub fn dup2(old: RawFd, new: RawFd) -> io::Result<()> {
    // SAFETY: duplicating an fd this process holds; dup2 onto `new` closes what was there, which
    // the caller has planned for.
    cvt(unsafe { libc::dup2(old, new) }).map(drop)
}

/// Duplicates `fd` to the lowest free number >= `min`, close-on-exec.
pub fn dup_cloexec_at_least(fd: RawFd, min: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an fd this process holds.
    cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD on an fd this process holds.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags) }).map(drop)
}

pub fn get_fd_flags(fd: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: F_GETFD only reads the fd's flags.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on an fd this process holds.
    let fl = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) }).map(drop)
}

pub fn close(fd: RawFd) {
    // SAFETY: the caller owns fd and drops every other handle to it.
    unsafe { libc::close(fd) };
}

/// Writes the whole buffer, retrying on EINTR and short writes.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: pointer and length describe the borrowed slice.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        buf = buf.get(n.unsigned_abs()..).unwrap_or_default();
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes; 0 means EOF.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: pointer and length describe the borrowed mutable slice.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n.unsigned_abs())
}

pub fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing, which a forked child must not run.
    unsafe { libc::_exit(code) }
}

/// execve; returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], env: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: both arrays are null-terminated and point into CStrings that outlive the call.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// execvpe-style: argv[0] looked up in PATH from `env`.
pub fn execvpe(file: &CStr, argv: &[CString], env: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: both arrays are null-terminated and point into CStrings that outlive the call.
    unsafe { libc::execvpe(file.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Brings `lo` up in the current network namespace (a fresh one has it down).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket() takes integers only.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: ifreq is plain old data; zero is a valid value for every field.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    req.ifr_ifru.ifru_flags =
        libc::c_short::try_from(libc::IFF_UP | libc::IFF_RUNNING).unwrap_or(1);
    // SAFETY: fd is the socket opened above; req is a valid ifreq that outlives the call.
    let ret = cvt(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) });
    close(fd);
    ret.map(drop)
}

pub fn getpid() -> libc::pid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getpid() }
}

pub fn geteuid() -> libc::uid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() }
}

pub fn getegid() -> libc::gid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getegid() }
}
