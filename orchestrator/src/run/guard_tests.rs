use super::*;
use crate::git::ChangeKind;
use protocol::plan::{
    BranchPolicy, BudgetLimits, ChangeKind as PlanChange, ExpectedChange, PlanBudget,
    PromotionPolicy, SecurityGatePolicy,
};

fn plan(targets: &[&str], file_cap: u32) -> WorkPlan {
    WorkPlan {
        plan_id: "p".into(),
        fr_ids: vec!["FR-1".into()],
        targets: targets.iter().map(|s| (*s).into()).collect(),
        expected_changes: targets
            .iter()
            .map(|t| ExpectedChange {
                path: (*t).into(),
                change: PlanChange::Modify,
                description: String::new(),
            })
            .collect(),
        risk_class: protocol::fr::RiskClass::Low,
        coverage_min_pct: 0,
        iteration_cap: 3,
        no_progress_cap: 2,
        tool_call_cap: 10,
        file_cap,
        runtime_seconds: 60,
        budget: PlanBudget {
            limits: BudgetLimits {
                per_request_usd: 0.1,
                per_run_usd: 1.0,
            },
            warn_pct: 70,
            escalate_pct: 90,
            stop_pct: 100,
        },
        branch: BranchPolicy {
            agent_branch: "agent/FR-1/r".into(),
            promotion: PromotionPolicy {
                staging_branch: "staging".into(),
                main_branch: "main".into(),
                fast_forward_only: true,
                require_human_approval: true,
            },
        },
        security_gate: SecurityGatePolicy {
            block_severities: vec![],
        },
        stop_conditions: vec![],
        test_commands: vec!["cargo test".into()],
        acceptance_tests: vec![],
    }
}

fn change(p: &str) -> Change {
    Change {
        path: p.into(),
        kind: ChangeKind::Modified,
    }
}

#[test]
fn a_file_outside_the_targets_is_scope_exceeded() {
    let e = check_changes(
        &plan(&["src/a.rs"], 5),
        &[change("src/a.rs"), change("Cargo.toml")],
    )
    .unwrap_err();
    assert_eq!(e.code, StopCode::ScopeExceeded);
    assert!(e.detail.contains("Cargo.toml"), "{}", e.detail);
}

#[test]
fn more_files_than_the_cap_is_file_cap() {
    let e = check_changes(
        &plan(&["a", "b", "c"], 2),
        &[change("a"), change("b"), change("c")],
    )
    .unwrap_err();
    assert_eq!(e.code, StopCode::FileCap);
    assert!(check_changes(&plan(&["a", "b"], 2), &[change("a"), change("b")]).is_ok());
}

#[test]
fn drift_repair_drops_out_of_scope_and_protected_targets_and_their_changes() {
    let mut p = plan(&["src/slug.rs", "build.rs", "roles.yaml"], 5);
    let dropped = narrow_to_scope(
        &mut p,
        &["src/**".into(), "roles.yaml".into()],
        &["roles.yaml".into()],
    );
    assert_eq!(p.targets, vec!["src/slug.rs".to_string()]);
    assert_eq!(p.expected_changes.len(), 1);
    let names: Vec<&str> = dropped.iter().map(|d| d.target.as_str()).collect();
    assert_eq!(names, vec!["build.rs", "roles.yaml"]);
}

#[test]
fn a_plan_looser_than_the_limits_is_named() {
    let p = plan(&["a"], 9);
    let limits = protocol::fr::FrLimits {
        cost_usd: 1.0,
        runtime_seconds: 60,
        iterations: 3,
        no_progress: 2,
        files: 6,
        tool_calls: 10,
    };
    assert_eq!(
        looser_than(&p, &limits, 1.0).as_deref(),
        Some("file_cap 9 > effective limit 6")
    );
    let p = plan(&["a"], 6);
    assert_eq!(looser_than(&p, &limits, 1.0), None);
}
