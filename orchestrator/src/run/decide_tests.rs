use super::*;

fn progress(progressed: bool, done: bool) -> Progress {
    Progress {
        iteration: 1,
        progressed,
        score: 0.0,
        done,
        reason: "r".into(),
    }
}

#[test]
fn done_on_the_last_iteration_is_done_not_a_cap() {
    assert_eq!(
        after_iteration(&progress(true, true), 0, 2, 3, 3),
        Next::Done
    );
}

#[test]
fn no_progress_streak_at_its_cap_stops_with_no_progress() {
    let n = after_iteration(&progress(false, false), 2, 2, 2, 5);
    assert!(matches!(n, Next::Stop(StopCode::NoProgress, _)), "{n:?}");
}

#[test]
fn iteration_cap_stops_a_progressing_run_that_is_not_done() {
    let n = after_iteration(&progress(true, false), 0, 2, 3, 3);
    assert!(matches!(n, Next::Stop(StopCode::IterationCap, _)), "{n:?}");
    assert_eq!(
        after_iteration(&progress(true, false), 0, 2, 2, 3),
        Next::Continue
    );
}

#[test]
fn streak_resets_on_progress_and_grows_without() {
    assert_eq!(streak(3, &progress(true, false)), 0);
    assert_eq!(streak(1, &progress(false, false)), 2);
}

#[test]
fn budget_levels_map_to_warn_pause_stop() {
    assert_eq!(budget_action(BudgetLevel::Warn), BudgetAction::Warn);
    assert_eq!(budget_action(BudgetLevel::Escalate), BudgetAction::Pause);
    assert_eq!(budget_action(BudgetLevel::Stop), BudgetAction::Stop);
    assert_eq!(stop_code_for_dimension("tool_calls"), StopCode::ToolCallCap);
    assert_eq!(
        stop_code_for_dimension("cost_usd"),
        StopCode::BudgetExceeded
    );
}
