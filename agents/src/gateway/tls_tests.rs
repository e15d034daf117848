//! The gateway's `https` upstream against a real TLS peer: a front on 127.0.0.1 with a certificate
//! for `localhost` from a private CA (rcgen), in front of the scripted server. With the CA as
//! `ca_file` the request goes through and is booked; with the webpki roots only, or a name the
//! certificate does not carry, the handshake fails with the certificate error, nothing reaches
//! the scripted server and nothing is booked.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::*;
use crate::gateway::tls::TlsSettings;
use crate::gateway::tls_front::TlsFront;

/// A private CA (PEM) and a `localhost` certificate it signed, served by a front that forwards
/// to `up`.
async fn front(up: &ScriptedServer) -> (String, TlsFront) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "orchestrate test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let target = up
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .parse()
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let f = TlsFront::start(vec![leaf.der().clone()], key, target)
        .await
        .unwrap();
    (ca_cert.pem(), f)
}

fn https(fx: &mut Fixture, host: &str, f: &TlsFront, ca_pem: Option<&str>) {
    let authority = format!("{host}:{}", f.addr().port());
    fx.config.upstream.base_url = format!("https://{authority}/v1");
    fx.config.upstream.tls = ca_pem.map(|pem| TlsSettings {
        authority,
        ca_pem: Some(pem.to_owned()),
    });
}

#[tokio::test]
async fn an_https_upstream_with_its_private_ca_is_reached_and_booked() {
    let up = scripted(vec![turn("over tls", 100, 20)]).await;
    let (ca, f) = front(&up).await;
    let mut fx = Fixture::new(up.base_url());
    https(&mut fx, "localhost", &f, Some(&ca));
    let (g, _rx) = Gateway::start(&fx.config, fx.run("tls", budgets(1.0, 1.0, 10.0)))
        .await
        .unwrap();
    let (status, _, body) = ask(&g, &req(20)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("over tls"), "{body}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    // The key went upstream inside TLS; the Host header names the configured host.
    let header = |n: &str| {
        seen[0]
            .headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("authorization"), Some(format!("Bearer {KEY}")));
    assert_eq!(
        header("host"),
        Some(format!("localhost:{}", f.addr().port()))
    );
    let l = g.ledger();
    assert_eq!((l.tokens_in, l.tokens_out), (100, 20));
    assert!((l.spent_usd - 0.12).abs() < 1e-9, "{l:?}");
    g.stop().await;
}

#[tokio::test]
async fn consecutive_requests_reuse_one_tls_connection() {
    let up = scripted(vec![
        turn("one", 1, 1),
        turn("two", 1, 1),
        turn("three", 1, 1),
    ])
    .await;
    let (ca, f) = front(&up).await;
    let mut fx = Fixture::new(up.base_url());
    https(&mut fx, "localhost", &f, Some(&ca));
    let (g, _rx) = Gateway::start(&fx.config, fx.run("pool", budgets(1.0, 1.0, 10.0)))
        .await
        .unwrap();
    for want in ["one", "two", "three"] {
        let (status, _, body) = ask(&g, &req(1)).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(want), "{body}");
        // The connection goes back to the pool once its response has been read.
        for _ in 0..100 {
            if g.shared.upstream.idle() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(up.seen().len(), 3);
    assert_eq!(f.accepted(), 1, "one TCP + TLS set-up for three requests");
    g.stop().await;
}

#[tokio::test]
async fn without_the_ca_file_the_webpki_roots_refuse_the_certificate_and_nothing_is_booked() {
    let up = scripted(vec![turn("never", 100, 20)]).await;
    let (_ca, f) = front(&up).await;
    let mut fx = Fixture::new(up.base_url());
    https(&mut fx, "localhost", &f, None);
    let (g, _rx) = Gateway::start(&fx.config, fx.run("roots", budgets(1.0, 1.0, 10.0)))
        .await
        .unwrap();
    let (status, _, body) = ask(&g, &req(20)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("invalid peer certificate"), "{body}");
    assert!(body.contains("UnknownIssuer"), "{body}");
    assert!(body.contains("webpki roots"), "{body}");
    assert!(!body.contains(KEY), "{body}");
    assert!(up.seen().is_empty());
    let l = g.ledger();
    assert_eq!(
        (l.spent_usd, l.tokens_in, l.tokens_out),
        (0.0, 0, 0),
        "{l:?}"
    );
    g.stop().await;
}

#[tokio::test]
async fn a_host_the_certificate_does_not_name_fails_even_with_the_right_ca() {
    let up = scripted(vec![turn("never", 100, 20)]).await;
    let (ca, f) = front(&up).await;
    let mut fx = Fixture::new(up.base_url());
    // 127.0.0.1 reaches the same front, but the certificate is for `localhost` only.
    https(&mut fx, "127.0.0.1", &f, Some(&ca));
    let (g, _rx) = Gateway::start(&fx.config, fx.run("name", budgets(1.0, 1.0, 10.0)))
        .await
        .unwrap();
    let (status, _, body) = ask(&g, &req(20)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("not valid for name"), "{body}");
    assert!(up.seen().is_empty());
    assert_eq!(g.ledger().spent_usd, 0.0);
    g.stop().await;
}

#[tokio::test]
async fn tls_runs_over_the_egress_socket_with_the_configured_host_as_its_name() {
    // The run's shape: cost-control reaches a unix socket whose other end is a byte pipe to the
    // upstream's host:port; TLS (SNI `localhost`) goes through the pipe.
    let up = scripted(vec![turn("bridged", 10, 5)]).await;
    let (ca, f) = front(&up).await;
    let mut fx = Fixture::new(up.base_url());
    let sock = fx.dir.path().join("egress.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let target = f.addr();
    tokio::spawn(async move {
        while let Ok((mut unix, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut tcp = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut unix, &mut tcp).await;
            });
        }
    });
    fx.config.upstream.base_url = format!("unix:{}:/v1", sock.display());
    fx.config.upstream.tls = Some(TlsSettings {
        authority: "localhost".into(),
        ca_pem: Some(ca),
    });
    let (g, _rx) = Gateway::start(&fx.config, fx.run("bridge", budgets(1.0, 1.0, 10.0)))
        .await
        .unwrap();
    let (status, _, body) = ask(&g, &req(20)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(up.seen().len(), 1);
    g.stop().await;
}
