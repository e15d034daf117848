//! Test support: performs one attack and prints `OK` or the errno name, so the adversarial tests
//! assert exact errnos instead of parsing shell output. Exit status 0 whenever it got an answer.
//!
//! Usage: sandbox-probe ACTION [ARGS...]

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;

fn errno_name(e: &std::io::Error) -> String {
    let n = e.raw_os_error().unwrap_or(0);
    let name = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::EROFS => "EROFS",
        libc::EFBIG => "EFBIG",
        libc::EAGAIN => "EAGAIN",
        libc::ENOSYS => "ENOSYS",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EINVAL => "EINVAL",
        libc::ENOTDIR => "ENOTDIR",
        libc::ELOOP => "ELOOP",
        libc::ENOMEM => "ENOMEM",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EBADF => "EBADF",
        libc::ENOSPC => "ENOSPC",
        _ => return format!("errno{n}"),
    };
    name.to_owned()
}

fn answer(r: std::io::Result<()>) -> String {
    match r {
        Ok(()) => "OK".to_owned(),
        Err(e) => errno_name(&e),
    }
}

fn last() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn cpath(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let out = match arg(0).as_str() {
        "read" => {
            answer(std::fs::File::open(arg(1)).and_then(|mut f| f.read(&mut [0u8; 16]).map(drop)))
        }
        "write" => answer(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(arg(1))
                .and_then(|mut f| f.write_all(b"x")),
        ),
        "mkdir" => answer(std::fs::create_dir(arg(1))),
        "ls" => answer(std::fs::read_dir(arg(1)).map(drop)),
        "symlink-read" => {
            let _ = std::os::unix::fs::symlink(arg(1), arg(2));
            answer(std::fs::File::open(arg(2)).and_then(|mut f| f.read(&mut [0u8; 16]).map(drop)))
        }
        "hardlink" => answer(std::fs::hard_link(arg(1), arg(2))),
        "connect" => answer(
            std::net::TcpStream::connect_timeout(
                &arg(1)
                    .parse()
                    .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
                std::time::Duration::from_secs(2),
            )
            .map(drop),
        ),
        "kill" => {
            // SAFETY: signal 0 only checks whether the target exists and may be signalled.
            let r = unsafe { libc::kill(arg(1).parse().unwrap_or(-1), 0) };
            answer(if r == 0 { Ok(()) } else { Err(last()) })
        }
        "ptrace" => {
            // SAFETY: PTRACE_TRACEME takes no pointers.
            let r = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
            answer(if r == 0 { Ok(()) } else { Err(last()) })
        }
        "mount" => {
            let (src, fs) = (cpath("none"), cpath("tmpfs"));
            let target = cpath(&arg(1));
            // SAFETY: all pointers are CStrings alive for the call; data is null.
            let r = unsafe {
                libc::mount(
                    src.as_ptr(),
                    target.as_ptr(),
                    fs.as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            answer(if r == 0 { Ok(()) } else { Err(last()) })
        }
        "mknod" => {
            // /dev/null's numbers (1:3): a node that would work wherever devices are allowed.
            let path = cpath(&arg(1));
            // SAFETY: path is a CString alive for the call.
            let r =
                unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
            answer(if r == 0 { Ok(()) } else { Err(last()) })
        }
        "mountinfo" => {
            // The mount at a path, as `fstype mount-options super-options`, or ENOENT.
            let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            text.lines()
                .filter_map(|l| {
                    let (left, right) = l.split_once(" - ")?;
                    let f: Vec<&str> = left.split(' ').collect();
                    let r: Vec<&str> = right.split(' ').collect();
                    (f.get(4) == Some(&arg(1).as_str())).then(|| {
                        format!(
                            "{} {} {}",
                            r[0],
                            f.get(5).unwrap_or(&""),
                            r.get(2).unwrap_or(&"")
                        )
                    })
                })
                .next_back()
                .unwrap_or_else(|| "ENOENT".to_owned())
        }
        "devices" => {
            // The names in a directory, sorted, or the errno.
            match std::fs::read_dir(arg(1)) {
                Ok(rd) => {
                    let mut names: Vec<String> = rd
                        .filter_map(|e| {
                            e.ok().map(|e| e.file_name().to_string_lossy().into_owned())
                        })
                        .collect();
                    names.sort();
                    names.join(",")
                }
                Err(e) => errno_name(&e),
            }
        }
        "unshare" => {
            // SAFETY: integers only; affects only this probe process.
            let r = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
            answer(if r == 0 { Ok(()) } else { Err(last()) })
        }
        "clone3" => {
            // SAFETY: a null args pointer: the kernel or the filter answers before reading it.
            let r = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
            answer(if r == 0 { Ok(()) } else { Err(last()) })
        }
        "fsize" => {
            // SAFETY: ignoring SIGXFSZ so the write returns EFBIG instead of killing the probe.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            let bytes: usize = arg(2).parse().unwrap_or(0);
            answer(std::fs::File::create(arg(1)).and_then(|mut f| f.write_all(&vec![0u8; bytes])))
        }
        "forkbomb" => forkbomb(arg(1).parse().unwrap_or(10)),
        "pids" => {
            let mut pids: Vec<u32> = std::fs::read_dir("/proc")
                .map(|d| {
                    d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            pids.sort_unstable();
            pids.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
        "env" => std::env::var(arg(1)).unwrap_or_else(|_| "ENOENT".to_owned()),
        "id" => {
            // SAFETY: no arguments.
            let (u, g) = unsafe { (libc::geteuid(), libc::getegid()) };
            format!("{u}:{g}")
        }
        "fd-write" => {
            let fd: i32 = arg(1).parse().unwrap_or(-1);
            let text = arg(2);
            // SAFETY: writing a borrowed buffer to an fd number; a bad fd is an EBADF answer.
            let n = unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
            answer(if n >= 0 { Ok(()) } else { Err(last()) })
        }
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(arg(1).parse().unwrap_or(1)));
            "OK".to_owned()
        }
        other => format!("unknown action {other:?}"),
    };
    println!("{out}");
}

/// Forks up to `n` sleeping children; prints the first errno (or OK), then kills them all.
fn forkbomb(n: usize) -> String {
    let mut children = Vec::new();
    let mut result = "OK".to_owned();
    for _ in 0..n {
        // SAFETY: the probe is single-threaded; the child only pauses and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: pause and _exit are async-signal-safe.
            unsafe {
                libc::pause();
                libc::_exit(0)
            }
        }
        if pid < 0 {
            result = errno_name(&last());
            break;
        }
        children.push(pid);
    }
    for pid in &children {
        // SAFETY: killing and reaping our own children.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
            libc::waitpid(*pid, std::ptr::null_mut(), 0);
        }
    }
    format!("{result} after {}", children.len())
}
