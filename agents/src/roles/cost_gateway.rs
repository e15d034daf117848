//! Cost-control runs the run's model gateway in its own process, on a small tokio runtime beside
//! the frame loop, for as long as the process lives (the run's lifetime): the upstream key is read
//! by cost-control's user alone and never leaves this process. At each budget task the gateway's
//! ledger (real usage booked from responses) and the threshold events it raised are folded into
//! the role's reply.

use protocol::frame::{BudgetEvent, Ledger};

use super::cost::rank;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::gateway::launch::{self, GatewayLaunch};
use crate::gateway::token::RunToken;
use crate::gateway::{Gateway, GatewayError, GatewayEvent};

/// Starting the gateway in cost-control failed (the role exits; the run stops with its log).
#[derive(Debug, thiserror::Error)]
pub enum CostGatewayError {
    /// The launch file is unreadable.
    #[error(transparent)]
    Launch(#[from] launch::LaunchError),
    /// The token in the launch file is malformed.
    #[error("the gateway launch file holds no valid token")]
    Token,
    /// The runtime could not be built.
    #[error("start the gateway's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The gateway did not start.
    #[error("start the gateway: {0}")]
    Gateway(#[from] GatewayError),
}

/// The gateway cost-control runs, with what it reported so far.
pub struct CostGateway {
    gateway: Option<Gateway>,
    events: UnboundedReceiver<GatewayEvent>,
    worst: Option<BudgetEvent>,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for CostGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CostGateway")
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl CostGateway {
    /// Start the gateway when the run engine gave one (env [`launch::CONFIG_ENV`]).
    pub fn from_env() -> Result<Option<Self>, CostGatewayError> {
        let Some(path) = std::env::var_os(launch::CONFIG_ENV) else {
            return Ok(None);
        };
        let l = launch::read(std::path::Path::new(&path))?;
        Self::start(&l).map(Some)
    }

    /// Start the gateway described by `l`.
    pub fn start(l: &GatewayLaunch) -> Result<Self, CostGatewayError> {
        let token = RunToken::from_hex(&l.token).ok_or(CostGatewayError::Token)?;
        // One worker: the role's pids limit is small and the gateway's work is I/O.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .enable_all()
            .build()
            .map_err(CostGatewayError::Runtime)?;
        let (gateway, events) =
            rt.block_on(Gateway::start_with_token(&l.config, l.run(), token))?;
        if l.reauthorized && gateway.paused() {
            eprintln!("cost-control: the run was re-authorized by a person; the gateway resumes");
            gateway.resume(None);
        }
        eprintln!(
            "cost-control: gateway for run {} listening on {} (run ceiling {} USD, month {} USD, upstream {}{})",
            l.run_id,
            gateway.socket().display(),
            l.budgets.per_run_usd,
            l.budgets.per_month_usd,
            l.config.upstream.tls.as_ref().map_or("", |t| t.authority.as_str()),
            if l.config.upstream.tls.is_some() { " over TLS" } else { "over plain HTTP" },
        );
        Ok(Self {
            gateway: Some(gateway),
            events,
            worst: None,
            rt,
        })
    }

    /// The gateway's ledger now, and the highest threshold event it raised so far (kept: a run
    /// paused or stopped by the gateway stays so until a person resumes it).
    pub fn snapshot(&mut self) -> (Ledger, Option<BudgetEvent>) {
        while let Ok(e) = self.events.try_recv() {
            if let GatewayEvent::Refused { model, refusal } = &e {
                eprintln!(
                    "cost-control: refused a request for {model} before sending it: {}",
                    serde_json::to_string(refusal).unwrap_or_default()
                );
            }
            if let GatewayEvent::Budget(b) = e {
                if self
                    .worst
                    .as_ref()
                    .is_none_or(|w| rank(b.level) >= rank(w.level))
                {
                    self.worst = Some(b);
                }
            }
        }
        let ledger = self.gateway.as_ref().map_or(
            Ledger {
                requests: 0,
                tokens_in: 0,
                tokens_out: 0,
                spent_usd: 0.0,
                limit_usd: 0.0,
            },
            Gateway::ledger,
        );
        (ledger, self.worst.clone())
    }
}

impl Drop for CostGateway {
    fn drop(&mut self) {
        if let Some(g) = self.gateway.take() {
            self.rt.block_on(g.stop());
        }
    }
}
