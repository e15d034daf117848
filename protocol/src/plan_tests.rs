use super::*;

fn plan() -> WorkPlan {
    serde_json::from_value(serde_json::json!({
        "plan_id": "plan-FR-12-1",
        "fr_ids": ["FR-12"],
        "targets": ["src/slug.rs", "src/lib.rs", "tests/slug.rs"],
        "expected_changes": [
            {"path": "src/slug.rs", "change": "create", "description": "slugify"},
            {"path": "src/lib.rs", "change": "modify", "description": "export it"}
        ],
        "risk_class": "low",
        "coverage_min_pct": 80,
        "iteration_cap": 3,
        "no_progress_cap": 2,
        "tool_call_cap": 100,
        "file_cap": 6,
        "runtime_seconds": 600,
        "budget": {"limits": {"per_request_usd": 0.5, "per_run_usd": 2.0}, "warn_pct": 70, "escalate_pct": 90, "stop_pct": 100},
        "branch": {"agent_branch": "agent/FR-12/run", "promotion": {"staging_branch": "staging", "main_branch": "main", "fast_forward_only": true, "require_human_approval": true}},
        "security_gate": {"block_severities": ["critical", "high"]},
        "stop_conditions": StopCode::MANDATORY,
        "test_commands": ["cargo test"],
        "acceptance_tests": [{"criterion": "AC-1", "test": {"command": "cargo test", "name": "slug_joins_words"}}]
    }))
    .unwrap()
}

#[test]
fn a_complete_plan_is_valid_and_hashes_stably() {
    let p = plan();
    p.validate().unwrap();
    assert_eq!(p.hash().unwrap(), plan().hash().unwrap());
    let mut q = plan();
    q.iteration_cap = 2;
    assert_ne!(
        p.hash().unwrap(),
        q.hash().unwrap(),
        "every field is inside the hash"
    );
}

#[test]
fn the_hash_is_domain_separated() {
    let p = plan();
    let plain = crate::canonical::sha256(&crate::canonical::to_vec(&p).unwrap());
    assert_ne!(p.hash().unwrap(), plain);
}

fn invalid(edit: impl FnOnce(&mut WorkPlan)) -> String {
    let mut p = plan();
    edit(&mut p);
    p.validate().unwrap_err().to_string()
}

#[test]
fn unsafe_or_inconsistent_plans_are_refused() {
    assert!(invalid(|p| p.targets.push("../etc/passwd".into())).starts_with("targets"));
    assert!(invalid(|p| p.targets.push("/etc/passwd".into())).contains("/etc/passwd"));
    assert!(invalid(|p| p.expected_changes[0].path = "README.md".into())
        .starts_with("expected_changes[0].path"));
    assert!(invalid(|p| p.file_cap = 2).contains("file_cap"));
    assert!(invalid(|p| p.iteration_cap = 0).contains("iteration_cap"));
    assert!(invalid(|p| p.no_progress_cap = 9).starts_with("no_progress_cap"));
    assert!(invalid(|p| p.branch.agent_branch = "main".into()).starts_with("branch.agent_branch"));
    assert!(invalid(|p| p.branch.promotion.fast_forward_only = false).contains("fast_forward_only"));
    assert!(
        invalid(|p| p.branch.promotion.require_human_approval = false)
            .contains("require_human_approval")
    );
    assert!(
        invalid(|p| p.security_gate.block_severities = vec![Severity::Critical])
            .starts_with("security_gate")
    );
    assert!(
        invalid(|p| p.stop_conditions.retain(|c| *c != StopCode::NoProgress))
            .starts_with("stop_conditions")
    );
    assert!(invalid(|p| p.test_commands.clear()).starts_with("test_commands"));
    assert!(invalid(|p| p.fr_ids = vec!["12".into()]).starts_with("fr_ids[0]"));
    assert!(invalid(|p| p.budget.warn_pct = 95).starts_with("budget"));
}

#[test]
fn unknown_fields_are_refused() {
    let mut v = serde_json::to_value(plan()).unwrap();
    v["skip_review"] = serde_json::json!(true);
    assert!(serde_json::from_value::<WorkPlan>(v).is_err());
}

#[test]
fn clean_relative_paths() {
    for ok in ["a", "src/lib.rs", "a/b/c.txt"] {
        assert!(is_clean_relative_path(ok), "{ok}");
    }
    for bad in ["", "/a", "a/../b", "./a", "a//b", "a/", ".."] {
        assert!(!is_clean_relative_path(bad), "{bad}");
    }
}
