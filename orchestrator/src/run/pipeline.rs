//! The stages of a run: baseline, plan, and the iteration loop (codegen → scan and commit →
//! tests → progress → review → budget). A stage returns `Some(outcome)` when the run ended.

use agents::roles::input::{
    CodegenInput, CommandTask, CostInput, CoverageTask, LlmTask, PlannerInput, ProgressInput,
    ReviewInput, TestRunnerInput, Usage,
};
use agents::roles::progress::{acceptance_passing, failures};
use protocol::canonical::Digest32;
use protocol::frame::{BudgetLevel, Message, MessageKind, TestResults};
use protocol::plan::{Severity, WorkPlan};
use protocol::{RoleName, StopCode};

use super::decide::{self, BudgetAction, Next};
use super::engine::{git_text, Checkpoint, Engine, EngineError, IterationRecord, Outcome};
use super::evidence;
#[path = "anomaly.rs"]
mod anomaly;
use super::guard;
use super::layout;

type Stage = Result<Option<Outcome>, EngineError>;

fn short(c: &str) -> &str {
    c.get(..12).unwrap_or(c)
}

impl Engine {
    /// The run from the start (or from a checkpoint when resuming).
    pub(super) async fn execute(
        &mut self,
        resume: Option<Checkpoint>,
    ) -> Result<Outcome, EngineError> {
        match resume {
            None => {
                self.head_tree = git_text(
                    self.repo.root(),
                    &["rev-parse", &format!("{}^{{tree}}", self.base)],
                )?;
                self.status("running", None)?;
                if let Some(o) = self.baseline().await? {
                    return Ok(o);
                }
                if let Some(o) = self.plan_stage().await? {
                    return Ok(o);
                }
            }
            Some(cp) => self.restore(cp)?,
        }
        self.iterate().await
    }

    fn scratch(&self, role: RoleName) -> std::path::PathBuf {
        self.dir.volume().join("scratch").join(role.as_str())
    }

    async fn baseline(&mut self) -> Stage {
        self.stage = "baseline";
        let base_dir = self.dir.volume().join("base");
        self.repo.materialise(&self.base, &base_dir)?;
        self.say(&format!(
            "[baseline] test-runner runs {} on the base commit {}",
            self.policy.test_commands.join(", "),
            short(&self.base)
        ));
        let input = TestRunnerInput {
            tree: base_dir,
            scratch: self.scratch(RoleName::TestRunner),
            coverage: None,
        };
        let task = self.task(&input)?;
        let reply = match self
            .call(RoleName::TestRunner, task, MessageKind::TestResults)
            .await?
        {
            Ok(r) => r,
            Err(f) => return self.halt(f.code, &f.detail).await.map(Some),
        };
        let Message::TestResults(results) = reply.body else {
            return self
                .halt(StopCode::ProtocolViolation, "test-runner sent no results")
                .await
                .map(Some);
        };
        let zero = Digest32([0; 32]);
        if let Err(f) = self.accept_artifact(
            RoleName::TestRunner,
            "baseline_test_results",
            reply.artifact.as_ref(),
            &results,
            &zero,
        )? {
            return self.halt(f.code, &f.detail).await.map(Some);
        }
        let red = failures(&results);
        let passed = results
            .tests
            .iter()
            .filter(|t| t.status == protocol::frame::TestStatus::Passed)
            .count();
        self.event(
            "baseline",
            serde_json::json!({"commit": self.base, "failures": red, "passed": passed}),
        )?;
        if red > 0 {
            let failed: Vec<String> = results
                .tests
                .iter()
                .filter(|t| t.status == protocol::frame::TestStatus::Failed)
                .map(|t| t.name.clone())
                .collect();
            let detail = format!(
                "{red} failure(s) on the base commit {}: {}",
                short(&self.base),
                failed.join(", ")
            );
            return self.halt(StopCode::BaselineRed, &detail).await.map(Some);
        }
        self.say(&format!(
            "[baseline] green: {passed} test(s) pass on the base commit"
        ));
        self.last_results = Some(results);
        Ok(None)
    }

    async fn plan_stage(&mut self) -> Stage {
        self.stage = "plan";
        let mut fr = self.policy.fr.clone();
        for attempt in 0..2u32 {
            let b = self.policy.roles.budgets;
            let input = PlannerInput {
                run_id: self.run_id.clone(),
                fr: fr.clone(),
                limits: self.policy.limits,
                cost_usd: self.policy.cost_usd,
                per_request_usd: b.per_request_usd,
                warn_pct: b.warn_pct,
                escalate_pct: b.escalate_pct,
                stop_pct: b.stop_pct,
                agent_branch: self.branch(),
                test_commands: self.policy.test_commands.clone(),
                repo: self.dir.volume().join("base"),
            };
            let task = self.task(&input)?;
            let reply = match self
                .call(RoleName::Planner, task, MessageKind::Plan)
                .await?
            {
                Ok(r) => r,
                Err(f) => return self.halt(f.code, &f.detail).await.map(Some),
            };
            let Message::Plan(msg) = reply.body else {
                return self
                    .halt(StopCode::ProtocolViolation, "planner sent no plan")
                    .await
                    .map(Some);
            };
            let plan = msg.plan;
            let hash = plan.hash()?;
            if let Err(f) = self.accept_artifact(
                RoleName::Planner,
                "plan",
                reply.artifact.as_ref(),
                &plan,
                &hash,
            )? {
                return self.halt(f.code, &f.detail).await.map(Some);
            }
            if let Err(e) = plan.validate() {
                return self
                    .halt(
                        StopCode::SecurityViolation,
                        &format!("the planner's plan is invalid: {e}"),
                    )
                    .await
                    .map(Some);
            }
            let mut narrowed = plan.clone();
            let dropped = guard::narrow_to_scope(
                &mut narrowed,
                &self.policy.fr.paths.outputs,
                &self.policy.roles.protected_paths,
            );
            if !dropped.is_empty() {
                self.event(
                    "plan.drift_repaired",
                    serde_json::json!({"attempt": attempt, "dropped": dropped}),
                )?;
                let names: Vec<&str> = dropped.iter().map(|d| d.target.as_str()).collect();
                self.say(&format!(
                    "[plan] drift repair: dropped targets outside the FR's scope: {}",
                    names.join(", ")
                ));
                if attempt == 0 && !narrowed.targets.is_empty() {
                    fr.paths.outputs = narrowed.targets.clone();
                    continue;
                }
                return self
                    .halt(
                        StopCode::ScopeExceeded,
                        "the planner kept targets outside the FR's scope after drift repair",
                    )
                    .await
                    .map(Some);
            }
            if let Some(field) =
                guard::looser_than(&plan, &self.policy.limits, self.policy.cost_usd)
            {
                return self
                    .halt(
                        StopCode::SecurityViolation,
                        &format!("plan looser than policy: {field}"),
                    )
                    .await
                    .map(Some);
            }
            if let Some(why) = evidence::coverage_lowered(plan.coverage_min_pct, &self.policy.fr) {
                return self
                    .halt(
                        StopCode::SecurityViolation,
                        &format!("plan looser than policy: {why}"),
                    )
                    .await
                    .map(Some);
            }
            if plan.fr_ids != vec![self.policy.fr.id.clone()]
                || plan.branch.agent_branch != self.branch()
            {
                return self
                    .halt(
                        StopCode::SecurityViolation,
                        "plan names another FR or branch",
                    )
                    .await
                    .map(Some);
            }
            let bytes = protocol::canonical::to_vec(&plan)?;
            layout::write(&self.dir.work_plan(), &bytes)?;
            self.store.set_run_plan_hash(&self.run_id, &hash.to_hex())?;
            self.shared
                .tool_call_cap
                .store(plan.tool_call_cap, std::sync::atomic::Ordering::SeqCst);
            self.event(
                "plan.validated",
                serde_json::json!({
                    "plan_id": plan.plan_id, "plan_hash": hash.to_hex(), "targets": plan.targets,
                    "iteration_cap": plan.iteration_cap, "no_progress_cap": plan.no_progress_cap,
                    "tool_call_cap": plan.tool_call_cap, "file_cap": plan.file_cap,
                    "runtime_seconds": plan.runtime_seconds,
                }),
            )?;
            self.say(&format!(
                "[plan] {} hash {}: targets {}; caps: {} iterations, {} without progress, {} tool calls, {} files, {} s",
                plan.plan_id,
                short(&hash.to_hex()),
                plan.targets.join(", "),
                plan.iteration_cap,
                plan.no_progress_cap,
                plan.tool_call_cap,
                plan.file_cap,
                plan.runtime_seconds
            ));
            self.plan_hash = Some(hash);
            self.plan = Some(plan);
            return Ok(None);
        }
        self.halt(StopCode::ScopeExceeded, "drift repair did not converge")
            .await
            .map(Some)
    }

    /// Keeps the test-runner's JUnit and lcov in `evidence/` (hashes checked against its signed
    /// result) and records the change's coverage; a file or figure that does not match what was
    /// signed stops the run.
    async fn keep_test_evidence(
        &mut self,
        results: &TestResults,
        tree: &std::path::Path,
        plan: &WorkPlan,
    ) -> Stage {
        let Some(key) = self.public.get(&RoleName::TestRunner).cloned() else {
            return self
                .halt(StopCode::SecurityViolation, "no public key for test-runner")
                .await
                .map(Some);
        };
        let src = agents::roles::test_runner::evidence_dir(&self.scratch(RoleName::TestRunner));
        let base = self.dir.volume().join("base");
        let kept = match evidence::keep_test_evidence(
            &self.dir,
            &key,
            &src,
            results,
            &base,
            tree,
            plan.coverage_min_pct,
        ) {
            Ok(k) => k,
            Err(evidence::EvidenceError::Layout(e)) => return Err(e.into()),
            Err(e) => {
                return self
                    .halt(
                        StopCode::SecurityViolation,
                        &format!("test evidence does not match the signed results: {e}"),
                    )
                    .await
                    .map(Some)
            }
        };
        if let Some(c) = &kept.coverage {
            let files: Vec<serde_json::Value> = c
                .files
                .iter()
                .map(|f| {
                    serde_json::json!({"file": f.file, "changed_pct": f.changed_pct(),
                        "file_pct": f.file_pct(), "uncovered_lines": f.uncovered_lines})
                })
                .collect();
            self.event(
                "coverage",
                serde_json::json!({"iteration": self.iteration, "changed_lines_pct": c.pct(),
                    "instrumented": c.instrumented, "covered": c.covered,
                    "threshold_pct": plan.coverage_min_pct, "files": files}),
            )?;
            self.say(&format!(
                "[iteration {}] coverage of changed lines: {} ({}/{} lines; threshold {} %)",
                self.iteration,
                c.pct().map_or("n/a".to_string(), |p| format!("{p:.1} %")),
                c.covered,
                c.instrumented,
                plan.coverage_min_pct
            ));
        } else if plan.coverage_min_pct > 0 {
            self.event(
                "coverage.missing",
                serde_json::json!({"iteration": self.iteration, "threshold_pct": plan.coverage_min_pct}),
            )?;
            self.say(&format!(
                "[iteration {}] coverage not measured (see logs/test-runner.log)",
                self.iteration
            ));
        }
        Ok(None)
    }

    /// The anomaly rules (see `anomaly.rs`) on this iteration's candidate tree and tool calls:
    /// each hit is an `anomaly` event; the first hit whose policy stops the run stops it.
    async fn check_anomalies(
        &mut self,
        plan: &WorkPlan,
        tree: &str,
        calls: &[super::role::CallRecord],
    ) -> Stage {
        let numstat = git_text(
            self.repo.root(),
            &["diff", "--numstat", "--no-renames", &self.base, tree],
        )?;
        let files = anomaly::parse_numstat(&numstat);
        let calls: Vec<(String, String)> = calls
            .iter()
            .map(|c| (c.call.tool.clone(), c.call.args.to_string()))
            .collect();
        let history_path = self.dir.root.join("anomaly_history.json");
        let mut history: Vec<anomaly::Sample> = std::fs::read(&history_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        history.retain(|s| s.iteration < self.iteration);
        let spent_usd = self.last_spent_usd();
        let current = anomaly::Sample {
            iteration: self.iteration,
            tool_calls: calls.len() as u64,
            spent_usd,
        };
        let hits = anomaly::check_with(
            &anomaly::Observation {
                files: &files,
                plan_targets: plan.targets.len(),
                no_new_dependencies: anomaly::forbids_new_dependencies(
                    &self.policy.fr.security.constraints,
                ),
                calls: &calls,
                history: &history,
                current,
            },
            &self.policy.roles.anomaly,
        );
        history.push(current);
        layout::write_json(&history_path, &history)?;
        for a in &hits {
            self.event(
                "anomaly",
                serde_json::json!({"iteration": self.iteration, "rule": a.rule,
                    "detail": a.detail, "stop": a.stop.map(|c| c.as_str())}),
            )?;
            self.say(&format!(
                "[iteration {}] anomaly {}: {}",
                self.iteration,
                a.rule.as_str(),
                a.detail
            ));
        }
        if let Some(a) = hits.iter().find(|a| a.stop.is_some()) {
            let code = a.stop.unwrap_or(StopCode::SecurityViolation);
            return self
                .halt(code, &format!("anomaly: {}", a.detail))
                .await
                .map(Some);
        }
        Ok(None)
    }

    /// Spend the last accepted ledger reports (0 before the first one).
    fn last_spent_usd(&self) -> f64 {
        self.last_ledger().map_or(0.0, |l| l.spent_usd)
    }

    /// The last ledger cost-control signed and the orchestrator accepted.
    pub(super) fn last_ledger(&self) -> Option<protocol::frame::Ledger> {
        let key = self.public.get(&RoleName::CostControl)?;
        std::fs::read(self.dir.artifact("ledger"))
            .ok()
            .and_then(|b| serde_json::from_slice::<protocol::artifact::DsseEnvelope>(&b).ok())
            .and_then(|env| protocol::artifact::verify_signature(&env, key).ok())
            .and_then(|st| st.body::<protocol::frame::Ledger>().ok())
    }

    fn restore(&mut self, cp: Checkpoint) -> Result<(), EngineError> {
        let path = self.dir.work_plan();
        let bytes = std::fs::read(&path).map_err(|e| EngineError::Resume {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let plan: WorkPlan = serde_json::from_slice(&bytes).map_err(|e| EngineError::Resume {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let hash = plan.hash()?;
        if hash.to_hex() != cp.plan_hash {
            return Err(EngineError::Resume {
                path,
                detail: "WORK_PLAN.json does not match the run's plan hash".into(),
            });
        }
        self.shared
            .tool_call_cap
            .store(plan.tool_call_cap, std::sync::atomic::Ordering::SeqCst);
        self.shared
            .tool_calls
            .store(cp.tool_calls, std::sync::atomic::Ordering::SeqCst);
        self.plan_hash = Some(hash);
        self.plan = Some(plan);
        self.base = cp.base;
        self.head = cp.head;
        let tip = self.head.clone().unwrap_or_else(|| self.base.clone());
        self.head_tree = git_text(self.repo.root(), &["rev-parse", &format!("{tip}^{{tree}}")])?;
        self.iteration = cp.iteration;
        self.streak = 0;
        self.iterations = cp.iterations;
        self.last_results = Some(cp.last_results);
        self.set_remaining(std::time::Duration::from_secs(cp.elapsed_s));
        Ok(())
    }

    pub(super) fn checkpoint(&mut self) -> Result<(), EngineError> {
        let (Some(hash), Some(last)) = (self.plan_hash, self.last_results.clone()) else {
            return Ok(());
        };
        let cp = Checkpoint {
            base: self.base.clone(),
            head: self.head.clone(),
            iteration: self.iteration,
            plan_hash: hash.to_hex(),
            last_results: last,
            streak: self.streak,
            tool_calls: self
                .shared
                .tool_calls
                .load(std::sync::atomic::Ordering::SeqCst),
            elapsed_s: self.elapsed().as_secs(),
            iterations: self.iterations.clone(),
        };
        layout::write_json(&self.dir.checkpoint(), &cp)?;
        Ok(())
    }

    fn usage(&self, plan: &WorkPlan) -> Vec<Usage> {
        let calls = self
            .shared
            .tool_calls
            .load(std::sync::atomic::Ordering::SeqCst)
            .min(plan.tool_call_cap.saturating_add(1));
        vec![
            Usage {
                dimension: "wall_clock_s".into(),
                used: self.elapsed().as_secs_f64(),
                limit: plan.runtime_seconds as f64,
            },
            Usage {
                dimension: "tool_calls".into(),
                used: f64::from(calls),
                limit: f64::from(plan.tool_call_cap),
            },
            Usage {
                dimension: "iterations".into(),
                used: f64::from(self.iteration),
                limit: f64::from(plan.iteration_cap),
            },
            Usage {
                dimension: "cost_usd".into(),
                used: 0.0,
                limit: self.cost_ceiling(plan),
            },
        ]
    }

    async fn iterate(&mut self) -> Result<Outcome, EngineError> {
        let (Some(plan), Some(plan_hash)) = (self.plan.clone(), self.plan_hash) else {
            return self
                .halt(StopCode::SecurityViolation, "no validated plan")
                .await;
        };
        let work = self.dir.volume().join("work");
        // Missing after a stop (quarantined), empty when the launcher made it for its bind mount.
        let empty = std::fs::read_dir(&work).map_or(true, |mut d| d.next().is_none());
        if self.lower.is_none() && empty {
            let tip = self.head.clone().unwrap_or_else(|| self.base.clone());
            self.repo.materialise(&tip, &work)?;
            if let Some(owner) = self.launcher.writer(RoleName::Codegen) {
                super::worktree::chown_tree(&work, owner).map_err(|source| {
                    EngineError::HandOver {
                        path: work.clone(),
                        source,
                    }
                })?;
            }
        }
        let branch = self.branch();
        loop {
            self.iteration += 1;
            let n = self.iteration;
            if self.shared.stop_file.exists() {
                return self
                    .halt(
                        StopCode::Human,
                        "a person asked the run to stop (orchestrate stop)",
                    )
                    .await;
            }
            if n > plan.iteration_cap {
                return self
                    .halt(
                        StopCode::IterationCap,
                        &format!(
                            "iteration {n} would exceed the cap of {}",
                            plan.iteration_cap
                        ),
                    )
                    .await;
            }
            if tokio::time::Instant::now() >= self.shared.deadline {
                return self
                    .halt(
                        StopCode::RuntimeExceeded,
                        "the run's wall-clock ceiling passed",
                    )
                    .await;
            }
            self.stage = "codegen";
            self.event("iteration.started", serde_json::json!({"iteration": n}))?;
            let command = self.command_task();
            let llm = self.llm_task(&plan, n);
            match (&command, &llm) {
                (Some(c), _) => self.say(&format!(
                    "[iteration {n}/{}] codegen: command driver runs `{}` confined as codegen, metered by the gateway",
                    plan.iteration_cap,
                    c.settings.argv.first().map_or("", String::as_str)
                )),
                (None, Some(l)) => self.say(&format!(
                    "[iteration {n}/{}] codegen: llm driver (built-in tool loop) asks `{}` through the gateway, at most {} model request(s)",
                    plan.iteration_cap, l.settings.model, l.max_turns
                )),
                (None, None) => self.say(&format!(
                    "[iteration {n}/{}] codegen: REPLAY of the recorded session {}",
                    plan.iteration_cap,
                    self.session.display()
                )),
            }
            let input = CodegenInput {
                session: self.session.clone(),
                worktree: work.clone(),
                command,
                llm,
            };
            let task = self.task(&input)?;
            let reply = match self
                .call(RoleName::Codegen, task, MessageKind::ChangeReady)
                .await?
            {
                Ok(r) => r,
                Err(f) => return self.halt(f.code, &f.detail).await,
            };
            let summary = match reply.body {
                Message::ChangeReady(c) => c.summary,
                _ => String::new(),
            };

            self.stage = "scan";
            if let Some(path) = self.git_metadata_written() {
                let detail = format!(
                    "codegen wrote git metadata: {path} (the repository's .git belongs to the orchestrator)"
                );
                return self.halt(StopCode::SecurityViolation, &detail).await;
            }
            let (tree, changes) = self.codegen_changes()?;
            self.event(
                "change.scanned",
                serde_json::json!({"iteration": n, "changes": changes}),
            )?;
            if let Err(t) = guard::check_changes(&plan, &changes) {
                return self.halt(t.code, &t.detail).await;
            }
            if let Some(o) = self.check_anomalies(&plan, &tree, &reply.calls).await? {
                return Ok(o);
            }
            if tree != self.head_tree {
                let parent = self.head.clone().unwrap_or_else(|| self.base.clone());
                let message = format!(
                    "{}: iteration {n}: {summary}\n\nplan_id={} iteration={n}\nrun_id={}\n",
                    self.policy.fr.id, plan.plan_id, self.run_id
                );
                let commit = self.repo.commit_tree(
                    &tree,
                    &parent,
                    &branch,
                    &message,
                    self.head.as_deref(),
                )?;
                let files: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
                self.event("commit", serde_json::json!({"iteration": n, "commit": commit, "branch": branch, "files": files}))?;
                self.say(&format!(
                    "[iteration {n}] committed {} on {branch} ({})",
                    short(&commit),
                    files.join(", ")
                ));
                self.head = Some(commit);
                self.head_tree = tree;
            } else {
                self.say(&format!("[iteration {n}] no change to commit"));
            }
            let candidate = self.head.clone().unwrap_or_else(|| self.base.clone());

            self.stage = "test";
            let tree_dir = self.dir.volume().join("candidates").join(n.to_string());
            self.repo.materialise(&candidate, &tree_dir)?;
            let input = TestRunnerInput {
                tree: tree_dir.clone(),
                scratch: self.scratch(RoleName::TestRunner),
                coverage: (plan.coverage_min_pct > 0).then(|| CoverageTask {
                    base_tree: self.dir.volume().join("base"),
                    timeout_s: plan.runtime_seconds,
                    command: self
                        .policy
                        .fr
                        .coverage
                        .as_ref()
                        .and_then(|c| c.command.clone()),
                }),
            };
            let task = self.task(&input)?;
            let results = match self
                .ask(
                    RoleName::TestRunner,
                    task,
                    MessageKind::TestResults,
                    |m| match m {
                        Message::TestResults(x) => Some(x),
                        _ => None,
                    },
                    "results",
                    "test_results",
                    &plan_hash,
                )
                .await?
            {
                Ok(x) => x,
                Err(f) => return self.halt(f.code, &f.detail).await,
            };
            if let Some(o) = self.keep_test_evidence(&results, &tree_dir, &plan).await? {
                return Ok(o);
            }

            self.stage = "progress";
            let previous = self
                .last_results
                .clone()
                .unwrap_or_else(|| empty_results(&self.base));
            let acceptance: Vec<_> = plan
                .acceptance_tests
                .iter()
                .map(|t| t.test.clone())
                .collect();
            let input = ProgressInput {
                previous: previous.clone(),
                current: results.clone(),
                acceptance: acceptance.clone(),
            };
            let task = self.task(&input)?;
            let progress = match self
                .ask(
                    RoleName::ProgressEvaluator,
                    task,
                    MessageKind::Progress,
                    |m| match m {
                        Message::Progress(x) => Some(x),
                        _ => None,
                    },
                    "verdict",
                    "progress",
                    &plan_hash,
                )
                .await?
            {
                Ok(x) => x,
                Err(f) => return self.halt(f.code, &f.detail).await,
            };
            self.streak = decide::streak(self.streak, &progress);
            self.event(
                "progress",
                serde_json::to_value(&progress).unwrap_or_default(),
            )?;

            self.stage = "review";
            let input = ReviewInput {
                base_tree: self.dir.volume().join("base"),
                candidate_tree: tree_dir,
                protected_paths: self.policy.roles.protected_paths.clone(),
                expected_files: plan.targets.len() as u64,
            };
            let task = self.task(&input)?;
            let review = match self
                .ask(
                    RoleName::SecurityReview,
                    task,
                    MessageKind::Review,
                    |m| match m {
                        Message::Review(x) => Some(x),
                        _ => None,
                    },
                    "review",
                    "review",
                    &plan_hash,
                )
                .await?
            {
                Ok(x) => x,
                Err(f) => return self.halt(f.code, &f.detail).await,
            };
            evidence::write_sarif(&self.dir.evidence("review.sarif"), &review)?;
            let blocking = review
                .findings
                .iter()
                .filter(|f| f.severity >= Severity::High)
                .count();
            self.event(
                "review",
                serde_json::json!({"iteration": n, "findings": review.findings.len(), "high_or_critical": blocking}),
            )?;
            if let Some(f) = review
                .findings
                .iter()
                .find(|f| f.rule_id.contains("SECRET") && f.severity >= Severity::High)
            {
                let detail = format!(
                    "{} in {} (evidence sha256 {})",
                    f.rule_id,
                    f.file,
                    short(&f.evidence_sha256)
                );
                return self.halt(StopCode::SecretExposure, &detail).await;
            }

            self.stage = "budget";
            let usage = self.usage(&plan);
            let b = plan.budget;
            let input = CostInput {
                usage: usage.clone(),
                spent_usd: 0.0,
                limit_usd: self.cost_ceiling(&plan),
                warn_pct: b.warn_pct,
                escalate_pct: b.escalate_pct,
                stop_pct: b.stop_pct,
            };
            let task = self.task(&input)?;
            // Not `ask`: the budget events cost-control sends with its ledger are read below.
            let reply = match self
                .call(RoleName::CostControl, task, MessageKind::Ledger)
                .await?
            {
                Ok(r) => r,
                Err(f) => return self.halt(f.code, &f.detail).await,
            };
            let Message::Ledger(ledger) = reply.body else {
                return self
                    .halt(StopCode::ProtocolViolation, "cost-control sent no ledger")
                    .await;
            };
            if let Err(f) = self.accept_artifact(
                RoleName::CostControl,
                "ledger",
                reply.artifact.as_ref(),
                &ledger,
                &plan_hash,
            )? {
                return self.halt(f.code, &f.detail).await;
            }
            // Model spend and turns booked at the gateway count in their dimensions (the engine
            // cannot see them; cost-control's signed ledger can).
            let mut usage = usage;
            for u in &mut usage {
                match u.dimension.as_str() {
                    "cost_usd" => u.used = u.used.max(ledger.spent_usd),
                    "tool_calls" => u.used = u.used.max(ledger.requests as f64),
                    _ => {}
                }
            }
            let top = usage
                .iter()
                .map(|u| (agents::roles::cost::pct(u), u.dimension.clone()))
                .fold(
                    (0.0f64, String::new()),
                    |a, b| if b.0 > a.0 { b } else { a },
                );

            let record = IterationRecord {
                iteration: n,
                commit: candidate.clone(),
                failures: failures(&results),
                acceptance_passing: acceptance_passing(&results, &acceptance),
                score: progress.score,
                progressed: progress.progressed,
                findings: review.findings.len(),
                budget_pct: top.0,
            };
            self.say(&format!(
                "[iteration {n}] tests: failing {} -> {}, acceptance {}/{} -> {}/{}; {}; review: {} finding(s); budget {:.0} % ({})",
                failures(&previous),
                record.failures,
                acceptance_passing(&previous, &acceptance),
                acceptance.len(),
                record.acceptance_passing,
                acceptance.len(),
                if progress.progressed { "progress" } else { "no progress" },
                review.findings.len(),
                top.0,
                top.1
            ));
            self.iterations.push(record);
            self.last_results = Some(results);
            self.checkpoint()?;

            match decide::after_iteration(
                &progress,
                self.streak,
                plan.no_progress_cap,
                n,
                plan.iteration_cap,
            ) {
                Next::Done => return self.finish_done().await,
                Next::Stop(code, detail) => return self.halt(code, &detail).await,
                Next::Continue => {}
            }
            if let Some(e) = reply
                .budget_events
                .iter()
                .max_by_key(|e| level_rank(e.level))
            {
                match decide::budget_action(e.level) {
                    BudgetAction::Warn => {
                        self.event(
                            "budget.warn",
                            serde_json::json!({"dimension": top.1, "pct": e.pct}),
                        )?;
                        self.say(&format!("[budget] warning: {} at {:.0} %", top.1, e.pct));
                    }
                    BudgetAction::Pause => {
                        let detail = format!("{} at {:.0} % of its ceiling", top.1, e.pct);
                        return self.pause(&detail).await;
                    }
                    BudgetAction::Stop => {
                        let code = decide::stop_code_for_dimension(&top.1);
                        return self
                            .halt(code, &format!("{} at {:.0} % of its ceiling", top.1, e.pct))
                            .await;
                    }
                }
            }
        }
    }
}

impl Engine {
    /// The `command` driver's task when roles.yaml drives codegen with a CLI: the FR as its task
    /// text, killed when the run's wall clock runs out.
    fn command_task(&self) -> Option<CommandTask> {
        let policy = self.policy.roles.role(RoleName::Codegen)?;
        if policy.driver != protocol::roles::Driver::Command {
            return None;
        }
        let left = self
            .shared
            .deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .as_secs();
        Some(CommandTask {
            settings: policy.command.clone()?,
            task: self.fr_task_text(),
            timeout_s: left.min(policy.limits.wall_seconds).max(1),
        })
    }

    /// The `llm` driver's iteration when roles.yaml drives codegen with the built-in tool loop:
    /// the FR as the first message, the plan's targets, the previous iteration's test results (the
    /// answer to the model's `run_tests`), and as many model requests as roles.yaml's
    /// `llm.max_turns` and the tool calls left under the plan's cap allow.
    fn llm_task(&self, plan: &WorkPlan, n: u32) -> Option<LlmTask> {
        let policy = self.policy.roles.role(RoleName::Codegen)?;
        if policy.driver != protocol::roles::Driver::Llm {
            return None;
        }
        let settings = policy.llm.clone()?;
        let used = self
            .shared
            .tool_calls
            .load(std::sync::atomic::Ordering::SeqCst);
        let left_calls = plan.tool_call_cap.saturating_sub(used);
        let left = self
            .shared
            .deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .as_secs();
        let feedback = match (&self.last_results, n > 1) {
            (Some(r), true) => llm_feedback(r, plan),
            _ => Vec::new(),
        };
        Some(LlmTask {
            max_turns: settings.max_turns.min(left_calls).max(1),
            settings,
            task: self.fr_task_text(),
            targets: plan.targets.clone(),
            feedback,
            timeout_s: left.min(policy.limits.wall_seconds).max(1),
        })
    }

    /// What a coding agent is told to do: the FR's objective, scope and acceptance tests.
    fn fr_task_text(&self) -> String {
        let fr = &self.policy.fr;
        let mut task = format!(
            "{}: {}\n\n{}\nChange only these files: {}.\n",
            fr.id,
            fr.title,
            fr.objective.trim_end(),
            fr.paths.outputs.join(", ")
        );
        for a in &fr.acceptance {
            task.push_str(&format!(
                "Acceptance {}: {} (test `{}` run by `{}`).\n",
                a.id, a.description, a.test.name, a.test.command
            ));
        }
        task
    }
}

/// The orchestrator's test results in words, for the `llm` driver's model: each approved command
/// with its exit code, the failing tests, and the acceptance tests still failing.
fn llm_feedback(r: &TestResults, plan: &WorkPlan) -> Vec<String> {
    let mut out = vec![format!(
        "The orchestrator's test-runner ran the approved test commands on your change (iteration {}):",
        r.iteration
    )];
    for c in &r.commands {
        out.push(format!(
            "`{}` exited {}",
            c.command,
            c.exit_code
                .map_or_else(|| "on a signal".to_owned(), |e| e.to_string())
        ));
    }
    let failed: Vec<&str> = r
        .tests
        .iter()
        .filter(|t| t.status == protocol::frame::TestStatus::Failed)
        .map(|t| t.name.as_str())
        .collect();
    let passed = r
        .tests
        .iter()
        .filter(|t| t.status == protocol::frame::TestStatus::Passed)
        .count();
    out.push(format!(
        "{passed} test(s) passed; failed: {}",
        if failed.is_empty() {
            "none".to_owned()
        } else {
            failed.join(", ")
        }
    ));
    let missing: Vec<String> = plan
        .acceptance_tests
        .iter()
        .filter(|a| !r.passed(&a.test))
        .map(|a| format!("{} (`{}`)", a.criterion, a.test.name))
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "acceptance tests not passing yet: {}",
            missing.join(", ")
        ));
    }
    out
}

fn level_rank(l: BudgetLevel) -> u8 {
    match l {
        BudgetLevel::Warn => 1,
        BudgetLevel::Escalate => 2,
        BudgetLevel::Stop => 3,
    }
}

fn empty_results(commit: &str) -> TestResults {
    TestResults {
        iteration: 0,
        commit: commit.to_owned(),
        commands: vec![],
        tests: vec![],
        changed_lines_coverage_pct: None,
    }
}
