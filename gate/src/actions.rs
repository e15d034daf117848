//! What the gate does when asked: promote a run to `staging`, approve it to `main`, reject it,
//! roll it back. Each gathers its inputs itself (artifacts from the run directory, facts from
//! the integration repository, policy from `main`), decides, writes its signed decision, and
//! only then moves a ref — compare-and-swap, fast-forward except for a recorded rollback.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::decide::decide;
use crate::decision::{Action, Actor, Check, CheckStatus, Decision, Verdict, DECISION_SCHEMA};
use crate::git::{Git, GitError};
use crate::identity::Caller;
use crate::inputs::{ApprovalFacts, GateInputs, GitFacts};
use crate::integration::{agent_ref, MAIN, STAGING};
use crate::layout::{LayoutError, StateDir, StoredDecision};
use crate::policy::{self, Policy, PolicyError};
use crate::sign::{sign_decision, SignError};

/// Errors that keep the gate from deciding at all (a decision that says "no" is not an error).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The state directory or run directory is unusable.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A git step failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Signing the decision failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// No integration repository yet.
    #[error("no integration repository at {0}: run `orchestrate-gate init` first")]
    NoIntegration(PathBuf),
    /// The run left no agent bundle.
    #[error("run {run}: no agent.bundle at {path}")]
    NoBundle {
        /// The run.
        run: String,
        /// Where it was expected.
        path: PathBuf,
    },
    /// The bundle does not carry `refs/heads/agent/<FR>/<run>`.
    #[error("{path} carries no agent branch for run {run} (refs/heads/agent/<FR>/{run})")]
    NoAgentBranch {
        /// The run.
        run: String,
        /// The bundle.
        path: PathBuf,
    },
    /// The bundle needs commits the integration repository does not have: the run started from
    /// a commit that never went through the gate.
    #[error(
        "run {run}: the integration repository lacks the run's base commit (the bundle's \
         prerequisite): start runs from a commit on orchestrate/main or orchestrate/staging \
         (`orchestrate approve --update-local` syncs the clone): {detail}"
    )]
    BaseNotIntegrated {
        /// The run.
        run: String,
        /// git's message.
        detail: String,
    },
    /// A protected ref is missing from the integration repository.
    #[error("integration repository has no {0}")]
    NoRef(&'static str),
    /// approve/rollback on a run the gate never passed to staging.
    #[error("run {0} was never promoted to staging by the gate")]
    NotPromoted(String),
    /// rollback on a run that moved no protected ref.
    #[error("run {0} moved no protected ref: nothing to roll back")]
    NothingToRollBack(String),
}

/// One protected ref the gate moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    /// The ref.
    pub refname: String,
    /// Before.
    pub from: String,
    /// After.
    pub to: String,
}

/// One decision the gate wrote, and what it moved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The decision.
    pub decision: Decision,
    /// Where its signed envelope is.
    pub file: PathBuf,
    /// Hex SHA-256 of the envelope (what audit events and receipts cite).
    pub sha256: String,
    /// The ref moved on a pass (None when nothing moved).
    pub moved: Option<Moved>,
}

/// The gate: a state directory and the caller the OS reported.
#[derive(Debug, Clone)]
pub struct Gate {
    state: StateDir,
}

impl Gate {
    /// A gate over the state directory at `state`.
    pub fn new(state: impl Into<PathBuf>) -> Self {
        Self {
            state: StateDir::new(state),
        }
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    fn integration(&self) -> Result<Git, ActionError> {
        let path = self.state.integration();
        if !path.join("HEAD").is_file() {
            return Err(ActionError::NoIntegration(path));
        }
        Ok(Git::new(path))
    }

    fn resolve(git: &Git, refname: &'static str) -> Result<String, ActionError> {
        git.resolve_commit(refname)?
            .ok_or(ActionError::NoRef(refname))
    }

    /// Signs `d`, writes it into the run directory, then moves the ref on a pass.
    fn record(&self, git: &Git, run: &str, d: Decision) -> Result<Outcome, ActionError> {
        let (key, _) = self.state.gate_key(run)?;
        let bytes = sign_decision(&key, &d)?;
        let stored = self.state.write_decision(run, &bytes)?;
        let moved = match (&d.verdict, &d.from, &d.to) {
            (Verdict::Pass, Some(from), Some(to)) if from != to && is_protected(&d.target_ref) => {
                let reason = format!("orchestrate-gate: {} {run}", d.action.as_str());
                git.update_ref(&d.target_ref, to, Some(from), &reason)?;
                Some(Moved {
                    refname: d.target_ref.clone(),
                    from: from.clone(),
                    to: to.clone(),
                })
            }
            _ => None,
        };
        Ok(Outcome {
            decision: d,
            file: stored.path,
            sha256: stored.sha256,
            moved,
        })
    }

    /// Fetches the run's agent branch from its bundle into the integration repository and
    /// returns (ref, tip).
    fn fetch_agent(&self, git: &Git, run: &str) -> Result<(String, String), ActionError> {
        let bundle = self.state.run_dir(run)?.join("agent.bundle");
        let plain_file = std::fs::symlink_metadata(&bundle).is_ok_and(|m| m.file_type().is_file());
        if !plain_file {
            return Err(ActionError::NoBundle {
                run: run.to_owned(),
                path: bundle,
            });
        }
        let b = bundle.to_string_lossy().into_owned();
        if let Err(GitError::Failed { stderr, .. }) = git.run(&["bundle", "verify", "--quiet", &b])
        {
            return Err(ActionError::BaseNotIntegrated {
                run: run.to_owned(),
                detail: stderr,
            });
        }
        let heads = git.run(&["bundle", "list-heads", &b])?;
        let suffix = format!("/{run}");
        let head = String::from_utf8_lossy(&heads)
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, r)| r.to_owned()))
            .find(|r| {
                r.strip_prefix("refs/heads/agent/")
                    .and_then(|rest| rest.strip_suffix(&suffix))
                    .is_some_and(|fr| !fr.is_empty() && !fr.contains('/'))
            })
            .ok_or_else(|| ActionError::NoAgentBranch {
                run: run.to_owned(),
                path: bundle.clone(),
            })?;
        let branch = head.trim_start_matches("refs/heads/");
        let dst = agent_ref(branch);
        git.fetch_bundle(&bundle, &head, &dst)?;
        let tip = git
            .resolve_commit(&dst)?
            .ok_or_else(|| ActionError::NoAgentBranch {
                run: run.to_owned(),
                path: bundle,
            })?;
        Ok((dst, tip))
    }

    fn facts(git: &Git, target: &str, old: &str, new: &str) -> Result<GitFacts, ActionError> {
        let ff = git.is_ancestor(old, new)?;
        Ok(GitFacts {
            target_ref: target.to_owned(),
            old: old.to_owned(),
            new: new.to_owned(),
            fast_forward: ff,
            changed: git.changed_files(old, new)?,
            commits: git.commits(old, new)?,
            whitespace_only: git.whitespace_only(old, new)?,
        })
    }

    fn inputs(
        &self,
        run: &str,
        action: Action,
        policy: &Policy,
        git: GitFacts,
        approval: Option<ApprovalFacts>,
        history: &[StoredDecision],
    ) -> Result<GateInputs, ActionError> {
        Ok(GateInputs {
            action,
            run_id: run.to_owned(),
            artifacts: self.state.artifacts(run)?,
            keys: self.state.role_keys(run)?,
            protected_paths: policy.roles.protected_paths.clone(),
            severity: policy.roles.severity_policy.clone(),
            git,
            policy: policy.gate.clone(),
            approval,
            rejected: history
                .iter()
                .rev()
                .find(|d| {
                    d.decision.action == Action::Reject && d.decision.verdict == Verdict::Pass
                })
                .map(|d| d.sha256.clone()),
        })
    }

    /// agent → staging, after review. Holds (no move) when the risk class wants a human.
    pub fn promote(&self, run: &str) -> Result<Outcome, ActionError> {
        self.promote_as(run, None)
    }

    /// [`Gate::promote`], then — only when `orchestrate-gate.yaml` sets
    /// `auto_promote_formatting` and the change is whitespace-only with a review without
    /// findings — staging → main without a human, as its own decision.
    pub fn promote_run(&self, run: &str) -> Result<Vec<Outcome>, ActionError> {
        let (git, inputs) = self.gather_promotion(run, None)?;
        let staged = self.record(&git, run, decide(&inputs))?;
        let auto = inputs.policy.auto_promote_formatting && inputs.git.whitespace_only;
        let Some(moved) = staged.moved.clone().filter(|_| auto) else {
            return Ok(vec![staged]);
        };
        let history = self.state.decisions(run)?;
        let policy = policy::load(&git, self.state.root())?;
        let main = Self::resolve(&git, MAIN)?;
        let facts = Self::facts(&git, MAIN, &main, &moved.to)?;
        let inputs = self.inputs(run, Action::ApproveMain, &policy, facts, None, &history)?;
        let to_main = self.record(&git, run, decide(&inputs))?;
        Ok(vec![staged, to_main])
    }

    /// Everything a staging promotion of `run` would decide on (fetches the agent bundle into
    /// the integration repository, moves nothing). Deciding is then `decide(&inputs)`.
    pub fn promotion_inputs(&self, run: &str) -> Result<GateInputs, ActionError> {
        self.gather_promotion(run, None).map(|(_, i)| i)
    }

    fn gather_promotion(
        &self,
        run: &str,
        caller: Option<&Caller>,
    ) -> Result<(Git, GateInputs), ActionError> {
        let git = self.integration()?;
        let history = self.state.decisions(run)?;
        let policy = policy::load(&git, self.state.root())?;
        let (_, tip) = self.fetch_agent(&git, run)?;
        let staging = Self::resolve(&git, STAGING)?;
        let facts = Self::facts(&git, STAGING, &staging, &tip)?;
        let approval = caller.map(|c| ApprovalFacts {
            actor: actor(c),
            listed: c.is_listed(&policy.roles.approvers),
            on_staging: false,
            staging_decision: None,
        });
        let inputs = self.inputs(
            run,
            Action::PromoteStaging,
            &policy,
            facts,
            approval,
            &history,
        )?;
        Ok((git, inputs))
    }

    fn promote_as(&self, run: &str, caller: Option<&Caller>) -> Result<Outcome, ActionError> {
        let (git, inputs) = self.gather_promotion(run, caller)?;
        self.record(&git, run, decide(&inputs))
    }

    /// staging → main by a human approver (the caller as the OS reports it). If the run is held
    /// before staging (risk class), an approver's approval also lifts the hold.
    pub fn approve(&self, run: &str, caller: &Caller) -> Result<Vec<Outcome>, ActionError> {
        let git = self.integration()?;
        let mut history = self.state.decisions(run)?;
        let mut out = Vec::new();
        let staged = last_pass(&history, Action::PromoteStaging);
        if staged.is_none() {
            let held = history
                .iter()
                .rev()
                .find(|d| d.decision.action == Action::PromoteStaging);
            match held {
                Some(d) if d.decision.verdict == Verdict::Hold => {
                    let o = self.promote_as(run, Some(caller))?;
                    let passed = o.decision.verdict == Verdict::Pass;
                    out.push(o);
                    if !passed {
                        return Ok(out);
                    }
                    history = self.state.decisions(run)?;
                }
                _ => return Err(ActionError::NotPromoted(run.to_owned())),
            }
        }
        let staged = last_pass(&history, Action::PromoteStaging)
            .ok_or_else(|| ActionError::NotPromoted(run.to_owned()))?;
        let commit = staged
            .decision
            .to
            .clone()
            .ok_or_else(|| ActionError::NotPromoted(run.to_owned()))?;
        let policy = policy::load(&git, self.state.root())?;
        let main = Self::resolve(&git, MAIN)?;
        let staging = Self::resolve(&git, STAGING)?;
        let approval = ApprovalFacts {
            actor: actor(caller),
            listed: caller.is_listed(&policy.roles.approvers),
            on_staging: git.is_ancestor(&commit, &staging)?,
            staging_decision: Some(staged.sha256.clone()),
        };
        let facts = Self::facts(&git, MAIN, &main, &commit)?;
        let inputs = self.inputs(
            run,
            Action::ApproveMain,
            &policy,
            facts,
            Some(approval),
            &history,
        )?;
        out.push(self.record(&git, run, decide(&inputs))?);
        Ok(out)
    }

    /// A human refuses the run for good; nothing moves, later promotions of it fail.
    pub fn reject(&self, run: &str, caller: &Caller, reason: &str) -> Result<Outcome, ActionError> {
        let git = self.integration()?;
        let policy = policy::load(&git, self.state.root())?;
        let mut c = authority(caller, &policy);
        c.with("policy", policy.source.clone());
        let target = agent_ref(&format!("agent/*/{run}"));
        let d = manual(
            &self.state,
            run,
            Action::Reject,
            target,
            None,
            None,
            vec![c],
            caller,
            Some(reason.to_owned()),
        );
        self.record(&git, run, d)
    }

    /// Puts `main` and `staging` back to where they were before this run's promotions (the agent
    /// branch is kept). Refuses a ref that later promotions moved past this run: those go first.
    pub fn rollback(&self, run: &str, caller: &Caller) -> Result<Vec<Outcome>, ActionError> {
        let git = self.integration()?;
        let history = self.state.decisions(run)?;
        let policy = policy::load(&git, self.state.root())?;
        let mut out = Vec::new();
        for (refname, action) in [
            (MAIN, Action::ApproveMain),
            (STAGING, Action::PromoteStaging),
        ] {
            let passes: Vec<&StoredDecision> = history
                .iter()
                .filter(|d| d.decision.action == action && d.decision.verdict == Verdict::Pass)
                .collect();
            let (Some(first), Some(last)) = (passes.first(), passes.last()) else {
                continue;
            };
            let (Some(before), Some(after)) = (&first.decision.from, &last.decision.to) else {
                continue;
            };
            let current = Self::resolve(&git, refname)?;
            if &current == before {
                continue;
            }
            let mut target = Check::new("rollback_target");
            target
                .with("ref", refname)
                .with("promotion_decision", first.sha256.clone())
                .with("restore", before.clone())
                .with("current", current.clone())
                .with("run_tip", after.clone());
            if &current != after {
                target.fail(format!(
                    "{refname} is at {current}, not at this run's {after}: later promotions \
                     moved it; roll those back first"
                ));
            }
            let d = manual(
                &self.state,
                run,
                Action::Rollback,
                refname.to_owned(),
                Some(current),
                Some(before.clone()),
                vec![authority(caller, &policy), target],
                caller,
                None,
            );
            out.push(self.record(&git, run, d)?);
        }
        if out.is_empty() {
            return Err(ActionError::NothingToRollBack(run.to_owned()));
        }
        Ok(out)
    }
}

fn is_protected(refname: &str) -> bool {
    refname == MAIN || refname == STAGING || refname == crate::integration::DEV
}

fn last_pass(history: &[StoredDecision], action: Action) -> Option<&StoredDecision> {
    history
        .iter()
        .rev()
        .find(|d| d.decision.action == action && d.decision.verdict == Verdict::Pass)
}

fn actor(c: &Caller) -> Actor {
    Actor {
        uid: c.uid,
        user: c.user.clone(),
    }
}

/// The caller is an approver (roles.yaml `approvers`), as the OS identifies it.
fn authority(caller: &Caller, policy: &Policy) -> Check {
    let mut c = Check::new("human_authority");
    c.with("uid", caller.uid.to_string());
    c.with("user", caller.user.clone().unwrap_or_default());
    if !caller.is_listed(&policy.roles.approvers) {
        c.fail(format!(
            "{} is not in roles.yaml approvers",
            caller.display()
        ));
    }
    c
}

/// A decision taken by a human through the gate (reject, rollback).
#[allow(clippy::too_many_arguments)]
fn manual(
    state: &StateDir,
    run: &str,
    action: Action,
    target_ref: String,
    from: Option<String>,
    to: Option<String>,
    checks: Vec<Check>,
    caller: &Caller,
    reason: Option<String>,
) -> Decision {
    let plan = plan_of(state, run);
    let verdict = if checks.iter().any(|c| c.status == CheckStatus::Fail) {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    Decision {
        schema: DECISION_SCHEMA.to_owned(),
        action,
        run_id: run.to_owned(),
        plan_id: plan.as_ref().map(|p| p.0.clone()),
        plan_hash: plan.map(|p| p.1),
        target_ref,
        from,
        to,
        verdict,
        checks,
        uncertain: Vec::new(),
        actor: Some(actor(caller)),
        reason,
    }
}

/// (plan_id, plan hash) of the run's WORK_PLAN.json, when it parses.
fn plan_of(state: &StateDir, run: &str) -> Option<(String, String)> {
    let bytes = state.artifacts(run).ok()?.work_plan?;
    let plan: protocol::plan::WorkPlan = serde_json::from_slice(&bytes).ok()?;
    let hash = plan.hash().ok()?.to_hex();
    Some((plan.plan_id, hash))
}

/// Initialises `<state>/integration.git` from `seed` unless it exists (idempotent).
pub fn ensure_integration(
    state: &Path,
    seed: &crate::integration::Seed,
    owner: Option<crate::integration::Owner>,
) -> Result<Option<String>, crate::integration::IntegrationError> {
    let path = state.join(crate::integration::INTEGRATION_DIR);
    if path.join("HEAD").is_file() {
        return Ok(None);
    }
    crate::integration::init(&path, seed, owner).map(Some)
}
