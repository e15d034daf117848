//! The gate's decisions over artifacts a run leaves: forged, altered and replayed artifacts are
//! refused, approvals need an approver the OS names, refs move fast-forward only, decisions are
//! byte-for-byte reproducible, rollback restores the exact previous commits.

// Test harness: a failed setup step must panic where it happened (helpers sit outside #[test] fns,
// where clippy.toml's allow-unwrap-in-tests does not reach).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gate_fixture.rs"]
mod fixture;

use base64::Engine as _;
use fixture::{details, failed, Fixture};
use gate::decision::Verdict;
use gate::identity::Caller;
use protocol::artifact::{verify_signature, DsseEnvelope, PublicKey, Signer, Statement};
use protocol::canonical;

const RUN_A: &str = "FR-12-20261123T100000-aaaa";
const RUN_B: &str = "FR-12-20261123T110000-bbbb";

fn root() -> Caller {
    // roles.yaml lists `root` as approver; these tests run as root in CI. As another user the
    // approver is whoever runs them, so the "approver" path is taken from the current uid.
    Caller::current()
}

fn fixture() -> Fixture {
    let me = Caller::current();
    let name = me.user.clone().unwrap_or_else(|| "root".into());
    Fixture::with_roles(
        &fixture::ROLES.replace("approvers: [root]", &format!("approvers: [{name}]")),
    )
}

fn nobody() -> Caller {
    Caller::from_uid(65534, 0)
}

#[test]
fn a_good_run_is_promoted_to_staging_and_deciding_twice_gives_identical_bytes() {
    let f = fixture();
    let r = f.good_run(RUN_A);
    f.write_run(&r);
    let g = f.gate();
    let inputs = g.promotion_inputs(RUN_A).unwrap();
    let key = g.state().gate_key(RUN_A).unwrap().0;
    let one = gate::sign::sign_decision(&key, &gate::decide(&inputs)).unwrap();
    let two = gate::sign::sign_decision(&key, &gate::decide(&g.promotion_inputs(RUN_A).unwrap()))
        .unwrap();
    assert_eq!(one, two, "same inputs, same bytes");

    let o = g.promote(RUN_A).unwrap();
    assert_eq!(o.decision.verdict, Verdict::Pass, "{}", details(&o));
    assert_eq!(
        std::fs::read(&o.file).unwrap(),
        one,
        "the stored decision is the same bytes"
    );
    assert_eq!(f.integration_ref("refs/heads/staging"), r.tip);
    assert_eq!(
        f.integration_ref("refs/heads/main"),
        f.base,
        "main waits for a human"
    );
    // The agent branch is in the integration repository, fetched by the gate itself.
    assert_eq!(
        f.integration_ref(&format!("refs/heads/agent/FR-12/{RUN_A}")),
        r.tip
    );
}

#[test]
fn a_review_signed_with_codegens_key_is_rejected() {
    let f = fixture();
    let r = f.good_run(RUN_A);
    f.write_run(&r);
    let h = r.plan.hash().unwrap();
    let body = serde_json::json!({"iteration": 1, "commit": r.tip, "findings": []});
    // Codegen claims to be the security review, and signs as itself: both refused.
    for signer in [Signer::SecurityReview, Signer::Codegen] {
        let forged = f.sign("codegen", signer, RUN_A, "review", &h, (&r.tip, &body));
        std::fs::write(f.artifact(RUN_A, "review"), forged).unwrap();
        let o = f.gate().promote(RUN_A).unwrap();
        assert_eq!(o.decision.verdict, Verdict::Fail);
        assert!(
            failed(&o).contains(&"signatures".to_owned()),
            "{}",
            details(&o)
        );
        assert!(details(&o).contains("review:"), "{}", details(&o));
        assert_eq!(
            f.integration_ref("refs/heads/staging"),
            f.base,
            "staging did not move"
        );
    }
}

#[test]
fn an_altered_test_artifact_is_rejected() {
    let f = fixture();
    let r = f.good_run(RUN_A);
    f.write_run(&r);
    let path = f.artifact(RUN_A, "test_results");
    let mut env: DsseEnvelope = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut st: Statement = serde_json::from_slice(&b64.decode(&env.payload).unwrap()).unwrap();
    // A failing run turned into a passing one after signing.
    st.predicate.body["changed_lines_coverage_pct"] = serde_json::json!(99.0);
    env.payload = b64.encode(canonical::to_vec(&st).unwrap());
    std::fs::write(&path, canonical::to_vec(&env).unwrap()).unwrap();

    let o = f.gate().promote(RUN_A).unwrap();
    assert_eq!(o.decision.verdict, Verdict::Fail);
    assert!(
        failed(&o).contains(&"signatures".to_owned()),
        "{}",
        details(&o)
    );
    assert!(
        details(&o).contains("test_results: artifact signature does not verify"),
        "{}",
        details(&o)
    );
    assert_eq!(f.integration_ref("refs/heads/staging"), f.base);
}

#[test]
fn an_artifact_replayed_from_another_run_is_rejected() {
    let f = fixture();
    let a = f.good_run(RUN_A);
    f.write_run(&a);
    let b = f.good_run(RUN_B);
    f.write_run(&b);
    // B's clean, validly signed review is copied over A's.
    std::fs::copy(f.artifact(RUN_B, "review"), f.artifact(RUN_A, "review")).unwrap();
    let o = f.gate().promote(RUN_A).unwrap();
    assert_eq!(o.decision.verdict, Verdict::Fail);
    assert!(
        failed(&o).contains(&"plan_chain".to_owned()),
        "{}",
        details(&o)
    );
    assert!(
        details(&o).contains(&format!("belongs to run `{RUN_B}`")),
        "{}",
        details(&o)
    );
    assert_eq!(f.integration_ref("refs/heads/staging"), f.base);
}

#[test]
fn approval_by_a_non_approver_is_refused_and_an_approver_moves_main() {
    let f = fixture();
    let r = f.good_run(RUN_A);
    f.write_run(&r);
    let g = f.gate();
    assert_eq!(g.promote(RUN_A).unwrap().decision.verdict, Verdict::Pass);

    let refused = g.approve(RUN_A, &nobody()).unwrap();
    let last = refused.last().unwrap();
    assert_eq!(last.decision.verdict, Verdict::Fail);
    assert_eq!(
        failed(last),
        vec!["human_approval".to_owned()],
        "{}",
        details(last)
    );
    assert_eq!(
        f.integration_ref("refs/heads/main"),
        f.base,
        "main did not move"
    );

    let ok = g.approve(RUN_A, &root()).unwrap();
    let last = ok.last().unwrap();
    assert_eq!(last.decision.verdict, Verdict::Pass, "{}", details(last));
    assert_eq!(last.decision.actor.as_ref().unwrap().uid, root().uid);
    assert_eq!(f.integration_ref("refs/heads/main"), r.tip);
}

#[test]
fn a_non_fast_forward_promotion_is_refused() {
    let f = fixture();
    let a = f.good_run(RUN_A);
    f.write_run(&a);
    let g = f.gate();
    assert_eq!(g.promote(RUN_A).unwrap().decision.verdict, Verdict::Pass);
    // B starts from the old base too: staging (A's tip) is not an ancestor of B's tip.
    let b = f.good_run(RUN_B);
    f.write_run(&b);
    let o = g.promote(RUN_B).unwrap();
    assert_eq!(o.decision.verdict, Verdict::Fail);
    assert_eq!(
        failed(&o),
        vec!["fast_forward".to_owned()],
        "{}",
        details(&o)
    );
    assert_eq!(
        f.integration_ref("refs/heads/staging"),
        a.tip,
        "staging kept A"
    );
}

#[test]
fn rollback_restores_the_exact_previous_commits_and_keeps_the_agent_branch() {
    let f = fixture();
    let r = f.good_run(RUN_A);
    f.write_run(&r);
    let g = f.gate();
    g.promote(RUN_A).unwrap();
    g.approve(RUN_A, &root()).unwrap();
    assert_eq!(f.integration_ref("refs/heads/main"), r.tip);

    let refused = g.rollback(RUN_A, &nobody()).unwrap();
    assert!(refused
        .iter()
        .all(|o| o.decision.verdict == Verdict::Fail && o.moved.is_none()));
    assert_eq!(f.integration_ref("refs/heads/main"), r.tip);

    let done = g.rollback(RUN_A, &root()).unwrap();
    assert_eq!(done.len(), 2, "main and staging");
    assert!(done.iter().all(|o| o.decision.verdict == Verdict::Pass));
    assert_eq!(f.integration_ref("refs/heads/main"), f.base);
    assert_eq!(f.integration_ref("refs/heads/staging"), f.base);
    assert_eq!(
        f.integration_ref(&format!("refs/heads/agent/FR-12/{RUN_A}")),
        r.tip
    );
    // Twice is nothing to do.
    assert!(matches!(
        g.rollback(RUN_A, &root()),
        Err(gate::ActionError::NothingToRollBack(_))
    ));
    let receipt = gate::receipt::build(&g, RUN_A, None).unwrap();
    assert_eq!(receipt.status, "rolled back");
}

#[test]
fn a_protected_path_or_an_unmarked_commit_fails_the_gate() {
    let f = fixture();
    let msg = format!("tweak\n\nplan_id=plan-{RUN_A} iteration=1");
    let mut r = f.agent_commit(
        RUN_A,
        &f.base.clone(),
        &[("roles.yaml", "approvers: [mallory]\n")],
        &msg,
    );
    r.plan.targets.push("roles.yaml".into());
    f.write_run(&r);
    let o = f.gate().promote(RUN_A).unwrap();
    assert_eq!(
        failed(&o),
        vec!["protected_paths".to_owned()],
        "{}",
        details(&o)
    );

    let r = f.agent_commit(
        RUN_B,
        &f.base.clone(),
        &[("src/lib.rs", "// x\n")],
        "no marker",
    );
    f.write_run(&r);
    let o = f.gate().promote(RUN_B).unwrap();
    assert_eq!(
        failed(&o),
        vec!["commit_messages".to_owned()],
        "{}",
        details(&o)
    );
}

#[test]
fn a_high_risk_run_is_held_until_an_approver_approves_and_a_rejected_run_never_moves() {
    let f = fixture();
    let mut r = f.good_run(RUN_A);
    r.plan.risk_class = protocol::fr::RiskClass::High;
    f.write_run(&r);
    let g = f.gate();
    let o = g.promote(RUN_A).unwrap();
    assert_eq!(o.decision.verdict, Verdict::Hold, "{}", details(&o));
    assert_eq!(f.integration_ref("refs/heads/staging"), f.base);
    let out = g.approve(RUN_A, &root()).unwrap();
    assert_eq!(out.len(), 2, "staging then main");
    assert_eq!(f.integration_ref("refs/heads/staging"), r.tip);
    assert_eq!(f.integration_ref("refs/heads/main"), r.tip);

    let b = f.agent_commit(
        RUN_B,
        &r.tip,
        &[(
            "src/lib.rs",
            "pub fn add(a: u32, b: u32) -> u32 { b + a }\n",
        )],
        &format!("swap\n\nplan_id=plan-{RUN_B} iteration=1"),
    );
    f.write_run(&b);
    assert_eq!(
        g.reject(RUN_B, &root(), "not wanted")
            .unwrap()
            .decision
            .verdict,
        Verdict::Pass
    );
    let o = g.promote(RUN_B).unwrap();
    assert_eq!(
        failed(&o),
        vec!["not_rejected".to_owned()],
        "{}",
        details(&o)
    );
    assert_eq!(f.integration_ref("refs/heads/staging"), r.tip);
}

#[test]
fn the_receipt_is_signed_by_the_gate_and_lists_changes_checks_and_uncertainty() {
    let f = fixture();
    let r = f.good_run(RUN_A);
    f.write_run(&r);
    let g = f.gate();
    g.promote(RUN_A).unwrap();
    let receipt = gate::receipt::build(&g, RUN_A, Some("7:abcd")).unwrap();
    assert_eq!(receipt.head.as_deref(), Some(r.tip.as_str()));
    assert_eq!(receipt.changed.len(), 1);
    assert_eq!(receipt.diffstat.added, 1);
    assert!(receipt.validated.iter().any(|c| c.name == "signatures"));
    assert!(
        receipt
            .uncertain
            .iter()
            .any(|u| u.contains("manifest.json")),
        "{:?}",
        receipt.uncertain
    );
    let text = gate::receipt::render(&receipt);
    for s in [
        "what changed",
        "what was validated",
        "what remains uncertain",
        "src/lib.rs +1 -1",
    ] {
        assert!(text.contains(s), "{s} in\n{text}");
    }
    let bytes = gate::receipt::sign(&g, &receipt).unwrap();
    assert_eq!(
        bytes,
        gate::receipt::sign(&g, &receipt).unwrap(),
        "deterministic"
    );
    let env: DsseEnvelope = serde_json::from_slice(&bytes).unwrap();
    let key = PublicKey::read(&f.state.join("keys/gate/ed25519.pub")).unwrap();
    let st = verify_signature(&env, &key).unwrap();
    assert_eq!(st.predicate.kind, "receipt");
    assert_eq!(st.predicate.role, Signer::Gate);
    assert_eq!(
        st.subject[0].digest.git_commit.as_deref(),
        Some(r.tip.as_str())
    );
    // Another role's key does not verify it.
    let codegen = PublicKey::read(&f.state.join("keys/codegen/ed25519.pub")).unwrap();
    assert!(verify_signature(&env, &codegen).is_err());
}

#[test]
fn weaker_mode_per_run_keys_and_a_weaker_manifest_are_listed_as_uncertain() {
    let f = fixture();
    let r = f.good_run(RUN_A);
    f.write_run(&r);
    // No `orchestrate setup`: role keys live in the run directory, and there is no gate key.
    for label in fixture::LABELS {
        let from = f.state.join("keys").join(label);
        if label == "gate" {
            std::fs::remove_dir_all(&from).unwrap();
        } else {
            let to = f.run_dir(RUN_A).join("keys").join(label);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::rename(&from, &to).unwrap();
        }
    }
    std::fs::write(
        f.run_dir(RUN_A).join("manifest.json"),
        r#"{"containment":{"mode":"weaker","layers_live":["mount"],"layers_missing":["seccomp"]}}"#,
    )
    .unwrap();
    let g = f.gate();
    let o = g.promote(RUN_A).unwrap();
    assert_eq!(o.decision.verdict, Verdict::Pass, "{}", details(&o));
    assert!(o
        .decision
        .uncertain
        .iter()
        .any(|u| u.contains("per-run keys")));
    // The gate made itself a per-run key and its decisions verify under it.
    assert!(f.run_dir(RUN_A).join("keys/gate/ed25519.pub").is_file());
    let receipt = gate::receipt::build(&g, RUN_A, None).unwrap();
    let all = receipt.uncertain.join("\n");
    for s in [
        "per-run key",
        "containment.mode = \"weaker\"",
        "layers_missing = [\"seccomp\"]",
    ] {
        assert!(all.contains(s), "{s} in\n{all}");
    }
}

#[test]
fn a_formatting_only_change_goes_to_main_only_when_the_policy_says_so() {
    let me = Caller::current().user.unwrap_or_else(|| "root".into());
    let roles = fixture::ROLES.replace("approvers: [root]", &format!("approvers: [{me}]"));
    let f = Fixture::with_seed(
        &roles,
        &[("orchestrate-gate.yaml", "auto_promote_formatting: true\n")],
    );
    let msg = format!("fmt\n\nplan_id=plan-{RUN_A} iteration=1");
    let spaced = "pub fn add(a: u32, b: u32) -> u32  {  a }\n";
    let r = f.agent_commit(RUN_A, &f.base.clone(), &[("src/lib.rs", spaced)], &msg);
    f.write_run(&r);
    let out = f.gate().promote_run(RUN_A).unwrap();
    assert_eq!(out.len(), 2, "staging, then main");
    assert_eq!(
        out[1].decision.verdict,
        Verdict::Pass,
        "{}",
        details(&out[1])
    );
    assert!(out[1].decision.actor.is_none(), "no human");
    assert_eq!(f.integration_ref("refs/heads/main"), r.tip);

    // Twin: a real change under the same policy stops at staging.
    let b = f.agent_commit(
        RUN_B,
        &r.tip,
        &[(
            "src/lib.rs",
            "pub fn add(a: u32, b: u32) -> u32 { a + b }\n",
        )],
        &format!("fix\n\nplan_id=plan-{RUN_B} iteration=1"),
    );
    f.write_run(&b);
    let out = f.gate().promote_run(RUN_B).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(f.integration_ref("refs/heads/staging"), b.tip);
    assert_eq!(f.integration_ref("refs/heads/main"), r.tip);
}

#[test]
fn a_run_from_a_base_the_gate_never_saw_is_refused_before_deciding() {
    let f = fixture();
    // The engineer committed locally; the run starts there, not from the integration main.
    let local = f.agent_commit(
        "local",
        &f.base.clone(),
        &[("README", "local\n")],
        "local work",
    );
    let r = f.agent_commit(
        RUN_A,
        &local.tip,
        &[(
            "src/lib.rs",
            "pub fn add(a: u32, b: u32) -> u32 { a + b }\n",
        )],
        &format!("fix\n\nplan_id=plan-{RUN_A} iteration=1"),
    );
    let r = fixture::Run {
        base: local.tip.clone(),
        ..r
    };
    f.write_run(&r);
    let err = f.gate().promote(RUN_A).unwrap_err();
    assert!(
        matches!(err, gate::ActionError::BaseNotIntegrated { .. }),
        "{err}"
    );
    assert_eq!(f.integration_ref("refs/heads/staging"), f.base);
}

#[test]
fn each_threshold_check_fails_on_its_own_evidence() {
    use protocol::artifact::Signer as S;
    use serde_json::json;
    let f = fixture();
    let r = f.good_run(RUN_A);
    let tests = |cov: f64, status: &str| {
        json!({"iteration": 1, "commit": r.tip,
            "commands": [{"command": "cargo test", "exit_code": 0, "duration_ms": 10,
                          "output_sha256": "00".repeat(32)}],
            "tests": [{"name": "adds", "command": "cargo test", "status": status}],
            "changed_lines_coverage_pct": cov})
    };
    let finding = json!({"rule_id": "secret.aws-key", "severity": "high", "file": "src/lib.rs",
        "line": 1, "message": "an AWS key", "evidence_sha256": "ab".repeat(32)});
    let cases: Vec<(&str, &str, S, serde_json::Value, &str)> = vec![
        (
            "test_results",
            "test-runner",
            S::TestRunner,
            tests(50.0, "passed"),
            "coverage",
        ),
        (
            "test_results",
            "test-runner",
            S::TestRunner,
            tests(100.0, "failed"),
            "acceptance_tests",
        ),
        (
            "review",
            "security-review",
            S::SecurityReview,
            json!({"iteration": 1, "commit": r.tip, "findings": [finding]}),
            "review_findings",
        ),
        (
            "progress",
            "progress-evaluator",
            S::ProgressEvaluator,
            json!({"iteration": 1, "progressed": true, "score": 0.5, "done": false, "reason": "not yet"}),
            "progress_done",
        ),
        (
            "ledger",
            "cost-control",
            S::CostControl,
            json!({"requests": 9, "tokens_in": 1, "tokens_out": 1, "spent_usd": 6.0, "limit_usd": 10.0}),
            "budget",
        ),
    ];
    let h = r.plan.hash().unwrap();
    for (kind, label, signer, body, check) in cases {
        f.write_run(&r);
        let bytes = f.sign(label, signer, RUN_A, kind, &h, (&r.tip, &body));
        std::fs::write(f.artifact(RUN_A, kind), bytes).unwrap();
        let d = gate::decide(&f.gate().promotion_inputs(RUN_A).unwrap());
        let failed: Vec<&str> = d.failed();
        assert_eq!(failed, vec![check], "{kind}: {:?}", d.checks);
    }
    // A missing review.
    f.write_run(&r);
    std::fs::remove_file(f.artifact(RUN_A, "review")).unwrap();
    let d = gate::decide(&f.gate().promotion_inputs(RUN_A).unwrap());
    assert!(d.failed().contains(&"artifacts_present"), "{:?}", d.checks);
    assert_eq!(d.verdict, Verdict::Fail);
}
