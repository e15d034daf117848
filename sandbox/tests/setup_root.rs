//! `orchestrate setup` against the real system (root only): users, modes, key secrecy,
//! idempotency and removal. Test accounts carry a per-process prefix and are deleted by a Drop
//! guard even when an assertion fails.

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
    let prefix = format!("ot{}{tag}", std::process::id());
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

#[test]
fn setup_keys_are_readable_only_by_their_user_and_reapply_changes_nothing() {
    if skip_unless_root() {
        return;
    }
    let fx = fixture("a");
    let first = apply(&fx.plan).unwrap();
    assert!(first
        .items
        .iter()
        .all(|i| i.change == Change::Created), "{first}");

    let (codegen_uid, codegen_gid) = uid_gid(fx.plan.users()[0]);
    let (review_uid, review_gid) = uid_gid(fx.plan.users()[1]);
    let (run_uid, run_gid) = uid_gid(fx.plan.users()[3]);
    assert!(codegen_uid <= 999 && codegen_uid > 0, "system uid");

    let key_dir = fx.state.join("keys/codegen");
    let key = key_dir.join(PRIVATE_KEY_FILE);
    let public = key_dir.join(PUBLIC_KEY_FILE);
    assert_eq!(mode_owner(&fx.state), (0o751, 0, 0));
    assert_eq!(mode_owner(&fx.state.join("db")), (0o700, run_uid, run_gid));
    assert_eq!(mode_owner(&key_dir), (0o711, codegen_uid, codegen_gid));
    assert_eq!(mode_owner(&key), (0o400, codegen_uid, codegen_gid));
    assert_eq!(mode_owner(&public), (0o444, codegen_uid, codegen_gid));

    // Positive control: the owner reads its key; the other role reads the public half.
    assert_eq!(open_as(codegen_uid, codegen_gid, &key), 0);
    assert_eq!(open_as(review_uid, review_gid, &public), 0);
    // Another role user cannot open the private key.
    assert_eq!(open_as(review_uid, review_gid, &key), libc::EACCES);
    assert_eq!(
        open_as(codegen_uid, codegen_gid, &fx.state.join("keys/security-review").join(PRIVATE_KEY_FILE)),
        libc::EACCES
    );

    // The key pair belongs together.
    let signing = orchestrate_sandbox::setup::read_private_key(&key).unwrap();
    let verifying = orchestrate_sandbox::setup::read_public_key(&public).unwrap();
    assert_eq!(signing.verifying_key(), verifying);

    // Re-apply: nothing changes, the key keeps its bytes.
    let key_bytes = fs::read(&key).unwrap();
    let second = apply(&fx.plan).unwrap();
    assert!(!second.changed(), "{second}");
    assert!(second.to_string().ends_with("nothing changed: everything was already in place\n"));
    assert_eq!(fs::read(&key).unwrap(), key_bytes);

    // A loosened key mode and a deleted public key are repaired, the key itself is kept.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_file(&public).unwrap();
    let third = apply(&fx.plan).unwrap();
    let item = third
        .items
        .iter()
        .find(|i| i.what.starts_with("key pair codegen"))
        .unwrap();
    assert_eq!(
        item.change,
        Change::Fixed("private key fixed (mode 0644 -> 0400); public key created".to_owned())
    );
    assert_eq!(mode_owner(&key), (0o400, codegen_uid, codegen_gid));
    assert_eq!(fs::read(&key).unwrap(), key_bytes);
    assert_eq!(orchestrate_sandbox::setup::read_public_key(&public).unwrap(), verifying);

    // Remove without purge keeps the state dir and says so; no account is left.
    let removed = remove(&fx.plan, RemoveOptions { purge: false }).unwrap();
    for name in fx.plan.users() {
        assert!(nix::unistd::User::from_name(name).unwrap().is_none(), "{name} left");
        assert!(nix::unistd::Group::from_name(name).unwrap().is_none(), "{name} left");
    }
    assert_eq!(
        removed.items.last().unwrap().change,
        Change::Left("keys, database and runs are kept; --purge deletes them".to_owned())
    );
    assert!(key.exists());

    // Removing again finds nothing; purge then deletes the state dir.
    let again = remove(&fx.plan, RemoveOptions { purge: true }).unwrap();
    assert!(again.items[..again.items.len() - 1]
        .iter()
        .all(|i| i.change == Change::Absent), "{again}");
    assert_eq!(again.items.last().unwrap().change, Change::Removed);
    assert!(!fx.state.exists());
}

#[test]
fn an_existing_unparsable_key_is_refused_not_overwritten() {
    if skip_unless_root() {
        return;
    }
    let fx = fixture("b");
    let key_dir = fx.state.join("keys/codegen");
    fs::create_dir_all(&key_dir).unwrap();
    fs::write(key_dir.join(PRIVATE_KEY_FILE), b"not a key").unwrap();
    let err = apply(&fx.plan).unwrap_err().to_string();
    assert!(err.starts_with(&format!(
        "existing key {:?} does not parse",
        key_dir.join(PRIVATE_KEY_FILE)
    )), "{err}");
    assert_eq!(fs::read(key_dir.join(PRIVATE_KEY_FILE)).unwrap(), b"not a key");
    remove(&fx.plan, RemoveOptions { purge: true }).unwrap();
}
