use super::*;

use crate::gateway::scripted::{Output, ScriptedServer, Turn};
use protocol::roles::LlmSettings;

/// Answers tool calls like the orchestrator: allows the first `allow` calls, refuses the rest
/// with STOP_TOOL_CALL_CAP; records what it was asked.
struct Fake {
    allow: usize,
    calls: Vec<(String, Value)>,
    logs: Vec<String>,
}

impl Fake {
    fn new(allow: usize) -> Self {
        Self {
            allow,
            calls: vec![],
            logs: vec![],
        }
    }
}

impl Orchestrator for Fake {
    fn tool_call(&mut self, tool: &str, args: Value) -> Result<Verdict, LlmError> {
        self.calls.push((tool.to_owned(), args));
        Ok(if self.calls.len() <= self.allow {
            Verdict::Allowed
        } else {
            Verdict::Refused(Some(protocol::StopCode::ToolCallCap))
        })
    }

    fn log(&mut self, _level: LogLevel, message: String) -> Result<(), LlmError> {
        self.logs.push(message);
        Ok(())
    }
}

fn call(id: &str, name: &str, args: Value) -> Output {
    Output::ToolCall {
        call_id: id.into(),
        name: name.into(),
        arguments: args.to_string(),
    }
}

fn turn(output: Vec<Output>) -> Turn {
    Turn {
        output,
        input_tokens: 100,
        output_tokens: 10,
        delta_bytes: 0,
    }
}

fn task(max_turns: u32, feedback: Vec<String>) -> LlmTask {
    LlmTask {
        settings: LlmSettings {
            model: "gpt-test".into(),
            max_output_tokens: 512,
            max_turns: 40,
            system_prompt: None,
        },
        task: "FR-12: add slugify".into(),
        targets: vec!["src/lib.rs".into(), "src/slug.rs".into()],
        feedback,
        max_turns,
        timeout_s: 30,
    }
}

struct World {
    rt: tokio::runtime::Runtime,
    server: ScriptedServer,
    endpoint: Endpoint,
    dir: tempfile::TempDir,
}

fn world(turns: Vec<Turn>) -> World {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(ScriptedServer::start_tcp(turns, Duration::from_secs(60)))
        .unwrap();
    let endpoint = Endpoint::parse(server.base_url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), "//! lib\n").unwrap();
    World {
        rt,
        server,
        endpoint,
        dir,
    }
}

impl World {
    fn run(&self, orch: &mut Fake, t: &LlmTask, n: u32, s: &mut Session) -> Iteration {
        run_iteration(
            &self.rt,
            orch,
            &self.endpoint,
            "run-token",
            self.dir.path(),
            t,
            n,
            s,
        )
        .unwrap()
    }

    /// The messages of the `i`-th request the model saw.
    fn messages(&self, i: usize) -> Vec<Value> {
        let body: Value = serde_json::from_str(&self.server.seen()[i].body).unwrap();
        body["messages"].as_array().unwrap().clone()
    }
}

const PATCH: &str = "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1,3 @@\n //! lib\n+\n+mod slug;\n";

#[test]
fn list_read_patch_write_then_run_tests_ends_the_iteration_and_the_results_answer_it_next() {
    let w = world(vec![
        turn(vec![call("c1", "list_files", json!({"path": "."}))]),
        turn(vec![call("c2", "read_file", json!({"path": "src/lib.rs"}))]),
        turn(vec![
            call("c3", "apply_patch", json!({ "patch": PATCH })),
            call(
                "c4",
                "write_file",
                json!({"path": "src/slug.rs", "content": "pub fn slugify() {}\n"}),
            ),
        ]),
        turn(vec![call("c5", "run_tests", json!({}))]),
        // Iteration 2: the test results are the answer to c5.
        turn(vec![call(
            "c6",
            "finish",
            json!({"summary": "slugify added"}),
        )]),
    ]);
    let mut orch = Fake::new(100);
    let mut s = Session::default();
    let it = w.run(&mut orch, &task(40, vec![]), 1, &mut s);
    assert_eq!(it.end, End::RunTests);
    assert_eq!(it.files, vec!["src/lib.rs", "src/slug.rs"]);
    assert_eq!(it.turns, 4);
    assert_eq!(s.pending_tests.as_deref(), Some("c5"));
    // Every call was announced first, in order, with a write's content as size and hash.
    let names: Vec<&str> = orch.calls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "list_files",
            "read_file",
            "apply_patch",
            "write_file",
            "run_tests"
        ]
    );
    assert_eq!(orch.calls[3].1["bytes"], 20);
    assert!(orch.calls[3].1.get("content").is_none());
    assert_eq!(
        std::fs::read_to_string(w.dir.path().join("src/lib.rs")).unwrap(),
        "//! lib\n\nmod slug;\n"
    );
    // The model saw the listing and the file as tool results.
    let m = w.messages(1);
    assert_eq!(m[0]["role"], "system");
    assert!(m[0]["content"]
        .as_str()
        .unwrap()
        .contains("src/lib.rs, src/slug.rs"));
    assert_eq!(m[1]["content"], "FR-12: add slugify");
    assert_eq!(m[2]["tool_calls"][0]["id"], "c1");
    assert_eq!(m[3]["role"], "tool");
    assert_eq!(m[3]["tool_call_id"], "c1");
    assert_eq!(m[3]["content"], "src/\nsrc/lib.rs");
    assert_eq!(w.messages(2)[5]["content"], "//! lib\n");

    // Iteration 2 starts with the orchestrator's results as c5's answer; finish ends it.
    let fb = vec!["iteration 1: `cargo test` exit 101; failed: slug_trims_dashes".to_owned()];
    let it = w.run(&mut orch, &task(40, fb.clone()), 2, &mut s);
    assert_eq!(it.end, End::Finish("slugify added".into()));
    let m = w.messages(4);
    let last = m.last().unwrap();
    assert_eq!(last["role"], "tool");
    assert_eq!(last["tool_call_id"], "c5");
    assert_eq!(last["content"], fb[0]);
    assert_eq!(s.pending_tests, None);

    // The request: model, output cap, the tools, the run token (never anything else).
    let seen = w.server.seen();
    assert_eq!(seen.len(), 5);
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["max_completion_tokens"], 512);
    assert_eq!(body["tools"], llm_tools::definitions());
    assert!(
        seen[0].path.ends_with("/v1/chat/completions"),
        "{}",
        seen[0].path
    );
    let auth: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(auth, ["Bearer run-token"]);
}

#[test]
fn a_call_the_orchestrator_refuses_is_not_run_and_nothing_more_is_asked() {
    let w = world(vec![
        turn(vec![call("c1", "read_file", json!({"path": "src/lib.rs"}))]),
        turn(vec![call(
            "c2",
            "write_file",
            json!({"path": "src/slug.rs", "content": "x"}),
        )]),
        turn(vec![call("c3", "finish", json!({"summary": "?"}))]),
    ]);
    let mut orch = Fake::new(1);
    let mut s = Session::default();
    let it = w.run(&mut orch, &task(40, vec![]), 1, &mut s);
    assert_eq!(it.end, End::Refused(Some(protocol::StopCode::ToolCallCap)));
    assert!(
        !w.dir.path().join("src/slug.rs").exists(),
        "refused write ran"
    );
    assert_eq!(w.server.seen().len(), 2);
    assert!(it.files.is_empty());
}

#[test]
fn a_path_outside_the_tree_is_refused_to_the_model_but_still_announced_and_counted() {
    let w = world(vec![
        turn(vec![
            call("c1", "read_file", json!({"path": "/etc/shadow"})),
            call(
                "c2",
                "read_file",
                json!({"path": "../../keys/planner/ed25519.key"}),
            ),
            call("c3", "shell", json!({"cmd": "id"})),
        ]),
        turn(vec![Output::Message {
            text: "I cannot read those.".into(),
        }]),
    ]);
    let mut orch = Fake::new(100);
    let mut s = Session::default();
    let it = w.run(&mut orch, &task(40, vec![]), 1, &mut s);
    assert_eq!(it.end, End::Plain("I cannot read those.".into()));
    assert_eq!(orch.calls.len(), 3);
    assert_eq!(orch.calls[0].1["path"], "/etc/shadow");
    assert_eq!(orch.calls[2].0, "shell");
    let m = w.messages(1);
    let results: Vec<&str> = m
        .iter()
        .filter(|x| x["role"] == "tool")
        .map(|x| x["content"].as_str().unwrap())
        .collect();
    assert_eq!(results.len(), 3);
    assert!(
        results[0].starts_with("error: path `/etc/shadow` refused: absolute"),
        "{}",
        results[0]
    );
    assert!(
        results[1].contains("`..` leaves the work tree"),
        "{}",
        results[1]
    );
    assert!(
        results[2].contains("unknown tool `shell`"),
        "{}",
        results[2]
    );
    assert_eq!(orch.logs.iter().filter(|l| l.contains("failed")).count(), 3);
}

#[test]
fn the_turn_cap_ends_an_iteration_of_a_model_that_never_stops() {
    let turns = (0..5)
        .map(|i| {
            turn(vec![call(
                &format!("c{i}"),
                "list_files",
                json!({"path": "src"}),
            )])
        })
        .collect();
    let w = world(turns);
    let mut orch = Fake::new(100);
    let mut s = Session::default();
    let it = w.run(&mut orch, &task(2, vec![]), 1, &mut s);
    assert_eq!(it.end, End::TurnCap(2));
    assert_eq!(w.server.seen().len(), 2);
    // The next iteration goes on in the same conversation, with the results as a user message.
    let it = w.run(&mut orch, &task(1, vec!["all green".into()]), 2, &mut s);
    assert_eq!(it.end, End::TurnCap(1));
    let m = w.messages(2);
    let last = m.last().unwrap();
    assert_eq!(last["role"], "user");
    assert!(last["content"].as_str().unwrap().contains("all green"));
}

#[test]
fn a_refused_or_failed_model_request_ends_the_iteration_with_the_reason() {
    // The script is empty: the server answers 500, as a gateway answers a refused request.
    let w = world(vec![]);
    let mut orch = Fake::new(100);
    let mut s = Session::default();
    let it = w.run(&mut orch, &task(40, vec![]), 1, &mut s);
    match &it.end {
        End::Model(e) => assert!(e.contains("500") && e.contains("script_exhausted"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(orch.calls.is_empty());
}

#[test]
fn chat_completion_answers_parse_with_and_without_tool_calls() {
    let a = llm_client::parse_answer(
        br#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[
            {"id":"x","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"a\"}"}}]}}],
            "usage":{"prompt_tokens":7,"completion_tokens":3}}"#,
    )
    .unwrap();
    assert_eq!(a.content, None);
    assert_eq!(
        a.calls,
        vec![llm_client::ModelCall {
            id: "x".into(),
            name: "read_file".into(),
            arguments: r#"{"path":"a"}"#.into()
        }]
    );
    assert_eq!(a.usage, Some((7, 3)));
    let a = llm_client::parse_answer(
        br#"{"choices":[{"message":{"role":"assistant","content":"hi"}}]}"#,
    )
    .unwrap();
    assert_eq!(a.content.as_deref(), Some("hi"));
    assert!(a.calls.is_empty());
    assert!(matches!(
        llm_client::parse_answer(br#"{"choices":[]}"#),
        Err(ClientError::NoChoice)
    ));
    assert!(matches!(
        llm_client::parse_answer(b"<html>"),
        Err(ClientError::Parse { .. })
    ));
    assert!(Endpoint::parse("https://api.example/v1").is_err());
    assert_eq!(
        Endpoint::parse("http://127.0.0.1:18080/v1/").unwrap(),
        Endpoint {
            authority: "127.0.0.1:18080".into(),
            prefix: "/v1".into()
        }
    );
}
