//! The promotion gate: the only thing that moves `staging` and `main`.
//!
//! It decides from signed artifacts alone ([`decide`], a pure function), records its decision as
//! an artifact signed with its own key, and moves a protected ref only fast-forward, as its own
//! OS user, in an integration repository only that user can write ([`integration`]).

pub mod actions;
pub mod checks_git;
pub mod client;
pub mod decide;
pub mod decision;
pub mod envelope;
pub mod git;
pub mod identity;
pub mod inputs;
pub mod integration;
pub mod layout;
pub mod policy;
pub mod receipt;
pub mod setuid;
pub mod sign;

pub use actions::{ActionError, Gate, Moved, Outcome};
pub use decide::decide;
pub use decision::{Action, Check, CheckStatus, Decision, Verdict};
pub use inputs::{ArtifactBytes, GateInputs, GatePolicy, GitFacts, KeySource, RoleKeys};
