//! Codex CLI confined as codegen, metered by cost-control's gateway, on the textkit example.
//!
//! A scripted Responses server on the host's loopback stands in for the provider. roles.yaml
//! drives codegen with the `command` driver (`codex exec`) and gives cost-control a `gateway:`
//! pointing at the scripted server, with the upstream key in a file. The scripted conversation
//! makes Codex first probe its confinement through its own `exec_command` tool (read /etc/shadow,
//! another role's private key, the upstream key file; connect to a listener on the host's
//! loopback and to 1.1.1.1), then write the FR-12 change, then finish. The probe output comes
//! back to the "model" in the next request, so the scripted server sees what the sandbox did.
//! The same probe run on the host first (the positive control) succeeds, so a denial inside is the
//! sandbox's doing. Then: the run ends done, the gate promotes staging, the ledger booked the
//! scripted usage, the upstream saw the key and never the run token, and no request body carries
//! the key.
//!
//! Needs root, useradd, the codex CLI (scripts/setup.sh installs it) and every containment layer;
//! skips with the reason otherwise.

// Helpers of a test binary: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use agents::gateway::scripted::{Output as Item, ScriptedServer, Turn};
use base64::Engine as _;
use support::{bin_dir, copy_dir, example, git, project_roles, text};

const KEY: &str = "sk-test-UPSTREAM-7f3a9c-never-in-a-role";

fn skip_reason(bins: &Path) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root: per-role users and every layer".into());
    }
    if Command::new("useradd").arg("--help").output().is_err() {
        return Some("no useradd on this system".into());
    }
    match Command::new("codex").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("the codex CLI is not installed (scripts/setup.sh installs it)".into()),
    }
    let out = Command::new(bins.join("orchestrate"))
        .args(["doctor", "--json"])
        .current_dir("/")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", text(&out)));
    let missing: Vec<String> = doc["layers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| r["available"] != true)
        .map(|r| format!("{}: {}", r["layer"], r["detail"]))
        .collect();
    (!missing.is_empty()).then(|| format!("layers unavailable here: {}", missing.join("; ")))
}

/// roles.yaml of the test: per-test users, codegen driven by Codex, the gateway to `base_url`.
fn roles_yaml(tag: &str, base_url: &str, key_file: &Path) -> String {
    let roles = std::fs::read_to_string(project_roles())
        .unwrap()
        .replace("user: orch-", &format!("user: ag{tag}-"));
    let command = r#"    driver: command
    command:
      argv: [codex, exec, --skip-git-repo-check, --dangerously-bypass-approvals-and-sandbox, "{task}"]
      env: { CODEX_HOME: "{home}/.codex" }
      token_env: ORCHESTRATE_MODEL_TOKEN
      files:
        - path: "{home}/.codex/config.toml"
          content: |
            model = "gpt-5-codex"
            model_provider = "orchestrate"
            [model_providers.orchestrate]
            name = "orchestrate"
            base_url = "{base_url}"
            env_key = "ORCHESTRATE_MODEL_TOKEN"
            wire_api = "responses"
"#;
    let mut out = String::new();
    let mut in_codegen = false;
    for line in roles.lines() {
        if line.starts_with("  codegen:") {
            in_codegen = true;
        }
        if in_codegen && line.trim() == "driver: replay" {
            out.push_str(command);
            in_codegen = false;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(
        out.contains("driver: command"),
        "no codegen replay driver to replace"
    );
    out.push_str(&format!(
        "\ngateway:\n  upstream:\n    base_url: {base_url}\n    api_key_file: {}\n  prices:\n    gpt-5-codex: {{ input_usd_per_mtok: 1.0, output_usd_per_mtok: 4.0 }}\n",
        key_file.display()
    ));
    out
}

/// The FR-12 change as the recorded session makes it, as one shell command.
fn fr12_script(repo: &Path) -> String {
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example().join("sessions/FR-12.json")).unwrap())
            .unwrap();
    let b64 = |c: &str| base64::engine::general_purpose::STANDARD.encode(c);
    let mut cmd = String::from("set -e; ");
    for step in s["iterations"][0]["steps"].as_array().unwrap() {
        let path = step["path"].as_str().unwrap_or_default();
        let content = match step["op"].as_str().unwrap() {
            "write" => step["content"].as_str().unwrap().to_owned(),
            "patch" => std::fs::read_to_string(repo.join(path)).unwrap().replace(
                step["find"].as_str().unwrap(),
                step["replace"].as_str().unwrap(),
            ),
            _ => continue,
        };
        cmd.push_str(&format!("echo {} | base64 -d > {path}; ", b64(&content)));
    }
    cmd.push_str("echo FR-12 written");
    cmd
}

/// A probe script: each line `PROBE <what>: ALLOWED` or `PROBE <what>: DENIED <error text>`.
fn probe_script(files: &[PathBuf], connect: &[String]) -> String {
    let mut s = String::new();
    for f in files {
        s.push_str(&format!(
            "if e=$(cat {p} 2>&1 >/dev/null); then echo 'PROBE read {p}: ALLOWED'; else echo \"PROBE read {p}: DENIED $e\"; fi; ",
            p = f.display()
        ));
    }
    for a in connect {
        let (h, p) = a.rsplit_once(':').unwrap();
        s.push_str(&format!(
            "if e=$(timeout 5 bash -c 'exec 3<>/dev/tcp/{h}/{p}' 2>&1); then echo 'PROBE connect {a}: ALLOWED'; else echo \"PROBE connect {a}: DENIED $e\"; fi; "
        ));
    }
    s
}

/// The `function_call_output` texts of a Responses request body.
fn probe_output(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["input"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "function_call_output")
        .map(|i| i["output"].to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn exec_turn(call: &str, cmd: &str) -> Turn {
    Turn {
        output: vec![Item::ToolCall {
            call_id: call.into(),
            name: "exec_command".into(),
            arguments: serde_json::json!({"cmd": cmd, "login": false}).to_string(),
        }],
        input_tokens: 12_000,
        output_tokens: 300,
        delta_bytes: 0,
    }
}

struct Setup {
    tmp: tempfile::TempDir,
    repo: PathBuf,
    state: PathBuf,
    bins: PathBuf,
}

impl Setup {
    fn orchestrate(&self, args: &[&str]) -> Output {
        Command::new(self.bins.join("orchestrate"))
            .arg("--repo")
            .arg(&self.repo)
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .env("ORCHESTRATE_AGENT", self.bins.join("orchestrate-agent"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let out = self.orchestrate(&["setup", "--remove"]);
        if !out.status.success() {
            eprintln!("setup --remove failed: {}", text(&out));
        }
        let _ = &self.tmp;
    }
}

#[test]
fn codex_confined_as_codegen_implements_fr12_through_the_gateway_and_staging_is_promoted() {
    let bins = bin_dir();
    if let Some(why) = skip_reason(&bins) {
        eprintln!("SKIP: {why}");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("orch-agent-codex")
        .tempdir_in("/var/tmp")
        .unwrap();
    let repo = tmp.path().join("textkit");
    copy_dir(&example(), &repo);
    let state = tmp.path().join("state");
    let key_file = tmp.path().join("upstream.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();

    // The host's loopback listener (outside codegen's network namespace).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let host_port = listener.local_addr().unwrap().to_string();
    let hostile_files = vec![
        PathBuf::from("/etc/shadow"),
        state.join("keys/planner/ed25519.key"),
        key_file.clone(),
    ];
    let probe = probe_script(&hostile_files, std::slice::from_ref(&host_port));
    let script = vec![
        exec_turn("call_probe", &probe),
        exec_turn("call_fr12", &fr12_script(&repo)),
        Turn {
            output: vec![Item::Message {
                text: "FR-12 implemented: textkit::slugify with its tests.".into(),
            }],
            input_tokens: 12_500,
            output_tokens: 40,
            delta_bytes: 0,
        },
    ];
    let server = rt
        .block_on(ScriptedServer::start_tcp(script, Duration::from_secs(900)))
        .unwrap();
    let tag = format!("{:04x}", std::process::id() & 0xffff);
    std::fs::write(
        repo.join("roles.yaml"),
        roles_yaml(&tag, server.base_url(), &key_file),
    )
    .unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "base"]);
    let s = Setup {
        tmp,
        repo,
        state,
        bins,
    };
    let out = s.orchestrate(&["setup"]);
    assert!(out.status.success(), "setup: {}", text(&out));

    // Positive control: on the host, as root, every probe succeeds.
    let control = Command::new("bash").arg("-c").arg(&probe).output().unwrap();
    let control = String::from_utf8_lossy(&control.stdout).to_string();
    assert_eq!(
        control.matches(": ALLOWED").count(),
        hostile_files.len() + 1,
        "positive control: {control}"
    );
    assert!(
        listener.accept().is_ok(),
        "control did not reach the listener"
    );

    let out = s.orchestrate(&["start", "FR-12"]);
    let seen = server.seen();
    let run_dir = {
        let st = s.orchestrate(&["status", "--json"]);
        let runs: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        s.state
            .join("runs")
            .join(runs[0]["run_id"].as_str().unwrap())
    };
    let log = std::fs::read_to_string(run_dir.join("logs/codegen.log")).unwrap_or_default();
    let cost_log =
        std::fs::read_to_string(run_dir.join("logs/cost-control.log")).unwrap_or_default();
    let ctx = format!(
        "{}\n--- codegen.log ---\n{log}\n--- cost-control.log ---\n{cost_log}\n--- {} request(s) seen",
        text(&out),
        seen.len()
    );
    assert!(
        seen.len() >= 3,
        "the scripted model saw {} request(s): {ctx}",
        seen.len()
    );

    // What the sandbox did to Codex's probes, as Codex reported it to the model.
    let after_probe = &probe_output(&seen[1].body);
    for f in &hostile_files {
        let line = format!("PROBE read {}: DENIED", f.display());
        assert!(
            after_probe.contains(&line),
            "{line} missing: {after_probe:.4000}"
        );
    }
    assert!(
        after_probe.contains(&format!("PROBE connect {host_port}: DENIED")),
        "connect not denied: {after_probe:.4000}"
    );
    assert!(!after_probe.contains(": ALLOWED"), "{after_probe:.4000}");
    assert!(
        listener.accept().is_err(),
        "codegen reached the host's loopback listener"
    );

    // The upstream saw the key (put there by the gateway), never the run token; no body holds it.
    for r in &seen {
        let auth = r
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        assert_eq!(auth, Some(format!("Bearer {KEY}").as_str()), "{}", r.path);
        assert!(!r.body.contains(KEY), "the key is in a request body");
    }

    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["exit"], "done", "{manifest}");
    assert_eq!(manifest["containment"]["mode"], "sandbox", "{manifest}");
    let integration = s.state.join("integration.git");
    let id = run_dir.file_name().unwrap().to_str().unwrap();
    let head = git(&s.repo, &["rev-parse", &format!("agent/FR-12/{id}")]);
    // The integration repository belongs to the gate's user: read it with that ownership allowed.
    let staging = git(
        &s.repo,
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
    let files = git(&s.repo, &["diff", "--name-only", "main", &head]);
    assert!(
        files.contains("src/slug.rs") && files.contains("tests/slug.rs"),
        "{files}"
    );

    // The ledger booked the scripted usage: 3 requests, 36 500 tokens in.
    let ledger: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("artifacts/ledger.dsse.json")).unwrap())
            .unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(ledger["payload"].as_str().unwrap())
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let body = &st["predicate"]["body"];
    assert_eq!(body["requests"], seen.len() as u64, "{st}");
    assert!(body["tokens_in"].as_u64().unwrap() >= 36_500, "{st}");
    assert!(body["spent_usd"].as_f64().unwrap() > 0.0, "{st}");
    rt.block_on(server.stop());
}
