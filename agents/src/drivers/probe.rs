//! Recorded hostile acts for the containment tests: a replayed session can hold
//! `{"op": "probe", "act": "read" | "write" | "connect" | "mkdir" | "fill", "target": ...}`, which codegen attempts
//! for real, outside the protocol (a hostile agent would not ask), and reports in its log as
//! `PROBE <act> <target>: denied (<ERRNO>: ...)` or `PROBE <act> <target>: ALLOWED`. Whether it
//! is denied is decided by the sandbox alone, which is what the tests check.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a probe tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeAct {
    /// Read a file.
    Read,
    /// Create or append to a file.
    Write,
    /// Open a TCP connection to `host:port`.
    Connect,
    /// Create a directory and its parents.
    Mkdir,
    /// Write [`FILL_MB`] MiB into files named after the target (then remove them): the sandbox
    /// volume's size cap.
    Fill,
}

/// How much a `fill` probe writes in all, more than a test's ext4 volume holds.
pub const FILL_MB: usize = 1024;
/// Per file, below codegen's RLIMIT_FSIZE (64 MiB in roles.yaml).
const FILL_FILE_MB: usize = 32;

impl ProbeAct {
    fn name(self) -> &'static str {
        match self {
            ProbeAct::Read => "read",
            ProbeAct::Write => "write",
            ProbeAct::Connect => "connect",
            ProbeAct::Fill => "fill",
            ProbeAct::Mkdir => "mkdir",
        }
    }
}

/// Attempts `act` on `target` and says how it went, in one line.
pub fn attempt(act: ProbeAct, target: &str) -> String {
    let result = match act {
        ProbeAct::Read => std::fs::read(target).map(|_| ()),
        ProbeAct::Write => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(target)
            .and_then(|mut f| f.write_all(b"written by a probe\n")),
        ProbeAct::Fill => fill(target),
        ProbeAct::Mkdir => std::fs::create_dir_all(target),
        ProbeAct::Connect => match target.parse::<SocketAddr>() {
            Ok(addr) => TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(|_| ()),
            Err(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)),
        },
    };
    match result {
        Ok(()) => format!("PROBE {} {target}: ALLOWED", act.name()),
        Err(e) => format!(
            "PROBE {} {target}: denied ({}: {e})",
            act.name(),
            errno_name(e.raw_os_error())
        ),
    }
}

/// `~/x` is `x` in the role's HOME (its throwaway home on the sandbox volume).
fn fill(target: &str) -> std::io::Result<()> {
    let target = match (target.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => target.to_owned(),
    };
    let target = target.as_str();
    let chunk = vec![0x5a_u8; 1 << 20];
    let mut written = Vec::new();
    let mut result = Ok(());
    for i in 0..FILL_MB / FILL_FILE_MB {
        let path = format!("{target}.{i}");
        written.push(path.clone());
        result = std::fs::File::create(&path).and_then(|mut f| {
            for _ in 0..FILL_FILE_MB {
                f.write_all(&chunk)?;
            }
            f.sync_all()
        });
        if result.is_err() {
            break;
        }
    }
    for path in written {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn errno_name(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EACCES) => "EACCES",
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EROFS) => "EROFS",
        Some(libc::ENETUNREACH) => "ENETUNREACH",
        Some(libc::EHOSTUNREACH) => "EHOSTUNREACH",
        Some(libc::ECONNREFUSED) => "ECONNREFUSED",
        Some(libc::ETIMEDOUT) => "ETIMEDOUT",
        Some(libc::ENOSPC) => "ENOSPC",
        Some(libc::EFBIG) => "EFBIG",
        Some(_) => "other errno",
        None => "no errno",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_name_the_errno() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        let t = f.to_str().unwrap();
        assert!(attempt(ProbeAct::Read, t)
            .ends_with("denied (ENOENT: No such file or directory (os error 2))"));
        assert_eq!(
            attempt(ProbeAct::Write, t),
            format!("PROBE write {t}: ALLOWED")
        );
        assert_eq!(
            attempt(ProbeAct::Read, t),
            format!("PROBE read {t}: ALLOWED")
        );
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        assert!(attempt(ProbeAct::Connect, &addr).ends_with("ALLOWED"));
        drop(l);
        assert!(attempt(ProbeAct::Connect, &addr).contains("ECONNREFUSED"));
    }
}
