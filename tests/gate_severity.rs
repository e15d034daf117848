//! roles.yaml `severity_policy` applied by the gate: a finding whose action is `block` fails the
//! promotion, `human` holds it until an approver lifts the hold, `note` lets it pass and is listed
//! in the receipt. Per-rule overrides win over the severity's action.

// Test harness: a failed setup step must panic where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gate_fixture.rs"]
mod fixture;

use fixture::{details, failed, Fixture};
use gate::decision::{CheckStatus, Verdict};
use gate::identity::Caller;
use serde_json::json;

const RUN: &str = "FR-12-20261123T120000-cccc";

fn fixture_with(policy_edit: Option<(&str, &str)>) -> Fixture {
    let me = Caller::current();
    let name = me.user.clone().unwrap_or_else(|| "root".into());
    let mut roles = fixture::ROLES.replace("approvers: [root]", &format!("approvers: [{name}]"));
    if let Some((from, to)) = policy_edit {
        assert!(roles.contains(from), "fixture drifted: {from}");
        roles = roles.replacen(from, to, 1);
    }
    Fixture::with_roles(&roles)
}

fn finding(rule: &str, severity: &str) -> serde_json::Value {
    json!({"rule_id": rule, "severity": severity, "file": "Cargo.toml", "line": 7,
        "message": "a dependency changed", "evidence_sha256": "cd".repeat(32)})
}

/// A good run whose signed review carries `findings`.
fn run_with_findings(f: &Fixture, findings: Vec<serde_json::Value>) -> fixture::Run {
    let r = f.good_run(RUN);
    f.write_run(&r);
    let body = json!({"iteration": 1, "commit": r.tip, "findings": findings});
    let bytes = f.sign(
        "security-review",
        protocol::artifact::Signer::SecurityReview,
        RUN,
        "review",
        &r.plan.hash().unwrap(),
        (&r.tip, &body),
    );
    std::fs::write(f.artifact(RUN, "review"), bytes).unwrap();
    r
}

fn review_check(o: &gate::Outcome) -> gate::decision::Check {
    o.decision
        .checks
        .iter()
        .find(|c| c.name == "review_findings")
        .cloned()
        .unwrap()
}

#[test]
fn a_major_bump_is_held_for_a_human_and_an_approver_lifts_the_hold() {
    let f = fixture_with(None);
    let r = run_with_findings(&f, vec![finding("ORC-DEP-BUMP-MAJOR", "medium")]);
    let g = f.gate();
    let o = g.promote(RUN).unwrap();
    assert_eq!(o.decision.verdict, Verdict::Hold, "{}", details(&o));
    let reason = o.decision.reason.clone().unwrap();
    assert!(
        reason.contains("need a human") && reason.contains("ORC-DEP-BUMP-MAJOR in Cargo.toml:7"),
        "{reason}"
    );
    let c = review_check(&o);
    assert_eq!(c.status, CheckStatus::Pass);
    assert!(
        c.evidence["human.001"].contains("ORC-DEP-BUMP-MAJOR"),
        "{c:?}"
    );
    assert_eq!(
        f.integration_ref("refs/heads/staging"),
        f.base,
        "nothing moved"
    );
    // A non-approver cannot lift it; an approver can.
    let refused = g.approve(RUN, &Caller::from_uid(65534, 0)).unwrap();
    assert!(
        refused.iter().all(|o| o.decision.verdict != Verdict::Pass),
        "{:?}",
        refused
            .iter()
            .map(|o| o.decision.verdict)
            .collect::<Vec<_>>()
    );
    assert_eq!(f.integration_ref("refs/heads/staging"), f.base);
    let out = g.approve(RUN, &Caller::current()).unwrap();
    assert_eq!(out.len(), 2, "staging then main");
    assert_eq!(f.integration_ref("refs/heads/staging"), r.tip);
    assert_eq!(f.integration_ref("refs/heads/main"), r.tip);
}

#[test]
fn a_note_passes_and_is_listed_in_the_receipt() {
    let f = fixture_with(None);
    let r = run_with_findings(
        &f,
        vec![
            finding("ORC-DEP-REMOVED", "info"),
            finding("ORC-DEP-BUMP-MINOR", "low"),
        ],
    );
    let g = f.gate();
    let o = g.promote(RUN).unwrap();
    assert_eq!(o.decision.verdict, Verdict::Pass, "{}", details(&o));
    assert_eq!(f.integration_ref("refs/heads/staging"), r.tip);
    let c = review_check(&o);
    assert!(c.evidence["note.001"].contains("ORC-DEP-REMOVED"), "{c:?}");
    assert!(
        c.evidence["note.002"].contains("ORC-DEP-BUMP-MINOR"),
        "{c:?}"
    );
    assert_eq!(c.evidence["severity_policy"], "0 block, 0 human, 2 note");
    let text = gate::receipt::render(&gate::receipt::build(&g, RUN, None).unwrap());
    assert!(
        text.contains("note.001: Info finding ORC-DEP-REMOVED in Cargo.toml:7"),
        "{text}"
    );
}

#[test]
fn block_by_severity_fails_and_a_rule_override_wins_over_its_severity() {
    // medium: block, but ORC-DEP-BUMP-MAJOR (medium) keeps its per-rule `human`.
    let f = fixture_with(Some(("  medium: note\n", "  medium: block\n")));
    run_with_findings(&f, vec![finding("ORC-DEP-PRERELEASE", "medium")]);
    let o = f.gate().promote(RUN).unwrap();
    assert_eq!(
        failed(&o),
        vec!["review_findings".to_owned()],
        "{}",
        details(&o)
    );
    assert_eq!(f.integration_ref("refs/heads/staging"), f.base);

    let f = fixture_with(Some(("  medium: note\n", "  medium: block\n")));
    run_with_findings(&f, vec![finding("ORC-DEP-BUMP-MAJOR", "medium")]);
    let o = f.gate().promote(RUN).unwrap();
    assert_eq!(o.decision.verdict, Verdict::Hold, "{}", details(&o));
}

#[test]
fn the_same_medium_finding_without_an_override_is_only_a_note() {
    // The twin of the hold: drop the override and the major bump no longer waits for anyone.
    let f = fixture_with(Some((
        "    - { rule: ORC-DEP-BUMP-MAJOR, action: human }\n",
        "",
    )));
    let r = run_with_findings(&f, vec![finding("ORC-DEP-BUMP-MAJOR", "medium")]);
    let o = f.gate().promote(RUN).unwrap();
    assert_eq!(o.decision.verdict, Verdict::Pass, "{}", details(&o));
    assert_eq!(f.integration_ref("refs/heads/staging"), r.tip);
}
