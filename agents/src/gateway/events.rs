//! What the gateway tells the run engine, on an unbounded channel so a slow consumer never
//! stalls model traffic.

use protocol::frame::{BudgetEvent, Ledger};
use protocol::stop::StopCode;

use super::budget::Refusal;

/// One gateway event.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayEvent {
    /// The run's ledger after a booking.
    Ledger(Ledger),
    /// A threshold was crossed (Warn; Escalate = the gateway is paused until resumed; Stop).
    Budget(BudgetEvent),
    /// A request was refused before it was sent.
    Refused {
        /// Model asked for.
        model: String,
        /// Which limit.
        refusal: Refusal,
    },
    /// The run must stop: the stop threshold was reached.
    Stop(StopCode),
}
