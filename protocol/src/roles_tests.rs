use super::*;

use std::path::PathBuf;

use crate::load::{load_roles, LoadError};

fn shipped() -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roles.yaml"))
        .unwrap()
}

/// Loads the shipped roles.yaml with `from` replaced by `to` (once); returns the error text and
/// the line it points at.
fn broken(from: &str, to: &str) -> (String, Option<u64>) {
    let text = shipped();
    assert!(
        text.contains(from),
        "fixture drifted: `{from}` not in roles.yaml"
    );
    let text = text.replacen(from, to, 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roles.yaml");
    std::fs::write(&path, text).unwrap();
    let err = load_roles(&path).unwrap_err();
    (err.to_string(), err.position().map(|p| p.line))
}

fn line_of(needle: &str) -> u64 {
    let text = shipped();
    let at = text.find(needle).unwrap();
    text[..at].matches('\n').count() as u64 + 1
}

#[test]
fn the_shipped_policy_is_valid_and_complete() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roles.yaml");
    let r = load_roles(&dir).unwrap();
    for role in RoleName::ALL {
        assert!(r.role(role).is_some(), "{role}");
    }
    assert!(r.protected().unwrap().is_protected("roles.yaml"));
    assert!(r.protected().unwrap().is_protected("deep/dir/config.yaml"));
    assert!(r.protected().unwrap().is_protected(".ci/run"));
    assert!(!r.protected().unwrap().is_protected("src/lib.rs"));
}

#[test]
fn validation_errors_name_field_and_line() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (from, to, expected text, line of)
        ("version: 1", "version: 2", "version: unsupported version 2", "version: 1"),
        ("user: orch-review", "user: orch-codegen", "roles.security-review.user: user `orch-codegen` is already used", "user: orch-review"),
        ("user: orch-test", "user: Root!", "roles.test-runner.user: invalid user name", "user: orch-test"),
        ("messages: [plan, log]", "messages: [plan, review, log]", "roles.planner.messages", "messages: [plan, log]"),
        ("write: [\"{scratch}\"]", "write: [\"/etc\"]", "not writable", "write: [\"{scratch}\"]"),
        ("read: [\"{repo}\"]\n    write: []\n    network: none\n    commands: []\n    messages: [plan", "read: [\"{repo}/../..\"]\n    write: []\n    network: none\n    commands: []\n    messages: [plan", "must not contain `..`", "messages: [plan, log]"),
        ("pids: 64, wall_seconds: 120, nofile: 256", "pids: 0, wall_seconds: 120, nofile: 256", "roles.planner.limits.pids: must be greater than 0", "pids: 64, wall_seconds: 120, nofile: 256"),
        ("driver: deterministic\n\n  test-runner", "driver: llm\n\n  test-runner", "roles.security-review.driver: `llm` is not allowed", "driver: deterministic\n\n  test-runner"),
        ("warn_pct: 70", "warn_pct: 95", "thresholds must satisfy", "warn_pct: 70"),
        ("  - roles.yaml\n", "", "protected_paths: must cover `roles.yaml`", "protected_paths:"),
        ("approvers: [root]", "approvers: []", "approvers: empty", "approvers: [root]"),
        ("critical: block", "critical: note", "severity_policy.critical: `note` is not allowed", "critical: block"),
        ("rule: ORC-DEP-DOWNGRADE,", "rule: \"ORC DEP\",", "severity_policy.rules[1].rule: `ORC DEP` is not a rule id", "rule: ORC-DEP-DOWNGRADE,"),
        ("rule: ORC-DEP-DOWNGRADE,", "rule: ORC-DEP-BUMP-MAJOR,", "severity_policy.rules[1].rule: `ORC-DEP-BUMP-MAJOR` already has an action at severity_policy.rules[0].rule", "rule: ORC-DEP-DOWNGRADE,"),
        ("high: block", "high: maybe", "high", "high: block"),
        ("repeat_stop: 10", "repeat_stop: 2", "anomaly.repeat_stop: 2 is below repeat_event (3)", "repeat_stop: 10"),
        ("cost_jump: event", "cost_spike: event", "anomaly.actions.cost_spike: unknown rule `cost_spike`", "cost_jump: event"),
        ("jump_factor: 3.0", "jump_factor: 0.5", "anomaly.jump_factor: 0.5 must be a number above 1", "jump_factor: 3.0"),
    ];
    for (from, to, want, at) in cases {
        let (msg, line) = broken(from, to);
        assert!(msg.contains(want), "{from:?} -> {to:?}: got {msg}");
        let expected = line_of(at);
        // A removed line moves the ones below it up; the error must still be located.
        assert!(line.is_some(), "{from:?}: no line in {msg}");
        if !to.is_empty() {
            assert!(
                line.unwrap().abs_diff(expected) <= 5,
                "{from:?}: line {line:?}, expected near {expected}: {msg}"
            );
        }
    }
}

#[test]
fn a_missing_role_is_refused() {
    let text = shipped();
    let start = text.find("  progress-evaluator:").unwrap();
    let end = text.find("gate:\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roles.yaml");
    std::fs::write(&path, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let err = load_roles(&path).unwrap_err();
    assert!(matches!(err, LoadError::Roles { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("roles.progress-evaluator: missing"),
        "{err}"
    );
}

#[test]
fn an_unknown_role_name_is_a_parse_error() {
    let (msg, line) = broken("  planner:\n", "  plannr:\n");
    assert!(msg.contains("plannr"), "{msg}");
    assert_eq!(line, Some(line_of("  planner:")));
}

#[test]
fn command_prefixes_match_word_by_word() {
    assert!(command_has_prefix("cargo test --lib", "cargo test"));
    assert!(command_has_prefix("cargo  test", "cargo test"));
    assert!(!command_has_prefix("cargo testx", "cargo test"));
    assert!(!command_has_prefix("cargo", "cargo test"));
    assert!(!command_has_prefix("cargo test", ""));
}

#[test]
fn role_and_layer_names_round_trip() {
    for r in RoleName::ALL {
        assert_eq!(r.as_str().parse::<RoleName>().unwrap(), r);
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
    }
    for l in Layer::ALL {
        assert_eq!(l.as_str().parse::<Layer>().unwrap(), l);
        assert_eq!(serde_json::to_value(l).unwrap(), l.as_str());
    }
    assert!("root".parse::<RoleName>().is_err());
}

#[test]
fn severity_policy_picks_exact_rule_then_longest_prefix_then_severity() {
    use crate::plan::Severity;
    let text = "critical: block\nhigh: block\nmedium: human\nlow: note\ninfo: note\nrules:\n  - { rule: ORC-DEP-*, action: note }\n  - { rule: ORC-DEP-BUMP-*, action: human }\n  - { rule: ORC-DEP-GIT-SOURCE, action: human }\n";
    let p: SeverityPolicy = crate::load::parse_yaml(std::path::Path::new("p.yaml"), text).unwrap();
    assert_eq!(
        p.action("ORC-DEP-GIT-SOURCE", Severity::High),
        FindingAction::Human
    );
    assert_eq!(
        p.action("ORC-DEP-BUMP-MAJOR", Severity::Medium),
        FindingAction::Human
    );
    assert_eq!(
        p.action("ORC-DEP-NEW", Severity::Medium),
        FindingAction::Note
    );
    assert_eq!(
        p.action("ORC-SECRET-AWS", Severity::Critical),
        FindingAction::Block
    );
    assert_eq!(p.action("ORC-X", Severity::Medium), FindingAction::Human);
    assert_eq!(p.action("ORC-X", Severity::Info), FindingAction::Note);
    // Without a severity_policy block the gate keeps its old rule: critical and high block.
    let d = SeverityPolicy::default();
    assert_eq!(d.action("ORC-X", Severity::High), FindingAction::Block);
    assert_eq!(d.action("ORC-X", Severity::Medium), FindingAction::Note);
}

#[test]
fn the_shipped_policy_asks_a_human_for_a_major_bump() {
    let r = load_roles(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roles.yaml")).unwrap();
    assert_eq!(
        r.severity_policy
            .action("ORC-DEP-BUMP-MAJOR", crate::plan::Severity::Medium),
        FindingAction::Human
    );
    assert_eq!(
        r.severity_policy
            .action("ORC-DEP-BUMP-MINOR", crate::plan::Severity::Low),
        FindingAction::Note
    );
}

#[test]
fn the_command_driver_needs_a_usable_command_block() {
    let (e, _) = broken("    driver: replay", "    driver: command");
    assert!(
        e.contains("roles.codegen.command") && e.contains("needs a `command:` block"),
        "{e}"
    );
    let block = "    driver: command\n    command:\n      argv: [codex, exec, \"{task}\"]\n      token_env: OPENAI_API_KEY\n      files:\n        - { path: \"/etc/passwd\", content: x }";
    let (e, _) = broken("    driver: replay", block);
    assert!(e.contains("files[].path must start with `{home}/`"), "{e}");
    let block = "    driver: replay\n    command:\n      argv: [codex]\n      token_env: K";
    let (e, _) = broken("    driver: replay", block);
    assert!(e.contains("only the command driver"), "{e}");
    // A good block loads, with the gateway block beside it.
    let ok = shipped().replacen(
        "    driver: replay",
        "    driver: command\n    command:\n      argv: [codex, exec, \"{task}\"]\n      token_env: OPENAI_API_KEY",
        1,
    ) + "\ngateway:\n  upstream: { base_url: \"http://127.0.0.1:4000/v1\", api_key_file: /etc/orchestrate/upstream.key }\n  prices:\n    gpt-5-codex: { input_usd_per_mtok: 1.25, output_usd_per_mtok: 10.0 }\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roles.yaml");
    std::fs::write(&path, ok).unwrap();
    let r = load_roles(&path).unwrap();
    let g = r.gateway.clone().unwrap();
    assert_eq!(g.relay_port, 18080);
    assert_eq!(g.default_max_output_tokens, 4096);
    assert_eq!(
        r.role(RoleName::Codegen)
            .unwrap()
            .command
            .as_ref()
            .unwrap()
            .token_env,
        "OPENAI_API_KEY"
    );
}

const GATEWAY: &str = "\ngateway:\n  upstream: { base_url: \"http://127.0.0.1:4000/v1\", api_key_file: /etc/orchestrate/upstream.key }\n  prices:\n    gpt-test: { input_usd_per_mtok: 1.0, output_usd_per_mtok: 2.0 }\n";

/// The shipped roles.yaml with codegen's `driver: replay` replaced by `block`, plus `tail`.
fn with_codegen(block: &str, tail: &str) -> (Result<RolesFile, LoadError>, String) {
    let text = shipped().replacen("    driver: replay", block, 1) + tail;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roles.yaml");
    std::fs::write(&path, &text).unwrap();
    (load_roles(&path), text)
}

#[test]
fn the_llm_driver_needs_a_priced_model_and_the_gateway_and_errors_name_file_line_field() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (codegen block, tail, expected text, line of)
        (
            "    driver: llm",
            GATEWAY,
            "roles.codegen.driver: the llm driver needs an `llm:` block",
            "    driver: llm",
        ),
        (
            "    driver: llm\n    llm: { model: gpt-other }",
            GATEWAY,
            "roles.codegen.llm.model: `gpt-other` has no price in gateway.prices",
            "llm: { model: gpt-other }",
        ),
        (
            "    driver: llm\n    llm:\n      model: gpt-test\n      max_output_tokens: 0",
            GATEWAY,
            "roles.codegen.llm.max_output_tokens: must be greater than 0",
            "max_output_tokens: 0",
        ),
        (
            "    driver: llm\n    llm: { model: gpt-test, max_turns: 0 }",
            GATEWAY,
            "roles.codegen.llm.max_turns: must be greater than 0",
            "llm: { model: gpt-test, max_turns: 0 }",
        ),
        (
            "    driver: llm\n    llm: { model: gpt-test }",
            "",
            "roles.codegen.driver: the llm driver needs the model gateway",
            "    driver: llm",
        ),
        (
            "    driver: replay\n    llm: { model: gpt-test }",
            GATEWAY,
            "roles.codegen.llm: only the llm driver reads an `llm:` block",
            "llm: { model: gpt-test }",
        ),
    ];
    for (block, tail, want, line_of) in cases {
        let (r, text) = with_codegen(block, tail);
        let e = r.unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("roles.yaml"), "no file in: {msg}");
        assert!(msg.contains(want), "want `{want}` in: {msg}");
        let at = text.find(line_of).unwrap();
        let line = text[..at].matches('\n').count() as u64 + 1;
        assert_eq!(e.position().map(|p| p.line), Some(line), "{msg}");
    }
    // A typo in the block is a located parse error too.
    let (r, _) = with_codegen(
        "    driver: llm\n    llm: { model: gpt-test, max_tokens: 5 }",
        GATEWAY,
    );
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("max_tokens"), "{msg}");
}

#[test]
fn a_good_llm_block_loads_with_its_defaults() {
    let (r, _) = with_codegen(
        "    driver: llm\n    llm:\n      model: gpt-test\n      system_prompt: be brief",
        GATEWAY,
    );
    let r = r.unwrap();
    let llm = r.role(RoleName::Codegen).unwrap().llm.clone().unwrap();
    assert_eq!(
        llm,
        LlmSettings {
            model: "gpt-test".into(),
            max_output_tokens: 4096,
            max_turns: 40,
            system_prompt: Some("be brief".into()),
        }
    );
}

#[test]
fn a_planner_with_a_model_driver_is_refused_not_run_deterministically() {
    let (e, line) = broken(
        "    messages: [plan, log]\n    limits: { cpu_seconds: 60, memory_mb: 512, pids: 64, wall_seconds: 120, nofile: 256, fsize_mb: 16 }\n    driver: deterministic",
        "    messages: [plan, log]\n    limits: { cpu_seconds: 60, memory_mb: 512, pids: 64, wall_seconds: 120, nofile: 256, fsize_mb: 16 }\n    driver: llm",
    );
    assert!(
        e.contains("roles.planner.driver: `llm` is not available for the planner"),
        "{e}"
    );
    assert!(line.is_some(), "{e}");
}
