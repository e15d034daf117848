//! Only the gate's OS user can write the integration repository's protected refs: the
//! orchestrator's and codegen's users get EACCES on `refs/heads/staging`, on
//! `refs/heads/staging.lock` (the only way git replaces a loose ref) and on `packed-refs.lock`;
//! the twins show the same operations succeed for the owner, and for the orchestrator's user
//! once the repository is handed to it (so the denial is the ownership, not the path).
//!
//! Needs root (to create users and switch to them); skips with the reason otherwise.

// Test harness: a failed setup step must panic where it happened (helpers sit outside #[test] fns,
// where clippy.toml's allow-unwrap-in-tests does not reach).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gate_fixture.rs"]
mod fixture;

use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use gate::integration::{secure_tree, Owner};

/// A system user with its own group, removed on drop even when the test fails.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    fn create(tag: &str) -> TestUser {
        let name = format!("tg{}{tag}", std::process::id());
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(&name)
            .status()
            .unwrap();
        assert!(st.success(), "useradd {name}");
        let (uid, gid) = gate::identity::lookup_user(&name).unwrap();
        TestUser { name, uid, gid }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg("-f").arg(&self.name).status();
    }
}

/// In a forked child switched to (uid, gid): `open(path, flags, 0644)`; returns 0 on success or
/// the errno. The child touches nothing but these async-signal-safe calls before `_exit`.
fn open_as(uid: u32, gid: u32, path: &Path, flags: i32) -> i32 {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: the child only calls setgroups/setgid/setuid/open/close/_exit (async-signal-safe)
    // on memory allocated before the fork; the parent only waits for it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: in the forked child; see above.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                libc::_exit(255);
            }
            let fd = libc::open(c.as_ptr(), flags, 0o644 as libc::c_uint);
            if fd < 0 {
                let e = *libc::__errno_location();
                libc::_exit(e);
            }
            libc::close(fd);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for the child forked above; `status` is a live local.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status), "child did not exit normally");
    let code = libc::WEXITSTATUS(status);
    assert_ne!(code, 255, "child could not switch to uid {uid}");
    code
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn orchestrator_and_codegen_users_cannot_write_protected_refs_but_the_owner_can() {
    if !is_root() {
        eprintln!("SKIP: needs root to create users and switch to them");
        return;
    }
    if Command::new("useradd").arg("--help").output().is_err() {
        eprintln!("SKIP: no useradd on this system");
        return;
    }
    let gate_user = TestUser::create("g");
    let orch = TestUser::create("o");
    let codegen = TestUser::create("c");
    let f = fixture::Fixture::new();
    let repo = f.state.join("integration.git");
    // Make the path to the repository traversable for everyone, so only the repository's own
    // modes decide (the twin below proves it).
    for d in [f.dir.path(), f.state.as_path()] {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    secure_tree(
        &repo,
        Owner {
            uid: gate_user.uid,
            gid: gate_user.gid,
        },
    )
    .unwrap();

    let staging = repo.join("refs/heads/staging");
    let staging_lock = repo.join("refs/heads/staging.lock");
    let packed_lock = repo.join("packed-refs.lock");
    let write = libc::O_WRONLY;
    let create = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;

    // Positive control: the owner (the gate) can take the ref's lock and write the ref.
    assert_eq!(
        open_as(gate_user.uid, gate_user.gid, &staging_lock, create),
        0
    );
    std::fs::remove_file(&staging_lock).unwrap();
    assert_eq!(open_as(gate_user.uid, gate_user.gid, &staging, write), 0);

    for u in [&orch, &codegen] {
        assert_eq!(
            open_as(u.uid, u.gid, &staging, write),
            libc::EACCES,
            "{} writes staging",
            u.name
        );
        assert_eq!(
            open_as(u.uid, u.gid, &staging_lock, create),
            libc::EACCES,
            "{} locks staging",
            u.name
        );
        assert_eq!(
            open_as(u.uid, u.gid, &packed_lock, create),
            libc::EACCES,
            "{} repacks refs",
            u.name
        );
        assert_eq!(
            open_as(u.uid, u.gid, &repo.join("refs/heads/main"), write),
            libc::EACCES
        );
        // And through git itself: update-ref is refused.
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", &format!("safe.directory={}", repo.display())])
            .args(["update-ref", "refs/heads/staging", &f.base])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/nonexistent")
            .uid(u.uid)
            .gid(u.gid)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    }

    // Twin: hand the repository to the orchestrator's user; the same writes now succeed.
    secure_tree(
        &repo,
        Owner {
            uid: orch.uid,
            gid: orch.gid,
        },
    )
    .unwrap();
    assert_eq!(open_as(orch.uid, orch.gid, &staging_lock, create), 0);
    std::fs::remove_file(&staging_lock).unwrap();
    assert_eq!(open_as(orch.uid, orch.gid, &staging, write), 0);
    assert_eq!(open_as(orch.uid, orch.gid, &packed_lock, create), 0);
    std::fs::remove_file(&packed_lock).unwrap();
}
