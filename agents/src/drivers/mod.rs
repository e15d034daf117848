//! Codegen drivers: `replay` applies a recorded agent session; `probe` holds the hostile acts a
//! replayed session can attempt (containment tests).

pub mod probe;
pub mod replay;
