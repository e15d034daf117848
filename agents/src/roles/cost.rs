//! Cost-control's thresholds: each budget dimension (wall clock, tool calls, iterations, model
//! spend) is a percentage of its ceiling; the highest threshold any dimension reached is the
//! run's budget level (warn 70 %, pause for a human 90 %, stop 100 % by default).

use protocol::frame::{BudgetEvent, BudgetLevel, Ledger};

use super::input::{CostInput, Usage};

/// Percent of `u`'s ceiling used (a zero ceiling counts as fully used).
pub fn pct(u: &Usage) -> f64 {
    if u.limit <= 0.0 {
        return 100.0;
    }
    u.used * 100.0 / u.limit
}

/// The level `p` percent reaches, if any.
pub fn level(p: f64, input: &CostInput) -> Option<BudgetLevel> {
    if p >= f64::from(input.stop_pct) {
        Some(BudgetLevel::Stop)
    } else if p >= f64::from(input.escalate_pct) {
        Some(BudgetLevel::Escalate)
    } else if p >= f64::from(input.warn_pct) {
        Some(BudgetLevel::Warn)
    } else {
        None
    }
}

/// The ledger and, when a threshold is reached, the event for the most used dimension.
pub fn account(input: &CostInput) -> (Ledger, Option<BudgetEvent>) {
    let ledger = Ledger {
        requests: 0,
        tokens_in: 0,
        tokens_out: 0,
        spent_usd: input.spent_usd,
        limit_usd: input.limit_usd,
    };
    let top = input
        .usage
        .iter()
        .map(pct)
        .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))));
    let event = top.and_then(|p| {
        level(p, input).map(|level| BudgetEvent {
            level,
            spent_usd: input.spent_usd,
            limit_usd: input.limit_usd,
            pct: p,
        })
    });
    (ledger, event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(used: f64) -> CostInput {
        CostInput {
            usage: vec![
                Usage {
                    dimension: "tool_calls".into(),
                    used,
                    limit: 100.0,
                },
                Usage {
                    dimension: "iterations".into(),
                    used: 1.0,
                    limit: 4.0,
                },
            ],
            spent_usd: 0.0,
            limit_usd: 2.0,
            warn_pct: 70,
            escalate_pct: 90,
            stop_pct: 100,
        }
    }

    #[test]
    fn thresholds_map_to_levels() {
        assert_eq!(account(&input(10.0)).1, None);
        assert_eq!(
            account(&input(70.0)).1.map(|e| e.level),
            Some(BudgetLevel::Warn)
        );
        assert_eq!(
            account(&input(95.0)).1.map(|e| e.level),
            Some(BudgetLevel::Escalate)
        );
        assert_eq!(
            account(&input(100.0)).1.map(|e| e.level),
            Some(BudgetLevel::Stop)
        );
    }

    #[test]
    fn zero_ceiling_is_exhausted() {
        assert_eq!(
            pct(&Usage {
                dimension: "x".into(),
                used: 0.0,
                limit: 0.0
            }),
            100.0
        );
    }
}
