//! The built-in `llm` driver as codegen, fully contained, metered by cost-control's gateway, on
//! the textkit example.
//!
//! A scripted Chat Completions server on the host's loopback stands in for the provider;
//! roles.yaml drives codegen with `driver: llm` and gives cost-control a `gateway:` pointing at
//! it. The scripted model lists the tree, tries to read `/etc/shadow` and another role's key by
//! path (the tool layer refuses: absolute, `..`), then through symlinks committed in the
//! repository, which pass the tool layer's path check (the kernel answers: the targets are not
//! in codegen's root), and writes through a symlink that points outside. Then it reads
//! `src/lib.rs`, patches it, writes FR-12 with a bug, and asks for the tests; the orchestrator's
//! test-runner runs them, the failing acceptance test comes back as the `run_tests` result in
//! iteration 2, the model patches the bug and finishes. The run ends done and the gate promotes
//! staging; the ledger booked the scripted usage. The twin with every layer off sees the
//! symlinked reads and the write succeed (and the tool layer still refuses the plain paths), so
//! a denial in the contained run is the kernel's doing.
//!
//! Needs root, useradd and every containment layer; skips with the reason otherwise.

// Helpers of a test binary: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use agents::gateway::scripted::{Output as Item, ScriptedServer, Turn};
use serde_json::{json, Value};
use support::{bin_dir, example, git, project_roles, text, Workspace};

const KEY: &str = "sk-test-UPSTREAM-llm-51c2-never-in-a-role";
const MODEL: &str = "gpt-test-llm";
const TOKENS_IN: u64 = 3_000;

/// roles.yaml of the test: per-test users, codegen driven by the llm driver, the gateway to
/// `base_url` with a price for the model.
fn roles_yaml(tag: &str, base_url: &str, key_file: &Path) -> String {
    let roles = std::fs::read_to_string(project_roles())
        .unwrap()
        .replace("user: orch-", &format!("user: al{tag}-"));
    let llm = format!(
        "    driver: llm\n    llm:\n      model: {MODEL}\n      max_output_tokens: 1024\n      max_turns: 12\n"
    );
    let mut out = support::with_codegen_driver(&roles, &llm);
    out.push_str(&format!(
        "\ngateway:\n  upstream:\n    base_url: {base_url}\n    api_key_file: {}\n  prices:\n    {MODEL}: {{ input_usd_per_mtok: 1.0, output_usd_per_mtok: 1.0 }}\n",
        key_file.display()
    ));
    out
}

/// The FR-12 files as the recorded session writes them: (src/slug.rs, tests/slug.rs).
fn fr12_files() -> (String, String) {
    let s: Value =
        serde_json::from_slice(&std::fs::read(example().join("sessions/FR-12.json")).unwrap())
            .unwrap();
    let mut slug = None;
    let mut tests = None;
    for step in s["iterations"][0]["steps"].as_array().unwrap() {
        match step["path"].as_str() {
            Some("src/slug.rs") => slug = step["content"].as_str().map(str::to_owned),
            Some("tests/slug.rs") => tests = step["content"].as_str().map(str::to_owned),
            _ => {}
        }
    }
    (slug.unwrap(), tests.unwrap())
}

/// The correct line of slugify and its bug (a dash before the first word too).
const GOOD_LINE: &str = "            if gap && !out.is_empty() {\n";
const BAD_LINE: &str = "            if gap {\n";

const LIB_PATCH: &str = "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1,5 @@\n //! textkit: small text helpers, the example repository for orchestrate's quick start.\n+\n+mod slug;\n+\n+pub use slug::slugify;\n";

fn fix_patch() -> String {
    format!(
        "--- a/src/slug.rs\n+++ b/src/slug.rs\n@@ -8,3 +8,3 @@\n         if c.is_ascii_alphanumeric() {{\n-{BAD_LINE}+{GOOD_LINE}                 out.push('-');\n"
    )
}

fn call(id: &str, name: &str, args: Value) -> Item {
    Item::ToolCall {
        call_id: id.into(),
        name: name.into(),
        arguments: args.to_string(),
    }
}

fn turn(output: Vec<Item>) -> Turn {
    Turn {
        output,
        input_tokens: TOKENS_IN,
        output_tokens: 200,
        delta_bytes: 0,
    }
}

/// The symlinks committed in the repository and what they point at.
struct Links {
    shadow: PathBuf,
    key: PathBuf,
    escape: PathBuf,
}

/// The probes every script starts with: plain hostile paths (the tool layer refuses), then the
/// same through symlinks inside the tree (the kernel answers).
fn probe_turns() -> Vec<Turn> {
    vec![
        turn(vec![call("c1", "list_files", json!({"path": "."}))]),
        turn(vec![
            call("c2", "read_file", json!({"path": "/etc/shadow"})),
            call(
                "c3",
                "read_file",
                json!({"path": "../../keys/planner/ed25519.key"}),
            ),
        ]),
        turn(vec![
            call("c4", "read_file", json!({"path": "link-shadow"})),
            call("c5", "read_file", json!({"path": "link-key"})),
            call(
                "c6",
                "write_file",
                json!({"path": "link-escape", "content": "escaped\n"}),
            ),
        ]),
    ]
}

/// Iteration 1: probes, read, patch, a buggy slugify, run_tests; iteration 2: fix, finish.
fn fr12_with_a_bug_then_fixed() -> Vec<Turn> {
    let (slug, tests) = fr12_files();
    assert!(slug.contains(GOOD_LINE), "the session's slugify changed");
    let buggy = slug.replacen(GOOD_LINE, BAD_LINE, 1);
    let mut t = probe_turns();
    t.push(turn(vec![call(
        "c7",
        "read_file",
        json!({"path": "src/lib.rs"}),
    )]));
    t.push(turn(vec![
        call("c8", "apply_patch", json!({ "patch": LIB_PATCH })),
        call(
            "c9",
            "write_file",
            json!({"path": "src/slug.rs", "content": buggy}),
        ),
        call(
            "c10",
            "write_file",
            json!({"path": "tests/slug.rs", "content": tests}),
        ),
    ]));
    t.push(turn(vec![call("c11", "run_tests", json!({}))]));
    t.push(turn(vec![call(
        "c12",
        "apply_patch",
        json!({ "patch": fix_patch() }),
    )]));
    t.push(turn(vec![call(
        "c13",
        "finish",
        json!({"summary": "slugify added, leading dash fixed"}),
    )]));
    t
}

/// The twin: probes, then FR-12 right away, run_tests.
fn probes_then_fr12() -> Vec<Turn> {
    let (slug, tests) = fr12_files();
    let mut t = probe_turns();
    t.push(turn(vec![
        call("c8", "apply_patch", json!({ "patch": LIB_PATCH })),
        call(
            "c9",
            "write_file",
            json!({"path": "src/slug.rs", "content": slug}),
        ),
        call(
            "c10",
            "write_file",
            json!({"path": "tests/slug.rs", "content": tests}),
        ),
    ]));
    t.push(turn(vec![call("c11", "run_tests", json!({}))]));
    t
}

/// The host-wide things `orchestrate setup` touches: one test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Fixture {
    // Dropped first: `setup --remove` runs while the directory still exists.
    setup: Workspace,
    server: ScriptedServer,
    _rt: tokio::runtime::Runtime,
    links: Links,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Fixture {
    /// `None` (after printing why) when this host cannot run the test.
    fn new(turns: Vec<Turn>) -> Option<Self> {
        let bins = bin_dir();
        if let Some(why) = support::contained_skip_reason(&bins, &[]) {
            eprintln!("SKIP: {why}");
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut setup = Workspace::new("orch-agent-llm", bins, KEY);
        let links = Links {
            shadow: PathBuf::from("/etc/shadow"),
            key: setup.state.join("keys/planner/ed25519.key"),
            escape: setup.tmp.path().join("escape.txt"),
        };
        for (name, target) in [
            ("link-shadow", &links.shadow),
            ("link-key", &links.key),
            ("link-escape", &links.escape),
        ] {
            std::os::unix::fs::symlink(target, setup.repo.join(name)).unwrap();
        }
        let server = rt
            .block_on(ScriptedServer::start_tcp(turns, Duration::from_secs(900)))
            .unwrap();
        let roles = roles_yaml(&support::user_tag(), server.base_url(), &setup.key_file);
        setup.commit_and_set_up(&roles);
        Some(Self {
            setup,
            server,
            _rt: rt,
            links,
            _serial: serial,
        })
    }

    fn newest_run_dir(&self) -> PathBuf {
        self.setup.newest_run_dir()
    }

    fn context(&self, out: &Output) -> String {
        self.setup.context(out, self.server.seen().len())
    }

    /// The body of cost-control's last signed ledger.
    fn ledger(&self) -> Value {
        self.setup.newest_ledger()
    }

    /// The tool results the model saw, by call id, over every request.
    fn tool_results(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        for r in self.server.seen() {
            let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
            for m in body["messages"].as_array().into_iter().flatten() {
                if m["role"] == "tool" {
                    out.insert(
                        m["tool_call_id"].as_str().unwrap_or("").to_owned(),
                        m["content"].as_str().unwrap_or("").to_owned(),
                    );
                }
            }
        }
        out
    }
}

/// On the host, as root, each target is readable and the escape path writable: a denial inside
/// is the sandbox's doing.
fn positive_control(l: &Links) {
    assert!(std::fs::read_to_string(&l.shadow)
        .unwrap()
        .contains("root:"));
    assert!(!std::fs::read(&l.key).unwrap().is_empty());
    std::fs::write(&l.escape, "control\n").unwrap();
    std::fs::remove_file(&l.escape).unwrap();
}

/// The tool layer refused the plain hostile paths (whatever the kernel would have said).
fn assert_tool_layer_refused(r: &std::collections::BTreeMap<String, String>) {
    assert_eq!(
        r["c2"],
        "error: path `/etc/shadow` refused: absolute paths are outside the work tree; use a repository-relative path"
    );
    assert_eq!(
        r["c3"],
        "error: path `../../keys/planner/ed25519.key` refused: `..` leaves the work tree"
    );
}

#[test]
fn the_llm_driver_contained_as_codegen_implements_fr12_through_the_gateway_and_staging_is_promoted()
{
    let Some(f) = Fixture::new(fr12_with_a_bug_then_fixed()) else {
        return;
    };
    positive_control(&f.links);
    let out = f.setup.orchestrate(&["start", "FR-12"]);
    let ctx = f.context(&out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    assert!(
        text(&out).contains("codegen: llm driver (built-in tool loop) asks `gpt-test-llm`"),
        "{ctx}"
    );

    // What the model was told.
    let r = f.tool_results();
    assert!(
        r["c1"].contains("link-shadow") && r["c1"].contains("src/lib.rs"),
        "{}",
        r["c1"]
    );
    assert_tool_layer_refused(&r);
    // Through the symlinks the path check passes; the kernel answers. Neither /etc/shadow nor
    // the state directory's keys are in codegen's root (ENOENT); the state directory's parent is
    // only a read-only stem of that root (EROFS).
    assert_eq!(
        r["c4"],
        "error: reading link-shadow: No such file or directory (os error 2)"
    );
    assert_eq!(
        r["c5"],
        "error: reading link-key: No such file or directory (os error 2)"
    );
    assert_eq!(
        r["c6"],
        "error: writing link-escape: Read-only file system (os error 30)"
    );
    assert!(!f.links.escape.exists(), "codegen wrote outside the tree");
    // The orchestrator's test results answered run_tests: the bug's failing acceptance test.
    assert!(
        r["c11"].contains("failed: slug_trims_dashes")
            && r["c11"].contains("acceptance tests not passing yet: AC-2"),
        "{}",
        r["c11"]
    );

    // Done, contained, promoted.
    let run_dir = f.newest_run_dir();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["exit"], "done", "{manifest}");
    assert_eq!(manifest["containment"]["mode"], "sandbox", "{manifest}");
    assert_eq!(
        manifest["containment"]["layers_missing"],
        json!([]),
        "{manifest}"
    );
    let id = run_dir.file_name().unwrap().to_str().unwrap().to_owned();
    let head = git(&f.setup.repo, &["rev-parse", &format!("agent/FR-12/{id}")]);
    let integration = f.setup.state.join("integration.git");
    let staging = git(
        &f.setup.repo,
        &[
            "-c",
            "safe.directory=*",
            "--git-dir",
            integration.to_str().unwrap(),
            "rev-parse",
            "refs/heads/staging",
        ],
    );
    assert_eq!(staging, head, "staging is not the agent branch's head");
    assert!(text(&out).contains("staging moved by the gate"), "{ctx}");
    let (slug, _) = fr12_files();
    assert_eq!(
        git(&f.setup.repo, &["show", &format!("{head}:src/slug.rs")]),
        slug.trim_end(),
        "the fixed slugify is what was promoted"
    );
    let files = git(&f.setup.repo, &["diff", "--name-only", "main", &head]);
    assert_eq!(files, "src/lib.rs\nsrc/slug.rs\ntests/slug.rs");

    // Every model turn went through the gateway, was booked from the reported usage, and
    // carried the run token, never the key (the upstream saw the key, put there by the gateway).
    let seen = f.server.seen();
    assert_eq!(seen.len(), 8, "{ctx}");
    for s in &seen {
        assert!(s.path.ends_with("/chat/completions"), "{}", s.path);
        let auth = s
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        assert_eq!(auth, Some(format!("Bearer {KEY}").as_str()));
        assert!(!s.body.contains(KEY));
    }
    let body = f.ledger();
    assert_eq!(body["requests"], 8, "{body}");
    assert_eq!(body["tokens_in"], 8 * TOKENS_IN, "{body}");
    assert!(body["spent_usd"].as_f64().unwrap() > 0.0, "{body}");

    // Every tool call went to the orchestrator first and is in the audit log.
    let log = f.setup.orchestrate(&["log", &id, "--json"]);
    let events: Value = serde_json::from_slice(&log.stdout).unwrap();
    let log = events.to_string();
    let tools: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "tool_call")
        .map(|e| e["body"]["tool"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        tools,
        [
            "list_files",
            "read_file",
            "read_file",
            "read_file",
            "read_file",
            "write_file",
            "read_file",
            "apply_patch",
            "write_file",
            "write_file",
            "run_tests",
            "apply_patch",
            "finish"
        ],
        "{log}"
    );
}

#[test]
fn the_twin_with_every_layer_off_reads_and_writes_through_the_same_symlinks() {
    let Some(f) = Fixture::new(probes_then_fr12()) else {
        return;
    };
    let mut args = vec!["start", "FR-12", "--allow-weaker", "--no-promote"];
    for l in support::LAYERS {
        args.extend(["--layer-off", l]);
    }
    let out = f.setup.orchestrate(&args);
    let ctx = f.context(&out);
    let r = f.tool_results();
    assert_tool_layer_refused(&r);
    assert!(r["c4"].contains("root:"), "{}", r["c4"]);
    let key = std::fs::read(&f.links.key).unwrap();
    assert_eq!(r["c5"], String::from_utf8_lossy(&key), "{ctx}");
    assert_eq!(r["c6"], "wrote link-escape (8 bytes)");
    assert_eq!(
        std::fs::read_to_string(&f.links.escape).unwrap(),
        "escaped\n"
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
}

#[test]
fn a_model_repeating_the_same_tool_call_is_stopped_by_the_orchestrators_anomaly_rule() {
    // Eleven identical reads in one iteration: roles.yaml's repeated_call stops at ten.
    let mut turns: Vec<Turn> = (0..11)
        .map(|i| {
            turn(vec![call(
                &format!("r{i}"),
                "read_file",
                json!({"path": "src/lib.rs"}),
            )])
        })
        .collect();
    turns.push(turn(vec![Item::Message {
        text: "Still reading.".into(),
    }]));
    let Some(f) = Fixture::new(turns) else {
        return;
    };
    let out = f.setup.orchestrate(&["start", "FR-12"]);
    let ctx = f.context(&out);
    assert_eq!(out.status.code(), Some(4), "{ctx}");
    assert!(text(&out).contains("STOPPED STOP_NO_PROGRESS"), "{ctx}");
    assert!(text(&out).contains("repeated_call"), "{ctx}");
    assert_eq!(f.server.seen().len(), 12, "{ctx}");
    assert!(!text(&out).contains("staging moved by the gate"), "{ctx}");
}
