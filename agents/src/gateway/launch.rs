//! How a run hands the gateway to its roles (the contract between the run engine and the role
//! processes): cost-control reads a [`GatewayLaunch`] file named by [`CONFIG_ENV`] and runs the
//! gateway for the run's lifetime; a role whose roles.yaml network is `gateway` gets the socket
//! ([`SOCKET_ENV`]), the per-run token ([`TOKEN_ENV`]) and the loopback port its relay may use
//! ([`RELAY_PORT_ENV`]) — never the upstream key.

use std::path::{Path, PathBuf};

use protocol::roles::Budgets;
use serde::{Deserialize, Serialize};

use super::config::{GatewayConfig, GatewayRun};

/// Cost-control: path of the [`GatewayLaunch`] JSON (0400, cost-control's user).
pub const CONFIG_ENV: &str = "ORCHESTRATE_GATEWAY_CONFIG";
/// A model-calling role: the gateway's unix socket.
pub const SOCKET_ENV: &str = "ORCHESTRATE_GATEWAY_SOCKET";
/// A model-calling role: the run's gateway token.
pub const TOKEN_ENV: &str = "ORCHESTRATE_GATEWAY_TOKEN";
/// A model-calling role: the loopback TCP port its relay listens on (Landlock allows only it).
pub const RELAY_PORT_ENV: &str = "ORCHESTRATE_RELAY_PORT";
/// The socket's file name inside the gateway directory.
pub const SOCKET_NAME: &str = "gateway.sock";

/// Everything cost-control needs to run the gateway for one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayLaunch {
    /// Upstream (as cost-control reaches it), key file, prices.
    pub config: GatewayConfig,
    /// The run.
    pub run_id: String,
    /// Where to listen.
    pub socket: PathBuf,
    /// The spend ledger shared by every run (the month's spend survives restarts).
    pub ledger_db: PathBuf,
    /// `YYYY-MM`.
    pub month: String,
    /// roles.yaml budgets, with the run's ceiling (the strictest of FR, config and roles.yaml).
    pub budgets: Budgets,
    /// The per-run token the roles present.
    pub token: String,
    /// The run was resumed by a person (`orchestrate resume --reauthorize`, the only way a run's
    /// roles start again): a gateway that reopens the run's ledger at the pause threshold starts
    /// resumed instead of paused.
    #[serde(default)]
    pub reauthorized: bool,
}

impl GatewayLaunch {
    /// The run part of the launch.
    pub fn run(&self) -> GatewayRun {
        GatewayRun {
            run_id: self.run_id.clone(),
            socket: self.socket.clone(),
            ledger_db: self.ledger_db.clone(),
            month: self.month.clone(),
            budgets: self.budgets,
        }
    }
}

/// Reading the launch file failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The file could not be read.
    #[error("read gateway launch file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a launch.
    #[error("parse gateway launch file {path}: {source}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
}

/// Read the launch file at `path`.
pub fn read(path: &Path) -> Result<GatewayLaunch, LaunchError> {
    let bytes = std::fs::read(path).map_err(|source| LaunchError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| LaunchError::Parse {
        path: path.to_path_buf(),
        source,
    })
}
