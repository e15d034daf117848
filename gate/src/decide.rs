//! `decide`: the gate's verdict as a pure function of [`GateInputs`].
//!
//! It reads nothing but its argument (no clock, no files, no environment, no agent), so the same
//! inputs always give the same [`Decision`], byte for byte once canonicalised. The checks run in
//! a fixed order and every one runs even after a failure, so a decision lists every problem.

use protocol::frame::{Ledger, Progress, Review, TestResults};
use protocol::plan::WorkPlan;
use protocol::roles::RoleName;

use crate::checks_git;
use crate::decision::{Action, Check, CheckStatus, Decision, Verdict, DECISION_SCHEMA};
use crate::envelope::{self, Opened};
use crate::inputs::{GateInputs, KeySource};

/// The artifacts after signature verification (each `None` when missing or invalid).
pub(crate) struct Opened5 {
    pub plan: Option<Opened<WorkPlan>>,
    pub tests: Option<Opened<TestResults>>,
    pub review: Option<Opened<Review>>,
    pub progress: Option<Opened<Progress>>,
    pub ledger: Option<Opened<Ledger>>,
}

/// Decides. See gate/README.md for the table of checks.
pub fn decide(inputs: &GateInputs) -> Decision {
    let mut uncertain = Vec::new();
    let mut present = Check::new("artifacts_present");
    let mut sigs = Check::new("signatures");
    let opened = open_all(inputs, &mut present, &mut sigs, &mut uncertain);
    let plan = opened.plan.as_ref().map(|p| &p.body);
    let mut checks = vec![present, sigs];
    checks.push(chain(inputs, &opened));
    checks.push(acceptance_tests(plan, opened.tests.as_ref()));
    checks.push(coverage(inputs, plan, opened.tests.as_ref()));
    checks.push(review(plan, opened.review.as_ref()));
    checks.push(progress(opened.progress.as_ref()));
    checks.push(budget(plan, opened.ledger.as_ref()));
    checks.push(checks_git::protected_paths(inputs));
    checks.push(checks_git::declared_targets(inputs, plan));
    checks.push(checks_git::commit_messages(inputs, plan));
    checks.push(checks_git::fast_forward(inputs));
    if inputs.action == Action::ApproveMain {
        checks.push(checks_git::approval(inputs));
    }
    for c in &checks {
        if c.status == CheckStatus::Uncertain {
            for d in &c.detail {
                uncertain.push(format!("{}: {d}", c.name));
            }
        }
    }
    for f in &inputs.git.changed {
        if f.binary {
            uncertain.push(format!(
                "binary file {} ({}): no rule reads its content",
                f.path, f.new_blob
            ));
        }
    }
    uncertain.sort();
    uncertain.dedup();

    let failed = checks.iter().any(|c| c.status == CheckStatus::Fail);
    let mut reason = None;
    let verdict = if failed {
        Verdict::Fail
    } else if inputs.action == Action::PromoteStaging
        && matches!((plan, inputs.policy.human_for_staging_at_risk),
            (Some(p), Some(level)) if p.risk_class >= level)
    {
        reason = Some("risk class requires a human approval before staging".to_owned());
        Verdict::Hold
    } else {
        Verdict::Pass
    };
    Decision {
        schema: DECISION_SCHEMA.to_owned(),
        action: inputs.action,
        run_id: inputs.run_id.clone(),
        plan_id: plan.map(|p| p.plan_id.clone()),
        plan_hash: opened.plan.as_ref().map(|p| p.plan_hash.clone()),
        target_ref: inputs.git.target_ref.clone(),
        from: Some(inputs.git.old.clone()),
        to: Some(inputs.git.new.clone()),
        verdict,
        checks,
        uncertain,
        actor: inputs.approval.as_ref().map(|a| a.actor.clone()),
        reason,
    }
}

fn open_all<'a>(
    inputs: &'a GateInputs,
    present: &mut Check,
    sigs: &mut Check,
    uncertain: &mut Vec<String>,
) -> Opened5 {
    let a = &inputs.artifacts;
    if inputs.keys.source == KeySource::PerRun {
        uncertain.push(
            "signatures: per-run keys (weaker mode): the orchestrator held every role's key"
                .to_owned(),
        );
    }
    let mut one = |name: &str,
                   bytes: &'a Option<Vec<u8>>,
                   role: RoleName,
                   required: bool|
     -> Option<(&'a [u8], RoleName, _)> {
        let Some(bytes) = bytes else {
            if required {
                present.fail(format!("{name}: missing"));
            } else {
                present.with(name, "absent");
                uncertain.push(format!("artifacts_present: no {name} artifact"));
            }
            return None;
        };
        present.with(name, protocol::canonical::sha256(bytes).to_hex());
        let Some(key) = inputs.keys.keys.get(&role) else {
            sigs.fail(format!("{name}: no public key for role {role}"));
            return None;
        };
        Some((bytes.as_slice(), role, *key))
    };
    let plan = one("plan", &a.plan, RoleName::Planner, true);
    let tests = one("test_results", &a.test_results, RoleName::TestRunner, true);
    let review = one("review", &a.review, RoleName::SecurityReview, true);
    let progress = one("progress", &a.progress, RoleName::ProgressEvaluator, true);
    let ledger = one("ledger", &a.ledger, RoleName::CostControl, false);
    Opened5 {
        plan: verify(sigs, "plan", plan, envelope::open_plan),
        tests: verify(sigs, "test_results", tests, envelope::open_test_results),
        review: verify(sigs, "review", review, envelope::open_review),
        progress: verify(sigs, "progress", progress, envelope::open_progress),
        ledger: verify(sigs, "ledger", ledger, envelope::open_ledger),
    }
}

type Opener<T> = fn(&[u8], RoleName, &[u8; 32]) -> Result<Opened<T>, envelope::OpenError>;

fn verify<T>(
    sigs: &mut Check,
    name: &str,
    input: Option<(&[u8], RoleName, [u8; 32])>,
    open: Opener<T>,
) -> Option<Opened<T>> {
    let (bytes, role, key) = input?;
    match open(bytes, role, &key) {
        Ok(o) => {
            sigs.with(&format!("{name}.key"), o.key_id.clone());
            Some(o)
        }
        Err(e) => {
            sigs.fail(format!("{name}: {e}"));
            None
        }
    }
}

/// Every artifact belongs to this run and this plan, and the evidence is about the commit that
/// would be promoted.
fn chain(inputs: &GateInputs, o: &Opened5) -> Check {
    let mut c = Check::new("plan_chain");
    let Some(plan) = &o.plan else {
        c.fail("no verified plan artifact to chain to");
        return c;
    };
    let plan_hash = match plan.body.hash() {
        Ok(h) => h.to_hex(),
        Err(e) => {
            c.fail(format!("plan cannot be hashed: {e}"));
            return c;
        }
    };
    c.with("plan_hash", plan_hash.clone());
    let mut link = |name: &str, run_id: &str, hash: &str| {
        if run_id != inputs.run_id {
            c.fail(format!(
                "{name}: run id `{run_id}` is not this run (`{}`)",
                inputs.run_id
            ));
        }
        if hash != plan_hash {
            c.fail(format!(
                "{name}: plan hash {hash} does not match the plan ({plan_hash})"
            ));
        }
    };
    link("plan", &plan.run_id, &plan.plan_hash);
    if let Some(t) = &o.tests {
        link("test_results", &t.run_id, &t.plan_hash);
    }
    if let Some(r) = &o.review {
        link("review", &r.run_id, &r.plan_hash);
    }
    if let Some(p) = &o.progress {
        link("progress", &p.run_id, &p.plan_hash);
    }
    if let Some(l) = &o.ledger {
        link("ledger", &l.run_id, &l.plan_hash);
    }
    let tip = &inputs.git.new;
    if let Some(t) = &o.tests {
        if &t.body.commit != tip {
            c.fail(format!(
                "test_results: tested commit {} is not the commit to promote ({tip})",
                t.body.commit
            ));
        }
    }
    if let Some(r) = &o.review {
        if &r.body.commit != tip {
            c.fail(format!(
                "review: reviewed commit {} is not the commit to promote ({tip})",
                r.body.commit
            ));
        }
    }
    c.with("commit", tip.clone());
    c
}

fn acceptance_tests(plan: Option<&WorkPlan>, tests: Option<&Opened<TestResults>>) -> Check {
    let mut c = Check::new("acceptance_tests");
    let (Some(plan), Some(tests)) = (plan, tests) else {
        c.fail("needs a verified plan and verified test results");
        return c;
    };
    c.with("test_results", tests.digest.clone());
    if plan.acceptance_tests.is_empty() {
        c.fail("the plan names no acceptance test");
    }
    for t in &plan.acceptance_tests {
        if !tests.body.passed(&t.test) {
            c.fail(format!(
                "{} ({} / {}) did not pass",
                t.criterion, t.test.command, t.test.name
            ));
        }
    }
    for t in &tests.body.tests {
        if t.status == protocol::frame::TestStatus::Failed {
            c.fail(format!("test {} ({}) failed", t.name, t.command));
        }
    }
    for run in &tests.body.commands {
        if run.exit_code != Some(0) {
            c.fail(format!(
                "command `{}` exited with {:?}",
                run.command, run.exit_code
            ));
        }
    }
    c.with(
        "passed",
        tests
            .body
            .tests
            .iter()
            .filter(|t| t.status == protocol::frame::TestStatus::Passed)
            .count()
            .to_string(),
    );
    c
}

fn coverage(
    inputs: &GateInputs,
    plan: Option<&WorkPlan>,
    tests: Option<&Opened<TestResults>>,
) -> Check {
    let mut c = Check::new("coverage");
    let Some(plan) = plan else {
        c.fail("needs a verified plan");
        return c;
    };
    c.with("min_pct", plan.coverage_min_pct.to_string());
    if plan.coverage_min_pct == 0 {
        c.uncertain("no coverage threshold configured in the plan");
        return c;
    }
    match tests.and_then(|t| t.body.changed_lines_coverage_pct) {
        Some(pct) => {
            c.with("changed_lines_pct", format!("{pct}"));
            if !(pct >= f64::from(plan.coverage_min_pct)) {
                c.fail(format!(
                    "changed-line coverage {pct}% is below {}%",
                    plan.coverage_min_pct
                ));
            }
        }
        None if inputs.policy.require_coverage_evidence => {
            c.fail("the plan sets a threshold but the test results carry no coverage figure");
        }
        None => {
            c.uncertain("the plan sets a threshold but no coverage was measured");
        }
    }
    c
}

fn review(plan: Option<&WorkPlan>, review: Option<&Opened<Review>>) -> Check {
    let mut c = Check::new("review_findings");
    let Some(review) = review else {
        c.fail("needs a verified review");
        return c;
    };
    c.with("review", review.digest.clone());
    c.with("findings", review.body.findings.len().to_string());
    use protocol::plan::Severity;
    for f in &review.body.findings {
        let blocked = matches!(f.severity, Severity::High | Severity::Critical)
            || plan.is_some_and(|p| p.security_gate.block_severities.contains(&f.severity));
        if blocked {
            c.fail(format!(
                "{:?} finding {} in {} (evidence {})",
                f.severity, f.rule_id, f.file, f.evidence_sha256
            ));
        }
    }
    c
}

fn progress(progress: Option<&Opened<Progress>>) -> Check {
    let mut c = Check::new("progress_done");
    let Some(p) = progress else {
        c.fail("needs a verified progress verdict");
        return c;
    };
    c.with("progress", p.digest.clone());
    c.with("iteration", p.body.iteration.to_string());
    if !p.body.done {
        c.fail(format!(
            "the progress-evaluator did not declare the run done: {}",
            p.body.reason
        ));
    }
    c
}

fn budget(plan: Option<&WorkPlan>, ledger: Option<&Opened<Ledger>>) -> Check {
    let mut c = Check::new("budget");
    let Some(l) = ledger else {
        c.uncertain("no cost ledger: spending was not verified");
        return c;
    };
    c.with("ledger", l.digest.clone());
    c.with("spent_usd", format!("{}", l.body.spent_usd));
    let mut limit = l.body.limit_usd;
    if let Some(p) = plan {
        limit = limit.min(p.budget.limits.per_run_usd);
    }
    c.with("limit_usd", format!("{limit}"));
    if !(l.body.spent_usd <= limit) {
        c.fail(format!(
            "spent {} USD, limit {limit} USD",
            l.body.spent_usd
        ));
    }
    c
}
