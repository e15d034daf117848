//! The anomaly rules through the binary on the textkit example: a recorded session that loops on
//! one tool call and one that writes far more than the plan stop with their reason codes and an
//! `anomaly` audit event; the recorded FR-12 session (the twin) raises none and finishes.
//!
//! Needs `cargo build -p orchestrate -p orchestrate-agents -p orchestrate-gate --bins` first.
//! Runs in the weaker mode (--allow-weaker): this is about the run engine's rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::{bin_dir, copy_dir, git, text};

struct Fx {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    state: PathBuf,
}

impl Fx {
    fn new() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("textkit");
        copy_dir(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/textkit"),
            &repo,
        );
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "base"]);
        let state = tmp.path().join("state");
        Fx {
            _tmp: tmp,
            repo,
            state,
        }
    }

    fn orchestrate(&self, args: &[&str]) -> Output {
        let bins = bin_dir();
        Command::new(bins.join("orchestrate"))
            .arg("--repo")
            .arg(&self.repo)
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .env("ORCHESTRATE_AGENT", bins.join("orchestrate-agent"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    fn start(&self, session: &str) -> (Output, String) {
        let s = self.repo.join("sessions").join(session);
        let out = self.orchestrate(&[
            "start",
            "FR-12",
            "--allow-weaker",
            "--no-promote",
            "--session",
            s.to_str().unwrap(),
        ]);
        let runs: serde_json::Value =
            serde_json::from_slice(&self.orchestrate(&["status", "--json"]).stdout).unwrap();
        let id = runs[0]["run_id"].as_str().unwrap().to_owned();
        (out, id)
    }

    /// The run's `anomaly` events as (rule, stop).
    fn anomalies(&self, id: &str) -> Vec<(String, Option<String>)> {
        let out = self.orchestrate(&["log", id, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let events: Vec<serde_json::Value> = match serde_json::from_str(&text) {
            Ok(serde_json::Value::Array(v)) => v,
            _ => text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect(),
        };
        events
            .iter()
            .filter(|e| e["kind"] == "anomaly")
            .map(|e| {
                let d = &e["body"];
                (
                    d["rule"].as_str().unwrap().to_owned(),
                    d["stop"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }
}

#[test]
fn eleven_identical_tool_calls_stop_with_no_progress() {
    let f = Fx::new();
    let (out, id) = f.start("stops/repeated-calls.json");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("STOP_NO_PROGRESS"), "{}", text(&out));
    assert!(
        text(&out).contains("made 11 times in one iteration"),
        "{}",
        text(&out)
    );
    assert_eq!(
        f.anomalies(&id),
        vec![(
            "repeated_call".to_owned(),
            Some("STOP_NO_PROGRESS".to_owned())
        )]
    );
}

#[test]
fn a_diff_far_beyond_the_plan_stops_with_scope_exceeded() {
    let f = Fx::new();
    let (out, id) = f.start("stops/diff-size.json");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("STOP_SCOPE_EXCEEDED"), "{}", text(&out));
    assert!(
        text(&out).contains("changed lines for 3 planned target(s)"),
        "{}",
        text(&out)
    );
    assert_eq!(
        f.anomalies(&id),
        vec![(
            "diff_size".to_owned(),
            Some("STOP_SCOPE_EXCEEDED".to_owned())
        )]
    );
}

#[test]
fn the_recorded_fr12_session_raises_no_anomaly() {
    let f = Fx::new();
    let (out, id) = f.start("FR-12.json");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(f.anomalies(&id), vec![]);
}
