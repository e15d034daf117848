//! `orchestrate status [RUN] [--json]`: the runs, or one run in detail. A run whose orchestrator
//! died before it ended shows as `interrupted`.

use clap::Args;

use super::context::Context;
use super::exit::ExitCode;
use super::output::Output;
use super::start::StartError;
use crate::run::{self, layout::RunDir};
use crate::state::Store;

/// `orchestrate status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A run id; without it every run is listed, newest first.
    pub run: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrate status`.
pub fn run(ctx: &Context, out: &Output, args: &StatusArgs) -> Result<ExitCode, StartError> {
    let state = ctx.state_dir()?;
    let store = Store::open_existing(&state).map_err(run::RunError::from)?;
    match &args.run {
        None => {
            let runs = store.runs().map_err(run::RunError::from)?;
            let rows: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "run_id": r.run_id, "fr_id": r.fr_id,
                        "status": run::shown_status(&state, &r.run_id, &r.status),
                        "stop_reason": r.stop_reason, "plan_hash": r.plan_hash, "updated_at": r.updated_at,
                    })
                })
                .collect();
            if out.is_json() {
                out.document(&rows);
            } else {
                for r in &rows {
                    out.line(format!(
                        "{}  {}  {}{}",
                        r["run_id"].as_str().unwrap_or_default(),
                        r["fr_id"].as_str().unwrap_or_default(),
                        r["status"].as_str().unwrap_or_default(),
                        r["stop_reason"]
                            .as_str()
                            .map(|c| format!(" {c}"))
                            .unwrap_or_default()
                    ));
                }
                if rows.is_empty() {
                    out.line("no runs");
                }
            }
        }
        Some(id) => {
            let r = store
                .run(id)
                .map_err(run::RunError::from)?
                .ok_or_else(|| run::RunError::NoSuchRun { run_id: id.clone() })?;
            let dir = RunDir::new(&state, id);
            let shown = run::shown_status(&state, id, &r.status);
            let manifest: Option<serde_json::Value> = std::fs::read(dir.manifest())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let events = store.run_events(id, 0).map_err(run::RunError::from)?;
            let last = events.last().map(|e| e.kind.clone());
            let doc = serde_json::json!({
                "run_id": r.run_id, "fr_id": r.fr_id, "status": shown, "stored_status": r.status,
                "stop_reason": r.stop_reason, "plan_hash": r.plan_hash, "created_at": r.created_at,
                "updated_at": r.updated_at, "events": events.len(), "last_event": last,
                "run_dir": dir.root, "manifest": manifest,
            });
            if out.is_json() {
                out.document(&doc);
            } else {
                out.line(format!("run      {}", r.run_id));
                out.line(format!("fr       {}", r.fr_id));
                out.line(format!(
                    "status   {shown}{}",
                    r.stop_reason
                        .as_deref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default()
                ));
                if let Some(h) = &r.plan_hash {
                    out.line(format!("plan     {h}"));
                }
                if let Some(m) = &manifest {
                    out.line(format!(
                        "branch   {} at {}",
                        m["agent_branch"].as_str().unwrap_or(""),
                        m["head_commit"].as_str().unwrap_or("-")
                    ));
                    out.line(format!(
                        "mode     {}",
                        m["containment"]["mode"].as_str().unwrap_or("")
                    ));
                    if let Some(its) = m["iterations"].as_array() {
                        for it in its {
                            out.line(format!(
                                "iter {}   failures {}  acceptance passing {}  findings {}  budget {:.0} %",
                                it["iteration"], it["failures"], it["acceptance_passing"], it["findings"],
                                it["budget_pct"].as_f64().unwrap_or(0.0)
                            ));
                        }
                    }
                }
                out.line(format!(
                    "events   {} (last: {})",
                    events.len(),
                    last.unwrap_or_default()
                ));
                out.line(format!("dir      {}", dir.root.display()));
                if shown == run::status::INTERRUPTED {
                    out.line(format!(
                        "the orchestrator driving this run is gone: `orchestrate resume {id} --reauthorize` continues it, `orchestrate stop {id}` discards it"
                    ));
                }
            }
        }
    }
    Ok(ExitCode::Ok)
}
