//! The `orchestrate-gate` binary as the orchestrator calls it: the report line, exit codes,
//! and the approver's identity taken from the process's real uid — not from a flag or from
//! USER/LOGNAME/SUDO_USER.

// Test harness: a failed setup step must panic where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/gate_fixture.rs"]
mod fixture;

use std::os::unix::process::CommandExt as _;
use std::process::Command;

use gate::client::GateReport;
use gate::decision::Verdict;

const BIN: &str = env!("CARGO_BIN_EXE_orchestrate-gate");
const RUN: &str = "FR-12-20261123T100000-cccc";

fn gate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn promote_prints_a_report_and_exits_by_verdict_and_an_unknown_run_is_invalid_input() {
    let f = fixture::Fixture::new();
    let r = f.good_run(RUN);
    f.write_run(&r);
    let state = f.state.to_str().unwrap();
    // What the run engine calls: init (a no-op here: the repository exists), then promote.
    gate::client::init(&f.state, &f.repo, "HEAD").unwrap();
    let report = gate::client::promote(&f.state, RUN).unwrap();
    assert_eq!(report.verdict, Verdict::Pass);
    assert_eq!(report.outcomes[0].moved.as_ref().unwrap().to, r.tip);
    // Again: nothing to promote, a failing decision, exit 1.
    let (code, out, err) = gate(&["promote", "--state", state, "--run", RUN]);
    assert_eq!(code, 1);
    let report: GateReport = serde_json::from_str(out.trim()).unwrap();
    assert!(report.outcomes[0]
        .decision
        .failed()
        .contains(&"fast_forward"));
    assert!(err.contains("nothing to promote"), "{err}");
    let (code, _, err) = gate(&["promote", "--state", state, "--run", "FR-12-nope"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = gate(&["promote", "--state", state, "--run", "../../etc"]);
    assert_eq!(code, 2);
    // The receipt verifies as JSON and reads as text.
    let (code, out, _) = gate(&["receipt", "--state", state, "--run", RUN]);
    assert_eq!(code, 0);
    assert!(out.contains("what remains uncertain"));
    let (code, out, _) = gate(&["receipt", "--state", state, "--run", RUN, "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains("application/vnd.in-toto+json"));
}

#[test]
fn the_approver_is_the_real_uid_whatever_the_environment_says() {
    if !is_root() {
        eprintln!("SKIP: needs root to run the gate under another uid");
        return;
    }
    let f = fixture::Fixture::new();
    let r = f.good_run(RUN);
    f.write_run(&r);
    let state = f.state.to_str().unwrap();
    let (code, _, err) = gate(&["promote", "--state", state, "--run", RUN]);
    assert_eq!(code, 0, "{err}");
    // Give the whole state to uid 65534 (standing in for the gate's user, so it can sign and
    // write) and run the gate as that uid with an environment that claims root.
    let st = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(f.dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new(BIN)
        .args(["approve", "--state", state, "--run", RUN])
        .env("USER", "root")
        .env("LOGNAME", "root")
        .env("SUDO_USER", "root")
        .env("SUDO_UID", "0")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: GateReport = serde_json::from_slice(&out.stdout).unwrap();
    let d = &report.outcomes[0].decision;
    assert_eq!(d.failed(), vec!["human_approval"]);
    assert_eq!(d.actor.as_ref().unwrap().uid, 65534);
    assert_eq!(f.integration_ref("refs/heads/main"), f.base);
    // Twin: the same call by root (an approver) passes and moves main.
    let st = Command::new("chown")
        .args(["-R", "0:0"])
        .arg(f.dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let (code, _, err) = gate(&["approve", "--state", state, "--run", RUN]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(f.integration_ref("refs/heads/main"), r.tip);
}

#[test]
fn installed_set_uid_the_gate_refuses_a_state_directory_the_caller_controls() {
    if !is_root() {
        eprintln!("SKIP: needs root to install a set-uid copy and switch uid");
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let f = fixture::Fixture::new();
    let r = f.good_run(RUN);
    f.write_run(&r);
    for d in [f.dir.path(), f.state.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The gate binary, set-uid to 65534 (standing in for the gate's user).
    let install = tempfile::tempdir().unwrap();
    std::fs::set_permissions(install.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let suid = install.path().join("orchestrate-gate");
    std::fs::copy(BIN, &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let caller = 4321;
    let run_as = |state: &std::path::Path| {
        Command::new(&suid)
            .args(["receipt", "--state", state.to_str().unwrap(), "--run", RUN])
            .uid(caller)
            .gid(caller)
            .output()
            .unwrap()
    };
    // Positive control: the state belongs to root, writable by nobody else: accepted.
    let ok = run_as(&f.state);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // A state directory the caller owns (keys of their own making): refused, exit 2.
    let evil = tempfile::tempdir().unwrap();
    std::fs::set_permissions(evil.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let evil_state = evil.path().join("state");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&f.state)
        .arg(&evil_state)
        .status()
        .unwrap();
    assert!(st.success());
    std::os::unix::fs::chown(&evil_state, Some(caller), Some(caller)).unwrap();
    let refused = run_as(&evil_state);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("set-id gate"));
}
