//! `decide`: the gate's verdict as a pure function of [`GateInputs`].
//!
//! It reads nothing but its argument (no clock, no files, no environment, no agent), so the same
//! inputs always give the same [`Decision`], byte for byte once canonicalised. The checks run in
//! a fixed order and every one runs even after a failure, so a decision lists every problem.

use protocol::canonical::Digest32;
use protocol::frame::{Ledger, Progress, Review, TestResults};
use protocol::plan::WorkPlan;
use protocol::roles::RoleName;

use crate::checks_git;
use crate::decision::{Action, Check, CheckStatus, Decision, Verdict, DECISION_SCHEMA};
use crate::envelope::{self, Binding, Opened};
use crate::inputs::{GateInputs, KeySource};

/// The artifacts after verification (each `None` when missing or rejected).
pub(crate) struct Opened5 {
    pub plan: Option<Opened<WorkPlan>>,
    pub tests: Option<Opened<TestResults>>,
    pub review: Option<Opened<Review>>,
    pub progress: Option<Opened<Progress>>,
    pub ledger: Option<Opened<Ledger>>,
}

/// Decides. See the table of checks in the crate's README section (`/work/brief/readme-gate.md`).
pub fn decide(inputs: &GateInputs) -> Decision {
    let mut uncertain = Vec::new();
    let mut present = Check::new("artifacts_present");
    let mut sigs = Check::new("signatures");
    let mut chain = Check::new("plan_chain");
    let work_plan = read_work_plan(inputs, &mut present, &mut chain);
    let opened = open_all(
        inputs,
        work_plan.as_ref().map(|w| &w.1),
        [&mut present, &mut sigs, &mut chain],
        &mut uncertain,
    );
    link(inputs, work_plan.as_ref(), &opened, &mut chain);
    // The plan that counts is the run's WORK_PLAN.json, and only once the planner's signed copy
    // matches it.
    let plan = match (&work_plan, &opened.plan) {
        (Some((wp, _)), Some(p)) if &p.body == wp => Some(wp),
        _ => None,
    };
    let mut checks = vec![present, sigs, chain];
    checks.push(acceptance_tests(plan, opened.tests.as_ref()));
    checks.push(coverage(inputs, plan, opened.tests.as_ref()));
    let (review_check, needs_human) = review(inputs, plan, opened.review.as_ref());
    checks.push(review_check);
    checks.push(progress(opened.progress.as_ref()));
    checks.push(budget(plan, opened.ledger.as_ref()));
    checks.push(checks_git::protected_paths(inputs));
    checks.push(checks_git::declared_targets(inputs, plan));
    checks.push(checks_git::commit_messages(inputs, plan));
    checks.push(checks_git::fast_forward(inputs));
    checks.push(checks_git::not_rejected(inputs));
    if inputs.action == Action::ApproveMain {
        checks.push(match &inputs.approval {
            Some(_) => checks_git::approval(inputs),
            None => auto_formatting(inputs, opened.review.as_ref()),
        });
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
    let human_ok = inputs.approval.as_ref().is_some_and(|a| a.listed);
    let mut reason = None;
    let verdict = if failed {
        Verdict::Fail
    } else if !needs_human.is_empty() && !human_ok {
        reason = Some(format!(
            "severity_policy: {} finding(s) need a human: {}",
            needs_human.len(),
            needs_human.join("; ")
        ));
        Verdict::Hold
    } else if inputs.action == Action::PromoteStaging
        && !human_ok
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
        plan_id: work_plan.as_ref().map(|w| w.0.plan_id.clone()),
        plan_hash: work_plan.as_ref().map(|w| w.1.to_hex()),
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

/// The run's WORK_PLAN.json and its hash: the anchor every artifact must be bound to.
fn read_work_plan(
    inputs: &GateInputs,
    present: &mut Check,
    chain: &mut Check,
) -> Option<(WorkPlan, Digest32)> {
    let Some(bytes) = &inputs.artifacts.work_plan else {
        present.fail("WORK_PLAN.json: missing");
        chain.fail("no WORK_PLAN.json to chain to");
        return None;
    };
    present.with("work_plan", protocol::canonical::sha256(bytes).to_hex());
    let plan: WorkPlan = match serde_json::from_slice(bytes) {
        Ok(p) => p,
        Err(e) => {
            chain.fail(format!("WORK_PLAN.json does not parse: {e}"));
            return None;
        }
    };
    match plan.hash() {
        Ok(h) => {
            chain.with("plan_hash", h.to_hex());
            Some((plan, h))
        }
        Err(e) => {
            chain.fail(format!("WORK_PLAN.json cannot be hashed: {e}"));
            None
        }
    }
}

fn open_all(
    inputs: &GateInputs,
    plan_hash: Option<&Digest32>,
    [present, sigs, chain]: [&mut Check; 3],
    uncertain: &mut Vec<String>,
) -> Opened5 {
    let a = &inputs.artifacts;
    if inputs.keys.source == KeySource::PerRun {
        uncertain.push(
            "signatures: per-run keys (weaker mode): the orchestrator held every role's key"
                .to_owned(),
        );
    }
    let zero = Digest32([0; 32]);
    let bind = Binding {
        run_id: &inputs.run_id,
        plan_hash: plan_hash.unwrap_or(&zero),
    };
    let mut state = (present, sigs, chain);
    let plan = open_one(
        &mut state,
        inputs,
        "plan",
        &a.plan,
        RoleName::Planner,
        true,
        uncertain,
    )
    .and_then(|(b, k)| settle(&mut state, "plan", envelope::open_plan(b, bind, &k)));
    let tests = open_one(
        &mut state,
        inputs,
        "test_results",
        &a.test_results,
        RoleName::TestRunner,
        true,
        uncertain,
    )
    .and_then(|(b, k)| {
        settle(
            &mut state,
            "test_results",
            envelope::open_test_results(b, bind, &k),
        )
    });
    let review = open_one(
        &mut state,
        inputs,
        "review",
        &a.review,
        RoleName::SecurityReview,
        true,
        uncertain,
    )
    .and_then(|(b, k)| settle(&mut state, "review", envelope::open_review(b, bind, &k)));
    let progress = open_one(
        &mut state,
        inputs,
        "progress",
        &a.progress,
        RoleName::ProgressEvaluator,
        true,
        uncertain,
    )
    .and_then(|(b, k)| settle(&mut state, "progress", envelope::open_progress(b, bind, &k)));
    let ledger = open_one(
        &mut state,
        inputs,
        "ledger",
        &a.ledger,
        RoleName::CostControl,
        false,
        uncertain,
    )
    .and_then(|(b, k)| settle(&mut state, "ledger", envelope::open_ledger(b, bind, &k)));
    Opened5 {
        plan,
        tests,
        review,
        progress,
        ledger,
    }
}

type Checks3<'c> = (&'c mut Check, &'c mut Check, &'c mut Check);

/// Presence and key lookup for one artifact.
fn open_one<'a>(
    (present, sigs, _): &mut Checks3<'_>,
    inputs: &GateInputs,
    name: &str,
    bytes: &'a Option<Vec<u8>>,
    role: RoleName,
    required: bool,
    uncertain: &mut Vec<String>,
) -> Option<(&'a [u8], [u8; 32])> {
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
    Some((bytes.as_slice(), *key))
}

/// Files the outcome of opening one artifact under the right check.
fn settle<T>(
    (_, sigs, chain): &mut Checks3<'_>,
    name: &str,
    result: Result<Opened<T>, envelope::OpenError>,
) -> Option<Opened<T>> {
    match result {
        Ok(o) => {
            sigs.with(&format!("{name}.key"), o.key_id.clone());
            Some(o)
        }
        Err(e) if e.is_chain_break() => {
            chain.fail(format!("{name}: {e}"));
            None
        }
        Err(e) => {
            sigs.fail(format!("{name}: {e}"));
            None
        }
    }
}

/// The signed plan is the run's WORK_PLAN, and the evidence is about the commit that would be
/// promoted.
fn link(inputs: &GateInputs, work_plan: Option<&(WorkPlan, Digest32)>, o: &Opened5, c: &mut Check) {
    if let (Some((wp, _)), Some(p)) = (work_plan, &o.plan) {
        if &p.body != wp {
            c.fail("the planner's signed plan differs from WORK_PLAN.json");
        }
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
            if pct.is_nan() || pct < f64::from(plan.coverage_min_pct) {
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

/// Review findings under roles.yaml `severity_policy` (and the plan's `block_severities`, which
/// can only add blocks): `block` fails the check, `human` is returned for a hold (listed as
/// evidence `human.NNN`), `note` is listed as evidence `note.NNN`, so the receipt shows it.
fn review(
    inputs: &GateInputs,
    plan: Option<&WorkPlan>,
    review: Option<&Opened<Review>>,
) -> (Check, Vec<String>) {
    use protocol::roles::FindingAction;
    let mut c = Check::new("review_findings");
    let mut human = Vec::new();
    let Some(review) = review else {
        c.fail("needs a verified review");
        return (c, human);
    };
    c.with("review", review.digest.clone());
    c.with("findings", review.body.findings.len().to_string());
    let (mut notes, mut blocks) = (0usize, 0usize);
    for f in &review.body.findings {
        let mut action = inputs.severity.action(&f.rule_id, f.severity);
        if plan.is_some_and(|p| p.security_gate.block_severities.contains(&f.severity)) {
            action = FindingAction::Block;
        }
        let at = f.line.map(|l| format!(":{l}")).unwrap_or_default();
        let line = format!(
            "{:?} finding {} in {}{at} (evidence {})",
            f.severity, f.rule_id, f.file, f.evidence_sha256
        );
        match action {
            FindingAction::Block => {
                blocks += 1;
                c.fail(line);
            }
            FindingAction::Human => {
                c.with(&format!("human.{:03}", human.len() + 1), line.clone());
                human.push(line);
            }
            FindingAction::Note => {
                notes += 1;
                c.with(&format!("note.{notes:03}"), line);
            }
        }
    }
    c.with(
        "severity_policy",
        format!("{blocks} block, {} human, {notes} note", human.len()),
    );
    (c, human)
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
    if l.body.spent_usd.is_nan() || l.body.spent_usd > limit {
        c.fail(format!("spent {} USD, limit {limit} USD", l.body.spent_usd));
    }
    c
}

/// staging → main without a human: only when the policy allows it for formatting-only changes,
/// the change is whitespace only (git's own comparison) and the review found nothing at all.
fn auto_formatting(inputs: &GateInputs, review: Option<&Opened<Review>>) -> Check {
    let mut c = Check::new("auto_promote_formatting");
    c.with("whitespace_only", inputs.git.whitespace_only.to_string());
    if !inputs.policy.auto_promote_formatting {
        c.fail("no human approval, and the policy does not auto-promote formatting changes");
    }
    if !inputs.git.whitespace_only {
        c.fail("the change is not whitespace-only");
    }
    match review {
        Some(r) if r.body.findings.is_empty() => {}
        Some(r) => {
            c.fail(format!(
                "the review has {} finding(s)",
                r.body.findings.len()
            ));
        }
        None => {
            c.fail("needs a verified review");
        }
    }
    c
}
