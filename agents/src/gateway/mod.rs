//! Cost-control's model gateway: the only way a role reaches a model.
//!
//! HTTP/1.1 on a unix socket (bind-mounted only into the roles roles.yaml lets call a model).
//! A role authenticates with the run's random token ([`token`]); the gateway estimates each
//! request before sending it ([`estimate`]), refuses one that would cross the per-request, per-run
//! or per-month limit ([`budget`]), forwards it to the upstream with the key that only
//! cost-control can read ([`upstream`]), passes the response back (SSE streamed through) and books
//! the real usage in the SQLite ledger ([`ledger`]). Threshold crossings go to the run engine as
//! [`GatewayEvent`]s. [`relay`] bridges a loopback TCP port to the socket for unmodified CLIs;
//! [`scripted`] is the scripted model server the tests put behind it.

pub mod budget;
pub mod config;
pub mod estimate;
pub mod events;
pub mod launch;
pub mod ledger;
pub mod redact;
pub mod relay;
pub mod scripted;
mod server;
pub mod tls;
pub mod tls_front;
pub mod token;
pub mod upstream;
pub mod usage;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use protocol::frame::Ledger;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

pub use config::{GatewayConfig, GatewayRun, ModelPrice, UpstreamConfig};
pub use events::GatewayEvent;

use budget::BudgetState;
use ledger::{LedgerError, SpendLedger};
use server::Shared;
use token::RunToken;
use upstream::{Upstream, UpstreamError};

/// Starting the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The upstream key file could not be read.
    #[error("read upstream key file {path}: {source}")]
    KeyFile {
        /// Key file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The key file is empty.
    #[error("upstream key file {0} is empty")]
    EmptyKey(PathBuf),
    /// The upstream base URL is unusable.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The ledger could not be opened or read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The socket could not be bound.
    #[error("bind gateway socket {path}: {source}")]
    Bind {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running gateway for one run. Dropping it without [`Gateway::stop`] still stops accepting
/// (the accept loop ends when its shutdown sender drops) and invalidates the token.
pub struct Gateway {
    shared: Arc<Shared>,
    socket: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Start the gateway for `run`: read the key, open the ledger (the run's and the month's
    /// earlier spend count), bind the socket (mode 0666: the token, not the mode, is the access
    /// check; the socket is bind-mounted only into permitted roles). Must be called inside a tokio
    /// runtime. Returns the handle and the event stream the run engine consumes.
    pub async fn start(
        config: &GatewayConfig,
        run: GatewayRun,
    ) -> Result<(Self, mpsc::UnboundedReceiver<GatewayEvent>), GatewayError> {
        Self::start_with_token(config, run, RunToken::generate()).await
    }

    /// [`Gateway::start`] with a token the run engine generated (it hands the same token to the
    /// roles that may call a model).
    pub async fn start_with_token(
        config: &GatewayConfig,
        run: GatewayRun,
        token: RunToken,
    ) -> Result<(Self, mpsc::UnboundedReceiver<GatewayEvent>), GatewayError> {
        let key_path = &config.upstream.api_key_file;
        let key = std::fs::read_to_string(key_path)
            .map_err(|source| GatewayError::KeyFile {
                path: key_path.clone(),
                source,
            })?
            .trim()
            .to_owned();
        if key.is_empty() {
            return Err(GatewayError::EmptyKey(key_path.clone()));
        }
        let upstream = Upstream::new(&config.upstream.base_url, config.upstream.tls.as_ref())?;
        // The priced models' tokenizers load while the run plans, not on the first request.
        let models: Vec<String> = config.prices.keys().cloned().collect();
        std::thread::spawn(move || models.iter().for_each(|m| estimate::warm(m)));
        let ledger = SpendLedger::open(&run.ledger_db)?;
        let run_totals = ledger.run_totals(&run.run_id)?;
        let run_spent = run_totals.usd;
        let month_spent = ledger.month_totals(&run.month)?.usd;
        let bind = |source| GatewayError::Bind {
            path: run.socket.clone(),
            source,
        };
        if run.socket.exists() {
            std::fs::remove_file(&run.socket).map_err(bind)?;
        }
        let listener = UnixListener::bind(&run.socket).map_err(bind)?;
        std::fs::set_permissions(&run.socket, std::fs::Permissions::from_mode(0o666))
            .map_err(bind)?;
        let (events, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            run_id: run.run_id,
            month: run.month,
            token,
            key,
            config: config.clone(),
            upstream,
            state: Mutex::new(BudgetState::new(run.budgets, run_spent, month_spent)),
            ledger: Mutex::new(ledger),
            run_totals: Mutex::new(run_totals),
            events,
            closed: AtomicBool::new(false),
        });
        let (shutdown, stop_rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop_rx));
        Ok((
            Self {
                shared,
                socket: run.socket,
                shutdown: Some(shutdown),
                task: Some(task),
            },
            rx,
        ))
    }

    /// The run's token, to give (as `OPENAI_API_KEY` or the CLI's key variable) to the roles that may
    /// call a model. It is not the upstream key.
    pub fn token(&self) -> &str {
        self.shared.token.as_str()
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The run's ledger now (also sent as [`GatewayEvent::Ledger`] after every booking).
    pub fn ledger(&self) -> Ledger {
        self.shared.ledger_msg()
    }

    /// Whether the gateway holds requests for a human (escalate threshold reached).
    pub fn paused(&self) -> bool {
        self.shared.state().paused()
    }

    /// A human resumed the run (`orchestrate resume RUN --reauthorize [--raise-budget USD]`).
    /// Deliberately not reachable over the socket: a role cannot resume itself.
    pub fn resume(&self, raise_run_usd: Option<f64>) {
        self.shared.state().resume(raise_run_usd);
    }

    /// Stop: refuse every further request (the token dies), stop accepting, end open connections,
    /// remove the socket.
    pub async fn stop(mut self) {
        self.shutdown_now();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn shutdown_now(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "gateway accept failed");
                        continue;
                    }
                };
                let shared = Arc::clone(&shared);
                conns.spawn(async move {
                    let svc = service_fn(move |req| server::handle(Arc::clone(&shared), req));
                    if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await {
                        tracing::debug!(error = %e, "gateway connection ended");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
