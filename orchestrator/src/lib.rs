//! The `orchestrate` CLI and the run engine: routing, guardrails, the state store and the audit
//! trail. If it decides, orders or records, it is here.

pub mod cli;
pub mod containment;
pub mod git;
pub mod run;
pub mod state;
mod sys;
