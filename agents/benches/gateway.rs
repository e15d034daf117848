//! Gateway benchmark: per-request latency of client → relay (loopback TCP) → gateway (unix
//! socket) → scripted server, against client → scripted server directly; and streaming
//! throughput of a large SSE response both ways. Prints p50/p99 and MB/s. A third path has the
//! gateway reach the server over TLS (an `https` upstream: a TLS front with a private CA on
//! loopback before the scripted server), so the cost of TLS shows against plain HTTP (the gateway
//! pools upstream connections: the handshake is paid once, then records are encrypted).
//!
//! `cargo bench -p orchestrate-agents --bench gateway` (or bench/gateway.sh). ROUNDS overrides the
//! request count.

// A benchmark is test code: a failed step should abort it loudly, as in tests (clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use orchestrate_agents::gateway::relay::Relay;
use orchestrate_agents::gateway::scripted::{Output, ScriptedServer, Turn};
use orchestrate_agents::gateway::tls::TlsSettings;
use orchestrate_agents::gateway::tls_front::TlsFront;
use orchestrate_agents::gateway::{Gateway, GatewayConfig, GatewayRun, ModelPrice, UpstreamConfig};
use protocol::roles::Budgets;

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> Sender {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn post(sender: &mut Sender, host: &str, token: &str, body: &str) -> usize {
    let req = Request::post("/v1/responses")
        .header("host", host)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    sender.ready().await.unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            n += d.len();
        }
    }
    n
}

fn pct(sorted: &[Duration], per_mille: usize) -> f64 {
    let i = (sorted.len() - 1) * per_mille / 1000;
    sorted[i].as_secs_f64() * 1e6
}

async fn latencies(
    sender: &mut Sender,
    host: &str,
    token: &str,
    body: &str,
    rounds: usize,
) -> Vec<Duration> {
    let mut v = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        post(sender, host, token, body).await;
        v.push(t.elapsed());
    }
    v.sort();
    v
}

fn small_turn() -> Turn {
    Turn {
        output: vec![Output::Message { text: "ok".into() }],
        input_tokens: 10,
        output_tokens: 2,
        delta_bytes: 0,
    }
}

/// A private CA's PEM and a front with a `localhost` certificate forwarding to `target`.
async fn tls_front(target: std::net::SocketAddr) -> (String, TlsFront) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (
        ca_cert.pem(),
        TlsFront::start(vec![leaf.der().clone()], key, target)
            .await
            .unwrap(),
    )
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let warm = 200;
        let stream_mib = 16usize;
        let big = Turn {
            output: vec![Output::Message { text: "x".repeat(stream_mib << 20) }],
            input_tokens: 10,
            output_tokens: 1,
            delta_bytes: 1024,
        };
        let mut turns = vec![small_turn(); 3 * (rounds + warm)];
        turns.extend([big.clone(), big.clone(), big.clone(), big.clone(), big.clone(), big]);
        // Requests alternate direct / via gateway, so both see the same server state; the
        // scripted server just answers the next turn.
        let up = ScriptedServer::start_tcp(turns, Duration::from_secs(600)).await.unwrap();
        let up_addr = up.base_url().trim_start_matches("http://").trim_end_matches("/v1").to_owned();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "sk-bench").unwrap();
        let mut prices = BTreeMap::new();
        prices.insert("m".to_owned(), ModelPrice { input_usd_per_mtok: 0.001, output_usd_per_mtok: 0.001 });
        let config = GatewayConfig {
            upstream: UpstreamConfig { base_url: up.base_url().to_owned(), api_key_file: key_file, tls: None },
            prices,
            default_max_output_tokens: 16,
        };
        let run = GatewayRun {
            run_id: "bench".into(),
            socket: dir.path().join("gw.sock"),
            ledger_db: dir.path().join("ledger.db"),
            month: "2026-11".into(),
            budgets: Budgets { per_request_usd: 1e6, per_run_usd: 1e9, per_month_usd: 1e9, warn_pct: 70, escalate_pct: 90, stop_pct: 100 },
        };
        let run_b = run.clone();
        let (gw, _events) = Gateway::start(&config, run).await.unwrap();
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), gw.socket().to_owned()).await.unwrap();
        let relay_addr = relay.addr().to_string();
        let token = gw.token().to_owned();
        // The same through an https upstream.
        let (ca_pem, front) = tls_front(up_addr.parse().unwrap()).await;
        let authority = format!("localhost:{}", front.addr().port());
        let tls_config = GatewayConfig {
            upstream: UpstreamConfig {
                base_url: format!("https://{authority}/v1"),
                api_key_file: config.upstream.api_key_file.clone(),
                tls: Some(TlsSettings { authority, ca_pem: Some(ca_pem) }),
            },
            ..config.clone()
        };
        let tls_run = GatewayRun { run_id: "bench-tls".into(), socket: dir.path().join("gw-tls.sock"), ..run_b };
        let (gw_tls, _tls_events) = Gateway::start(&tls_config, tls_run).await.unwrap();
        let relay_tls = Relay::start("127.0.0.1:0".parse().unwrap(), gw_tls.socket().to_owned()).await.unwrap();
        let relay_tls_addr = relay_tls.addr().to_string();
        let token_tls = gw_tls.token().to_owned();
        let body = r#"{"model":"m","input":"say ok","max_output_tokens":16}"#;

        let mut direct = connect(&up_addr).await;
        let mut via = connect(&relay_addr).await;
        let mut via_tls = connect(&relay_tls_addr).await;
        latencies(&mut direct, &up_addr, "sk-bench", body, warm).await;
        latencies(&mut via, &relay_addr, &token, body, warm).await;
        latencies(&mut via_tls, &relay_tls_addr, &token_tls, body, warm).await;
        let d = latencies(&mut direct, &up_addr, "sk-bench", body, rounds).await;
        let g = latencies(&mut via, &relay_addr, &token, body, rounds).await;
        let t = latencies(&mut via_tls, &relay_tls_addr, &token_tls, body, rounds).await;
        println!("requests: {rounds} per path (after {warm} warm-up), keep-alive client, non-streamed Responses");
        println!("direct          p50 {:8.1} us  p99 {:8.1} us", pct(&d, 500), pct(&d, 990));
        println!("gateway+relay   p50 {:8.1} us  p99 {:8.1} us", pct(&g, 500), pct(&g, 990));
        println!("added           p50 {:8.1} us  p99 {:8.1} us", pct(&g, 500) - pct(&d, 500), pct(&g, 990) - pct(&d, 990));
        println!("gateway+relay, https upstream (TLS front, private CA): p50 {:8.1} us  p99 {:8.1} us", pct(&t, 500), pct(&t, 990));
        println!("TLS added over plain http upstream                  : p50 {:8.1} us  p99 {:8.1} us", pct(&t, 500) - pct(&g, 500), pct(&t, 990) - pct(&g, 990));

        let sbody = r#"{"model":"m","input":"stream","max_output_tokens":16,"stream":true}"#;
        for (name, sender, host, tok) in [
            ("direct", &mut direct, &up_addr, "sk-bench"),
            ("gateway+relay", &mut via, &relay_addr, token.as_str()),
            ("gw+relay+tls", &mut via_tls, &relay_tls_addr, token_tls.as_str()),
        ] {
            post(sender, host, tok, sbody).await; // warm
            let t = Instant::now();
            let n = post(sender, host, tok, sbody).await;
            let s = t.elapsed().as_secs_f64();
            println!("stream {name:14} {:7.1} MB in {:6.3} s = {:7.1} MB/s ({} SSE events of ~1 KiB)", n as f64 / 1e6, s, n as f64 / 1e6 / s, stream_mib * 1024);
        }
        let l = gw.ledger();
        println!("ledger: {} requests booked", l.requests);
        relay.stop().await;
        gw.stop().await;
        relay_tls.stop().await;
        gw_tls.stop().await;
        drop(front);
        up.stop().await;
    });
}
