//! Test evidence the gate reads: coverage from `cargo llvm-cov` (or any command that writes
//! lcov), coverage of the lines a diff changed, and test results as JUnit XML.
//!
//! Pure steps ([`lcov::parse`], [`changed::compute`], [`junit::write`]) are separate from the one
//! step that runs a process ([`runner`]), so the numbers are tested exactly on fixtures.

pub mod changed;
pub mod junit;
pub mod lcov;
pub mod runner;
pub mod summary;

pub use changed::{compute, ChangedCoverage, FileCoverage};
pub use lcov::Lcov;
pub use runner::{CoverageCommand, CoverageError, CoverageRun};
