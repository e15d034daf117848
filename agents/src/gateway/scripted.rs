//! A scripted model server for tests and benchmarks: answers each request with the next turn of a
//! script (messages and tool calls, with known token usage) in the Responses API (streamed or
//! not), Chat Completions (streamed or not) or Anthropic Messages (not streamed). It records every
//! request it saw, listens on a loopback port or a unix socket, and stops when the test stops it,
//! drops it, or its deadline passes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::oneshot;

/// One output item of a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    /// Assistant text.
    Message {
        /// The text.
        text: String,
    },
    /// A function (tool) call.
    ToolCall {
        /// Call id.
        call_id: String,
        /// Tool name.
        name: String,
        /// JSON arguments, as a string.
        arguments: String,
    },
}

/// One scripted model turn: its output and the usage it reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Output items.
    pub output: Vec<Output>,
    /// Reported input tokens.
    pub input_tokens: u64,
    /// Reported output tokens.
    pub output_tokens: u64,
    /// Stream message text in deltas of this many bytes (0: one delta).
    #[serde(default)]
    pub delta_bytes: usize,
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Path and query.
    pub path: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

/// Scripted server errors.
#[derive(Debug, thiserror::Error)]
pub enum ScriptedError {
    /// Binding failed.
    #[error("bind scripted model server on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
}

struct State {
    turns: Vec<Turn>,
    next: usize,
    seen: Vec<Seen>,
}

/// A running scripted server.
pub struct ScriptedServer {
    state: Arc<Mutex<State>>,
    base_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ScriptedServer {
    /// Serve `turns` on 127.0.0.1 (a free port) for at most `deadline`.
    pub async fn start_tcp(turns: Vec<Turn>, deadline: Duration) -> Result<Self, ScriptedError> {
        let bind = |source| ScriptedError::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        };
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let state = Arc::new(Mutex::new(State {
            turns,
            next: 0,
            seen: Vec::new(),
        }));
        let (tx, rx) = oneshot::channel();
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            serve(rx, deadline, st, Listener::Tcp(listener)).await;
        });
        Ok(Self {
            state,
            base_url: format!("http://{addr}/v1"),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Serve `turns` on the unix socket `path` for at most `deadline`.
    pub async fn start_unix(
        path: &Path,
        turns: Vec<Turn>,
        deadline: Duration,
    ) -> Result<Self, ScriptedError> {
        let listener = UnixListener::bind(path).map_err(|source| ScriptedError::Bind {
            addr: path.display().to_string(),
            source,
        })?;
        let state = Arc::new(Mutex::new(State {
            turns,
            next: 0,
            seen: Vec::new(),
        }));
        let (tx, rx) = oneshot::channel();
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            serve(rx, deadline, st, Listener::Unix(listener)).await;
        });
        let path: PathBuf = path.to_owned();
        Ok(Self {
            state,
            base_url: format!("unix:{}:/v1", path.display()),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The gateway `base_url` that reaches this server (`http://127.0.0.1:P/v1` or `unix:/p:/v1`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .lock()
            .map(|s| s.seen.clone())
            .unwrap_or_default()
    }

    /// Stop serving.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

fn spawn_conn<S>(conns: &mut tokio::task::JoinSet<()>, io: S, state: &Arc<Mutex<State>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let st = Arc::clone(state);
    conns.spawn(async move {
        let svc = service_fn(move |req| answer(Arc::clone(&st), req));
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(io), svc)
            .await;
    });
}

async fn serve(
    mut stop: oneshot::Receiver<()>,
    deadline: Duration,
    state: Arc<Mutex<State>>,
    listener: Listener,
) {
    let mut conns = tokio::task::JoinSet::new();
    let timeout = tokio::time::sleep(deadline);
    tokio::pin!(timeout);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = &mut timeout => break,
            accepted = async {
                match &listener {
                    Listener::Tcp(l) => l.accept().await.map(|(s, _)| Conn::Tcp(s)),
                    Listener::Unix(l) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
                }
            } => match accepted {
                Ok(Conn::Tcp(s)) => {
                    let _ = s.set_nodelay(true);
                    spawn_conn(&mut conns, s, &state);
                }
                Ok(Conn::Unix(s)) => spawn_conn(&mut conns, s, &state),
                Err(_) => {}
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let (turn, n) = {
        let Ok(mut s) = state.lock() else {
            return Ok(reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                "{}".into(),
            ));
        };
        s.seen.push(Seen {
            path: path.clone(),
            headers,
            body,
        });
        let n = s.next;
        s.next += 1;
        (s.turns.get(n).cloned(), n)
    };
    let Some(turn) = turn else {
        return Ok(reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            json!({"error": {"type": "script_exhausted", "message": format!("no scripted turn {n}")}}).to_string(),
        ));
    };
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("scripted")
        .to_owned();
    let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
    let p = path.split('?').next().unwrap_or("");
    let r = if p.ends_with("/responses") {
        if stream {
            reply(
                StatusCode::OK,
                "text/event-stream",
                responses_sse(&turn, n, &model),
            )
        } else {
            reply(
                StatusCode::OK,
                "application/json",
                responses_object(&turn, n, &model).to_string(),
            )
        }
    } else if p.ends_with("/chat/completions") {
        if stream {
            reply(
                StatusCode::OK,
                "text/event-stream",
                chat_sse(&turn, n, &model),
            )
        } else {
            reply(
                StatusCode::OK,
                "application/json",
                chat_object(&turn, n, &model).to_string(),
            )
        }
    } else if p.ends_with("/messages") {
        reply(
            StatusCode::OK,
            "application/json",
            anthropic_object(&turn, n, &model).to_string(),
        )
    } else {
        reply(
            StatusCode::NOT_FOUND,
            "application/json",
            json!({"error": {"type": "not_found"}}).to_string(),
        )
    };
    Ok(r)
}

fn responses_item(o: &Output, n: usize, i: usize) -> Value {
    match o {
        Output::Message { text } => json!({
            "type": "message", "id": format!("msg_{n}_{i}"), "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]
        }),
        Output::ToolCall {
            call_id,
            name,
            arguments,
        } => json!({
            "type": "function_call", "id": format!("fc_{n}_{i}"), "call_id": call_id, "name": name,
            "arguments": arguments, "status": "completed"
        }),
    }
}

fn responses_object(t: &Turn, n: usize, model: &str) -> Value {
    let output: Vec<Value> = t
        .output
        .iter()
        .enumerate()
        .map(|(i, o)| responses_item(o, n, i))
        .collect();
    json!({
        "id": format!("resp_{n}"), "object": "response", "status": "completed", "model": model, "output": output,
        "usage": {"input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
                  "total_tokens": t.input_tokens + t.output_tokens}
    })
}

fn sse(out: &mut String, event: Option<&str>, data: &Value) {
    if let Some(e) = event {
        out.push_str("event: ");
        out.push_str(e);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(&data.to_string());
    out.push_str("\n\n");
}

/// `text` split into pieces of at most `size` bytes on char boundaries (0: whole).
fn deltas(text: &str, size: usize) -> Vec<&str> {
    if size == 0 || text.len() <= size {
        return vec![text];
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

fn responses_sse(t: &Turn, n: usize, model: &str) -> String {
    let mut s = String::new();
    let id = format!("resp_{n}");
    sse(
        &mut s,
        Some("response.created"),
        &json!({"type": "response.created",
        "response": {"id": id, "object": "response", "status": "in_progress", "model": model, "output": []}}),
    );
    for (i, o) in t.output.iter().enumerate() {
        let item = responses_item(o, n, i);
        sse(
            &mut s,
            Some("response.output_item.added"),
            &json!({"type": "response.output_item.added", "output_index": i, "item": item}),
        );
        if let Output::Message { text } = o {
            for d in deltas(text, t.delta_bytes) {
                sse(
                    &mut s,
                    Some("response.output_text.delta"),
                    &json!({"type": "response.output_text.delta",
                    "item_id": format!("msg_{n}_{i}"), "output_index": i, "content_index": 0, "delta": d}),
                );
            }
        }
        sse(
            &mut s,
            Some("response.output_item.done"),
            &json!({"type": "response.output_item.done", "output_index": i, "item": item}),
        );
    }
    sse(
        &mut s,
        Some("response.completed"),
        &json!({"type": "response.completed", "response": responses_object(t, n, model)}),
    );
    s
}

fn chat_message(t: &Turn) -> (Value, &'static str) {
    let text: String = t
        .output
        .iter()
        .filter_map(|o| match o {
            Output::Message { text } => Some(text.as_str()),
            Output::ToolCall { .. } => None,
        })
        .collect();
    let calls: Vec<Value> = t.output.iter().filter_map(|o| match o {
        Output::ToolCall { call_id, name, arguments } => Some(json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})),
        Output::Message { .. } => None,
    }).collect();
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let mut m = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    (m, finish)
}

fn chat_usage(t: &Turn) -> Value {
    json!({"prompt_tokens": t.input_tokens, "completion_tokens": t.output_tokens, "total_tokens": t.input_tokens + t.output_tokens})
}

fn chat_object(t: &Turn, n: usize, model: &str) -> Value {
    let (message, finish) = chat_message(t);
    json!({"id": format!("chatcmpl_{n}"), "object": "chat.completion", "model": model,
           "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": chat_usage(t)})
}

fn chat_sse(t: &Turn, n: usize, model: &str) -> String {
    let mut s = String::new();
    let id = format!("chatcmpl_{n}");
    let chunk = |choices: Value| json!({"id": id, "object": "chat.completion.chunk", "model": model, "choices": choices});
    sse(
        &mut s,
        None,
        &chunk(json!([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": null}])),
    );
    let mut tool_index = 0;
    for o in &t.output {
        match o {
            Output::Message { text } => {
                for d in deltas(text, t.delta_bytes) {
                    sse(
                        &mut s,
                        None,
                        &chunk(
                            json!([{"index": 0, "delta": {"content": d}, "finish_reason": null}]),
                        ),
                    );
                }
            }
            Output::ToolCall {
                call_id,
                name,
                arguments,
            } => {
                sse(
                    &mut s,
                    None,
                    &chunk(
                        json!([{"index": 0, "delta": {"tool_calls": [{"index": tool_index, "id": call_id,
                    "type": "function", "function": {"name": name, "arguments": arguments}}]}, "finish_reason": null}]),
                    ),
                );
                tool_index += 1;
            }
        }
    }
    let finish = chat_message(t).1;
    sse(
        &mut s,
        None,
        &chunk(json!([{"index": 0, "delta": {}, "finish_reason": finish}])),
    );
    let mut usage = chunk(json!([]));
    usage["usage"] = chat_usage(t);
    sse(&mut s, None, &usage);
    s.push_str("data: [DONE]\n\n");
    s
}

fn anthropic_object(t: &Turn, n: usize, model: &str) -> Value {
    let content: Vec<Value> = t
        .output
        .iter()
        .map(|o| match o {
            Output::Message { text } => json!({"type": "text", "text": text}),
            Output::ToolCall {
                call_id,
                name,
                arguments,
            } => json!({"type": "tool_use", "id": call_id, "name": name,
            "input": serde_json::from_str::<Value>(arguments).unwrap_or(Value::Null)}),
        })
        .collect();
    json!({"id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": model, "content": content,
           "stop_reason": "end_turn", "usage": {"input_tokens": t.input_tokens, "output_tokens": t.output_tokens}})
}
