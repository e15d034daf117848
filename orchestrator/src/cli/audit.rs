//! `orchestrate audit verify`: recompute the audit chain and name the first bad row.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::context::{Context, ContextError};
use super::exit::{ExitCode, Failure};
use super::output::{Mark, Output};
use crate::state::{AuditHead, Problem, Store, StoreError, VerifyError};

/// `orchestrate audit ...`
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain of the audit trail; exit 1 naming the first bad row if it was
    /// edited, reordered, cut in the middle or (against --expect-head) truncated.
    Verify(VerifyArgs),
    /// Print the chain head as SEQ:HASH (without verifying), to keep elsewhere and later pass to
    /// `audit verify --expect-head`.
    Head(HeadArgs),
}

#[derive(Debug, Args)]
struct HeadArgs {
    /// Print one JSON document (`{"seq": N, "hash": "..."}`) instead of SEQ:HASH.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// A head recorded elsewhere (a receipt, the integration repo's ref), as SEQ:HASH; catches
    /// deletion of the newest rows, which leaves a valid shorter chain.
    #[arg(long, value_name = "SEQ:HASH")]
    expect_head: Option<AuditHead>,
}

/// Errors of `orchestrate audit`.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The state directory could not be resolved.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The state database could not be opened.
    #[error("opening the audit store: {0}")]
    Open(#[source] StoreError),
    /// The chain could not be read to the end.
    #[error("verifying the audit chain: {0}")]
    Verify(#[source] VerifyError),
}

impl Failure for AuditError {
    fn exit_code(&self) -> ExitCode {
        match self {
            AuditError::Context(e) => e.exit_code(),
            AuditError::Open(_) | AuditError::Verify(_) => ExitCode::Internal,
        }
    }
}

impl AuditArgs {
    /// Whether the chosen subcommand asked for JSON (so errors can be printed the same way).
    pub fn json(&self) -> bool {
        match &self.command {
            AuditCommand::Verify(v) => v.json,
            AuditCommand::Head(h) => h.json,
        }
    }
}

/// Runs `orchestrate audit ...`.
pub fn run(ctx: &Context, out: &Output, args: &AuditArgs) -> Result<ExitCode, AuditError> {
    match &args.command {
        AuditCommand::Verify(v) => verify(ctx, out, v),
        AuditCommand::Head(_) => head(ctx, out),
    }
}

#[derive(Serialize)]
struct VerifyDoc<'a> {
    valid: bool,
    database: String,
    #[serde(flatten)]
    report: &'a crate::state::VerifyReport,
}

fn head(ctx: &Context, out: &Output) -> Result<ExitCode, AuditError> {
    let store = Store::open_existing(&ctx.state_dir()?).map_err(AuditError::Open)?;
    let head = store.head().map_err(AuditError::Open)?;
    out.document(&head);
    out.line(head);
    Ok(ExitCode::Ok)
}

fn verify(ctx: &Context, out: &Output, args: &VerifyArgs) -> Result<ExitCode, AuditError> {
    let dir = ctx.state_dir()?;
    let store = Store::open_existing(&dir).map_err(AuditError::Open)?;
    let report = store.verify(args.expect_head).map_err(AuditError::Verify)?;
    out.document(&VerifyDoc {
        valid: report.is_valid(),
        database: store.path().display().to_string(),
        report: &report,
    });
    match &report.problem {
        None => {
            let against = match args.expect_head {
                Some(h) => format!(", matches expected head {}", h.seq),
                None => String::new(),
            };
            out.mark(
                Mark::Ok,
                "audit chain intact",
                format!(
                    "{} rows, head {}{against}",
                    report.rows_verified, report.head
                ),
            );
            Ok(ExitCode::Ok)
        }
        Some(problem) => {
            out.mark(Mark::Fail, "audit chain tampered", problem);
            if !matches!(problem, Problem::GuardMissing { .. }) {
                out.line(format!(
                    "     last good row: {} ({} rows verified)",
                    report.head, report.rows_verified
                ));
            }
            Ok(ExitCode::Failed)
        }
    }
}
