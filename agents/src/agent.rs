//! `orchestrate-agent <role> --run RUN`: one role process. It reads `task` frames from the
//! orchestrator, does the role's work (pure functions in [`crate::roles`]), signs the result with
//! its own key and sends it back; `shutdown` or a closed socket ends it.

use protocol::artifact::Subject;
use protocol::canonical::{self, Digest32};
use protocol::frame::{Log, LogLevel, Message, Task};
use protocol::RoleName;
use serde::de::DeserializeOwned;

use crate::drivers::command;
use crate::roles::cost_gateway::{CostGateway, CostGatewayError};
use crate::roles::{codegen, cost, input, planner, progress, review_role, test_runner};
use crate::transport::{Transport, TransportError};

/// Errors that end a role process (exit status 1; the orchestrator records a crash).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A task's `input` does not fit this role.
    #[error("task {task_id}: input is not a {role} input: {source}")]
    Input {
        /// The task.
        task_id: u64,
        /// This role.
        role: RoleName,
        /// Cause.
        source: serde_json::Error,
    },
    /// Codegen failed.
    #[error("codegen: {0}")]
    Codegen(#[from] codegen::CodegenError),
    /// The command driver failed.
    #[error("codegen (command driver): {0}")]
    Command(#[from] command::CommandError),
    /// Cost-control could not start the run's gateway.
    #[error("cost-control gateway: {0}")]
    Gateway(#[from] CostGatewayError),
    /// The review engine failed.
    #[error("security-review: {0}")]
    Review(#[from] crate::review::ReviewError),
    /// The plan could not be hashed.
    #[error("hashing the plan: {0}")]
    Hash(#[from] protocol::canonical::CanonicalError),
}

/// Serves tasks until shutdown.
pub fn serve(role: RoleName, run_id: String) -> Result<(), AgentError> {
    let mut t = Transport::from_env(run_id, role)?;
    let mut next_call = 1u64;
    // Cost-control owns the run's model gateway for as long as it runs.
    let mut gateway = match role {
        RoleName::CostControl => CostGateway::from_env()?,
        _ => None,
    };
    loop {
        let Some(env) = t.recv()? else { return Ok(()) };
        match env.body {
            Message::Task(task) => handle(role, &mut t, &task, &mut next_call, gateway.as_mut())?,
            Message::Shutdown(_) => return Ok(()),
            other => eprintln!("{role}: ignoring unexpected {} frame", other.kind()),
        }
    }
}

fn input_of<T: DeserializeOwned>(role: RoleName, task: &Task) -> Result<T, AgentError> {
    serde_json::from_value(task.input.clone()).map_err(|source| AgentError::Input {
        task_id: task.task_id,
        role,
        source,
    })
}

fn plan_hash(task: &Task) -> Digest32 {
    task.plan_hash
        .as_deref()
        .and_then(Digest32::from_hex)
        .unwrap_or(Digest32([0; 32]))
}

fn commit_subject(task: &Task) -> Vec<Subject> {
    let commit = task
        .candidate_commit
        .clone()
        .or_else(|| task.base_commit.clone())
        .unwrap_or_default();
    vec![Subject::commit(
        format!("{}@iteration-{}", task.fr_id, task.iteration),
        commit,
    )]
}

fn handle(
    role: RoleName,
    t: &mut Transport,
    task: &Task,
    next_call: &mut u64,
    gateway: Option<&mut CostGateway>,
) -> Result<(), AgentError> {
    match role {
        RoleName::Planner => {
            let i: input::PlannerInput = input_of(role, task)?;
            let plan = planner::plan(&i, &|p| i.repo.join(p).exists());
            let hash = plan.hash()?;
            let bytes = canonical::to_vec(&plan)?;
            let art = t.sign(
                "plan",
                vec![Subject::file("WORK_PLAN.json", &bytes)],
                &hash,
                &plan,
            )?;
            t.send(Message::Plan(protocol::frame::PlanMsg { plan }), Some(art))?;
        }
        RoleName::Codegen => {
            let i: input::CodegenInput = input_of(role, task)?;
            match &i.command {
                Some(c) => command::iterate(t, &i.worktree, c, task.iteration)?,
                None => codegen::iterate(t, &i, task.iteration, next_call)?,
            }
        }
        RoleName::TestRunner => {
            let i: input::TestRunnerInput = input_of(role, task)?;
            let commit = task
                .candidate_commit
                .clone()
                .or_else(|| task.base_commit.clone())
                .unwrap_or_default();
            let (results, evidence) = test_runner::run_all(
                &task.test_commands,
                &i.tree,
                &i.scratch,
                task.iteration,
                &commit,
                i.coverage.as_ref(),
            );
            // The evidence files are bound to the signed result by their hashes.
            let mut subjects = commit_subject(task);
            subjects.push(Subject::file(test_runner::JUNIT_FILE, &evidence.junit));
            if let Some(lcov) = &evidence.lcov {
                subjects.push(Subject::file(test_runner::LCOV_FILE, lcov));
            }
            if let Some(e) = &evidence.coverage_error {
                t.send(
                    Message::Log(Log {
                        level: LogLevel::Warn,
                        message: format!("coverage not measured: {e}"),
                    }),
                    None,
                )?;
            }
            let art = t.sign("test_results", subjects, &plan_hash(task), &results)?;
            t.send(Message::TestResults(results), Some(art))?;
        }
        RoleName::ProgressEvaluator => {
            let i: input::ProgressInput = input_of(role, task)?;
            let p = progress::evaluate(&i.previous, &i.current, &i.acceptance);
            let art = t.sign("progress", commit_subject(task), &plan_hash(task), &p)?;
            t.send(Message::Progress(p), Some(art))?;
        }
        RoleName::CostControl => {
            let mut i: input::CostInput = input_of(role, task)?;
            let mut booked = None;
            if let Some(g) = gateway {
                let (ledger, worst) = g.snapshot();
                i = cost::with_gateway(&i, &ledger);
                booked = Some((ledger, worst));
            }
            let (mut ledger, mut event) = cost::account(&i);
            if let Some((g, worst)) = booked {
                ledger.requests = g.requests;
                ledger.tokens_in = g.tokens_in;
                ledger.tokens_out = g.tokens_out;
                // The gateway's own threshold (e.g. paused at 90 %) wins when it is higher.
                if let Some(w) = worst {
                    if event
                        .as_ref()
                        .is_none_or(|e| cost::rank(w.level) > cost::rank(e.level))
                    {
                        event = Some(w);
                    }
                }
            }
            if let Some(e) = event {
                t.send(Message::BudgetEvent(e), None)?;
            }
            let art = t.sign("ledger", commit_subject(task), &plan_hash(task), &ledger)?;
            t.send(Message::Ledger(ledger), Some(art))?;
        }
        RoleName::SecurityReview => {
            let i: input::ReviewInput = input_of(role, task)?;
            let commit = task.candidate_commit.clone().unwrap_or_default();
            let review = review_role::review(&i, task.iteration, &commit)?;
            t.send(
                Message::Log(Log {
                    level: LogLevel::Info,
                    message: format!("{} finding(s)", review.findings.len()),
                }),
                None,
            )?;
            let art = t.sign("review", commit_subject(task), &plan_hash(task), &review)?;
            t.send(Message::Review(review), Some(art))?;
        }
    }
    Ok(())
}
