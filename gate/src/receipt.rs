//! The proof receipt of a run: what changed, what was validated (each check with its evidence
//! hashes), what remains uncertain. Built from the gate's own verified decisions and the
//! integration repository, signed by the gate as an in-toto Statement (subject: the run's
//! commit) in a DSSE envelope, or rendered as text.
//!
//! Deterministic like a decision: the same decisions, refs and manifest give the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use protocol::artifact::{sign_artifact, Signer, Statement, Subject};
use protocol::canonical::{self, sha256, Digest32};
use serde::{Deserialize, Serialize};

use crate::actions::{ActionError, Gate};
use crate::decision::{Action, Actor, Check, CheckStatus, Verdict};
use crate::git::{ChangedFile, Git};
use crate::integration::{parent_is_safe, MAIN, STAGING};
use crate::layout::StoredDecision;
use crate::sign::SignError;

/// Schema tag of a receipt.
pub const RECEIPT_SCHEMA: &str = "orchestrate/receipt/v1";
/// Predicate kind of a receipt.
pub const RECEIPT_KIND: &str = "receipt";

/// Diff totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffStat {
    /// Files changed.
    pub files: usize,
    /// Lines added.
    pub added: u64,
    /// Lines deleted.
    pub deleted: u64,
    /// Binary files among them.
    pub binary: usize,
}

/// A decision as cited by the receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRef {
    /// `n` of `decision-<n>.dsse.json`.
    pub n: u32,
    /// Action.
    pub action: Action,
    /// Verdict.
    pub verdict: Verdict,
    /// Ref.
    pub target_ref: String,
    /// Before.
    pub from: Option<String>,
    /// After.
    pub to: Option<String>,
    /// Hex SHA-256 of the signed envelope.
    pub sha256: String,
    /// The human, if any.
    pub actor: Option<Actor>,
    /// Reason (reject, hold).
    pub reason: Option<String>,
}

/// The receipt body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// [`RECEIPT_SCHEMA`].
    pub schema: String,
    /// The run.
    pub run_id: String,
    /// Plan id.
    pub plan_id: Option<String>,
    /// Plan hash.
    pub plan_hash: Option<String>,
    /// Where the run stands, in words.
    pub status: String,
    /// Commit the run started from (staging before its first promotion decision).
    pub base: Option<String>,
    /// The run's commit.
    pub head: Option<String>,
    /// Files changed base..head.
    pub changed: Vec<ChangedFile>,
    /// Totals.
    pub diffstat: DiffStat,
    /// Current protected refs.
    pub refs: BTreeMap<String, String>,
    /// Every gate decision of the run, in order.
    pub decisions: Vec<DecisionRef>,
    /// The checks of the latest promote/approve decision, with their evidence.
    pub validated: Vec<Check>,
    /// What no check covered.
    pub uncertain: Vec<String>,
    /// The audit head the caller (the orchestrator) gave, as `SEQ:HASH`.
    pub audit_head: Option<String>,
}

/// Builds the receipt of `run`.
pub fn build(gate: &Gate, run: &str, audit_head: Option<&str>) -> Result<Receipt, ActionError> {
    let state = gate.state();
    let history = state.decisions(run)?;
    let repo = state.integration();
    let git = Git::new(&repo);
    let mut refs = BTreeMap::new();
    for r in [MAIN, STAGING] {
        if let Some(c) = git.resolve_commit(r)? {
            refs.insert(r.to_owned(), c);
        }
    }
    let first = history
        .iter()
        .find(|d| d.decision.action == Action::PromoteStaging);
    let base = first.and_then(|d| d.decision.from.clone());
    let head = first.and_then(|d| d.decision.to.clone());
    let changed = match (&base, &head) {
        (Some(b), Some(h)) => git.changed_files(b, h)?,
        _ => Vec::new(),
    };
    let diffstat = DiffStat {
        files: changed.len(),
        added: changed.iter().map(|f| f.added).sum(),
        deleted: changed.iter().map(|f| f.deleted).sum(),
        binary: changed.iter().filter(|f| f.binary).count(),
    };
    let latest = history.iter().rev().find(|d| {
        matches!(
            d.decision.action,
            Action::PromoteStaging | Action::ApproveMain
        )
    });
    let validated = latest
        .map(|d| d.decision.checks.clone())
        .unwrap_or_default();
    let mut uncertain = latest
        .map(|d| d.decision.uncertain.clone())
        .unwrap_or_default();
    uncertain.extend(environment_uncertain(gate, run, &repo));
    uncertain.push(
        "the change's behaviour beyond the acceptance tests and the review rules is not verified"
            .to_owned(),
    );
    uncertain.sort();
    uncertain.dedup();
    let plan = history.iter().find_map(|d| {
        d.decision
            .plan_hash
            .clone()
            .map(|h| (d.decision.plan_id.clone(), h))
    });
    Ok(Receipt {
        schema: RECEIPT_SCHEMA.to_owned(),
        run_id: run.to_owned(),
        plan_id: plan.as_ref().and_then(|p| p.0.clone()),
        plan_hash: plan.map(|p| p.1),
        status: status(&history),
        base,
        head,
        changed,
        diffstat,
        refs,
        decisions: history.iter().map(cite).collect(),
        validated,
        uncertain,
        audit_head: audit_head.map(str::to_owned),
    })
}

fn cite(d: &StoredDecision) -> DecisionRef {
    DecisionRef {
        n: d.n,
        action: d.decision.action,
        verdict: d.decision.verdict,
        target_ref: d.decision.target_ref.clone(),
        from: d.decision.from.clone(),
        to: d.decision.to.clone(),
        sha256: d.sha256.clone(),
        actor: d.decision.actor.clone(),
        reason: d.decision.reason.clone(),
    }
}

/// Where the run stands, from its last decision that counted.
fn status(history: &[StoredDecision]) -> String {
    let Some(last) = history.last() else {
        return "not decided by the gate yet".to_owned();
    };
    let d = &last.decision;
    match (d.action, d.verdict) {
        (Action::PromoteStaging, Verdict::Pass) => "promoted to staging; awaiting approval".into(),
        (Action::PromoteStaging, Verdict::Hold) => {
            "held before staging: needs a human approval".into()
        }
        (Action::ApproveMain, Verdict::Pass) => "approved: on main".into(),
        (Action::Reject, Verdict::Pass) => "rejected".into(),
        (Action::Rollback, Verdict::Pass) => "rolled back".into(),
        (a, _) => format!("last gate decision ({}) failed", a.as_str()),
    }
}

/// Uncertainty that comes from how the run and the gate were set up, not from the artifacts.
fn environment_uncertain(gate: &Gate, run: &str, repo: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let state = gate.state();
    match std::fs::metadata(repo) {
        Ok(meta) => {
            use std::os::unix::fs::MetadataExt as _;
            if !parent_is_safe(repo, meta.uid()) {
                out.push(format!(
                    "integration repository: {} is writable by others than root and the gate, \
                     who could swap the repository",
                    repo.parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ));
            }
            if meta.uid() == 0 {
                out.push(
                    "integration repository is owned by root, not a dedicated gate user".to_owned(),
                );
            }
        }
        Err(e) => out.push(format!("integration repository unreadable: {e}")),
    }
    if crate::client::installed(state.root()).is_none() {
        out.push(
            "the gate is not installed as its own user (`orchestrate setup` installs it set-id): \
             it ran as whoever called it"
                .to_owned(),
        );
    }
    if matches!(
        state.gate_key(run),
        Ok((_, crate::inputs::KeySource::PerRun))
    ) {
        out.push("gate decisions are signed with a per-run key (weaker mode)".to_owned());
    }
    if let Ok(dir) = state.run_dir(run) {
        match std::fs::read(dir.join("manifest.json")) {
            Ok(bytes) => {
                let digest = sha256(&bytes).to_hex();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    let mut weaker = Vec::new();
                    find_weaker(&v, "", &mut weaker);
                    for w in weaker {
                        out.push(format!("containment (manifest.json {digest}): {w}"));
                    }
                }
            }
            Err(_) => out.push(
                "no manifest.json: containment layers of the run are not recorded".to_owned(),
            ),
        }
    }
    out
}

/// Collects `path = value` for every manifest key naming a weaker, skipped or missing layer.
fn find_weaker(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let key = k.to_ascii_lowercase();
                let named = ["weaker", "skipped", "missing", "unavailable"]
                    .iter()
                    .any(|w| key.contains(w));
                let set = match val {
                    serde_json::Value::Bool(b) => *b,
                    serde_json::Value::Array(a) => !a.is_empty(),
                    serde_json::Value::String(s) => !s.is_empty(),
                    serde_json::Value::Object(o) => !o.is_empty(),
                    _ => false,
                };
                let says_weaker = matches!(val, serde_json::Value::String(s) if s == "weaker");
                if (named && set) || says_weaker {
                    out.push(format!("{p} = {val}"));
                } else {
                    find_weaker(val, &p, out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_weaker(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Signs the receipt (gate key) and returns the canonical DSSE envelope bytes.
pub fn sign(gate: &Gate, receipt: &Receipt) -> Result<Vec<u8>, ActionError> {
    let (key, _) = gate.state().gate_key(&receipt.run_id)?;
    let subject = match &receipt.head {
        Some(h) => vec![Subject::commit(receipt.run_id.clone(), h.clone())],
        None => Vec::new(),
    };
    let plan_hash = receipt
        .plan_hash
        .as_deref()
        .and_then(Digest32::from_hex)
        .unwrap_or(Digest32([0; 32]));
    let st = Statement::new(
        subject,
        receipt.run_id.clone(),
        Signer::Gate,
        RECEIPT_KIND,
        &plan_hash,
        receipt,
    )
    .map_err(|e| ActionError::Sign(SignError::Artifact(e)))?;
    let env = sign_artifact(&key, &st).map_err(|e| ActionError::Sign(SignError::Artifact(e)))?;
    canonical::to_vec(&env).map_err(|e| ActionError::Sign(SignError::Canonical(e)))
}

/// Readable text.
pub fn render(r: &Receipt) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "receipt for run {}", r.run_id);
    let _ = writeln!(
        s,
        "plan: {} ({})",
        r.plan_id.as_deref().unwrap_or("?"),
        r.plan_hash.as_deref().unwrap_or("no verified plan")
    );
    let _ = writeln!(s, "status: {}", r.status);
    if let (Some(b), Some(h)) = (&r.base, &r.head) {
        let _ = writeln!(s, "commits: {b}..{h}");
    }
    let _ = writeln!(
        s,
        "\nwhat changed ({} files, +{} -{}, {} binary):",
        r.diffstat.files, r.diffstat.added, r.diffstat.deleted, r.diffstat.binary
    );
    for f in &r.changed {
        if f.binary {
            let _ = writeln!(s, "  {} {} (binary, blob {})", f.status, f.path, f.new_blob);
        } else {
            let _ = writeln!(s, "  {} {} +{} -{}", f.status, f.path, f.added, f.deleted);
        }
    }
    let _ = writeln!(s, "\nwhat was validated:");
    for c in &r.validated {
        let word = match c.status {
            CheckStatus::Pass => "ok  ",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Uncertain => "??  ",
        };
        let _ = writeln!(s, "  {word} {}", c.name);
        for (k, v) in &c.evidence {
            if !v.is_empty() {
                let _ = writeln!(s, "         {k}: {v}");
            }
        }
        for d in &c.detail {
            let _ = writeln!(s, "         - {d}");
        }
    }
    let _ = writeln!(s, "\ngate decisions:");
    for d in &r.decisions {
        let who = d
            .actor
            .as_ref()
            .map(|a| {
                format!(
                    " by {}",
                    a.user.clone().unwrap_or_else(|| format!("uid {}", a.uid))
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  #{} {} {:?} {}{who} sha256:{}",
            d.n,
            d.action.as_str(),
            d.verdict,
            d.target_ref,
            d.sha256
        );
        if let Some(reason) = &d.reason {
            let _ = writeln!(s, "     reason: {reason}");
        }
    }
    let _ = writeln!(s, "\nwhat remains uncertain:");
    for u in &r.uncertain {
        let _ = writeln!(s, "  - {u}");
    }
    for (k, v) in &r.refs {
        let _ = writeln!(s, "\n{k} is at {v}");
    }
    if let Some(h) = &r.audit_head {
        let _ = writeln!(s, "audit head: {h}");
    }
    s
}
