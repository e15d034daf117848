//! What the caller (the run engine, from roles.yaml) tells the gateway: where the upstream is, which
//! file holds its key, what each model costs, and the budgets. Deserialisable so the lead can embed
//! it in roles.yaml under `gateway:` unchanged.

use std::collections::BTreeMap;
use std::path::PathBuf;

use protocol::roles::Budgets;
use serde::{Deserialize, Serialize};

pub use protocol::roles::ModelPrice;

use super::tls::TlsSettings;

/// Where model requests go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `https://host[:port][/prefix]`, `http://host:port[/prefix]` or
    /// `unix:/path/to.sock[:/prefix]`. The incoming path's leading `/v1` is replaced by this
    /// prefix (so `http://127.0.0.1:4000/v1` maps `/v1/responses` to `/v1/responses`).
    pub base_url: String,
    /// File holding the upstream API key; readable by cost-control's user only. Never copied into
    /// a role's environment, files or responses.
    pub api_key_file: PathBuf,
    /// TLS on top of the connection: the run's `https` upstream reached through the egress
    /// bridge (`unix:` base URL), or the private CA of an `https://` base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
}

/// The gateway's configuration (proposed roles.yaml `gateway:` block).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The upstream provider.
    pub upstream: UpstreamConfig,
    /// Price table by exact model name. A model missing here is refused: it cannot be estimated.
    pub prices: BTreeMap<String, ModelPrice>,
    /// Output cap injected into requests that carry none, so the estimate bounds the real cost.
    #[serde(default = "default_max_output_tokens")]
    pub default_max_output_tokens: u64,
}

fn default_max_output_tokens() -> u64 {
    4096
}

impl GatewayConfig {
    /// The roles.yaml `gateway:` block, with the upstream reached at `base_url` (the run engine
    /// gives cost-control a unix-socket bridge to the configured upstream) and TLS on top for an
    /// `https` upstream.
    pub fn from_settings(
        s: &protocol::roles::GatewaySettings,
        base_url: String,
        tls: Option<TlsSettings>,
    ) -> Self {
        Self {
            upstream: UpstreamConfig {
                base_url,
                api_key_file: PathBuf::from(&s.upstream.api_key_file),
                tls,
            },
            prices: s.prices.clone(),
            default_max_output_tokens: s.default_max_output_tokens,
        }
    }
}

/// One run's gateway: its identity, where it listens, where its ledger lives, its budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayRun {
    /// Run id the spend is booked under.
    pub run_id: String,
    /// Unix socket to listen on (created; removed on stop).
    pub socket: PathBuf,
    /// SQLite ledger file (WAL); shared by every run so the month's spend survives restarts.
    pub ledger_db: PathBuf,
    /// Calendar month the spend is booked under, `YYYY-MM` (see [`crate::gateway::ledger::current_month`]).
    pub month: String,
    /// Budgets from roles.yaml.
    pub budgets: Budgets,
}
