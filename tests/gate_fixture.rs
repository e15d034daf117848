//! A run as the run engine leaves it for the gate: a seed repository with roles.yaml, the
//! integration repository, role and gate keys under `<state>/keys`, and per run an agent
//! bundle, WORK_PLAN.json and signed artifacts built with protocol types and keys.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use protocol::artifact::{sign_artifact, KeyPair, Signer, Statement, Subject};
use protocol::canonical::{self, Digest32};
use protocol::plan::WorkPlan;
use serde_json::{json, Value};

pub const FR: &str = "FR-12";
pub const ROLES: &str = include_str!("../roles.yaml");

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c"])
        .arg(format!("safe.directory={}", dir.display()))
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub repo: PathBuf,
    pub keys: BTreeMap<&'static str, KeyPair>,
    pub base: String,
}

pub const LABELS: [&str; 7] = [
    "planner",
    "codegen",
    "security-review",
    "test-runner",
    "cost-control",
    "progress-evaluator",
    "gate",
];

/// One run's material, before it is written.
pub struct Run {
    pub id: String,
    pub plan: WorkPlan,
    pub base: String,
    pub tip: String,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_roles(ROLES)
    }

    pub fn with_roles(roles: &str) -> Self {
        Self::with_seed(roles, &[])
    }

    /// roles.yaml and `extra` files committed on the seed's main.
    pub fn with_seed(roles: &str, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("src")).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        git(&repo, &["init", "-q", "--initial-branch=main"]);
        std::fs::write(repo.join("roles.yaml"), roles).unwrap();
        for (path, content) in extra {
            std::fs::write(repo.join(path), content).unwrap();
        }
        std::fs::write(
            repo.join("src/lib.rs"),
            "pub fn add(a: u32, b: u32) -> u32 { a }\n",
        )
        .unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "base"]);
        let base = git(&repo, &["rev-parse", "HEAD"]);
        gate::actions::ensure_integration(
            &state,
            &gate::integration::Seed {
                source_repo: repo.clone(),
                rev: "HEAD".into(),
                dev: false,
            },
            None,
        )
        .unwrap();
        let mut keys = BTreeMap::new();
        for (i, label) in (1u8..).zip(LABELS.iter()) {
            let k = KeyPair::from_seed([i; 32]);
            let d = state.join("keys").join(label);
            std::fs::create_dir_all(&d).unwrap();
            k.write_private(&d.join("ed25519.key")).unwrap();
            k.public().write(&d.join("ed25519.pub")).unwrap();
            keys.insert(*label, k);
        }
        Self {
            dir,
            state,
            repo,
            keys,
            base,
        }
    }

    pub fn gate(&self) -> gate::Gate {
        gate::Gate::new(&self.state)
    }

    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.state.join("runs").join(run)
    }

    pub fn plan(run: &str) -> WorkPlan {
        serde_json::from_value(json!({
            "plan_id": format!("plan-{run}"),
            "fr_ids": [FR],
            "targets": ["src/lib.rs"],
            "expected_changes": [{"path": "src/lib.rs", "change": "modify", "description": "fix add"}],
            "risk_class": "low",
            "coverage_min_pct": 80,
            "iteration_cap": 5,
            "no_progress_cap": 2,
            "tool_call_cap": 50,
            "file_cap": 5,
            "runtime_seconds": 600,
            "budget": {"limits": {"per_request_usd": 0.5, "per_run_usd": 5.0},
                       "warn_pct": 70, "escalate_pct": 90, "stop_pct": 100},
            "branch": {"agent_branch": format!("agent/{FR}/{run}"),
                       "promotion": {"staging_branch": "staging", "main_branch": "main",
                                     "fast_forward_only": true, "require_human_approval": true}},
            "security_gate": {"block_severities": ["high", "critical"]},
            "stop_conditions": ["STOP_SECURITY_VIOLATION", "STOP_SECRET_EXPOSURE",
                "STOP_UNAUTHORIZED_ACCESS", "STOP_BUDGET_EXCEEDED", "STOP_NO_PROGRESS",
                "STOP_RUNTIME_EXCEEDED"],
            "test_commands": ["cargo test"],
            "acceptance_tests": [{"criterion": "add adds", "test": {"command": "cargo test", "name": "adds"}}]
        }))
        .unwrap()
    }

    /// Commits `files` on the run's agent branch (from `base`) with `message` and returns the
    /// run material.
    pub fn agent_commit(
        &self,
        run: &str,
        base: &str,
        files: &[(&str, &str)],
        message: &str,
    ) -> Run {
        let branch = format!("agent/{FR}/{run}");
        git(&self.repo, &["checkout", "-q", "-B", &branch, base]);
        for (path, content) in files {
            let p = self.repo.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        git(&self.repo, &["add", "."]);
        git(&self.repo, &["commit", "-q", "-m", message]);
        let tip = git(&self.repo, &["rev-parse", "HEAD"]);
        git(&self.repo, &["checkout", "-q", "main"]);
        Run {
            id: run.to_owned(),
            plan: Self::plan(run),
            base: base.to_owned(),
            tip,
        }
    }

    /// A run whose agent fixed `add`, in one commit that names plan and iteration.
    pub fn good_run(&self, run: &str) -> Run {
        let msg = format!("fix add\n\nplan_id=plan-{run} iteration=1");
        self.agent_commit(
            run,
            &self.base.clone(),
            &[(
                "src/lib.rs",
                "pub fn add(a: u32, b: u32) -> u32 { a + b }\n",
            )],
            &msg,
        )
    }

    pub fn sign(
        &self,
        label: &str,
        signer: Signer,
        run: &str,
        kind: &str,
        plan_hash: &Digest32,
        body: (&str, &Value),
    ) -> Vec<u8> {
        let (commit, body) = body;
        let st = Statement::new(
            vec![Subject::commit(run, commit)],
            run,
            signer,
            kind,
            plan_hash,
            body,
        )
        .unwrap();
        canonical::to_vec(&sign_artifact(&self.keys[label], &st).unwrap()).unwrap()
    }

    /// Writes everything the run engine leaves: WORK_PLAN.json, agent.bundle, five artifacts.
    pub fn write_run(&self, r: &Run) {
        let dir = self.run_dir(&r.id);
        let art = dir.join("artifacts");
        std::fs::create_dir_all(&art).unwrap();
        std::fs::write(
            dir.join("WORK_PLAN.json"),
            canonical::to_vec(&r.plan).unwrap(),
        )
        .unwrap();
        let branch = format!("agent/{FR}/{}", r.id);
        let bundle = dir.join("agent.bundle");
        git(
            &self.repo,
            &[
                "bundle",
                "create",
                bundle.to_str().unwrap(),
                &format!("{}..{branch}", r.base),
            ],
        );
        let h = r.plan.hash().unwrap();
        let id = r.id.as_str();
        let files = [
            (
                "plan",
                "planner",
                Signer::Planner,
                serde_json::to_value(&r.plan).unwrap(),
            ),
            (
                "test_results",
                "test-runner",
                Signer::TestRunner,
                json!({
                "iteration": 1, "commit": r.tip,
                "commands": [{"command": "cargo test", "exit_code": 0, "duration_ms": 10,
                              "output_sha256": "00".repeat(32)}],
                "tests": [{"name": "adds", "command": "cargo test", "status": "passed"}],
                "changed_lines_coverage_pct": 100.0}),
            ),
            (
                "review",
                "security-review",
                Signer::SecurityReview,
                json!({"iteration": 1, "commit": r.tip, "findings": []}),
            ),
            (
                "progress",
                "progress-evaluator",
                Signer::ProgressEvaluator,
                json!({"iteration": 1, "progressed": true, "score": 1.0, "done": true, "reason": "acceptance tests pass"}),
            ),
            (
                "ledger",
                "cost-control",
                Signer::CostControl,
                json!({"requests": 3, "tokens_in": 100, "tokens_out": 50, "spent_usd": 0.02, "limit_usd": 5.0}),
            ),
        ];
        for (kind, label, signer, body) in files {
            let bytes = self.sign(label, signer, id, kind, &h, (&r.tip, &body));
            std::fs::write(art.join(format!("{kind}.dsse.json")), bytes).unwrap();
        }
    }

    pub fn artifact(&self, run: &str, kind: &str) -> PathBuf {
        self.run_dir(run)
            .join("artifacts")
            .join(format!("{kind}.dsse.json"))
    }

    pub fn integration_ref(&self, r: &str) -> String {
        git(&self.state.join("integration.git"), &["rev-parse", r])
    }
}

/// The decision's failed check names.
pub fn failed(o: &gate::Outcome) -> Vec<String> {
    o.decision.failed().into_iter().map(str::to_owned).collect()
}

/// Every detail line of every failed check.
pub fn details(o: &gate::Outcome) -> String {
    o.decision
        .checks
        .iter()
        .flat_map(|c| c.detail.iter().map(move |d| format!("{}: {d}", c.name)))
        .collect::<Vec<_>>()
        .join("\n")
}
