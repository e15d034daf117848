//! The deterministic planner: WORK_PLAN from the FR, no model. Targets are the FR's literal
//! output paths (a glob cannot name the file a change will create); every cap is the run's
//! effective limit, so the plan is never looser than FR, config.yaml or roles.yaml.

use protocol::canonical::{self, tagged_hash};
use protocol::plan::{
    BranchPolicy, BudgetLimits, ChangeKind, ExpectedChange, PlanBudget, PlannedTest,
    PromotionPolicy, SecurityGatePolicy, Severity, WorkPlan,
};
use protocol::StopCode;

use super::input::PlannerInput;

/// Whether a path pattern has glob syntax (and so cannot be a declared target).
pub fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '[', '{'])
}

/// The plan for `input`. `exists` says whether a repository path exists at the base commit.
pub fn plan(input: &PlannerInput, exists: &dyn Fn(&str) -> bool) -> WorkPlan {
    let fr = &input.fr;
    let targets: Vec<String> = fr
        .paths
        .outputs
        .iter()
        .filter(|p| !is_glob(p))
        .cloned()
        .collect();
    let expected_changes = targets
        .iter()
        .map(|t| ExpectedChange {
            path: t.clone(),
            change: if exists(t) {
                ChangeKind::Modify
            } else {
                ChangeKind::Create
            },
            description: format!("{}: {}", fr.id, fr.title),
        })
        .collect();
    let seed = canonical::to_vec(&(&input.run_id, fr)).unwrap_or_default();
    let plan_id = format!(
        "plan-{}",
        &tagged_hash("orchestrate/plan-id/v1", &[&seed]).to_hex()[..12]
    );
    let limits = input.limits;
    let mut stop_conditions: Vec<StopCode> = StopCode::MANDATORY.to_vec();
    stop_conditions.extend([
        StopCode::ScopeExceeded,
        StopCode::IterationCap,
        StopCode::ToolCallCap,
        StopCode::FileCap,
        StopCode::RoleCrashed,
        StopCode::Human,
        StopCode::ForbiddenMessage,
        StopCode::ProtocolViolation,
    ]);
    WorkPlan {
        plan_id,
        fr_ids: vec![fr.id.clone()],
        targets,
        expected_changes,
        risk_class: fr.risk,
        coverage_min_pct: fr.coverage.as_ref().map_or(0, |c| c.changed_lines_min_pct),
        iteration_cap: limits.iterations,
        no_progress_cap: limits.no_progress.min(limits.iterations),
        tool_call_cap: limits.tool_calls,
        file_cap: limits.files,
        runtime_seconds: limits.runtime_seconds,
        budget: PlanBudget {
            limits: BudgetLimits {
                per_request_usd: input.per_request_usd.min(input.cost_usd),
                per_run_usd: input.cost_usd,
            },
            warn_pct: input.warn_pct,
            escalate_pct: input.escalate_pct,
            stop_pct: input.stop_pct,
        },
        branch: BranchPolicy {
            agent_branch: input.agent_branch.clone(),
            promotion: PromotionPolicy {
                staging_branch: "staging".into(),
                main_branch: "main".into(),
                fast_forward_only: true,
                require_human_approval: true,
            },
        },
        security_gate: SecurityGatePolicy {
            block_severities: vec![Severity::Critical, Severity::High],
        },
        stop_conditions,
        test_commands: input.test_commands.clone(),
        acceptance_tests: fr
            .acceptance
            .iter()
            .map(|a| PlannedTest {
                criterion: a.id.clone(),
                test: a.test.clone(),
            })
            .collect(),
    }
}
