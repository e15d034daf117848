//! A TLS-terminating front on the host's loopback, for tests and the bench: it accepts TLS with a
//! given certificate and pipes the clear bytes to a plain TCP server (the scripted model server),
//! so the gateway's `https` upstream path runs against a real TLS peer with a private CA.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

/// Starting the front failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsFrontError {
    /// The certificate or key is unusable.
    #[error("TLS front certificate: {0}")]
    Config(#[source] rustls::Error),
    /// The listener could not be bound.
    #[error("bind the TLS front on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
}

/// A running front. Stops accepting when dropped.
#[derive(Debug)]
pub struct TlsFront {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
}

impl TlsFront {
    /// Listen on 127.0.0.1 (a free port) with `chain`/`key` and forward each connection to
    /// `target`. Must be called inside a tokio runtime.
    pub async fn start(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        target: SocketAddr,
    ) -> Result<Self, TlsFrontError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsFrontError::Config)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsFrontError::Config)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(TlsFrontError::Bind)?;
        let addr = listener.local_addr().map_err(TlsFrontError::Bind)?;
        let (stop, mut stopped) = oneshot::channel();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = tcp.set_nodelay(true);
                        tokio::spawn(forward(acceptor.clone(), tcp, target));
                    }
                }
            }
        });
        Ok(Self {
            addr,
            accepted,
            stop: Some(stop),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn forward(acceptor: TlsAcceptor, tcp: TcpStream, target: SocketAddr) {
    // A client that refuses the certificate ends the handshake: nothing reaches the target.
    let Ok(mut tls) = acceptor.accept(tcp).await else {
        return;
    };
    let Ok(mut plain) = TcpStream::connect(target).await else {
        return;
    };
    let _ = plain.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
}
