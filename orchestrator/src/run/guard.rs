//! Guardrails as pure functions: what the orchestrator checks on a candidate change and on the
//! planner's plan before anything is committed or run.

use globset::{Glob, GlobSetBuilder};
use protocol::plan::WorkPlan;
use protocol::StopCode;

use crate::git::Change;

/// A guardrail that tripped: the stop code and what exactly crossed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tripped {
    /// The stop code.
    pub code: StopCode,
    /// Details for the stop event and the terminal.
    pub detail: String,
}

/// Checks the cumulative changes of a candidate against the plan: every path must be a declared
/// target (else STOP_SCOPE_EXCEEDED) and there may be at most `file_cap` of them (STOP_FILE_CAP).
/// The cap is checked first: it is a count, and an agent that wrote a thousand files should be
/// told that, not handed a thousand-name list.
pub fn check_changes(plan: &WorkPlan, changes: &[Change]) -> Result<(), Tripped> {
    let cap = usize::try_from(plan.file_cap).unwrap_or(usize::MAX);
    if changes.len() > cap {
        return Err(Tripped {
            code: StopCode::FileCap,
            detail: format!(
                "{} files changed, the plan allows {}",
                changes.len(),
                plan.file_cap
            ),
        });
    }
    let outside: Vec<&str> = changes
        .iter()
        .map(|c| c.path.as_str())
        .filter(|p| !plan.targets.iter().any(|t| t == p))
        .collect();
    if !outside.is_empty() {
        return Err(Tripped {
            code: StopCode::ScopeExceeded,
            detail: format!(
                "changed outside the declared targets: {}",
                outside.join(", ")
            ),
        });
    }
    Ok(())
}

/// One target the drift repair removed from a plan, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    /// The target.
    pub target: String,
    /// Why it was dropped.
    pub reason: String,
}

/// Drift repair: narrows the plan's targets back to the FR's scope (its `paths.outputs` globs)
/// minus the protected paths, and removes expected changes of dropped targets. Returns what was
/// dropped; the caller records it before anything runs.
pub fn narrow_to_scope(
    plan: &mut WorkPlan,
    outputs: &[String],
    protected: &[String],
) -> Vec<Dropped> {
    let build = |globs: &[String]| {
        let mut b = GlobSetBuilder::new();
        for g in globs {
            if let Ok(glob) = Glob::new(g) {
                b.add(glob);
            }
        }
        b.build().ok()
    };
    let scope = build(outputs);
    let guard = build(protected);
    let mut dropped = Vec::new();
    plan.targets.retain(|t| {
        let in_scope = scope.as_ref().is_some_and(|s| s.is_match(t));
        let is_protected = guard.as_ref().is_some_and(|s| s.is_match(t));
        let reason = if !in_scope {
            Some("outside the FR's paths.outputs")
        } else if is_protected {
            Some("a protected path (roles.yaml protected_paths)")
        } else {
            None
        };
        match reason {
            Some(r) => {
                dropped.push(Dropped {
                    target: t.clone(),
                    reason: r.to_owned(),
                });
                false
            }
            None => true,
        }
    });
    let targets = plan.targets.clone();
    plan.expected_changes.retain(|c| targets.contains(&c.path));
    dropped
}

/// Checks that the plan is no looser than the run's effective limits (a planner cannot raise a
/// cap): returns the first field that is.
pub fn looser_than(
    plan: &WorkPlan,
    limits: &protocol::fr::FrLimits,
    cost_usd: f64,
) -> Option<String> {
    let checks = [
        (
            "iteration_cap",
            u64::from(plan.iteration_cap),
            u64::from(limits.iterations),
        ),
        (
            "no_progress_cap",
            u64::from(plan.no_progress_cap),
            u64::from(limits.no_progress),
        ),
        (
            "tool_call_cap",
            u64::from(plan.tool_call_cap),
            u64::from(limits.tool_calls),
        ),
        (
            "file_cap",
            u64::from(plan.file_cap),
            u64::from(limits.files),
        ),
        (
            "runtime_seconds",
            plan.runtime_seconds,
            limits.runtime_seconds,
        ),
    ];
    for (field, plan_value, limit) in checks {
        if plan_value > limit {
            return Some(format!("{field} {plan_value} > effective limit {limit}"));
        }
    }
    (plan.budget.limits.per_run_usd > cost_usd).then(|| {
        format!(
            "budget.limits.per_run_usd {} > effective limit {cost_usd}",
            plan.budget.limits.per_run_usd
        )
    })
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
