//! `orchestrate log RUN [-f]`: a run's audit events, oldest first; `-f` follows until the run
//! ends.

use std::time::Duration;

use clap::Args;

use super::context::Context;
use super::exit::ExitCode;
use super::output::Output;
use super::start::StartError;
use crate::run;
use crate::state::{RunEvent, Store};

/// `orchestrate log`
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The run id.
    pub run: String,
    /// Keep printing new events until the run ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Print the events as one JSON array (not with -f).
    #[arg(long)]
    pub json: bool,
}

fn line(e: &RunEvent) -> String {
    let secs = e.ts / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!(
        "{:>6} {h:02}:{m:02}:{s:02} {:<20} {}",
        e.seq, e.kind, e.body
    )
}

/// Runs `orchestrate log`.
pub fn run(ctx: &Context, out: &Output, args: &LogArgs) -> Result<ExitCode, StartError> {
    let state = ctx.state_dir()?;
    let store = Store::open_existing(&state).map_err(run::RunError::from)?;
    if store.run(&args.run).map_err(run::RunError::from)?.is_none() {
        return Err(run::RunError::NoSuchRun {
            run_id: args.run.clone(),
        }
        .into());
    }
    let events = store
        .run_events(&args.run, 0)
        .map_err(run::RunError::from)?;
    if out.is_json() && !args.follow {
        out.document(&events);
        return Ok(ExitCode::Ok);
    }
    let mut last = 0;
    for e in &events {
        println!("{}", line(e));
        last = e.seq;
    }
    if !args.follow {
        return Ok(ExitCode::Ok);
    }
    loop {
        let r = store.run(&args.run).map_err(run::RunError::from)?;
        let shown = r
            .map(|r| run::shown_status(&state, &args.run, &r.status))
            .unwrap_or_default();
        for e in store
            .run_events(&args.run, last)
            .map_err(run::RunError::from)?
        {
            println!("{}", line(&e));
            last = e.seq;
        }
        if !matches!(
            shown.as_str(),
            run::status::RUNNING | run::status::PREFLIGHT
        ) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(ExitCode::Ok)
}
