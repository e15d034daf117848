//! Parser for the human output of `cargo test` (libtest's "pretty" format on stdout, cargo's progress
//! and compiler diagnostics on stderr).
//!
//! The stable toolchain has no machine-readable test output, so this reads the text. The text is
//! written partly by code the agent controls (a test can print anything to fd 1), so the parser is
//! strict about shape and records every inconsistency as an [`Anomaly`] instead of guessing:
//! a duplicated result line, fewer or more results than `running N tests` announced, a summary that
//! disagrees with the lines, a suite that never finished. A run with anomalies is never green.
//!
//! Lines inside a suite's `failures:` section are replayed test output and are never read as
//! results.

use serde::{Deserialize, Serialize};

/// The outcome of one test as libtest reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    /// `... ok`
    Passed,
    /// `... FAILED`
    Failed,
    /// `... ignored` (with or without a reason)
    Ignored,
}

/// One `test NAME ... STATUS` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCase {
    /// The suite (test binary) label the case belongs to.
    pub suite: String,
    /// The test's path as libtest prints it (`tests::adds`, `slug_joins_words`,
    /// `src/lib.rs - add (line 4)`), without a `- should panic` suffix.
    pub name: String,
    /// What libtest said.
    pub status: TestStatus,
}

/// The `test result:` line of one suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// `ok` (true) or `FAILED` (false).
    pub ok: bool,
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// Tests that were ignored.
    pub ignored: u64,
}

/// One test binary's section of the output (from `running N tests` to `test result:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suite {
    /// `unittests src/lib.rs`, `tests/one.rs`, `doc-tests demo` when cargo's stderr names the
    /// binaries unambiguously, otherwise `#<index>`.
    pub label: String,
    /// The N of `running N tests`.
    pub declared: u64,
    /// Result lines, in output order.
    pub cases: Vec<TestCase>,
    /// The `test result:` line, absent when the binary died before printing it.
    pub summary: Option<Summary>,
}

/// Something in the output that does not add up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Anomaly {
    /// The same test name reported twice in one suite (a test printing fake result lines).
    DuplicateName {
        /// Suite label.
        suite: String,
        /// The repeated name.
        name: String,
    },
    /// The number of result lines differs from `running N tests`.
    CountMismatch {
        /// Suite label.
        suite: String,
        /// N from `running N tests`.
        declared: u64,
        /// Result lines seen.
        reported: u64,
    },
    /// The `test result:` counts differ from the result lines.
    SummaryMismatch {
        /// Suite label.
        suite: String,
    },
    /// The suite never printed `test result:` (the binary crashed, was killed or timed out).
    Unfinished {
        /// Suite label.
        suite: String,
    },
    /// A result line before any `running N tests` line.
    ResultOutsideSuite {
        /// 1-based line number in stdout.
        line: usize,
    },
}

/// One compiler or cargo error from stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildError {
    /// `E0425` for `error[E0425]: ...`, absent for plain `error: ...`.
    pub code: Option<String>,
    /// The message after the colon.
    pub message: String,
}

/// Whether the tests could be built at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Build {
    /// Everything compiled (or at least no build error was printed).
    Ok,
    /// Compilation or cargo itself failed before any test ran.
    Failed {
        /// The errors, in stderr order.
        errors: Vec<BuildError>,
    },
}

/// Everything read from one `cargo test` invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parsed {
    /// Whether the build succeeded.
    pub build: Build,
    /// One entry per test binary that started.
    pub suites: Vec<Suite>,
    /// Inconsistencies; any entry makes the run not green.
    pub anomalies: Vec<Anomaly>,
}

/// Cargo's own "these targets failed" lines: they report test failures, not build failures.
const NOT_BUILD_ERRORS: [&str; 3] = ["test failed", "doctest failed", "targets failed"];

impl Parsed {
    /// Every test case across suites.
    pub fn cases(&self) -> impl Iterator<Item = &TestCase> {
        self.suites.iter().flat_map(|s| s.cases.iter())
    }

    /// Status of a test named `name`: a case whose full path is `name` or ends in `::name`.
    /// If several match (same name in two binaries), the worst wins: one failure is a failure.
    pub fn status_of(&self, name: &str) -> Option<TestStatus> {
        self.cases()
            .filter(|c| name_matches(&c.name, name))
            .map(|c| c.status)
            .max_by_key(|s| match s {
                TestStatus::Ignored => 0,
                TestStatus::Passed => 1,
                TestStatus::Failed => 2,
            })
    }

    /// Number of failing test cases.
    pub fn failed_count(&self) -> u64 {
        self.cases()
            .filter(|c| c.status == TestStatus::Failed)
            .count() as u64
    }

    /// Number of passing test cases.
    pub fn passed_count(&self) -> u64 {
        self.cases()
            .filter(|c| c.status == TestStatus::Passed)
            .count() as u64
    }

    /// Number of ignored test cases.
    pub fn ignored_count(&self) -> u64 {
        self.cases()
            .filter(|c| c.status == TestStatus::Ignored)
            .count() as u64
    }

    /// True when the build succeeded, nothing failed, every suite finished and nothing is odd.
    pub fn is_green(&self) -> bool {
        self.build == Build::Ok && self.failed_count() == 0 && self.anomalies.is_empty()
    }
}

/// True when libtest's `full` path names the test `wanted` (exactly, or as its last `::` segment
/// path suffix).
pub fn name_matches(full: &str, wanted: &str) -> bool {
    full == wanted
        || full
            .strip_suffix(wanted)
            .is_some_and(|head| head.ends_with("::"))
}

/// Parses one invocation's stdout and stderr.
pub fn parse(stdout: &str, stderr: &str) -> Parsed {
    let labels = suite_labels(stderr);
    let mut suites: Vec<Suite> = Vec::new();
    let mut anomalies = Vec::new();
    // Inside `failures:` the lines are captured test output, not results.
    let mut in_failures = false;
    let mut open = false;

    for (idx, raw) in stdout.lines().enumerate() {
        let line = raw.trim_end();
        if let Some(n) = parse_running(line) {
            if open {
                close_unfinished(&suites, &mut anomalies);
            }
            suites.push(Suite {
                label: String::new(),
                declared: n,
                cases: Vec::new(),
                summary: None,
            });
            open = true;
            in_failures = false;
            continue;
        }
        if !open {
            if parse_case(line).is_some() {
                anomalies.push(Anomaly::ResultOutsideSuite { line: idx + 1 });
            }
            continue;
        }
        if let Some(summary) = parse_summary(line) {
            if let Some(s) = suites.last_mut() {
                s.summary = Some(summary);
            }
            open = false;
            continue;
        }
        if line == "failures:" {
            in_failures = true;
            continue;
        }
        if in_failures {
            continue;
        }
        if let Some((name, status)) = parse_case(line) {
            if let Some(s) = suites.last_mut() {
                s.cases.push(TestCase {
                    suite: String::new(),
                    name: name.to_owned(),
                    status,
                });
            }
        }
    }
    if open {
        close_unfinished(&suites, &mut anomalies);
    }

    let suite_count = suites.len();
    let label_for = |i: usize| -> String {
        if labels.len() == suite_count {
            labels.get(i).cloned().unwrap_or_else(|| format!("#{i}"))
        } else {
            format!("#{i}")
        }
    };
    for (i, suite) in suites.iter_mut().enumerate() {
        suite.label = label_for(i);
        for c in &mut suite.cases {
            c.suite.clone_from(&suite.label);
        }
    }
    // Unfinished anomalies were recorded before labels existed; relabel them.
    for a in &mut anomalies {
        if let Anomaly::Unfinished { suite } = a {
            if let Some(i) = suite
                .strip_prefix('#')
                .and_then(|i| i.parse::<usize>().ok())
            {
                *suite = label_for(i);
            }
        }
    }
    for suite in &suites {
        check_suite(suite, &mut anomalies);
    }

    Parsed {
        build: parse_build(stderr, suites.is_empty()),
        suites,
        anomalies,
    }
}

fn close_unfinished(suites: &[Suite], anomalies: &mut Vec<Anomaly>) {
    let i = suites.len().saturating_sub(1);
    anomalies.push(Anomaly::Unfinished {
        suite: format!("#{i}"),
    });
}

fn check_suite(suite: &Suite, anomalies: &mut Vec<Anomaly>) {
    let mut seen = std::collections::BTreeSet::new();
    for c in &suite.cases {
        if !seen.insert(c.name.as_str()) {
            anomalies.push(Anomaly::DuplicateName {
                suite: suite.label.clone(),
                name: c.name.clone(),
            });
        }
    }
    let reported = suite.cases.len() as u64;
    // An unfinished suite is already flagged; its count is naturally short.
    if let Some(sum) = suite.summary {
        if reported != suite.declared {
            anomalies.push(Anomaly::CountMismatch {
                suite: suite.label.clone(),
                declared: suite.declared,
                reported,
            });
        }
        let count = |st| suite.cases.iter().filter(|c| c.status == st).count() as u64;
        let consistent = sum.passed == count(TestStatus::Passed)
            && sum.failed == count(TestStatus::Failed)
            && sum.ignored == count(TestStatus::Ignored)
            && sum.ok == (sum.failed == 0);
        if !consistent {
            anomalies.push(Anomaly::SummaryMismatch {
                suite: suite.label.clone(),
            });
        }
    }
}

/// `running 4 tests` / `running 1 test`.
fn parse_running(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("running ")?;
    let (n, word) = rest.split_once(' ')?;
    if word != "tests" && word != "test" {
        return None;
    }
    n.parse().ok()
}

/// `test NAME ... ok|FAILED|ignored[, reason]`, with an optional ` - should panic` after NAME.
fn parse_case(line: &str) -> Option<(&str, TestStatus)> {
    let rest = line.strip_prefix("test ")?;
    let (name, status) = rest.rsplit_once(" ... ")?;
    let status = match status {
        "ok" => TestStatus::Passed,
        "FAILED" => TestStatus::Failed,
        s if s == "ignored" || s.starts_with("ignored, ") => TestStatus::Ignored,
        _ => return None,
    };
    let name = name.strip_suffix(" - should panic").unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    Some((name, status))
}

/// `test result: ok. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.20s`
fn parse_summary(line: &str) -> Option<Summary> {
    let rest = line.strip_prefix("test result: ")?;
    let (verdict, counts) = rest.split_once(". ")?;
    let ok = match verdict {
        "ok" => true,
        "FAILED" => false,
        _ => return None,
    };
    let mut passed = None;
    let mut failed = None;
    let mut ignored = None;
    for part in counts.split("; ") {
        let Some((n, what)) = part.split_once(' ') else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => passed = Some(n),
            "failed" => failed = Some(n),
            "ignored" => ignored = Some(n),
            _ => {}
        }
    }
    Some(Summary {
        ok,
        passed: passed?,
        failed: failed?,
        ignored: ignored?,
    })
}

/// Labels of the test binaries, in the order cargo started them (`Running ...`, `Doc-tests ...`).
fn suite_labels(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(rest) = l.strip_prefix("Running ") {
                // `Running tests/one.rs (/target/debug/deps/one-f855...)`: keep the source part.
                let label = rest.rsplit_once(" (").map_or(rest, |(head, _)| head);
                Some(label.to_owned())
            } else {
                l.strip_prefix("Doc-tests ")
                    .map(|krate| format!("doc-tests {krate}"))
            }
        })
        .collect()
}

/// Build errors from stderr. A run where no suite started and cargo printed any error is a failed
/// build even without `error[E...]` (a broken manifest, an unwritable lock file).
fn parse_build(stderr: &str, no_suites: bool) -> Build {
    let mut errors = Vec::new();
    let mut could_not_compile = false;
    for line in stderr.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("error[") {
            if let Some((code, msg)) = rest.split_once("]: ") {
                errors.push(BuildError {
                    code: Some(code.to_owned()),
                    message: msg.to_owned(),
                });
            }
        } else if let Some(msg) = line.strip_prefix("error: ") {
            if NOT_BUILD_ERRORS.iter().any(|p| msg.contains(p)) {
                continue;
            }
            could_not_compile |= msg.starts_with("could not compile");
            errors.push(BuildError {
                code: None,
                message: msg.to_owned(),
            });
        }
    }
    if could_not_compile || (no_suites && !errors.is_empty()) {
        Build::Failed { errors }
    } else {
        Build::Ok
    }
}

#[cfg(test)]
#[path = "libtest_tests.rs"]
mod tests;
