//! One module per role; each exposes pure functions from its task to its reply body.

pub mod libtest;
