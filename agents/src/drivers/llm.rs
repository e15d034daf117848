//! The `llm` driver: a small built-in tool loop as codegen. Each iteration it asks the model
//! (OpenAI-compatible Chat Completions, through the relay on the sandbox's loopback to
//! cost-control's gateway, with the run's gateway token) and runs the tool calls it answers with:
//! `list_files`, `read_file`, `write_file`, `apply_patch`, `run_tests`, `finish`
//! ([`super::llm_tools`]).
//!
//! Every tool call goes to the orchestrator as a `tool_call` frame FIRST, exactly like a replayed
//! step: the orchestrator counts it against the plan's cap, may refuse it (then nothing more
//! runs), and records it in the audit log; only an allowed call runs. The tool layer refuses
//! paths outside the work tree and returns that refusal to the model as the call's result; the
//! sandbox fences whatever a path resolves to anyway.
//!
//! An iteration ends at `run_tests` (the orchestrator's test-runner runs the approved test
//! commands on the change; their results are the call's result at the start of the next
//! iteration), at `finish`, at an assistant message without tool calls, at the turn cap (the
//! smaller of roles.yaml `llm.max_turns` and the plan's tool-call cap), or when the model cannot
//! be reached or the gateway refuses a request (said in the summary; the orchestrator decides).
//! The conversation lives for the codegen process, which is the run's.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use protocol::frame::{ChangeReady, Log, LogLevel, Message, ToolCall};
use serde_json::{json, Value};

use super::llm_client::{self, ClientError, Endpoint};
use super::llm_tools::{self, Tool};
use crate::gateway::launch::{RELAY_PORT_ENV, SOCKET_ENV, TOKEN_ENV};
use crate::gateway::relay::{Relay, RelayError};
use crate::roles::input::LlmTask;
use crate::transport::{Transport, TransportError};

/// Errors that end the codegen process (a model that misbehaves does not: it gets a tool error).
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The run gave codegen no gateway.
    #[error("no model gateway in this run ({0} is unset): roles.yaml needs a `gateway:` block and codegen `network: gateway`")]
    NoGateway(&'static str),
    /// The relay port is not a port.
    #[error("{RELAY_PORT_ENV}={0} is not a TCP port")]
    Port(String),
    /// The runtime could not be built.
    #[error("start the llm driver's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The relay could not listen.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The base URL of the relay does not parse (cannot happen for a loopback address).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The frame socket failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The orchestrator answered a tool call with something else.
    #[error("expected a tool_result for call {call_id}, got {kind}")]
    UnexpectedReply {
        /// The call.
        call_id: u64,
        /// What came.
        kind: protocol::frame::MessageKind,
    },
    /// The socket closed while a tool call waited.
    #[error("the orchestrator closed the socket while call {call_id} waited for its result")]
    Closed {
        /// The call.
        call_id: u64,
    },
}

/// The orchestrator's answer to a tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run it.
    Allowed,
    /// Refused (a cap, a stop): the iteration ends, nothing more runs.
    Refused(Option<protocol::StopCode>),
    /// The orchestrator is shutting the role down.
    Shutdown,
}

/// The orchestrator as the loop sees it (the frame socket in a run, a fake in tests).
pub trait Orchestrator {
    /// Announces a tool call and waits for the verdict.
    fn tool_call(&mut self, tool: &str, args: Value) -> Result<Verdict, LlmError>;
    /// A log line for the role's log and the orchestrator.
    fn log(&mut self, level: LogLevel, message: String) -> Result<(), LlmError>;
}

/// The frame socket, numbering calls across the run.
pub struct Frames<'a> {
    /// The socket.
    pub t: &'a mut Transport,
    /// The next call id.
    pub next_call: &'a mut u64,
}

impl Orchestrator for Frames<'_> {
    fn tool_call(&mut self, tool: &str, args: Value) -> Result<Verdict, LlmError> {
        let call_id = *self.next_call;
        *self.next_call += 1;
        self.t.send(
            Message::ToolCall(ToolCall {
                call_id,
                tool: tool.to_owned(),
                args,
            }),
            None,
        )?;
        let reply = self.t.recv()?.ok_or(LlmError::Closed { call_id })?;
        match reply.body {
            Message::ToolResult(r) if r.call_id == call_id => Ok(if r.allowed {
                Verdict::Allowed
            } else {
                Verdict::Refused(r.stop)
            }),
            Message::Shutdown(_) => Ok(Verdict::Shutdown),
            other => Err(LlmError::UnexpectedReply {
                call_id,
                kind: other.kind(),
            }),
        }
    }

    fn log(&mut self, level: LogLevel, message: String) -> Result<(), LlmError> {
        eprintln!("codegen: {message}");
        self.t.send(Message::Log(Log { level, message }), None)?;
        Ok(())
    }
}

/// The conversation, kept across the iterations of one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Session {
    /// Chat messages so far.
    pub messages: Vec<Value>,
    /// The id of a `run_tests` call waiting for the orchestrator's test results.
    pub pending_tests: Option<String>,
}

/// How an iteration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The model asked for the tests.
    RunTests,
    /// The model called `finish`.
    Finish(String),
    /// An assistant message without tool calls.
    Plain(String),
    /// The turn cap was reached.
    TurnCap(u32),
    /// The model could not be reached or the gateway refused the request.
    Model(String),
    /// The orchestrator refused a call (it has already stopped the run).
    Refused(Option<protocol::StopCode>),
    /// The orchestrator is shutting the role down.
    Shutdown,
}

/// What an iteration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iteration {
    /// How it ended.
    pub end: End,
    /// Files written or deleted, in order of first change.
    pub files: Vec<String>,
    /// Model requests sent.
    pub turns: u32,
}

/// Built-in system prompt (roles.yaml `llm.system_prompt` replaces it).
pub fn system_prompt(targets: &[String]) -> String {
    format!(
        "You are the codegen role of orchestrate: you implement one functional requirement (FR) in a \
         repository, working only through the tools. Paths are repository-relative; absolute paths, \
         `..` and `.git` are refused. Change only these files: {}. Read before you edit. When your \
         change is written, call run_tests: the orchestrator runs the approved test commands and \
         gives you their results. Call finish when the FR is done.",
        if targets.is_empty() {
            "(none declared)".to_owned()
        } else {
            targets.join(", ")
        }
    )
}

/// What the model is told the orchestrator's tests said.
fn feedback_text(task: &LlmTask) -> String {
    if task.feedback.is_empty() {
        "The orchestrator ran the approved test commands; it reported no details.".to_owned()
    } else {
        task.feedback.join("\n")
    }
}

/// Runs one iteration of the loop on `root`, asking the model at `endpoint` with `token`.
#[allow(clippy::too_many_arguments)] // one loop, named by its parts; a struct would only rename them
pub fn run_iteration(
    rt: &tokio::runtime::Runtime,
    orch: &mut dyn Orchestrator,
    endpoint: &Endpoint,
    token: &str,
    root: &Path,
    task: &LlmTask,
    iteration: u32,
    session: &mut Session,
) -> Result<Iteration, LlmError> {
    if session.messages.is_empty() {
        let system = task
            .settings
            .system_prompt
            .clone()
            .unwrap_or_else(|| system_prompt(&task.targets));
        session
            .messages
            .push(json!({"role": "system", "content": system}));
        // A codegen restarted mid-run (a resumed run) starts over, told what the tests said.
        let mut first = task.task.clone();
        if !task.feedback.is_empty() {
            first.push_str(&format!(
                "\n\nThe work tree already holds earlier iterations' changes. {}",
                feedback_text(task)
            ));
        }
        session
            .messages
            .push(json!({"role": "user", "content": first}));
    } else if let Some(id) = session.pending_tests.take() {
        session
            .messages
            .push(json!({"role": "tool", "tool_call_id": id, "content": feedback_text(task)}));
    } else {
        session.messages.push(json!({"role": "user", "content": format!(
            "Iteration {iteration}: the orchestrator tested your change. {} Go on; call finish when the FR is done.",
            feedback_text(task)
        )}));
    }
    let cap = task.max_turns.max(1);
    let mut it = Iteration {
        end: End::TurnCap(cap),
        files: Vec::new(),
        turns: 0,
    };
    let timeout = Duration::from_secs(task.timeout_s.max(1));
    loop {
        if it.turns >= cap {
            it.end = End::TurnCap(cap);
            return Ok(it);
        }
        it.turns += 1;
        let body = json!({
            "model": task.settings.model,
            "messages": session.messages,
            "tools": llm_tools::definitions(),
            "tool_choice": "auto",
            "max_completion_tokens": task.settings.max_output_tokens,
        });
        let answer = match rt.block_on(llm_client::complete(endpoint, token, &body, timeout)) {
            Ok(a) => a,
            Err(e) => {
                orch.log(LogLevel::Warn, format!("model request failed: {e}"))?;
                it.end = End::Model(e.to_string());
                return Ok(it);
            }
        };
        session.messages.push(answer.message.clone());
        if answer.calls.is_empty() {
            it.end = End::Plain(answer.content.unwrap_or_default());
            return Ok(it);
        }
        let mut finish = None;
        for call in &answer.calls {
            let parsed = llm_tools::parse(&call.name, &call.arguments);
            let (name, args) = match &parsed {
                Ok(tool) => {
                    let (n, a) = tool.frame();
                    (n.to_owned(), a)
                }
                Err(_) => (
                    call.name.clone(),
                    json!({"unparsed": call.arguments.chars().take(200).collect::<String>()}),
                ),
            };
            match orch.tool_call(&name, args)? {
                Verdict::Allowed => {}
                Verdict::Refused(code) => {
                    orch.log(
                        LogLevel::Warn,
                        format!("tool call {name} refused by the orchestrator ({code:?}); the iteration ends"),
                    )?;
                    it.end = End::Refused(code);
                    return Ok(it);
                }
                Verdict::Shutdown => {
                    it.end = End::Shutdown;
                    return Ok(it);
                }
            }
            let result = parsed.and_then(|tool| {
                let out = llm_tools::run(root, &tool)?;
                match &tool {
                    Tool::RunTests => session.pending_tests = Some(call.id.clone()),
                    Tool::Finish { summary } => finish = Some(summary.clone()),
                    _ => {}
                }
                Ok(out)
            });
            let content = match result {
                Ok(out) => {
                    for f in out.changed {
                        if !it.files.contains(&f) {
                            it.files.push(f);
                        }
                    }
                    out.text
                }
                Err(e) => {
                    orch.log(LogLevel::Warn, format!("tool {name} failed: {e}"))?;
                    format!("error: {e}")
                }
            };
            // run_tests is answered with the test results, next iteration.
            if session.pending_tests.as_deref() != Some(call.id.as_str()) {
                let content = if content.is_empty() {
                    "(empty)".to_owned()
                } else {
                    content
                };
                session
                    .messages
                    .push(json!({"role": "tool", "tool_call_id": call.id, "content": content}));
            }
        }
        if session.pending_tests.is_some() {
            it.end = End::RunTests;
            return Ok(it);
        }
        if let Some(summary) = finish {
            it.end = End::Finish(summary);
            return Ok(it);
        }
    }
}

/// The conversation of this codegen process (one process per run; agent.rs keeps only the call
/// counter between tasks, so the driver keeps its own state).
static SESSION: Mutex<Option<Session>> = Mutex::new(None);

/// Runs iteration `iteration` in a run: starts the relay, runs the loop, reports `change_ready`
/// (the orchestrator scans the work tree itself; the file list is what the model said it did).
pub fn iterate(
    t: &mut Transport,
    worktree: &Path,
    task: &LlmTask,
    iteration: u32,
    next_call: &mut u64,
) -> Result<(), LlmError> {
    let socket = std::env::var(SOCKET_ENV).map_err(|_| LlmError::NoGateway(SOCKET_ENV))?;
    let token = std::env::var(TOKEN_ENV).map_err(|_| LlmError::NoGateway(TOKEN_ENV))?;
    let port_s = std::env::var(RELAY_PORT_ENV).map_err(|_| LlmError::NoGateway(RELAY_PORT_ENV))?;
    let port: u16 = port_s.parse().map_err(|_| LlmError::Port(port_s))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .map_err(LlmError::Runtime)?;
    let relay = rt.block_on(Relay::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        std::path::PathBuf::from(socket),
    ))?;
    let endpoint = Endpoint::parse(&format!("http://{}/v1", relay.addr()))?;
    let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
    let session = guard.get_or_insert_with(Session::default);
    let mut frames = Frames { t, next_call };
    frames.log(
        LogLevel::Info,
        format!(
            "LLM driver, model {} through the gateway, iteration {iteration}",
            task.settings.model
        ),
    )?;
    let result = run_iteration(
        &rt,
        &mut frames,
        &endpoint,
        &token,
        worktree,
        task,
        iteration,
        session,
    );
    rt.block_on(relay.stop());
    let it = result?;
    let why = match &it.end {
        End::RunTests => "asked the orchestrator to run the tests".to_owned(),
        End::Finish(s) => format!("finished: {s}"),
        End::Plain(s) => format!("answered without a tool call: {s}"),
        End::TurnCap(n) => format!("stopped at the turn cap ({n} model requests)"),
        End::Model(e) => format!("model unavailable: {e}"),
        End::Refused(_) | End::Shutdown => return Ok(()),
    };
    let summary = format!(
        "LLM {} (iteration {iteration}, {} model request(s)): {why}",
        task.settings.model, it.turns
    );
    frames.log(LogLevel::Info, summary.clone())?;
    frames.t.send(
        Message::ChangeReady(ChangeReady {
            iteration,
            files: it.files,
            summary: summary.chars().take(2000).collect(),
        }),
        None,
    )?;
    Ok(())
}

#[cfg(test)]
#[path = "llm_tests.rs"]
mod tests;
