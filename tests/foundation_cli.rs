//! The foundation through the `orchestrate` binary, as a user meets it: `init` on a fresh
//! repository then `policy check` passes; `init` never overwrites; a misspelled roles.yaml field
//! fails naming file, line and field; each of the four ways to tamper with the audit database is
//! reported by `audit verify` with exit 1 and the first bad row.
//!
//! Needs the `orchestrate` binary of this target directory (`cargo build --workspace --bins`,
//! which scripts/test.sh does first).

// Helpers of a test binary: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orchestrate::state::{Event, Store};
use rusqlite::Connection;
use serde_json::{json, Value};

fn orchestrate() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("orchestrate");
    assert!(
        bin.is_file(),
        "{} missing: cargo build --workspace --bins first",
        bin.display()
    );
    bin
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(orchestrate())
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("ORCHESTRATE_STATE_DIR")
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn fresh_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("git")
        .arg("init")
        .arg("-q")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(ok.success());
    dir
}

#[test]
fn init_then_policy_check_passes_on_a_fresh_repo() {
    let repo = fresh_repo();
    let init = run(repo.path(), &["init"]);
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));
    for f in ["roles.yaml", "frs/FR-1.yaml", "frs/config.yaml"] {
        assert!(repo.path().join(f).is_file(), "{f}");
    }
    let check = run(repo.path(), &["policy", "check"]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let json = run(repo.path(), &["policy", "check", "--json"]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["documents"].as_array().unwrap().len(), 2);
}

#[test]
fn init_refuses_to_overwrite_and_writes_nothing() {
    let repo = fresh_repo();
    std::fs::write(repo.path().join("roles.yaml"), "mine\n").unwrap();
    let o = run(repo.path(), &["init"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("refusing to overwrite"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("roles.yaml")).unwrap(),
        "mine\n"
    );
    assert!(!repo.path().join("frs").exists());
}

#[test]
fn a_misspelled_roles_field_fails_with_line_and_field() {
    let repo = fresh_repo();
    assert!(run(repo.path(), &["init"]).status.success());
    let path = repo.path().join("roles.yaml");
    let original = std::fs::read_to_string(&path).unwrap();
    let needle = "    limits: { cpu_seconds: 600";
    let line = original[..original.find(needle).unwrap()]
        .matches('\n')
        .count()
        + 1;
    std::fs::write(
        &path,
        original.replacen(needle, "    limts: { cpu_seconds: 600", 1),
    )
    .unwrap();
    let o = run(repo.path(), &["policy", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let want = format!("roles.yaml:{line}:5: roles.codegen.limts: unknown field `limts`");
    assert!(text(&o).contains(&want), "wanted {want:?} in {}", text(&o));
    let j: Value =
        serde_json::from_slice(&run(repo.path(), &["policy", "check", "--json"]).stdout).unwrap();
    assert_eq!(j["documents"][0]["error"]["line"], line);
}

#[test]
fn a_loosening_config_and_an_fr_without_tests_are_refused() {
    let repo = fresh_repo();
    assert!(run(repo.path(), &["init"]).status.success());
    std::fs::write(
        repo.path().join("frs/config.yaml"),
        "limits:\n  iterations: 99\n",
    )
    .unwrap();
    let o = run(repo.path(), &["policy", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("config.yaml:2:3: limits.iterations: 99 is looser"),
        "{}",
        text(&o)
    );
    std::fs::remove_file(repo.path().join("frs/config.yaml")).unwrap();
    let fr = repo.path().join("frs/FR-1.yaml");
    let t = std::fs::read_to_string(&fr).unwrap();
    let start = t.find("acceptance:").unwrap();
    let end = t[start..].find("\nsecurity:").unwrap() + start + 1;
    std::fs::write(&fr, format!("{}acceptance: []\n{}", &t[..start], &t[end..])).unwrap();
    let o = run(repo.path(), &["policy", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no acceptance criteria"), "{}", text(&o));
}

fn state_with(n: u64) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let events: Vec<Event> = (1..=n)
        .map(|i| Event::for_run("FR-1-run", "step", json!({"i": i})))
        .collect();
    let head = s.append_batch(&events).unwrap();
    (dir, head.to_string())
}

fn tamper(state: &Path, sql: &str) {
    let c = Connection::open(state.join(orchestrate::state::DB_FILE)).unwrap();
    c.execute_batch("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;")
        .unwrap();
    c.execute_batch(sql).unwrap();
    c.execute_batch(
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'x'); END; \
         CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'x'); END;",
    )
    .unwrap();
}

fn verify(state: &Path, head: Option<&str>) -> (Option<i32>, Value) {
    let mut args = vec![
        "--state-dir",
        state.to_str().unwrap(),
        "audit",
        "verify",
        "--json",
    ];
    if let Some(h) = head {
        args.extend(["--expect-head", h]);
    }
    let o = run(state, &args);
    (
        o.status.code(),
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null),
    )
}

#[test]
fn audit_verify_reports_each_kind_of_tampering() {
    let (clean, head) = state_with(50);
    let (code, v) = verify(clean.path(), Some(&head));
    assert_eq!((code, v["valid"].clone()), (Some(0), json!(true)), "{v}");

    let cases = [
        ("UPDATE events SET body = '{\"i\":999}' WHERE seq = 17", "content_edited", 17),
        ("DELETE FROM events WHERE seq = 23", "seq_gap", 24),
        (
            "UPDATE events SET seq = -1 WHERE seq = 30; UPDATE events SET seq = 30 WHERE seq = 31; UPDATE events SET seq = 31 WHERE seq = -1;",
            "prev_hash_mismatch",
            30,
        ),
        ("DELETE FROM events WHERE seq > 45", "truncated", 45),
    ];
    for (sql, kind, seq) in cases {
        let (state, head) = state_with(50);
        tamper(state.path(), sql);
        let (code, v) = verify(state.path(), Some(&head));
        assert_eq!(code, Some(1), "{sql}: {v}");
        assert_eq!(v["problem"]["kind"], kind, "{sql}: {v}");
        let at = v["problem"]
            .get("seq")
            .or_else(|| v["problem"].get("end_seq"))
            .unwrap();
        assert_eq!(at, seq, "{sql}: {v}");
    }
}

#[test]
fn audit_head_exports_what_verify_expects() {
    let (state, head) = state_with(7);
    let dir = state.path().to_str().unwrap();
    let o = run(state.path(), &["--state-dir", dir, "audit", "head"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), head);
    let j: Value = serde_json::from_slice(
        &run(
            state.path(),
            &["--state-dir", dir, "audit", "head", "--json"],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(j["seq"], 7);
}

#[test]
fn audit_verify_without_a_database_is_an_error_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &[
            "--state-dir",
            dir.path().to_str().unwrap(),
            "audit",
            "verify",
        ],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
}
