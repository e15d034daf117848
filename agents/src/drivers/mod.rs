//! Codegen drivers: `replay` applies a recorded agent session; `probe` holds the hostile acts a
//! replayed session can attempt (containment tests); `command` runs a real coding-agent CLI
//! inside codegen's sandbox.

pub mod command;
pub mod probe;
pub mod replay;
