//! `orchestrate setup` against the real system (root only): users, modes, key secrecy,
//! idempotency and removal. Test accounts carry a per-process `orch-t<pid>` prefix and are
//! deleted by a Drop guard even when an assertion fails; state lives in a temp dir.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use orchestrate_sandbox::setup::{
    apply, plan, remove, Change, RemoveOptions, SetupPlan, SetupSpec, PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
};

/// Deletes every test account on drop, whatever happened (userdel/groupdel of an absent name
/// just fails quietly).
struct AccountGuard(Vec<String>);

impl Drop for AccountGuard {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("userdel").arg(name).output();
        }
        for name in &self.0 {
            let _ = Command::new("groupdel").arg(name).output();
        }
    }
}

fn skip_unless_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("SKIP: not root");
    true
}

struct Fixture {
    plan: SetupPlan,
    state: PathBuf,
    _guard: AccountGuard,
    _tmp: tempfile::TempDir,
}

fn fixture(tag: &str) -> Fixture {
    // `orch-` so the leak check that counts leftover orch-* accounts sees any a test leaves.
    let prefix = format!("orch-t{}{tag}", std::process::id());
    let user = |role: &str| format!("{prefix}-{role}");
    let tmp = tempfile::tempdir().unwrap();
    // The temp dir itself is 0700 root: open it so the role users can traverse to their keys,
    // as they would to /var/lib/orchestrate.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("state");
    let spec = SetupSpec {
        roles: vec![
            ("codegen".to_owned(), user("codegen")),
            ("security-review".to_owned(), user("review")),
        ],
        gate_user: user("gate"),
        orchestrator_user: user("run"),
        state_dir: state.clone(),
        db_file: "state.db".to_owned(),
    };
    let plan = plan(&spec).unwrap();
    let guard = AccountGuard(plan.users().iter().map(|s| (*s).to_owned()).collect());
    Fixture {
        plan,
        state,
        _guard: guard,
        _tmp: tmp,
    }
}

fn uid_gid(name: &str) -> (u32, u32) {
    let user = nix::unistd::User::from_name(name).unwrap().unwrap();
    (user.uid.as_raw(), user.gid.as_raw())
}

/// Opens `path` for reading in a forked child that first becomes `uid:gid` (no supplementary
/// groups); returns the errno of the open, 0 on success.
fn open_as(uid: u32, gid: u32, path: &Path) -> i32 {
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: the child only makes async-signal-safe calls (setgroups, setgid, setuid, open,
    // _exit) on memory allocated before the fork, so the other test threads' locks do not matter.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: plain syscalls in the single-threaded child; c_path outlives them.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                libc::_exit(250);
            }
            let fd = libc::open(c_path.as_ptr(), libc::O_RDONLY);
            let code = if fd >= 0 {
                0
            } else {
                *libc::__errno_location()
            };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for the child forked above; status is a valid out pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status), "child did not exit normally");
    let code = libc::WEXITSTATUS(status);
    assert_ne!(code, 250, "child could not drop to {uid}:{gid}");
    code
}

fn mode_owner(path: &Path) -> (u32, u32, u32) {
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

fn key(fx: &Fixture, label: &str) -> PathBuf {
    fx.state.join("keys").join(label).join(PRIVATE_KEY_FILE)
}

fn public(fx: &Fixture, label: &str) -> PathBuf {
    fx.state.join("keys").join(label).join(PUBLIC_KEY_FILE)
}

fn find<'a>(report: &'a orchestrate_sandbox::setup::SetupReport, prefix: &str) -> &'a Change {
    &report
        .items
        .iter()
        .find(|i| i.what.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {report}"))
        .change
}

#[test]
fn setup_creates_users_dirs_and_keys_with_exact_owners_and_modes_and_reapply_changes_nothing() {
    if skip_unless_root() {
        return;
    }
    let fx = fixture("a");
    let first = apply(&fx.plan).unwrap();
    for item in &first.items {
        let want = if item.what.starts_with("file ") {
            Change::Absent // no database before the first run
        } else {
            Change::Created
        };
        assert_eq!(item.change, want, "{}", item.what);
    }

    let (codegen_uid, codegen_gid) = uid_gid(fx.plan.users()[0]);
    let (run_uid, _) = uid_gid(fx.plan.users()[3]);
    let (gate_uid, gate_gid) = uid_gid(fx.plan.users()[2]);
    assert!(codegen_uid <= 999 && codegen_uid > 0, "system uid");
    assert_eq!(mode_owner(&fx.state), (0o751, 0, 0));
    assert_eq!(
        mode_owner(&fx.state.join("runs")),
        (0o750, run_uid, gate_gid)
    );
    assert_eq!(
        mode_owner(&fx.state.join("integration.git")),
        (0o755, gate_uid, gate_gid)
    );
    assert_eq!(mode_owner(&fx.state.join("keys")), (0o751, 0, 0));
    assert_eq!(mode_owner(&fx.state.join("keys/codegen")), (0o711, 0, 0));
    assert_eq!(
        mode_owner(&key(&fx, "codegen")),
        (0o400, codegen_uid, codegen_gid)
    );
    assert_eq!(mode_owner(&public(&fx, "codegen")), (0o444, 0, 0));
    let user = nix::unistd::User::from_name(fx.plan.users()[0])
        .unwrap()
        .unwrap();
    assert_eq!(user.shell, PathBuf::from("/usr/sbin/nologin"));
    assert!(!user.dir.exists(), "home {:?} must not exist", user.dir);

    // The pair belongs together.
    let signing = orchestrate_sandbox::setup::read_private_key(&key(&fx, "codegen")).unwrap();
    let verifying = orchestrate_sandbox::setup::read_public_key(&public(&fx, "codegen")).unwrap();
    assert_eq!(signing.verifying_key(), verifying);

    // Re-apply: nothing changes, no key is regenerated.
    let before: Vec<Vec<u8>> = ["codegen", "security-review", "gate", "orchestrator"]
        .iter()
        .map(|l| fs::read(key(&fx, l)).unwrap())
        .collect();
    let second = apply(&fx.plan).unwrap();
    assert!(!second.changed(), "{second}");
    assert!(second
        .to_string()
        .ends_with("unchanged: everything was already in place\n"));
    let after: Vec<Vec<u8>> = ["codegen", "security-review", "gate", "orchestrator"]
        .iter()
        .map(|l| fs::read(key(&fx, l)).unwrap())
        .collect();
    assert_eq!(before, after);
    remove(&fx.plan, RemoveOptions { purge: true }).unwrap();
}

#[test]
fn another_role_user_gets_eacces_on_a_private_key_and_its_owner_reads_it() {
    if skip_unless_root() {
        return;
    }
    let fx = fixture("b");
    apply(&fx.plan).unwrap();
    let (codegen_uid, codegen_gid) = uid_gid(fx.plan.users()[0]);
    let (review_uid, review_gid) = uid_gid(fx.plan.users()[1]);
    // Positive controls: each owner reads its own key; anyone reads a public key.
    assert_eq!(open_as(codegen_uid, codegen_gid, &key(&fx, "codegen")), 0);
    assert_eq!(
        open_as(review_uid, review_gid, &key(&fx, "security-review")),
        0
    );
    assert_eq!(open_as(review_uid, review_gid, &public(&fx, "codegen")), 0);
    // The denial, both ways: codegen cannot forge a review, review cannot sign as codegen.
    assert_eq!(
        open_as(review_uid, review_gid, &key(&fx, "codegen")),
        libc::EACCES
    );
    assert_eq!(
        open_as(codegen_uid, codegen_gid, &key(&fx, "security-review")),
        libc::EACCES
    );
    assert_eq!(
        open_as(codegen_uid, codegen_gid, &key(&fx, "gate")),
        libc::EACCES
    );
    remove(&fx.plan, RemoveOptions { purge: true }).unwrap();
}

#[test]
fn twin_with_the_key_mode_loosened_to_0444_the_other_role_reads_it_and_setup_repairs_it() {
    if skip_unless_root() {
        return;
    }
    let fx = fixture("c");
    apply(&fx.plan).unwrap();
    let (codegen_uid, codegen_gid) = uid_gid(fx.plan.users()[0]);
    let (review_uid, review_gid) = uid_gid(fx.plan.users()[1]);
    let k = key(&fx, "codegen");
    let bytes = fs::read(&k).unwrap();
    // The layer off: the mode is what denies, so loosening it must let the read through.
    fs::set_permissions(&k, fs::Permissions::from_mode(0o444)).unwrap();
    assert_eq!(open_as(review_uid, review_gid, &k), 0);

    // Setup repairs mode and owner, deletes nothing, keeps the key bytes, re-derives the pub.
    std::os::unix::fs::chown(&k, Some(review_uid), Some(review_gid)).unwrap();
    fs::remove_file(public(&fx, "codegen")).unwrap();
    fs::set_permissions(fx.state.join("runs"), fs::Permissions::from_mode(0o777)).unwrap();
    let third = apply(&fx.plan).unwrap();
    assert_eq!(
        find(&third, "key pair codegen"),
        &Change::Fixed(format!(
            "private key fixed (owner {review_uid}:{review_gid} -> {codegen_uid}:{codegen_gid}, \
             mode 0444 -> 0400); public key created"
        ))
    );
    assert_eq!(
        find(&third, &format!("dir {}", fx.state.join("runs").display())),
        &Change::Fixed("mode 0777 -> 0750".to_owned())
    );
    assert_eq!(mode_owner(&k), (0o400, codegen_uid, codegen_gid));
    assert_eq!(fs::read(&k).unwrap(), bytes);
    assert_eq!(open_as(review_uid, review_gid, &k), libc::EACCES);
    remove(&fx.plan, RemoveOptions { purge: true }).unwrap();
}

#[test]
fn remove_deletes_keys_and_accounts_and_keeps_the_state_dir_unless_purged() {
    if skip_unless_root() {
        return;
    }
    let fx = fixture("d");
    apply(&fx.plan).unwrap();
    fs::write(fx.state.join("state.db"), b"audit").unwrap();
    let removed = remove(&fx.plan, RemoveOptions { purge: false }).unwrap();
    for name in fx.plan.users() {
        assert!(
            nix::unistd::User::from_name(name).unwrap().is_none(),
            "user {name} left"
        );
        assert!(
            nix::unistd::Group::from_name(name).unwrap().is_none(),
            "group {name} left"
        );
    }
    assert!(
        !fx.state.join("keys").exists(),
        "keys must go with their users"
    );
    assert_eq!(
        removed.items.last().unwrap().change,
        Change::Left(
            "database, runs and integration.git are kept; --purge deletes them".to_owned()
        )
    );
    assert_eq!(fs::read(fx.state.join("state.db")).unwrap(), b"audit");

    // Removing again finds nothing; purge then deletes the state dir.
    let again = remove(&fx.plan, RemoveOptions { purge: true }).unwrap();
    assert!(
        again.items[..again.items.len() - 1]
            .iter()
            .all(|i| i.change == Change::Absent),
        "{again}"
    );
    assert_eq!(again.items.last().unwrap().change, Change::Removed);
    assert!(!fx.state.exists());
}

#[test]
fn an_existing_unparsable_key_is_refused_not_overwritten() {
    if skip_unless_root() {
        return;
    }
    let fx = fixture("e");
    let key_dir = fx.state.join("keys/codegen");
    fs::create_dir_all(&key_dir).unwrap();
    fs::write(key_dir.join(PRIVATE_KEY_FILE), b"not a key").unwrap();
    let err = apply(&fx.plan).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "existing key {:?} does not parse",
            key_dir.join(PRIVATE_KEY_FILE)
        )),
        "{err}"
    );
    assert_eq!(
        fs::read(key_dir.join(PRIVATE_KEY_FILE)).unwrap(),
        b"not a key"
    );
    remove(&fx.plan, RemoveOptions { purge: true }).unwrap();
}

#[test]
fn a_state_dir_below_a_directory_others_can_write_is_refused_before_any_account_exists() {
    if skip_unless_root() {
        return;
    }
    let fx = fixture("f");
    let parent = fx.state.parent().unwrap().to_path_buf();
    // Layer off: a world-writable, non-sticky parent would let a role rename the state away.
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o777)).unwrap();
    let err = apply(&fx.plan).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{parent:?} (owner uid 0, mode 0777) would let others replace the state directory: \
             it must belong to root and not be group/other-writable unless sticky"
        )
    );
    for name in fx.plan.users() {
        assert!(
            nix::unistd::User::from_name(name).unwrap().is_none(),
            "{name} created"
        );
    }
    assert!(!fx.state.exists());
    // Positive control, sticky as /tmp is: accepted.
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o1777)).unwrap();
    apply(&fx.plan).unwrap();
    remove(&fx.plan, RemoveOptions { purge: true }).unwrap();
}
