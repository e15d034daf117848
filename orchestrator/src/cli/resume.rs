//! `orchestrate resume RUN --reauthorize`: a person continues a stopped, paused or interrupted
//! run from its last checkpoint (the agent branch head). Without `--reauthorize` it refuses.

use std::path::PathBuf;

use clap::Args;

use super::context::Context;
use super::exit::ExitCode;
use super::output::Output;
use super::start::{conclude, reporter, StartError};
use crate::run::{self, ResumeRequest};

/// `orchestrate resume`
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run id.
    pub run: String,
    /// I, a person, re-authorize this run (recorded with my OS identity).
    #[arg(long)]
    pub reauthorize: bool,
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
pub fn run(ctx: &Context, out: &Output, args: &ResumeArgs) -> Result<ExitCode, StartError> {
    let summary = run::resume(ResumeRequest {
        repo: ctx.repo()?,
        state_dir: ctx.state_dir()?,
        run_id: args.run.clone(),
        reauthorize: args.reauthorize,
        allow_weaker: args.allow_weaker,
        layers_off: args.layer_off.clone(),
        session: args.session.clone(),
        report: reporter(args.json),
    })?;
    Ok(conclude(out, &summary))
}
