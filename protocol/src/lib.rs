//! Everything that crosses a process boundary in orchestrate: the documents people write (FR,
//! config.yaml, roles.yaml), the plan the planner writes (WORK_PLAN.json), the frames roles and
//! the orchestrator exchange, signed artifacts, and stop reason codes.
//!
//! If two processes must agree on it, it lives here.
#![warn(missing_docs)]

pub mod artifact;
pub mod canonical;
pub mod config;
pub mod fr;
pub mod frame;
pub mod load;
#[cfg(unix)]
pub mod load_cache;
mod locate;
pub mod merge;
mod message;
pub mod plan;
pub mod roles;
mod roles_validate;
pub mod schema;
pub mod stop;
pub mod thread;

pub use roles::RoleName;
pub use stop::StopCode;
