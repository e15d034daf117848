//! One module per role; each exposes pure functions from its task to its reply body.

pub mod codegen;
pub mod cost;
pub mod cost_gateway;
pub mod input;
pub mod libtest;
pub mod planner;
pub mod progress;
pub mod review_role;
pub mod test_runner;
