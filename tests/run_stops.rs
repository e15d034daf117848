//! `orchestrate start` against the textkit example with one RECORDED misbehaving session per
//! stop reason (examples/textkit/sessions/stops/): each run must end with exit 4 and exactly its
//! reason code, keep the audit chain valid, and refuse to resume without --reauthorize.
//! Also the happy path (FR-12 done, commits carry plan_id and iteration) and kill -9 of the
//! orchestrator mid-run (status shows interrupted; resume and discard both work).
//!
//! Needs the `orchestrate` and `orchestrate-agent` binaries of this target directory:
//! `cargo build -p orchestrate -p orchestrate-agents --bins` before `cargo test -p orchestrate-tests`.
//! Runs in the weaker mode (--allow-weaker): these tests are about the run engine's decisions,
//! not containment.

// Helpers of a test binary: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{bin_dir, copy_dir, example, git, text};

/// A temporary textkit repository (edited by `edit` before its first commit) and state dir.
struct Fixture {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    state: PathBuf,
    bins: PathBuf,
}

impl Fixture {
    fn new(edit: impl FnOnce(&Path)) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("textkit");
        copy_dir(&example(), &repo);
        edit(&repo);
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "base"]);
        let state = tmp.path().join("state");
        Self {
            _tmp: tmp,
            repo,
            state,
            bins: bin_dir(),
        }
    }

    fn orchestrate(&self, args: &[&str]) -> Output {
        support::orchestrate(&self.bins, &self.repo, &self.state, args)
    }

    fn start(&self, session: &str) -> Output {
        let session = self.repo.join("sessions").join(session);
        self.orchestrate(&[
            "start",
            "FR-12",
            "--allow-weaker",
            "--session",
            session.to_str().unwrap(),
        ])
    }

    fn newest_run(&self) -> serde_json::Value {
        let out = self.orchestrate(&["status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        runs[0].clone()
    }
}

fn set_config(repo: &Path, yaml: &str) {
    std::fs::write(repo.join("frs/config.yaml"), yaml).unwrap();
}

/// Runs `session` and asserts exit 4 with exactly `code`, a valid audit chain, and that resume
/// needs --reauthorize.
fn assert_stops(f: &Fixture, session: &str, code: &str) {
    let out = f.start(session);
    let all = text(&out);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{session}: expected exit 4\n{all}"
    );
    assert!(
        all.contains(&format!("STOPPED {code}")),
        "{session}: expected {code}\n{all}"
    );
    let run = f.newest_run();
    assert_eq!(run["status"], "stopped", "{run}");
    assert_eq!(run["stop_reason"], code, "{run}");
    let id = run["run_id"].as_str().unwrap();
    let resume = f.orchestrate(&["resume", id]);
    assert_eq!(resume.status.code(), Some(2), "{}", text(&resume));
    assert!(text(&resume).contains("--reauthorize"), "{}", text(&resume));
    let audit = f.orchestrate(&["audit", "verify"]);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit));
    let log = f.orchestrate(&["log", id]);
    assert!(
        text(&log).contains("run.stopped") && text(&log).contains(code),
        "{}",
        text(&log)
    );
}

#[test]
fn happy_path_ends_done_with_commits_carrying_plan_and_iteration() {
    let f = Fixture::new(|_| {});
    let out = f.start("FR-12.json");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = f.newest_run();
    assert_eq!(run["status"], "done", "{run}");
    let id = run["run_id"].as_str().unwrap();
    let branch = format!("agent/FR-12/{id}");
    let log = git(&f.repo, &["log", "--format=%B", &format!("main..{branch}")]);
    assert!(
        log.contains("plan_id=plan-") && log.contains("iteration=1"),
        "{log}"
    );
    let dir = f.state.join("runs").join(id);
    for a in ["plan", "test_results", "review", "progress", "ledger"] {
        assert!(
            dir.join(format!("artifacts/{a}.dsse.json")).is_file(),
            "{a} missing"
        );
    }
    for p in [
        "manifest.json",
        "agent.bundle",
        "WORK_PLAN.json",
        "evidence/junit.xml",
        "evidence/review.sarif",
    ] {
        assert!(dir.join(p).is_file(), "{p} missing");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["exit"], "done");
    assert_eq!(manifest["containment"]["mode"], "weaker");
    assert_eq!(
        manifest["iterations"][0]["acceptance_passing"], 2,
        "{manifest}"
    );
    // start hands the finished run to the gate: staging is the agent branch's head, main is not.
    let head = git(&f.repo, &["rev-parse", &branch]);
    let integration = f.state.join("integration.git");
    assert_eq!(
        git(&integration, &["rev-parse", "refs/heads/staging"]),
        head
    );
    assert_ne!(git(&integration, &["rev-parse", "refs/heads/main"]), head);
    assert!(
        text(&out).contains(&format!("orchestrate approve {id}")),
        "{}",
        text(&out)
    );
    assert!(
        dir.join("artifacts/decision-1.dsse.json").is_file(),
        "no gate decision in {}",
        dir.display()
    );
}

#[test]
fn scope_exceeded() {
    let f = Fixture::new(|_| {});
    assert_stops(&f, "stops/scope-exceeded.json", "STOP_SCOPE_EXCEEDED");
}

#[test]
fn a_git_hook_planted_in_the_work_tree_is_a_security_violation() {
    let f = Fixture::new(|_| {});
    assert_stops(&f, "stops/git-hooks.json", "STOP_SECURITY_VIOLATION");
    let run = f.newest_run();
    let id = run["run_id"].as_str().unwrap();
    let log = text(&f.orchestrate(&["log", id]));
    assert!(log.contains(".git/hooks/pre-commit"), "{log}");
}

#[test]
fn file_cap() {
    let f = Fixture::new(|r| {
        let fr = std::fs::read_to_string(r.join("frs/FR-12.yaml")).unwrap();
        let fr = fr.replace(
            r#"outputs: ["src/slug.rs", "src/lib.rs", "tests/slug.rs"]"#,
            r#"outputs: ["src/slug.rs", "src/lib.rs"]"#,
        );
        std::fs::write(r.join("frs/FR-12.yaml"), fr).unwrap();
        set_config(
            r,
            "limits: { iterations: 3, files: 2 }\ntest_commands: [\"cargo test\"]\n",
        );
    });
    assert_stops(&f, "stops/file-cap.json", "STOP_FILE_CAP");
}

#[test]
fn iteration_cap() {
    let f = Fixture::new(|r| {
        set_config(
            r,
            "limits: { iterations: 2 }\ntest_commands: [\"cargo test\"]\n",
        )
    });
    assert_stops(&f, "stops/iteration-cap.json", "STOP_ITERATION_CAP");
}

#[test]
fn no_progress() {
    let f = Fixture::new(|_| {});
    assert_stops(&f, "stops/no-progress.json", "STOP_NO_PROGRESS");
}

#[test]
fn runtime() {
    let f = Fixture::new(|r| {
        set_config(
            r,
            "limits: { runtime_seconds: 40 }\ntest_commands: [\"cargo test\"]\n",
        )
    });
    assert_stops(&f, "stops/runtime.json", "STOP_RUNTIME_EXCEEDED");
}

#[test]
fn tool_call_cap() {
    let f = Fixture::new(|r| {
        set_config(
            r,
            "limits: { tool_calls: 5 }\ntest_commands: [\"cargo test\"]\n",
        )
    });
    assert_stops(&f, "stops/tool-call-cap.json", "STOP_TOOL_CALL_CAP");
}

#[test]
fn role_crash() {
    let f = Fixture::new(|_| {});
    assert_stops(&f, "stops/role-crash.json", "STOP_ROLE_CRASHED");
}

#[test]
fn forbidden_message_kind() {
    let f = Fixture::new(|_| {});
    assert_stops(&f, "stops/forbidden-message.json", "STOP_FORBIDDEN_MESSAGE");
}

#[test]
fn garbage_oversized_and_flooding_frames_are_cut_off() {
    let f = Fixture::new(|_| {});
    for s in ["garbage-frame", "oversized-frame", "flood"] {
        assert_stops(&f, &format!("stops/{s}.json"), "STOP_PROTOCOL_VIOLATION");
    }
}

#[test]
fn missing_acceptance_criteria() {
    let f = Fixture::new(|r| {
        let fr = std::fs::read_to_string(r.join("frs/FR-12.yaml")).unwrap();
        let start = fr.find("acceptance:").unwrap();
        let end = fr.find("security:").unwrap();
        let fr = format!("{}acceptance: []\n{}", &fr[..start], &fr[end..]);
        std::fs::write(r.join("frs/FR-12.yaml"), fr).unwrap();
    });
    assert_stops(&f, "FR-12.json", "STOP_MISSING_ACCEPTANCE");
}

#[test]
fn red_baseline() {
    let f = Fixture::new(|r| {
        std::fs::write(
            r.join("tests/red.rs"),
            "#[test]\nfn already_red() {\n    assert_eq!(1 + 1, 3);\n}\n",
        )
        .unwrap();
    });
    assert_stops(&f, "FR-12.json", "STOP_BASELINE_RED");
}

#[test]
fn an_unusable_gateway_upstream_is_invalid_input_before_any_role_starts() {
    for (upstream, says) in [
        (
            "base_url: ftp://127.0.0.1:4000/v1",
            "gateway.upstream.base_url `ftp://127.0.0.1:4000/v1`",
        ),
        (
            "base_url: https://localhost:4443/v1\n    ca_file: /nonexistent/ca.pem",
            "gateway.upstream.ca_file /nonexistent/ca.pem",
        ),
    ] {
        let f = Fixture::new(|r| {
            let block = format!(
                "gateway:\n  upstream:\n    {upstream}\n    api_key_file: {}\n  prices:\n    m: {{ input_usd_per_mtok: 1.0, output_usd_per_mtok: 1.0 }}\n",
                r.join("upstream.key").display()
            );
            std::fs::write(r.join("upstream.key"), "k").unwrap();
            let mut roles = std::fs::read_to_string(support::project_roles()).unwrap();
            roles.push_str(&block);
            std::fs::write(r.join("roles.yaml"), roles).unwrap();
        });
        let out = f.start("FR-12.json");
        let all = text(&out);
        // Invalid input (2), not "containment unavailable" (3), and never a run without it.
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(all.contains(says), "{all}");
        assert!(!all.contains("[iteration"), "{all}");
    }
}

#[test]
fn without_allow_weaker_containment_unavailable_exits_3() {
    let f = Fixture::new(|_| {});
    let out = f.orchestrate(&["start", "FR-12"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

/// Starts the hanging session in the background and waits until codegen is in iteration 1.
// The child is handed to the caller, which waits for it (and it is killed and reaped here when
// the run never gets going).
#[allow(clippy::zombie_processes)]
fn start_hanging(f: &Fixture) -> (std::process::Child, String) {
    let session = f.repo.join("sessions/stops/runtime.json");
    let child = Command::new(f.bins.join("orchestrate"))
        .arg("--repo")
        .arg(&f.repo)
        .arg("--state-dir")
        .arg(&f.state)
        .args([
            "start",
            "FR-12",
            "--allow-weaker",
            "--session",
            session.to_str().unwrap(),
        ])
        .env("ORCHESTRATE_AGENT", f.bins.join("orchestrate-agent"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let out = f.orchestrate(&["status", "--json"]);
        let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(id) = runs[0]["run_id"].as_str() {
            let log = text(&f.orchestrate(&["log", id]));
            if log.contains("iteration.started") {
                return (child, id.to_owned());
            }
        }
        if std::time::Instant::now() >= deadline {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            panic!("run never reached iteration 1");
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn human_stop_mid_run_ends_with_stop_human_at_once() {
    let f = Fixture::new(|_| {});
    let (child, id) = start_hanging(&f);
    let asked = std::time::Instant::now();
    let stop = f.orchestrate(&["stop", &id]);
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop));
    let out = child.wait_with_output().unwrap();
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(20),
        "stop took {:?}",
        asked.elapsed()
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("STOPPED STOP_HUMAN"), "{}", text(&out));
    assert_eq!(f.newest_run()["stop_reason"], "STOP_HUMAN");
}

#[test]
fn kill_9_mid_run_then_stop_discards_the_run() {
    let f = Fixture::new(|_| {});
    let (mut child, id) = start_hanging(&f);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(f.newest_run()["status"], "interrupted");
    let stop = f.orchestrate(&["stop", &id]);
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop));
    let run = f.newest_run();
    assert_eq!(run["status"], "stopped", "{run}");
    assert_eq!(run["stop_reason"], "STOP_HUMAN", "{run}");
    assert_eq!(f.orchestrate(&["audit", "verify"]).status.code(), Some(0));
}

#[test]
fn kill_9_mid_run_shows_interrupted_then_resume_finishes_it() {
    let f = Fixture::new(|_| {});
    let (mut child, _) = start_hanging(&f);
    child.kill().unwrap();
    child.wait().unwrap();
    let run = f.newest_run();
    assert_eq!(run["status"], "interrupted", "{run}");
    let id = run["run_id"].as_str().unwrap().to_owned();
    assert_eq!(f.orchestrate(&["audit", "verify"]).status.code(), Some(0));
    // Resume with the good session: a person re-authorizes, the run finishes.
    let good = f.repo.join("sessions/FR-12.json");
    let out = f.orchestrate(&[
        "resume",
        &id,
        "--reauthorize",
        "--allow-weaker",
        "--session",
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(f.newest_run()["status"], "done");
    assert!(text(&f.orchestrate(&["log", &id])).contains("run.reauthorized"));
    assert_eq!(f.orchestrate(&["audit", "verify"]).status.code(), Some(0));
}

#[test]
fn budget_at_70_pct_warns_and_the_run_goes_on() {
    let f = Fixture::new(|r| {
        set_config(
            r,
            "limits: { tool_calls: 12 }\ntest_commands: [\"cargo test\"]\n",
        )
    });
    // 9 of 12 tool calls in iteration 1: a warning, no pause; iteration 2 then makes no
    // progress either, which stops the run.
    assert_stops(&f, "stops/budget.json", "STOP_NO_PROGRESS");
    let id = f.newest_run()["run_id"].as_str().unwrap().to_owned();
    let log = text(&f.orchestrate(&["log", &id]));
    assert!(log.contains("budget.warn"), "{log}");
    assert!(!log.contains("run.paused"), "{log}");
}

#[test]
fn budget_at_90_pct_pauses_until_a_person_reauthorizes() {
    let f = Fixture::new(|r| {
        set_config(
            r,
            "limits: { tool_calls: 10 }\ntest_commands: [\"cargo test\"]\n",
        )
    });
    let out = f.start("stops/budget.json");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(4), "{all}");
    assert!(all.contains("PAUSED: tool_calls at 90 %"), "{all}");
    let run = f.newest_run();
    assert_eq!(run["status"], "paused", "{run}");
    let id = run["run_id"].as_str().unwrap().to_owned();

    let refused = f.orchestrate(&["resume", &id]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));

    // Re-authorized, from inside the repository with a relative --session: the run goes on and
    // the 11th tool call hits the cap.
    let resumed = Command::new(f.bins.join("orchestrate"))
        .current_dir(&f.repo)
        .args(["--state-dir", f.state.to_str().unwrap(), "resume", &id])
        .args(["--reauthorize", "--allow-weaker", "--session"])
        .arg("sessions/stops/budget.json")
        .env("ORCHESTRATE_AGENT", f.bins.join("orchestrate-agent"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let all = text(&resumed);
    assert_eq!(resumed.status.code(), Some(4), "{all}");
    assert!(all.contains("STOPPED STOP_TOOL_CALL_CAP"), "{all}");
    let log = text(&f.orchestrate(&["log", &id]));
    for e in ["run.paused", "run.reauthorized", "run.stopped"] {
        assert!(log.contains(e), "{e} missing\n{log}");
    }
    let audit = f.orchestrate(&["audit", "verify"]);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit));
}
