//! How a run ends. A stop is deterministic: the role processes are killed first (no new tool or
//! model call can be accepted), an append-only stop event with the reason code is written, the
//! diff snapshot, manifest and logs are persisted, the uncommitted workspace is quarantined (the
//! agent branch stays at its last committed, checked state), and only `orchestrate resume RUN
//! --reauthorize` continues it.

use protocol::StopCode;
use serde::Serialize;

use super::engine::{git_text, Engine, EngineError, IterationRecord, KeySource, Outcome};
use super::launch::Containment;
use super::layout;

/// The run manifest (`manifest.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// Manifest format.
    pub version: u32,
    /// Run id.
    pub run_id: String,
    /// FR ids.
    pub fr_ids: Vec<String>,
    /// Who did the work: the codegen driver and what it replayed.
    pub agent: serde_json::Value,
    /// Plan id.
    pub plan_id: Option<String>,
    /// Plan hash (hex).
    pub plan_hash: Option<String>,
    /// Base commit.
    pub base_commit: String,
    /// Agent branch.
    pub agent_branch: String,
    /// Head of the agent branch.
    pub head_commit: Option<String>,
    /// Start, seconds since the Unix epoch.
    pub started_at: u64,
    /// End, seconds since the Unix epoch.
    pub ended_at: u64,
    /// How the roles were contained.
    pub containment: Containment,
    /// Where the role keys came from.
    pub key_source: KeySource,
    /// Where roles.yaml came from.
    pub roles_source: String,
    /// Files the agent said it read.
    pub files_read: Vec<String>,
    /// Files written (agent branch against base).
    pub files_written: Vec<serde_json::Value>,
    /// `git diff --shortstat` of base..head.
    pub diff_summary: String,
    /// Calls outside the machine (none: roles have no network; the gateway is not built yet).
    pub external_calls: Vec<String>,
    /// Model tokens in and out.
    pub tokens: serde_json::Value,
    /// Cost against budget.
    pub cost: serde_json::Value,
    /// Tool calls accepted.
    pub tool_calls: u32,
    /// Per-iteration progress.
    pub iterations: Vec<IterationRecord>,
    /// `done`, `stopped` or `paused`.
    pub exit: String,
    /// Stop reason code.
    pub stop_reason: Option<StopCode>,
    /// What happened, in words.
    pub detail: Option<String>,
    /// The stage the run ended in.
    pub stage: String,
    /// Audit head after the final event (`SEQ:HEX`).
    pub audit_head: String,
    /// Artifacts present, file name -> sha256.
    pub artifacts: std::collections::BTreeMap<String, String>,
}

impl Engine {
    /// What drove codegen, as the manifest and the receipt say it: a replayed session, a
    /// coding-agent CLI or the built-in tool loop (both through the run's model gateway).
    fn agent_record(&self) -> serde_json::Value {
        use protocol::roles::Driver;
        let codegen = self.policy.roles.role(protocol::roles::RoleName::Codegen);
        match codegen.map(|c| c.driver) {
            Some(Driver::Command) => serde_json::json!({
                "codegen_driver": "command",
                "label": "a coding-agent CLI ran confined as codegen; its model requests went through the run's gateway; its own sandbox and approval prompts were off (the orchestrator's sandbox is the boundary)",
                "argv": codegen.and_then(|c| c.command.as_ref()).map(|c| c.argv.clone()),
            }),
            Some(Driver::Llm) => serde_json::json!({
                "codegen_driver": "llm",
                "label": "the built-in tool loop asked a model through the run's gateway",
                "model": codegen.and_then(|c| c.llm.as_ref()).map(|l| l.model.clone()),
            }),
            _ => serde_json::json!({
                "codegen_driver": "replay",
                "label": "REPLAY of a recorded agent session: no model was asked anything",
                "session": self.session.display().to_string(),
                "session_sha256": std::fs::read(&self.session).map(|b| protocol::canonical::sha256(&b).to_hex()).ok(),
            }),
        }
    }

    /// Stops the run with `code`.
    pub(super) async fn halt(
        &mut self,
        code: StopCode,
        detail: &str,
    ) -> Result<Outcome, EngineError> {
        self.stop_roles();
        let quarantine = self.quarantine(code, detail)?;
        self.snapshot()?;
        self.event(
            "run.stopped",
            serde_json::json!({
                "code": code, "detail": detail, "stage": self.stage, "iteration": self.iteration,
                "head": self.head, "quarantine": quarantine, "resume": "orchestrate resume RUN --reauthorize",
            }),
        )?;
        self.status("stopped", Some(code))?;
        self.say(&format!("[stop] {code}: {detail}"));
        self.finish_files("stopped", Some(code), Some(detail))?;
        Ok(Outcome::Stopped(code, detail.to_owned()))
    }

    /// Pauses the run for a human (budget escalation threshold).
    pub(super) async fn pause(&mut self, detail: &str) -> Result<Outcome, EngineError> {
        self.stop_roles();
        self.snapshot()?;
        self.event(
            "run.paused",
            serde_json::json!({"detail": detail, "iteration": self.iteration, "head": self.head}),
        )?;
        self.status("paused", None)?;
        self.say(&format!("[pause] budget escalation: {detail}; a person must run `orchestrate resume {} --reauthorize`", self.run_id));
        self.finish_files("paused", None, Some(detail))?;
        Ok(Outcome::Paused(detail.to_owned()))
    }

    /// Every acceptance test passes.
    pub(super) async fn finish_done(&mut self) -> Result<Outcome, EngineError> {
        self.stop_roles();
        self.snapshot()?;
        self.event("run.done", serde_json::json!({"iteration": self.iteration, "head": self.head, "branch": self.branch()}))?;
        self.status("done", None)?;
        self.finish_files("done", None, None)?;
        Ok(Outcome::Done)
    }

    /// Moves the uncommitted workspace aside, with the list of what it changed.
    fn quarantine(&mut self, code: StopCode, detail: &str) -> Result<Option<String>, EngineError> {
        let work = self.uncommitted();
        if !work.exists() {
            return Ok(None);
        }
        let changes = self.codegen_changes().map(|(_, c)| c).unwrap_or_default();
        let q = self.dir.quarantine();
        std::fs::create_dir_all(&q).map_err(|source| EngineError::Quarantine {
            path: q.clone(),
            source,
        })?;
        // A resumed run can stop in the same iteration again: never overwrite what an earlier
        // stop set aside.
        let mut name = format!("work-iteration-{}", self.iteration);
        let mut again = 1;
        while q.join(&name).exists() {
            again += 1;
            name = format!("work-iteration-{}-{again}", self.iteration);
        }
        let target = q.join(&name);
        // Across filesystems when the volume is an ext4 image.
        super::volume::move_tree(&work, &target).map_err(|source| EngineError::Quarantine {
            path: work.clone(),
            source,
        })?;
        layout::write_json(
            &q.join(format!("{name}.json")),
            &serde_json::json!({"code": code, "detail": detail, "changes": changes, "against": self.lower.as_deref().unwrap_or(&self.base)}),
        )?;
        Ok(Some(target.display().to_string()))
    }

    /// `diff.patch` (base..head of the agent branch) and `agent.bundle` for the gate.
    fn snapshot(&mut self) -> Result<(), EngineError> {
        let Some(head) = self.head.clone() else {
            return Ok(());
        };
        let diff = self.repo.diff(&self.base, &head)?;
        layout::write(&self.dir.diff(), diff.as_bytes())?;
        let bundle = self.dir.bundle();
        let _ = std::fs::remove_file(&bundle);
        let range = format!("{}..refs/heads/{}", self.base, self.branch());
        git_text(
            self.repo.root(),
            &["bundle", "create", &bundle.display().to_string(), &range],
        )?;
        Ok(())
    }

    fn finish_files(
        &mut self,
        exit: &str,
        code: Option<StopCode>,
        detail: Option<&str>,
    ) -> Result<(), EngineError> {
        let files_written = match &self.head {
            Some(h) => git_text(self.repo.root(), &["diff", "--name-status", &self.base, h])?
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(k, p)| serde_json::json!({"path": p, "status": k}))
                .collect(),
            None => Vec::new(),
        };
        let diff_summary = match &self.head {
            Some(h) => git_text(self.repo.root(), &["diff", "--shortstat", &self.base, h])?,
            None => String::new(),
        };
        let mut artifacts = std::collections::BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.root.join("artifacts")) {
            for e in rd.flatten() {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    artifacts.insert(
                        e.file_name().to_string_lossy().into_owned(),
                        protocol::canonical::sha256(&bytes).to_hex(),
                    );
                }
            }
        }
        let head = self.store.head()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let started = self
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let ledger = self.last_ledger();
        let manifest = Manifest {
            version: 1,
            run_id: self.run_id.clone(),
            fr_ids: vec![self.policy.fr.id.clone()],
            agent: self.agent_record(),
            plan_id: self.plan.as_ref().map(|p| p.plan_id.clone()),
            plan_hash: self.plan_hash.map(|h| h.to_hex()),
            base_commit: self.base.clone(),
            agent_branch: self.branch(),
            head_commit: self.head.clone(),
            started_at: started,
            ended_at: now,
            containment: self.launcher.containment(),
            key_source: self.key_source,
            roles_source: self.policy.roles_source.clone(),
            files_read: self.files_read.clone(),
            files_written,
            diff_summary,
            external_calls: Vec::new(),
            tokens: ledger.as_ref().map_or_else(
                || serde_json::json!({"in": 0, "out": 0}),
                |l| serde_json::json!({"in": l.tokens_in, "out": l.tokens_out, "requests": l.requests}),
            ),
            // A person's raises (`resume --raise-budget`): who, from, to; limit_usd is the newest.
            cost: serde_json::json!({
                "spent_usd": ledger.as_ref().map_or(0.0, |l| l.spent_usd), "limit_usd": self.policy.cost_usd,
                "raised": super::budget_raise::raises(&self.store, &self.run_id)?,
            }),
            tool_calls: self
                .shared
                .tool_calls
                .load(std::sync::atomic::Ordering::SeqCst),
            iterations: self.iterations.clone(),
            exit: exit.to_owned(),
            stop_reason: code,
            detail: detail.map(str::to_owned),
            stage: self.stage.to_owned(),
            audit_head: head.to_string(),
            artifacts,
        };
        layout::write_json(&self.dir.manifest(), &manifest)?;
        Ok(())
    }
}
