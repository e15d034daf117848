//! The engineer's side of the gate through the `orchestrate` binary: a run the gate promoted to
//! staging is approved (`approve --update-local` moves the integration main and the clone's
//! main, and adds the `orchestrate` remote), the receipt comes out gate-signed with the audit
//! head in it, rollback puts main back, and every gate decision is an audit event.
//!
//! Needs the `orchestrate` and `orchestrate-gate` binaries of this target directory
//! (`cargo build --workspace --bins`, which scripts/test.sh does first).

// Test harness: a failed setup step must panic where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gate_fixture.rs"]
mod fixture;

use std::path::PathBuf;
use std::process::{Command, Output};

use base64::Engine as _;
use gate::decision::Verdict;
use gate::identity::Caller;
use protocol::artifact::{verify_signature, DsseEnvelope, PublicKey};

const RUN: &str = "FR-12-20261123T120000-dddd";

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let b = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        b.is_file(),
        "{} missing: cargo build --workspace --bins first",
        b.display()
    );
    b
}

fn orchestrate(f: &fixture::Fixture, args: &[&str]) -> Output {
    Command::new(bin("orchestrate"))
        .env("NO_COLOR", "1")
        .arg("--state-dir")
        .arg(&f.state)
        .arg("--repo")
        .arg(&f.repo)
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

#[test]
fn approve_update_local_receipt_and_rollback_through_the_cli() {
    bin("orchestrate-gate");
    let me = Caller::current().user.unwrap_or_else(|| "root".into());
    let f = fixture::Fixture::with_roles(
        &fixture::ROLES.replace("approvers: [root]", &format!("approvers: [{me}]")),
    );
    let r = f.good_run(RUN);
    f.write_run(&r);
    assert_eq!(
        f.gate().promote(RUN).unwrap().decision.verdict,
        Verdict::Pass
    );

    let o = orchestrate(&f, &["approve", RUN, "--update-local"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("approve_main"), "{}", text(&o));
    assert_eq!(f.integration_ref("refs/heads/main"), r.tip);
    assert_eq!(
        fixture::git(&f.repo, &["rev-parse", "main"]),
        r.tip,
        "local main fast-forwarded"
    );
    assert_eq!(
        fixture::git(&f.repo, &["rev-parse", "orchestrate/staging"]),
        r.tip,
        "the clone has the orchestrate remote"
    );

    let o = orchestrate(&f, &["receipt", RUN, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let env: DsseEnvelope = serde_json::from_slice(&o.stdout).unwrap();
    let key = PublicKey::read(&f.state.join("keys/gate/ed25519.pub")).unwrap();
    let st = verify_signature(&env, &key).unwrap();
    let body = &st.predicate.body;
    assert_eq!(body["status"], "approved: on main");
    assert!(body["audit_head"].as_str().unwrap().contains(':'), "{body}");
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&env.payload)
        .unwrap();
    assert!(!payload.is_empty());
    let o = orchestrate(&f, &["receipt", RUN]);
    assert!(text(&o).contains("what remains uncertain"), "{}", text(&o));

    let o = orchestrate(&f, &["rollback", RUN]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(f.integration_ref("refs/heads/main"), f.base);
    assert_eq!(f.integration_ref("refs/heads/staging"), f.base);
    let o = orchestrate(&f, &["rollback", RUN]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "nothing left to roll back: {}",
        text(&o)
    );
    let o = orchestrate(&f, &["approve", "FR-12-20261123T120000-none"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    let db = rusqlite::Connection::open(f.state.join("state.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT kind FROM events WHERE run_id = ?1 ORDER BY seq")
        .unwrap();
    let kinds: Vec<String> = stmt
        .query_map([RUN], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        kinds,
        // The promotion was decided in-process above, outside the CLI: the first CLI command
        // records it late, before its own decision.
        vec![
            "gate.promote_staging",
            "gate.approve_main",
            "gate.rollback",
            "gate.rollback"
        ],
        "one audit event per gate decision"
    );
    let o = orchestrate(&f, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
