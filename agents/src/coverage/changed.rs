//! Coverage of the lines a change added, and of each changed file as a whole, from the diff's
//! hunks and an lcov tracefile. A changed line counts when lcov instruments it (comments, blank
//! lines and declarations are not instrumented and count neither way); it is covered when its
//! hit count is above zero.

use super::lcov::Lcov;
use crate::review::diff::FileDiff;
use serde::Serialize;

/// One changed file's numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileCoverage {
    /// Repository-relative path.
    pub file: String,
    /// Lines the change added or modified.
    pub changed_lines: u32,
    /// Of those, lines lcov instruments.
    pub changed_instrumented: u32,
    /// Of those, lines executed at least once.
    pub changed_covered: u32,
    /// Changed lines that are instrumented and never executed, in order.
    pub uncovered_lines: Vec<u32>,
    /// Whole-file instrumented lines (0 when the file is not in the tracefile).
    pub file_instrumented: u32,
    /// Whole-file covered lines.
    pub file_covered: u32,
    /// Whether the tracefile lists the file at all (a changed `.rs` file that is not listed
    /// was not built by the coverage run: a test file, a build script, an example).
    pub measured: bool,
}

impl FileCoverage {
    /// Changed-line coverage in percent; `None` when no changed line is instrumented.
    pub fn changed_pct(&self) -> Option<f64> {
        pct(self.changed_covered, self.changed_instrumented)
    }

    /// Whole-file coverage in percent; `None` when nothing in the file is instrumented.
    pub fn file_pct(&self) -> Option<f64> {
        pct(self.file_covered, self.file_instrumented)
    }
}

/// The whole change's numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChangedCoverage {
    /// Per changed file (files with added lines only), in diff order.
    pub files: Vec<FileCoverage>,
    /// Sum of the files' instrumented changed lines.
    pub instrumented: u32,
    /// Sum of the files' covered changed lines.
    pub covered: u32,
}

impl ChangedCoverage {
    /// Changed-line coverage of the whole change in percent; `None` when no changed line is
    /// instrumented (nothing to measure: the gate decides what that means for its threshold).
    pub fn pct(&self) -> Option<f64> {
        pct(self.covered, self.instrumented)
    }
}

fn pct(covered: u32, total: u32) -> Option<f64> {
    (total > 0).then(|| f64::from(covered) * 100.0 / f64::from(total))
}

/// Computes changed-line and per-file coverage. `lcov` must name files as the diff does
/// (see [`Lcov::relative_to`]). Deleted files and files without added lines are left out.
pub fn compute(diff: &[FileDiff], lcov: &Lcov) -> ChangedCoverage {
    let mut out = ChangedCoverage::default();
    for f in diff {
        if f.is_deleted || f.added_lines.is_empty() || f.binary {
            continue;
        }
        let path = f.path().to_string();
        let hits = lcov.files.get(&path);
        let mut fc = FileCoverage {
            file: path,
            changed_lines: u32::try_from(f.added_lines.len()).unwrap_or(u32::MAX),
            changed_instrumented: 0,
            changed_covered: 0,
            uncovered_lines: Vec::new(),
            file_instrumented: 0,
            file_covered: 0,
            measured: hits.is_some(),
        };
        if let Some(hits) = hits {
            for n in &f.added_lines {
                if let Some(&h) = hits.get(n) {
                    fc.changed_instrumented += 1;
                    if h > 0 {
                        fc.changed_covered += 1;
                    } else {
                        fc.uncovered_lines.push(*n);
                    }
                }
            }
            fc.file_instrumented = u32::try_from(hits.len()).unwrap_or(u32::MAX);
            fc.file_covered =
                u32::try_from(hits.values().filter(|&&h| h > 0).count()).unwrap_or(u32::MAX);
        }
        out.instrumented += fc.changed_instrumented;
        out.covered += fc.changed_covered;
        out.files.push(fc);
    }
    out
}
