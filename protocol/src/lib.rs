//! Everything that crosses a process boundary in orchestrate: the documents people write (FR,
//! config.yaml, roles.yaml), the plan the planner writes (WORK_PLAN.json), the frames roles and
//! the orchestrator exchange, signed artifacts, and stop reason codes.
//!
//! If two processes must agree on it, it lives here.

pub mod canonical;
