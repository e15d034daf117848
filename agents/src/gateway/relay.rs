//! Loopback TCP → gateway unix socket. Unmodified CLIs only take a base URL, so inside a role's
//! network namespace this listens on that namespace's loopback and copies bytes both ways to the
//! gateway socket (bind-mounted there). It does not parse HTTP: authentication stays with the
//! gateway.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::{TcpListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Relay errors.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Binding the TCP listener failed.
    #[error("bind relay on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running relay; stops (and drops its connections) on [`Relay::stop`] or drop.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    /// Listen on `listen` (port 0 picks one) and forward every connection to `target`.
    pub async fn start(listen: SocketAddr, target: PathBuf) -> Result<Self, RelayError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| RelayError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| RelayError::Bind {
            addr: listen,
            source,
        })?;
        let (tx, mut rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    accepted = listener.accept() => {
                        let Ok((mut tcp, _)) = accepted else { continue };
                        let _ = tcp.set_nodelay(true);
                        let target = target.clone();
                        conns.spawn(async move {
                            match UnixStream::connect(&target).await {
                                Ok(mut unix) => {
                                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                                }
                                Err(e) => tracing::warn!(error = %e, target = %target.display(), "relay cannot reach the gateway"),
                            }
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
            conns.abort_all();
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The address it listens on (give `http://<addr>/v1` to the CLI as its base URL).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop listening and drop open connections.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
