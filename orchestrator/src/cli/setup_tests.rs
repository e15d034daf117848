//! `orchestrate setup` through its CLI entry point, as root, with test-unique account names
//! (`orch-c<pid>...`, so the leak check that counts orch-* accounts sees any left behind) and a
//! temp state directory. A Drop guard deletes the accounts even when an assertion fails.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

const ROLES: &str = include_str!("../../../roles.yaml");

struct Accounts(Vec<String>);

impl Drop for Accounts {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("userdel").arg(name).output();
        }
        for name in &self.0 {
            let _ = Command::new("groupdel").arg(name).output();
        }
    }
}

fn args(roles: &Path) -> SetupArgs {
    SetupArgs {
        roles: Some(roles.to_path_buf()),
        dry_run: false,
        remove: false,
        purge: false,
        json: false,
    }
}

fn exists(user: &str) -> bool {
    sandbox::setup::lookup_user(user).unwrap().is_some()
        || sandbox::setup::lookup_group(user).unwrap().is_some()
}

#[test]
fn dry_run_then_setup_twice_then_remove_purge_through_the_cli() {
    if !sandbox::setup::is_root() {
        eprintln!("SKIP: not root");
        return;
    }
    let prefix = format!("orch-c{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let roles = tmp.path().join("roles.yaml");
    fs::write(
        &roles,
        ROLES.replace("user: orch-", &format!("user: {prefix}")),
    )
    .unwrap();
    let users: Vec<String> = [
        "planner", "codegen", "review", "test", "cost", "progress", "gate", "run",
    ]
    .iter()
    .map(|r| format!("{prefix}{r}"))
    .collect();
    let _guard = Accounts(users.clone());
    let state = tmp.path().join("state");
    let ctx = Context::new(None, Some(state.clone()));
    let out = Output::new(false);

    // --dry-run: exit 0 and nothing on the system.
    let mut dry = args(&roles);
    dry.dry_run = true;
    assert_eq!(run(&ctx, &out, &dry).unwrap(), ExitCode::Ok);
    assert!(!state.exists(), "dry run created the state dir");
    for u in &users {
        assert!(!exists(u), "dry run created {u}");
    }

    // setup: every account, eight key pairs.
    assert_eq!(run(&ctx, &out, &args(&roles)).unwrap(), ExitCode::Ok);
    for u in &users {
        assert!(exists(u), "{u} missing");
    }
    let labels = [
        "planner",
        "codegen",
        "security-review",
        "test-runner",
        "cost-control",
        "progress-evaluator",
        "gate",
        "orchestrator",
    ];
    let key = |l: &str| state.join("keys").join(l).join("ed25519.key");
    let before: Vec<Vec<u8>> = labels.iter().map(|l| fs::read(key(l)).unwrap()).collect();

    // Again: unchanged, no key regenerated.
    assert_eq!(run(&ctx, &out, &args(&roles)).unwrap(), ExitCode::Ok);
    let after: Vec<Vec<u8>> = labels.iter().map(|l| fs::read(key(l)).unwrap()).collect();
    assert_eq!(before, after);

    // --remove --dry-run changes nothing either.
    let mut dry_remove = args(&roles);
    dry_remove.remove = true;
    dry_remove.dry_run = true;
    assert_eq!(run(&ctx, &out, &dry_remove).unwrap(), ExitCode::Ok);
    assert!(exists(&users[0]));
    assert!(key("codegen").exists());

    // --remove --purge: nothing left.
    let mut purge = args(&roles);
    purge.remove = true;
    purge.purge = true;
    assert_eq!(run(&ctx, &out, &purge).unwrap(), ExitCode::Ok);
    for u in &users {
        assert!(!exists(u), "{u} left behind");
    }
    assert!(!state.exists());
}

#[test]
fn policy_errors_exit_2_and_missing_root_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let roles = tmp.path().join("roles.yaml");
    // Two roles on one user would share a signing key.
    fs::write(
        &roles,
        ROLES.replace("user: orch-review", "user: orch-codegen"),
    )
    .unwrap();
    let ctx = Context::new(None, Some(PathBuf::from("/nonexistent/state")));
    let mut dry = args(&roles);
    dry.dry_run = true;
    let err = run(&ctx, &Output::new(false), &dry).unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Usage, "{err}");
    // roles.yaml validation catches it first, with file, line and field.
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "loading the role policy: {}:45:5: roles.security-review.user",
            roles.display()
        )),
        "{text}"
    );

    let missing = run(
        &ctx,
        &Output::new(false),
        &args(&tmp.path().join("absent.yaml")),
    )
    .unwrap_err();
    assert_eq!(missing.exit_code(), ExitCode::Usage, "{missing}");

    assert_eq!(
        SetupCliError::NotRoot { euid: 1000 }.exit_code(),
        ExitCode::NoContainment
    );
}
