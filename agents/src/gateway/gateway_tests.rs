//! The gateway end to end in-process: scripted upstream → gateway (unix socket) → test client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use protocol::frame::BudgetLevel;
use protocol::roles::Budgets;
use protocol::stop::StopCode;
use serde_json::{json, Value};
use tokio::net::UnixStream;

use super::budget::Refusal;
use super::scripted::{Output, ScriptedServer, Turn};
use super::*;

const KEY: &str = "sk-UPSTREAM-do-not-leak-7f3a9c";

/// $0.001 per token both ways, so usage in tokens reads as thousandths of a dollar.
fn prices() -> BTreeMap<String, ModelPrice> {
    let mut m = BTreeMap::new();
    m.insert(
        "m".to_owned(),
        ModelPrice {
            input_usd_per_mtok: 1000.0,
            output_usd_per_mtok: 1000.0,
        },
    );
    m
}

fn budgets(per_request: f64, per_run: f64, per_month: f64) -> Budgets {
    Budgets {
        per_request_usd: per_request,
        per_run_usd: per_run,
        per_month_usd: per_month,
        warn_pct: 70,
        escalate_pct: 90,
        stop_pct: 100,
    }
}

fn turn(text: &str, input: u64, output: u64) -> Turn {
    Turn {
        output: vec![Output::Message { text: text.into() }],
        input_tokens: input,
        output_tokens: output,
        delta_bytes: 0,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    config: GatewayConfig,
}

impl Fixture {
    fn new(base_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("upstream.key");
        std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
        let config = GatewayConfig {
            upstream: UpstreamConfig {
                base_url: base_url.into(),
                api_key_file: key_file,
                tls: None,
            },
            prices: prices(),
            default_max_output_tokens: 10,
        };
        Self { dir, config }
    }

    fn run(&self, run_id: &str, b: Budgets) -> GatewayRun {
        GatewayRun {
            run_id: run_id.into(),
            socket: self.dir.path().join(format!("{run_id}.sock")),
            ledger_db: self.dir.path().join("ledger.db"),
            month: "2026-11".into(),
            budgets: b,
        }
    }
}

/// Status, headers (as one string) and body of one request over the gateway socket.
async fn call(
    socket: &Path,
    path: &str,
    auth: Option<(&str, &str)>,
    body: &Value,
) -> (u16, String, String) {
    let stream = UnixStream::connect(socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::post(path)
        .header("host", "gateway")
        .header("content-type", "application/json");
    if let Some((name, value)) = auth {
        req = req.header(name, value);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = format!("{:?}", resp.headers());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

async fn ask(g: &Gateway, body: &Value) -> (u16, String, String) {
    let auth = bearer(g.token()).unwrap();
    call(g.socket(), "/v1/responses", Some((auth.0, &auth.1)), body).await
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<GatewayEvent>) -> Vec<GatewayEvent> {
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        v.push(e);
    }
    v
}

fn budget_levels(ev: &[GatewayEvent]) -> Vec<BudgetLevel> {
    ev.iter()
        .filter_map(|e| {
            if let GatewayEvent::Budget(b) = e {
                Some(b.level)
            } else {
                None
            }
        })
        .collect()
}

fn req(max_out: u64) -> Value {
    json!({"model": "m", "input": "hi", "max_output_tokens": max_out})
}

async fn scripted(turns: Vec<Turn>) -> ScriptedServer {
    ScriptedServer::start_tcp(turns, Duration::from_secs(60))
        .await
        .unwrap()
}

#[tokio::test]
async fn wrong_or_missing_token_is_401_and_nothing_is_forwarded() {
    let up = scripted(vec![turn("x", 1, 1)]).await;
    let fx = Fixture::new(up.base_url());
    let (g, _rx) = Gateway::start(&fx.config, fx.run("r", budgets(1.0, 1.0, 10.0)))
        .await
        .unwrap();
    let (s, _, body) = call(g.socket(), "/v1/responses", None, &req(1)).await;
    assert_eq!((s, body.contains("unauthorized")), (401, true));
    let wrong = format!("Bearer {}", "0".repeat(64));
    assert_eq!(
        call(
            g.socket(),
            "/v1/responses",
            Some(("authorization", &wrong)),
            &req(1)
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(
            g.socket(),
            "/v1/messages",
            Some(("x-api-key", KEY)),
            &req(1)
        )
        .await
        .0,
        401
    );
    assert!(up.seen().is_empty());
    // Positive control: the right token goes through.
    assert_eq!(ask(&g, &req(1)).await.0, 200);
    assert_eq!(up.seen().len(), 1);
    g.stop().await;
}

#[tokio::test]
async fn streams_pass_through_and_the_reported_usage_is_booked() {
    let tool = Turn {
        output: vec![
            Output::ToolCall {
                call_id: "c1".into(),
                name: "shell".into(),
                arguments: "{\"cmd\":\"ls\"}".into(),
            },
            Output::Message {
                text: "done and done".into(),
            },
        ],
        input_tokens: 40,
        output_tokens: 12,
        delta_bytes: 4,
    };
    let up = scripted(vec![tool.clone(), tool]).await;
    let fx = Fixture::new(up.base_url());
    let (g, mut rx) = Gateway::start(&fx.config, fx.run("r", budgets(1.0, 10.0, 100.0)))
        .await
        .unwrap();
    let (s, headers, body) = ask(&g, &json!({"model": "m", "input": "go", "stream": true})).await;
    assert_eq!(s, 200);
    assert!(headers.contains("text/event-stream"), "{headers}");
    for e in [
        "response.created",
        "response.output_item.done",
        "\"function_call\"",
        "response.completed",
    ] {
        assert!(body.contains(e), "missing {e}: {body}");
    }
    // The gateway injected the output cap and authenticated upstream with the key.
    let seen = up.seen();
    let sent: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(sent["max_output_tokens"], 10);
    assert!(seen[0]
        .headers
        .contains(&("authorization".into(), format!("Bearer {KEY}"))));
    // Chat Completions, streamed: include_usage is requested and the final chunk's usage booked.
    let auth = bearer(g.token()).unwrap();
    let chat =
        json!({"model": "m", "messages": [{"role": "user", "content": "go"}], "stream": true});
    let (s, _, body) = call(
        g.socket(),
        "/v1/chat/completions",
        Some((auth.0, &auth.1)),
        &chat,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        body.contains("\"tool_calls\"") && body.ends_with("data: [DONE]\n\n"),
        "{body}"
    );
    let sent: Value = serde_json::from_str(&up.seen()[1].body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let l = g.ledger();
    assert_eq!((l.requests, l.tokens_in, l.tokens_out), (2, 80, 24));
    assert!((l.spent_usd - 0.104).abs() < 1e-9, "{l:?}");
    assert!(drain(&mut rx)
        .iter()
        .any(|e| matches!(e, GatewayEvent::Ledger(l) if l.requests == 2)));
    g.stop().await;
}

#[tokio::test]
async fn budget_warns_at_70_pauses_at_90_and_stops_at_100() {
    let up = scripted(vec![
        turn("a", 700, 0),
        turn("b", 200, 0),
        turn("c", 100, 0),
        turn("never", 1, 1),
    ])
    .await;
    let fx = Fixture::new(up.base_url());
    let (g, mut rx) = Gateway::start(&fx.config, fx.run("r", budgets(0.5, 1.0, 100.0)))
        .await
        .unwrap();
    assert_eq!(ask(&g, &req(1)).await.0, 200);
    assert_eq!(budget_levels(&drain(&mut rx)), vec![BudgetLevel::Warn]);
    assert_eq!(ask(&g, &req(1)).await.0, 200);
    assert_eq!(budget_levels(&drain(&mut rx)), vec![BudgetLevel::Escalate]);
    assert!(g.paused());
    let (s, _, body) = ask(&g, &req(1)).await;
    assert_eq!(s, 429);
    assert!(body.contains("paused for approval"), "{body}");
    assert_eq!(up.seen().len(), 2, "a paused gateway must not forward");
    assert!(drain(&mut rx).iter().any(|e| matches!(
        e,
        GatewayEvent::Refused {
            refusal: Refusal::Paused { .. },
            ..
        }
    )));
    g.resume(None);
    assert_eq!(ask(&g, &req(1)).await.0, 200);
    let ev = drain(&mut rx);
    assert_eq!(budget_levels(&ev), vec![BudgetLevel::Stop]);
    assert!(ev.contains(&GatewayEvent::Stop(StopCode::BudgetExceeded)));
    let (s, _, body) = ask(&g, &req(1)).await;
    assert_eq!(s, 402);
    assert!(body.contains("STOP_BUDGET_EXCEEDED"), "{body}");
    assert_eq!(up.seen().len(), 3);
    assert!((g.ledger().spent_usd - 1.0).abs() < 1e-9);
    g.stop().await;
}

#[tokio::test]
async fn a_request_whose_estimate_exceeds_what_remains_is_refused_before_sending() {
    let up = scripted(vec![turn("a", 500, 0), turn("never", 1, 1)]).await;
    let fx = Fixture::new(up.base_url());
    let (g, mut rx) = Gateway::start(&fx.config, fx.run("r", budgets(1.0, 1.0, 100.0)))
        .await
        .unwrap();
    assert_eq!(ask(&g, &req(1)).await.0, 200);
    // 600 output tokens alone are $0.60; $0.50 remain.
    let (s, _, body) = ask(&g, &req(600)).await;
    assert_eq!(s, 402);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["type"], "budget_per_run");
    assert_eq!(err["error"]["limit"]["limit"], "per_run");
    assert_eq!(
        up.seen().len(),
        1,
        "the refused request reached the upstream"
    );
    assert!(drain(&mut rx).iter().any(|e| matches!(
        e,
        GatewayEvent::Refused {
            refusal: Refusal::PerRun { .. },
            ..
        }
    )));
    // A request that fits still goes.
    assert_eq!(ask(&g, &req(100)).await.0, 200);
    assert_eq!(up.seen().len(), 2);
    // Unpriced models cannot be estimated and are refused too.
    let (s, _, _) = ask(&g, &json!({"model": "unpriced", "input": "x"})).await;
    assert_eq!((s, up.seen().len()), (400, 2));
    g.stop().await;
}

#[tokio::test]
async fn the_months_spend_survives_a_restart() {
    let up = scripted(vec![
        turn("a", 500, 0),
        turn("b", 200, 0),
        turn("never", 1, 1),
    ])
    .await;
    let fx = Fixture::new(up.base_url());
    let (g, _rx) = Gateway::start(&fx.config, fx.run("run-a", budgets(1.0, 10.0, 1.0)))
        .await
        .unwrap();
    assert_eq!(ask(&g, &req(1)).await.0, 200);
    g.stop().await;
    // A new gateway (another run, same ledger file) still counts run-a's $0.50 toward the month.
    let (g, mut rx) = Gateway::start(&fx.config, fx.run("run-b", budgets(1.0, 10.0, 1.0)))
        .await
        .unwrap();
    assert_eq!(g.ledger().spent_usd, 0.0);
    let (s, _, body) = ask(&g, &req(600)).await;
    assert_eq!(s, 402);
    assert!(body.contains("budget_per_month"), "{body}");
    assert_eq!(ask(&g, &req(1)).await.0, 200);
    let ev = drain(&mut rx);
    let warn: Vec<_> = ev
        .iter()
        .filter_map(|e| {
            if let GatewayEvent::Budget(b) = e {
                Some(b)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(warn.len(), 1);
    assert_eq!((warn[0].level, warn[0].limit_usd), (BudgetLevel::Warn, 1.0));
    assert!((warn[0].spent_usd - 0.7).abs() < 1e-9);
    g.stop().await;
}

#[tokio::test]
async fn the_upstream_key_never_appears_in_anything_returned_to_the_role() {
    let leaky = format!("Incorrect API key provided: {KEY}");
    let mut streamed = turn(&leaky, 1, 1);
    streamed.delta_bytes = 5;
    let up = scripted(vec![
        turn(&leaky, 1, 1),
        streamed.clone(),
        streamed,
        turn(&leaky, 1, 1),
    ])
    .await;
    let fx = Fixture::new(up.base_url());
    let (g, _rx) = Gateway::start(&fx.config, fx.run("r", budgets(1.0, 10.0, 100.0)))
        .await
        .unwrap();
    let auth = bearer(g.token()).unwrap();
    let a = Some((auth.0, auth.1.as_str()));
    let mut returned = vec![
        ask(&g, &req(1)).await,
        ask(&g, &json!({"model": "m", "input": "x", "stream": true})).await,
        call(
            g.socket(),
            "/v1/chat/completions",
            a,
            &json!({"model": "m", "messages": [], "stream": true}),
        )
        .await,
        call(
            g.socket(),
            "/v1/messages",
            a,
            &json!({"model": "m", "max_tokens": 5, "messages": []}),
        )
        .await,
        call(g.socket(), "/v1/responses", None, &req(1)).await,
        call(g.socket(), "/v1/nothing", a, &req(1)).await,
        ask(&g, &json!({"model": "unpriced"})).await,
        ask(&g, &req(100_000)).await,
    ];
    // Positive control: the upstream really got the key (Bearer for OpenAI, x-api-key for Anthropic),
    // and really sent it back in its text, so a missing redaction would show.
    let seen = up.seen();
    assert!(seen[0]
        .headers
        .contains(&("authorization".into(), format!("Bearer {KEY}"))));
    assert!(seen[3].headers.contains(&("x-api-key".into(), KEY.into())));
    up.stop().await;
    returned.push(ask(&g, &req(1)).await); // upstream gone: 502
    let statuses: Vec<u16> = returned.iter().map(|r| r.0).collect();
    assert_eq!(statuses, vec![200, 200, 200, 200, 401, 404, 400, 402, 502]);
    for (i, (_, headers, body)) in returned.iter().enumerate() {
        assert!(
            !headers.contains(KEY) && !body.contains(KEY),
            "response {i} leaks the key: {headers} {body}"
        );
    }
    assert!(returned[0].2.contains("[REDACTED]") && returned[1].2.contains("[REDACTED]"));
    assert_ne!(g.token(), KEY);
    assert!(!format!("{g:?}").contains(KEY));
    g.stop().await;
}

#[tokio::test]
async fn stopping_kills_the_token_and_removes_the_socket() {
    let up = scripted(vec![turn("a", 1, 1)]).await;
    let fx = Fixture::new(up.base_url());
    let (g, _rx) = Gateway::start(&fx.config, fx.run("r", budgets(1.0, 1.0, 1.0)))
        .await
        .unwrap();
    let socket: PathBuf = g.socket().to_owned();
    assert!(socket.exists());
    g.stop().await;
    assert!(!socket.exists());
    assert!(UnixStream::connect(&socket).await.is_err());
}

#[tokio::test]
async fn the_relay_forwards_loopback_tcp_to_the_gateway_socket() {
    let up = scripted(vec![turn("via relay", 3, 4), turn("direct", 3, 4)]).await;
    let fx = Fixture::new(up.base_url());
    let (g, _rx) = Gateway::start(&fx.config, fx.run("r", budgets(1.0, 1.0, 1.0)))
        .await
        .unwrap();
    let relay = relay::Relay::start("127.0.0.1:0".parse().unwrap(), g.socket().to_owned())
        .await
        .unwrap();
    let addr = relay.addr();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let r = Request::post("/v1/responses")
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {}", g.token()))
        .body(Full::new(Bytes::from(req(1).to_string())))
        .unwrap();
    let resp = sender.send_request(r).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("via relay"));
    relay.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "relay still listening after stop"
    );
    g.stop().await;
}

#[tokio::test]
async fn a_unix_socket_upstream_and_non_streamed_chat_tool_calls_are_booked() {
    let dir = tempfile::tempdir().unwrap();
    let call_turn = Turn {
        output: vec![Output::ToolCall {
            call_id: "call_1".into(),
            name: "read".into(),
            arguments: "{\"path\":\"a\"}".into(),
        }],
        input_tokens: 11,
        output_tokens: 5,
        delta_bytes: 0,
    };
    let up = ScriptedServer::start_unix(
        &dir.path().join("up.sock"),
        vec![call_turn],
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let fx = Fixture::new(up.base_url());
    let (g, _rx) = Gateway::start(&fx.config, fx.run("r", budgets(1.0, 1.0, 1.0)))
        .await
        .unwrap();
    let auth = bearer(g.token()).unwrap();
    let (s, _, body) = call(
        g.socket(),
        "/v1/chat/completions",
        Some((auth.0, &auth.1)),
        &json!({"model": "m", "messages": []}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "read"
    );
    assert_eq!(up.seen()[0].path, "/v1/chat/completions");
    let l = g.ledger();
    assert_eq!((l.requests, l.tokens_in, l.tokens_out), (1, 11, 5));
    g.stop().await;
    up.stop().await;
}

#[tokio::test]
async fn the_scripted_server_stops_at_its_deadline() {
    let up = ScriptedServer::start_tcp(vec![turn("a", 1, 1)], Duration::from_millis(200))
        .await
        .unwrap();
    let addr = up
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_owned();
    // Positive control: reachable before the deadline.
    assert!(tokio::net::TcpStream::connect(&addr).await.is_ok());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "still listening after its deadline"
    );
}

#[path = "tls_tests.rs"]
mod tls;
