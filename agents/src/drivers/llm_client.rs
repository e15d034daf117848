//! The `llm` driver's model client: one non-streamed Chat Completions request
//! (`POST {base}/chat/completions`) per model turn, over plain HTTP/1.1 to the relay on the
//! sandbox's loopback, which copies it to cost-control's gateway. The credential is the run's
//! gateway token; the gateway swaps in the upstream key, which this process never sees.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpStream;

/// Errors talking to the model.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not `http://host:port[/prefix]`.
    #[error("model base URL `{0}` is not http://host:port[/prefix]")]
    BaseUrl(String),
    /// Connecting failed.
    #[error("connect to the model endpoint {addr}: {source}")]
    Connect {
        /// Where.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP to the model endpoint: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("build the model request: {0}")]
    Request(#[from] hyper::http::Error),
    /// No answer in time.
    #[error("the model did not answer within {0} s")]
    Timeout(u64),
    /// A status other than 200 (the gateway's refusals land here: budget, unknown model, ...).
    #[error("the model endpoint answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Body (the gateway says why).
        body: String,
    },
    /// The answer is not a chat completion.
    #[error("the model's answer is not a chat completion: {source}; body: {body}")]
    Parse {
        /// Cause.
        source: serde_json::Error,
        /// Start of the body.
        body: String,
    },
    /// A completion without choices.
    #[error("the model's answer has no choices")]
    NoChoice,
}

/// The endpoint: `http://host:port/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// host:port.
    pub authority: String,
    /// Path prefix, e.g. `/v1` (no trailing slash).
    pub prefix: String,
}

impl Endpoint {
    /// Parses `http://host:port[/prefix]`.
    pub fn parse(base_url: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::BaseUrl(base_url.to_owned());
        let rest = base_url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        authority.parse::<SocketAddr>().map_err(|_| bad())?;
        Ok(Self {
            authority: authority.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// One tool call in the model's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCall {
    /// The call id the tool message must answer.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// JSON arguments, as the model wrote them.
    pub arguments: String,
}

/// The model's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The assistant message exactly as received (it goes back into the conversation).
    pub message: Value,
    /// Its text, if any.
    pub content: Option<String>,
    /// Its tool calls, in order.
    pub calls: Vec<ModelCall>,
    /// Usage the provider reported (prompt, completion tokens), if any.
    pub usage: Option<(u64, u64)>,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Value,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct RawCall {
    id: String,
    function: RawFunction,
}

#[derive(Deserialize)]
struct RawFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

/// Parses a Chat Completions response body.
pub fn parse_answer(body: &[u8]) -> Result<Answer, ClientError> {
    let parse_err = |source| ClientError::Parse {
        source,
        body: String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned(),
    };
    let c: Completion = serde_json::from_slice(body).map_err(parse_err)?;
    let message = c
        .choices
        .into_iter()
        .next()
        .ok_or(ClientError::NoChoice)?
        .message;
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let calls: Vec<RawCall> = match message.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(parse_err)?,
    };
    Ok(Answer {
        calls: calls
            .into_iter()
            .map(|c| ModelCall {
                id: c.id,
                name: c.function.name,
                arguments: c.function.arguments,
            })
            .collect(),
        content,
        message,
        usage: c.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
    })
}

/// Sends one request body and returns the parsed answer.
pub async fn complete(
    endpoint: &Endpoint,
    token: &str,
    body: &Value,
    timeout: Duration,
) -> Result<Answer, ClientError> {
    tokio::time::timeout(timeout, exchange(endpoint, token, body))
        .await
        .map_err(|_| ClientError::Timeout(timeout.as_secs()))?
}

async fn exchange(endpoint: &Endpoint, token: &str, body: &Value) -> Result<Answer, ClientError> {
    let stream = TcpStream::connect(&endpoint.authority)
        .await
        .map_err(|source| ClientError::Connect {
            addr: endpoint.authority.clone(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post(format!("{}/chat/completions", endpoint.prefix))
        .header(hyper::header::HOST, &endpoint.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body.to_string())))?;
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    conn.abort();
    if status != hyper::StatusCode::OK {
        return Err(ClientError::Status {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes[..bytes.len().min(2000)]).into_owned(),
        });
    }
    parse_answer(&bytes)
}
