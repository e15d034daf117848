//! The progress-evaluator's rule: an iteration progressed when more acceptance tests pass than
//! before, or fewer things fail (failed tests plus failed commands, so a build that stops
//! compiling is not "fewer failing tests"). Done: every acceptance test passes and nothing fails.

use protocol::fr::TestRef;
use protocol::frame::{Progress, TestResults};

/// Failed tests plus commands that exited non-zero or were killed.
pub fn failures(r: &TestResults) -> usize {
    r.failed() + r.commands.iter().filter(|c| c.exit_code != Some(0)).count()
}

/// Acceptance tests that passed in `r`.
pub fn acceptance_passing(r: &TestResults, acceptance: &[TestRef]) -> usize {
    acceptance.iter().filter(|t| r.passed(t)).count()
}

/// The verdict on `current` against `previous`.
pub fn evaluate(previous: &TestResults, current: &TestResults, acceptance: &[TestRef]) -> Progress {
    let (a0, a1) = (
        acceptance_passing(previous, acceptance),
        acceptance_passing(current, acceptance),
    );
    let (f0, f1) = (failures(previous), failures(current));
    let done = a1 == acceptance.len() && !acceptance.is_empty() && f1 == 0;
    let progressed = a1 > a0 || f1 < f0;
    let reason = format!(
        "acceptance passing {a0} -> {a1} of {}; failures {f0} -> {f1}",
        acceptance.len()
    );
    // Score: acceptance tests dominate, failures break ties.
    let score = a1 as f64 - f1 as f64 / (f1 as f64 + 1.0);
    Progress {
        iteration: current.iteration,
        progressed,
        score,
        done,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::frame::{CommandRun, TestOutcome, TestStatus};

    fn results(iteration: u32, exit: i32, tests: &[(&str, TestStatus)]) -> TestResults {
        TestResults {
            iteration,
            commit: "c".into(),
            commands: vec![CommandRun {
                command: "cargo test".into(),
                exit_code: Some(exit),
                duration_ms: 1,
                output_sha256: String::new(),
            }],
            tests: tests
                .iter()
                .map(|(n, s)| TestOutcome {
                    name: (*n).into(),
                    command: "cargo test".into(),
                    status: *s,
                })
                .collect(),
            changed_lines_coverage_pct: None,
        }
    }

    fn ac() -> Vec<TestRef> {
        vec![
            TestRef {
                command: "cargo test".into(),
                name: "a".into(),
            },
            TestRef {
                command: "cargo test".into(),
                name: "b".into(),
            },
        ]
    }

    #[test]
    fn all_acceptance_passing_and_green_is_done() {
        let p = evaluate(
            &results(0, 0, &[]),
            &results(
                1,
                0,
                &[("a", TestStatus::Passed), ("b", TestStatus::Passed)],
            ),
            &ac(),
        );
        assert!(p.done && p.progressed, "{p:?}");
    }

    #[test]
    fn a_build_that_breaks_is_not_progress() {
        let p = evaluate(
            &results(0, 0, &[("x", TestStatus::Passed)]),
            &results(1, 101, &[]),
            &ac(),
        );
        assert!(!p.progressed && !p.done, "{p:?}");
    }

    #[test]
    fn one_more_acceptance_test_is_progress_but_not_done() {
        let p = evaluate(
            &results(1, 101, &[("a", TestStatus::Failed)]),
            &results(
                2,
                101,
                &[("a", TestStatus::Passed), ("b", TestStatus::Failed)],
            ),
            &ac(),
        );
        assert!(p.progressed && !p.done, "{p:?}");
    }

    #[test]
    fn same_results_again_is_no_progress() {
        let r = results(1, 101, &[("a", TestStatus::Failed)]);
        let p = evaluate(&r, &r, &ac());
        assert!(!p.progressed, "{p:?}");
    }
}
