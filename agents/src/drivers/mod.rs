//! Codegen drivers. Only `replay` exists so far: it applies a recorded agent session.

pub mod replay;
