//! Checks over the commit range, from facts the gate read from git itself: it recomputes the
//! changed files instead of trusting the review's or the orchestrator's list.

use protocol::plan::WorkPlan;
use protocol::roles::ProtectedPaths;

use crate::decision::Check;
use crate::inputs::GateInputs;

/// No changed path (before or after, a rename being a delete plus an add) matches roles.yaml
/// `protected_paths`.
pub(crate) fn protected_paths(inputs: &GateInputs) -> Check {
    let mut c = Check::new("protected_paths");
    c.with("patterns", inputs.protected_paths.join(","));
    c.with("changed_files", inputs.git.changed.len().to_string());
    let set = match ProtectedPaths::new(&inputs.protected_paths) {
        Ok(s) => s,
        Err(e) => {
            c.fail(format!("protected path patterns do not compile: {e}"));
            return c;
        }
    };
    for f in &inputs.git.changed {
        if set.is_protected(&f.path) {
            c.fail(format!("{} ({}) is a protected path", f.path, f.status));
        }
    }
    c
}

/// Every changed file is one of the plan's declared targets.
pub(crate) fn declared_targets(inputs: &GateInputs, plan: Option<&WorkPlan>) -> Check {
    let mut c = Check::new("declared_targets");
    let Some(plan) = plan else {
        c.fail("needs a verified plan");
        return c;
    };
    c.with("targets", plan.targets.join(","));
    for f in &inputs.git.changed {
        if !plan.targets.iter().any(|t| t == &f.path) {
            c.fail(format!("{} is not a declared target", f.path));
        }
    }
    if inputs.git.changed.len() > plan.file_cap as usize {
        c.fail(format!(
            "{} files changed, the plan allows {}",
            inputs.git.changed.len(),
            plan.file_cap
        ));
    }
    c
}

/// Every commit between the protected ref and the tip says which plan and iteration made it.
pub(crate) fn commit_messages(inputs: &GateInputs, plan: Option<&WorkPlan>) -> Check {
    let mut c = Check::new("commit_messages");
    let Some(plan) = plan else {
        c.fail("needs a verified plan");
        return c;
    };
    c.with("commits", inputs.git.commits.len().to_string());
    if inputs.git.commits.is_empty() {
        c.fail("no commit to promote");
    }
    for commit in &inputs.git.commits {
        let id_ok = commit
            .message
            .split_whitespace()
            .any(|w| w.strip_prefix("plan_id=") == Some(plan.plan_id.as_str()));
        let iteration = commit
            .message
            .split_whitespace()
            .find_map(|w| w.strip_prefix("iteration="))
            .and_then(|n| n.parse::<u32>().ok());
        if !id_ok {
            c.fail(format!("{} lacks plan_id={}", commit.id, plan.plan_id));
        }
        match iteration {
            Some(n) if n >= 1 && n <= plan.iteration_cap => {}
            Some(n) => {
                c.fail(format!(
                    "{} has iteration={n}, outside 1..={}",
                    commit.id, plan.iteration_cap
                ));
            }
            None => {
                c.fail(format!("{} lacks iteration=<n>", commit.id));
            }
        }
        c.with(&format!("commit.{}", commit.id), "");
    }
    c
}

/// The target ref can move to the tip without losing anything (never force).
pub(crate) fn fast_forward(inputs: &GateInputs) -> Check {
    let mut c = Check::new("fast_forward");
    c.with("ref", inputs.git.target_ref.clone());
    c.with("old", inputs.git.old.clone());
    c.with("new", inputs.git.new.clone());
    if !inputs.git.fast_forward {
        c.fail(format!(
            "{} is not an ancestor of {}: not a fast-forward",
            inputs.git.old, inputs.git.new
        ));
    } else if inputs.git.old == inputs.git.new {
        c.fail("nothing to promote: the ref is already there");
    }
    c
}

/// staging → main: an approver the OS vouches for, a run already on staging, not rejected.
pub(crate) fn approval(inputs: &GateInputs) -> Check {
    let mut c = Check::new("human_approval");
    let Some(a) = &inputs.approval else {
        c.fail("no approval facts");
        return c;
    };
    c.with("uid", a.actor.uid.to_string());
    c.with("user", a.actor.user.clone().unwrap_or_default());
    if !a.listed {
        c.fail(format!(
            "uid {} ({}) is not in roles.yaml approvers",
            a.actor.uid,
            a.actor.user.as_deref().unwrap_or("no user name")
        ));
    }
    if !a.on_staging {
        c.fail("the commit is not on staging: promote the run first");
    }
    match &a.staging_decision {
        Some(h) => {
            c.with("staging_decision", h.clone());
        }
        None => {
            c.fail("no passing staging decision by the gate for this run");
        }
    }
    c
}

/// No human rejected the run.
pub(crate) fn not_rejected(inputs: &GateInputs) -> Check {
    let mut c = Check::new("not_rejected");
    if let Some(h) = &inputs.rejected {
        c.with("reject_decision", h.clone());
        c.fail("the run was rejected by a human");
    }
    c
}
