use super::*;

fn budgets() -> Budgets {
    Budgets {
        per_request_usd: 0.5,
        per_run_usd: 1.0,
        per_month_usd: 10.0,
        warn_pct: 70,
        escalate_pct: 90,
        stop_pct: 100,
    }
}

fn levels(ev: &[BudgetEvent]) -> Vec<BudgetLevel> {
    ev.iter().map(|e| e.level).collect()
}

#[test]
fn seventy_warns_ninety_pauses_hundred_stops() {
    let mut s = BudgetState::new(budgets(), 0.0, 0.0);
    s.admit(0.1).unwrap();
    assert!(levels(&s.book(0.1, 0.6)).is_empty());
    s.admit(0.1).unwrap();
    let ev = s.book(0.1, 0.1);
    assert_eq!(levels(&ev), vec![BudgetLevel::Warn]);
    assert!((ev[0].pct - 70.0).abs() < 1e-9 && ev[0].limit_usd == 1.0);
    s.admit(0.1).unwrap();
    assert_eq!(levels(&s.book(0.1, 0.2)), vec![BudgetLevel::Escalate]);
    assert!(s.paused());
    assert!(matches!(s.admit(0.01), Err(Refusal::Paused { .. })));
    s.resume(None);
    assert!(!s.paused());
    s.admit(0.05).unwrap();
    assert_eq!(levels(&s.book(0.05, 0.2)), vec![BudgetLevel::Stop]);
    assert!(s.stopped());
    assert!(matches!(s.admit(0.0), Err(Refusal::Stopped { .. })));
}

#[test]
fn a_jump_past_several_thresholds_reports_each_once() {
    let mut s = BudgetState::new(budgets(), 0.0, 0.0);
    s.admit(0.4).unwrap();
    let ev = s.book(0.4, 1.2);
    assert_eq!(
        levels(&ev),
        vec![BudgetLevel::Warn, BudgetLevel::Escalate, BudgetLevel::Stop]
    );
    assert!(s.book(0.0, 0.0).is_empty());
}

#[test]
fn estimates_crossing_a_limit_are_refused_counting_in_flight() {
    let mut s = BudgetState::new(budgets(), 0.0, 0.0);
    assert_eq!(
        s.admit(0.6),
        Err(Refusal::PerRequest {
            estimate_usd: 0.6,
            limit_usd: 0.5
        })
    );
    s.admit(0.5).unwrap();
    s.admit(0.4).unwrap();
    // 0.9 in flight: another 0.2 would cross the run's 1.0.
    assert_eq!(
        s.admit(0.2),
        Err(Refusal::PerRun {
            estimate_usd: 0.2,
            committed_usd: 0.9,
            limit_usd: 1.0
        })
    );
    // Escalate at 100 % so 99 % of the month is not already a pause.
    let mut m = BudgetState::new(
        Budgets {
            escalate_pct: 100,
            ..budgets()
        },
        0.0,
        9.9,
    );
    assert!(matches!(m.admit(0.2), Err(Refusal::PerMonth { limit_usd, .. }) if limit_usd == 10.0));
}

#[test]
fn month_spend_from_before_counts_toward_thresholds() {
    // 9.5 of a 10.0 month already spent: the month is the tightest budget and is at escalate.
    let mut s = BudgetState::new(budgets(), 0.0, 9.5);
    assert!(s.paused());
    s.resume(None);
    s.admit(0.1).unwrap();
    let ev = s.book(0.1, 0.5);
    assert_eq!(levels(&ev), vec![BudgetLevel::Stop]);
    assert_eq!(ev[0].limit_usd, 10.0);
}

#[test]
fn raising_the_run_ceiling_on_resume_clears_the_pause() {
    let mut s = BudgetState::new(budgets(), 0.95, 0.95);
    assert!(s.paused());
    s.resume(Some(2.0));
    assert_eq!(s.budgets().per_run_usd, 2.0);
    s.admit(0.3).unwrap();
    assert!(s.book(0.3, 0.3).is_empty());
    assert_eq!(levels(&s.book(0.0, 0.2)), vec![BudgetLevel::Warn]);
}
