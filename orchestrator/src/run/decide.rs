//! The run's decisions as pure functions: after an iteration, go on, finish or stop; what a budget
//! level means.

use protocol::frame::{BudgetLevel, Progress};
use protocol::StopCode;

/// What happens after an iteration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Every acceptance test passes and nothing fails.
    Done,
    /// Another iteration.
    Continue,
    /// Stop with this code.
    Stop(StopCode, String),
}

/// The no-progress streak after `progress` (reset by any progress).
pub fn streak(previous: u32, progress: &Progress) -> u32 {
    if progress.progressed {
        0
    } else {
        previous + 1
    }
}

/// The decision after iteration `iteration` of `iteration_cap`, given the streak of iterations
/// without progress (already updated) and its cap. Done wins over the caps: finishing on the
/// last allowed iteration is a success.
pub fn after_iteration(
    progress: &Progress,
    streak: u32,
    no_progress_cap: u32,
    iteration: u32,
    iteration_cap: u32,
) -> Next {
    if progress.done {
        return Next::Done;
    }
    if streak >= no_progress_cap {
        return Next::Stop(
            StopCode::NoProgress,
            format!(
                "{streak} iteration(s) in a row without progress (cap {no_progress_cap}): {}",
                progress.reason
            ),
        );
    }
    if iteration >= iteration_cap {
        return Next::Stop(
            StopCode::IterationCap,
            format!(
                "iteration cap {iteration_cap} reached and not done: {}",
                progress.reason
            ),
        );
    }
    Next::Continue
}

/// What the orchestrator does at a budget level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetAction {
    /// Write a warning event and go on.
    Warn,
    /// Pause the run for a human (resume needs --reauthorize).
    Pause,
    /// Stop the run.
    Stop,
}

/// The action for a level cost-control reported.
pub fn budget_action(level: BudgetLevel) -> BudgetAction {
    match level {
        BudgetLevel::Warn => BudgetAction::Warn,
        BudgetLevel::Escalate => BudgetAction::Pause,
        BudgetLevel::Stop => BudgetAction::Stop,
    }
}

/// The stop code of a budget dimension at 100 %.
pub fn stop_code_for_dimension(dimension: &str) -> StopCode {
    match dimension {
        "wall_clock_s" => StopCode::RuntimeExceeded,
        "tool_calls" => StopCode::ToolCallCap,
        "iterations" => StopCode::IterationCap,
        _ => StopCode::BudgetExceeded,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
