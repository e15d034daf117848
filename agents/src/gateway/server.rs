//! The gateway's HTTP handling: authenticate the role's per-run token, estimate, admit or refuse,
//! forward with the upstream key, pass the response (streams unbuffered) back with the key
//! redacted, and book the real usage.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use protocol::frame::Ledger;
use protocol::stop::StopCode;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::budget::{BudgetState, Refusal};
use super::config::GatewayConfig;
use super::estimate::{estimate_and_bound, price_usd, Api, Estimate};
use super::events::GatewayEvent;
use super::ledger::{Booking, SpendLedger, Totals};
use super::redact::{redact_all, Redactor};
use super::token::RunToken;
use super::upstream::Upstream;
use super::usage::{self, SseTap, Usage};

/// Body type of every gateway response.
pub type GwBody = BoxBody<Bytes, Infallible>;

const MAX_REQUEST: usize = 32 << 20;
const MAX_RESPONSE: usize = 64 << 20;

/// State shared by every connection of one run's gateway.
pub struct Shared {
    pub(super) run_id: String,
    pub(super) month: String,
    pub(super) token: RunToken,
    pub(super) key: String,
    pub(super) config: GatewayConfig,
    pub(super) upstream: Upstream,
    pub(super) state: Mutex<BudgetState>,
    pub(super) ledger: Mutex<SpendLedger>,
    /// The run's totals, kept in memory (loaded from the ledger at start) so no read per request.
    pub(super) run_totals: Mutex<Totals>,
    pub(super) events: mpsc::UnboundedSender<GatewayEvent>,
    pub(super) closed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, BudgetState> {
        lock(&self.state)
    }

    /// The run's ledger as the protocol message.
    pub(super) fn ledger_msg(&self) -> Ledger {
        let limit_usd = self.state().budgets().per_run_usd;
        let t = lock(&self.ledger)
            .run_totals(&self.run_id)
            .unwrap_or_default();
        Ledger {
            requests: t.requests,
            tokens_in: t.tokens_in,
            tokens_out: t.tokens_out,
            spent_usd: t.usd,
            limit_usd,
        }
    }

    /// Book a finished request and emit the ledger and any threshold events.
    fn book(&self, est: &Estimate, succeeded: bool, used: Option<Usage>) {
        let price = self.config.prices.get(&est.model).copied();
        let (tokens_in, tokens_out, usd, source) = match (used, price) {
            (Some(u), Some(p)) => (
                u.input_tokens,
                u.output_tokens,
                price_usd(&p, u.input_tokens, u.output_tokens),
                "usage",
            ),
            // A successful response without usage: book the estimate, which bounds it.
            _ if succeeded => (est.input_tokens, est.max_output_tokens, est.usd, "estimate"),
            _ => (0, 0, 0.0, "failed"),
        };
        if let Err(e) = lock(&self.ledger).book(&Booking {
            run: &self.run_id,
            month: &self.month,
            model: &est.model,
            tokens_in,
            tokens_out,
            usd,
            source,
        }) {
            tracing::error!(error = %e, "gateway ledger write failed");
        }
        {
            let mut t = lock(&self.run_totals);
            t.requests += 1;
            t.tokens_in += tokens_in;
            t.tokens_out += tokens_out;
            t.usd += usd;
        }
        let events = self.state().book(est.usd, usd);
        let _ = self.events.send(GatewayEvent::Ledger(self.ledger_msg()));
        for e in events {
            let stop = e.level == protocol::frame::BudgetLevel::Stop;
            let _ = self.events.send(GatewayEvent::Budget(e));
            if stop {
                let _ = self
                    .events
                    .send(GatewayEvent::Stop(StopCode::BudgetExceeded));
            }
        }
    }

    fn redact(&self, data: &[u8]) -> Bytes {
        Bytes::from(redact_all(self.key.as_bytes(), data))
    }
}

/// A JSON error response.
fn reject(status: StatusCode, kind: &str, message: &str, extra: Option<Value>) -> Response<GwBody> {
    let mut err = json!({"type": kind, "code": kind, "message": message});
    if let (Some(extra), Some(o)) = (extra, err.as_object_mut()) {
        o.insert("limit".into(), extra);
    }
    let body = serde_json::to_vec(&json!({ "error": err })).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `input_method`: how the estimate counted input tokens (a tokenizer, or a labelled estimate).
fn refusal_response(r: &Refusal, input_method: &str) -> Response<GwBody> {
    let detail = serde_json::to_value(r).ok();
    match r {
        Refusal::Paused { pct } => reject(
            StatusCode::TOO_MANY_REQUESTS,
            "budget_paused",
            &format!("paused for approval: {pct:.1}% of the budget spent; a human must resume the run (orchestrate resume RUN --reauthorize)"),
            detail,
        ),
        Refusal::Stopped { pct } => reject(
            StatusCode::PAYMENT_REQUIRED,
            "STOP_BUDGET_EXCEEDED",
            &format!("budget exhausted ({pct:.1}%): STOP_BUDGET_EXCEEDED"),
            detail,
        ),
        Refusal::PerRequest { estimate_usd, limit_usd } => reject(
            StatusCode::PAYMENT_REQUIRED,
            "budget_per_request",
            &format!("estimated ${estimate_usd:.6} exceeds the per-request limit ${limit_usd:.6} (input tokens: {input_method})"),
            detail,
        ),
        Refusal::PerRun { estimate_usd, committed_usd, limit_usd } => reject(
            StatusCode::PAYMENT_REQUIRED,
            "budget_per_run",
            &format!("estimated ${estimate_usd:.6} on top of ${committed_usd:.6} would exceed the per-run limit ${limit_usd:.6}"),
            detail,
        ),
        Refusal::PerMonth { estimate_usd, committed_usd, limit_usd } => reject(
            StatusCode::PAYMENT_REQUIRED,
            "budget_per_month",
            &format!("estimated ${estimate_usd:.6} on top of ${committed_usd:.6} would exceed the per-month limit ${limit_usd:.6}"),
            detail,
        ),
    }
}

/// The role's credential: `Authorization: Bearer <t>` or `x-api-key: <t>` (Anthropic clients).
fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get(hyper::header::AUTHORIZATION) {
        let v = v.as_bytes();
        return v
            .strip_prefix(b"Bearer ")
            .or_else(|| v.strip_prefix(b"bearer "));
    }
    headers.get("x-api-key").map(HeaderValue::as_bytes)
}

/// Serve one request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<GwBody>, Infallible> {
    if shared.closed.load(Ordering::Acquire)
        || !presented(req.headers()).is_some_and(|t| shared.token.matches(t))
    {
        return Ok(reject(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong gateway token",
            None,
        ));
    }
    let path = req.uri().path().to_owned();
    match (req.method().clone(), Api::from_path(&path)) {
        (Method::POST, Some(api)) => Ok(metered(shared, api, req).await),
        (Method::GET, None) if path.ends_with("/models") => Ok(unmetered(shared, req).await),
        _ => Ok(reject(
            StatusCode::NOT_FOUND,
            "not_found",
            "the gateway forwards only responses, chat/completions, messages and models",
            None,
        )),
    }
}

/// Headers copied from the role's request to the upstream.
const FORWARD_REQUEST: [&str; 5] = [
    "accept",
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
    "user-agent",
];

fn upstream_request(
    shared: &Shared,
    api: Option<Api>,
    method: Method,
    path_q: &str,
    incoming: &HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, Box<Response<GwBody>>> {
    let mut b = Request::builder()
        .method(method)
        .uri(shared.upstream.map_path(path_q));
    for name in FORWARD_REQUEST {
        if let Some(v) = incoming.get(name) {
            b = b.header(name, v);
        }
    }
    b = b
        .header("host", shared.upstream.host())
        .header("content-type", "application/json");
    b = if api == Some(Api::AnthropicMessages) {
        b.header("x-api-key", shared.key.as_str())
    } else {
        b.header("authorization", format!("Bearer {}", shared.key))
    };
    b.body(Full::new(body)).map_err(|_| {
        Box::new(reject(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "request could not be forwarded (bad path or header)",
            None,
        ))
    })
}

/// Response headers passed back: all but hop-by-hop and framing, and none that carries the key.
fn copy_response_headers(shared: &Shared, from: &HeaderMap, to: &mut HeaderMap) {
    const DROP: [&str; 9] = [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    ];
    for (name, value) in from {
        if DROP.contains(&name.as_str())
            || memchr::memmem::find(value.as_bytes(), shared.key.as_bytes()).is_some()
        {
            continue;
        }
        to.append(HeaderName::clone(name), value.clone());
    }
}

async fn unmetered(shared: Arc<Shared>, req: Request<Incoming>) -> Response<GwBody> {
    let path_q = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let up = match upstream_request(
        &shared,
        None,
        Method::GET,
        &path_q,
        req.headers(),
        Bytes::new(),
    ) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match shared.upstream.send(up).await {
        Ok(resp) => buffered(&shared, resp, None).await.0,
        Err(e) => upstream_failed(&e),
    }
}

fn upstream_failed(e: &super::upstream::UpstreamError) -> Response<GwBody> {
    tracing::warn!(error = %e, "upstream request failed");
    // The gateway runs in cost-control's process: its stderr is cost-control's log.
    eprintln!("gateway: upstream request failed (nothing booked): {e}");
    let message = match e {
        // A certificate problem is the operator's to fix: say which (never the key: it was not sent).
        super::upstream::UpstreamError::Handshake { .. } => {
            format!("the upstream model API could not be reached: {e}")
        }
        _ => "the upstream model API could not be reached".to_owned(),
    };
    reject(
        StatusCode::BAD_GATEWAY,
        "upstream_unavailable",
        &message,
        None,
    )
}

async fn metered(shared: Arc<Shared>, api: Api, req: Request<Incoming>) -> Response<GwBody> {
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_REQUEST).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                "request body unreadable or over 32 MiB",
                None,
            )
        }
    };
    let mut json: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "request body is not JSON",
                None,
            )
        }
    };
    let est = match estimate_and_bound(
        api,
        &mut json,
        &shared.config.prices,
        shared.config.default_max_output_tokens,
    ) {
        Ok(e) => e,
        Err(e) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &e.to_string(),
                None,
            )
        }
    };
    let admitted = shared.state().admit(est.usd);
    if let Err(refusal) = admitted {
        let resp = refusal_response(&refusal, est.input_method);
        let _ = shared.events.send(GatewayEvent::Refused {
            model: est.model.clone(),
            refusal,
        });
        return resp;
    }
    let streaming = json.get("stream").and_then(Value::as_bool) == Some(true);
    let out = Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
    let path_q = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let up = match upstream_request(
        &shared,
        Some(api),
        Method::POST,
        &path_q,
        &parts.headers,
        out,
    ) {
        Ok(r) => r,
        Err(r) => {
            shared.book(&est, false, None);
            return *r;
        }
    };
    let resp = match shared.upstream.send(up).await {
        Ok(r) => r,
        Err(e) => {
            shared.book(&est, false, None);
            return upstream_failed(&e);
        }
    };
    let is_sse = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streaming && is_sse {
        return streamed(shared, api, est, resp);
    }
    let succeeded = resp.status().is_success();
    let (out, used) = buffered(&shared, resp, Some(api)).await;
    shared.book(&est, succeeded, used);
    out
}

/// Read a whole upstream response, redact it, and read its usage.
async fn buffered(
    shared: &Shared,
    resp: Response<Incoming>,
    api: Option<Api>,
) -> (Response<GwBody>, Option<Usage>) {
    let (parts, body) = resp.into_parts();
    let bytes = match Limited::new(body, MAX_RESPONSE).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return (
                reject(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    "the upstream response could not be read",
                    None,
                ),
                None,
            )
        }
    };
    let used = api
        .and(serde_json::from_slice::<Value>(&bytes).ok())
        .as_ref()
        .and_then(usage::from_json);
    let mut out = Response::new(Full::new(shared.redact(&bytes)).boxed());
    *out.status_mut() = parts.status;
    copy_response_headers(shared, &parts.headers, out.headers_mut());
    (out, used)
}

/// A body fed by the pump task.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// Pass an SSE stream through chunk by chunk, tapping its usage; book when it ends (or when the
/// role hangs up: then the estimate is booked unless usage was already seen).
fn streamed(
    shared: Arc<Shared>,
    api: Api,
    est: Estimate,
    resp: Response<Incoming>,
) -> Response<GwBody> {
    let (parts, mut body) = resp.into_parts();
    let succeeded = parts.status.is_success();
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    let pump_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        let mut tap = SseTap::new(api);
        let mut redactor = Redactor::new(pump_shared.key.as_bytes());
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            tap.feed(&data);
            let out = redactor.feed(&data);
            if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                break;
            }
        }
        let rest = redactor.finish();
        if !rest.is_empty() {
            let _ = tx.send(Bytes::from(rest)).await;
        }
        pump_shared.book(&est, succeeded, tap.usage());
    });
    let mut out = Response::new(ChannelBody(rx).boxed());
    *out.status_mut() = parts.status;
    copy_response_headers(&shared, &parts.headers, out.headers_mut());
    out
}
