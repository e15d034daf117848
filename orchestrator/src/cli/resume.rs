//! `orchestrate resume RUN --reauthorize [--raise-budget USD]`: a person continues a stopped,
//! paused or interrupted run from its last checkpoint (the agent branch head), optionally raising
//! its cost ceiling (recorded in the audit chain with who raised it, from and to). Without
//! `--reauthorize` it refuses; a raise that is not above the ceiling in force or above the month's
//! limit is refused (exit 2) before the run is touched.

use std::path::PathBuf;

use clap::Args;

use super::context::Context;
use super::exit::{ExitCode, Failure};
use super::output::Output;
use super::start::{conclude, reporter, StartError};
use crate::run::{self, ResumeRequest, RunError};

/// Errors of `orchestrate resume`.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// What `start` can fail with.
    #[error(transparent)]
    Start(#[from] StartError),
    /// `--raise-budget` refused.
    #[error(transparent)]
    Raise(Box<RunError>),
}

impl Failure for ResumeError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ResumeError::Start(e) => e.exit_code(),
            ResumeError::Raise(_) => ExitCode::Usage,
        }
    }
}

/// `orchestrate resume`
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run id.
    pub run: String,
    /// I, a person, re-authorize this run (recorded with my OS identity).
    #[arg(long)]
    pub reauthorize: bool,
    /// Raise the run's cost ceiling to USD (greater than the ceiling in force, within roles.yaml's
    /// budgets.per_month_usd; needs --reauthorize; recorded with who raised it).
    #[arg(long, value_name = "USD")]
    pub raise_budget: Option<f64>,
    /// Run without the required containment (recorded).
    #[arg(long)]
    pub allow_weaker: bool,
    /// Switch a containment layer off for this run (repeatable; e.g. for a containment test's
    /// twin). A required layer needs --allow-weaker too; the manifest records it as missing.
    #[arg(long, value_name = "LAYER")]
    pub layer_off: Vec<String>,
    /// The recorded agent session (default: sessions/<FR>.json in the repository).
    #[arg(long, value_name = "FILE")]
    pub session: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrate resume`.
pub fn run(ctx: &Context, out: &Output, args: &ResumeArgs) -> Result<ExitCode, ResumeError> {
    let result = run::resume(ResumeRequest {
        repo: ctx.repo().map_err(StartError::from)?,
        state_dir: ctx.state_dir().map_err(StartError::from)?,
        run_id: args.run.clone(),
        reauthorize: args.reauthorize,
        allow_weaker: args.allow_weaker,
        layers_off: args.layer_off.clone(),
        session: args.session.clone(),
        raise_budget: args.raise_budget,
        report: reporter(args.json),
    });
    match result {
        Ok(summary) => Ok(conclude(out, &summary)),
        Err(e @ RunError::Raise { .. }) => Err(ResumeError::Raise(Box::new(e))),
        Err(e) => Err(ResumeError::Start(StartError::from(e))),
    }
}
