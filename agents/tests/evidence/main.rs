//! The evidence suite, built as one test binary: every review rule fires on its fixture and stays
//! quiet on its near miss, planted secrets never reach any output, SARIF validates against the
//! official 2.1.0 schema, and coverage and JUnit numbers are exact on fixtures.
// A test binary reports failure by panicking; helpers outside #[test] fns unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod coverage;
mod fixtures;
mod gen;
mod junit;
mod leaks;
mod rules_fire;
mod sarif_schema;
