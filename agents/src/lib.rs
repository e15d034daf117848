//! The work of orchestrate's six roles (planner, codegen, test-runner, progress-evaluator,
//! cost-control, security-review) and the `orchestrate-agent` binary that runs one of them behind
//! the frame socket. Role logic lives in pure functions under [`roles`]; [`transport`] and the
//! binary only wire them to frames.

pub mod agent;
pub mod coverage;
pub mod drivers;
pub mod gateway;
pub mod review;
pub mod roles;
pub mod transport;
