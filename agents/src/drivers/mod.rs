//! Codegen drivers: `replay` applies a recorded agent session; `probe` holds the hostile acts a
//! replayed session can attempt (containment tests); `command` runs a real coding-agent CLI
//! inside codegen's sandbox; `llm` is a built-in tool loop against a model through the gateway.

pub mod command;
pub mod llm;
pub mod llm_client;
pub mod llm_patch;
pub mod llm_tools;
pub mod probe;
pub mod replay;
