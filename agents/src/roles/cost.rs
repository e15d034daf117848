//! Cost-control's thresholds: each budget dimension (wall clock, tool calls, iterations, model
//! spend) is a percentage of its ceiling; the highest threshold any dimension reached is the
//! run's budget level (warn 70 %, pause for a human 90 %, stop 100 % by default).

use protocol::frame::{BudgetEvent, BudgetLevel, Ledger};

use super::input::{CostInput, Usage};

/// `usd` rounded to a millionth: the signed ledger's numbers must survive a JSON round trip
/// byte for byte (a sum of prices like 1.4404100000000001 does not: the artifact would not verify).
pub fn micro(usd: f64) -> f64 {
    (usd * 1e6).round() / 1e6
}

/// Order of the levels: warn < escalate < stop.
pub fn rank(l: BudgetLevel) -> u8 {
    match l {
        BudgetLevel::Warn => 1,
        BudgetLevel::Escalate => 2,
        BudgetLevel::Stop => 3,
    }
}

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

/// `input` with what the run's gateway booked: model spend in `cost_usd`, model turns counted as
/// tool calls (each tool call of a CLI costs one model turn to produce; the larger count wins).
pub fn with_gateway(input: &CostInput, gateway: &Ledger) -> CostInput {
    let mut i = input.clone();
    i.spent_usd = i.spent_usd.max(gateway.spent_usd);
    for u in &mut i.usage {
        match u.dimension.as_str() {
            "cost_usd" => u.used = u.used.max(gateway.spent_usd),
            "tool_calls" => u.used = u.used.max(gateway.requests as f64),
            _ => {}
        }
    }
    i
}

/// The ledger and, when a threshold is reached, the event for the most used dimension.
pub fn account(input: &CostInput) -> (Ledger, Option<BudgetEvent>) {
    let ledger = Ledger {
        requests: 0,
        tokens_in: 0,
        tokens_out: 0,
        spent_usd: micro(input.spent_usd),
        limit_usd: micro(input.limit_usd),
    };
    let top = input
        .usage
        .iter()
        .map(pct)
        .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))));
    let event = top.and_then(|p| {
        level(p, input).map(|level| BudgetEvent {
            level,
            spent_usd: micro(input.spent_usd),
            limit_usd: micro(input.limit_usd),
            pct: micro(p),
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
    fn gateway_spend_and_turns_count_against_the_caps() {
        let mut i = input(10.0);
        i.usage.push(Usage {
            dimension: "cost_usd".into(),
            used: 0.0,
            limit: 2.0,
        });
        let g = Ledger {
            requests: 95,
            tokens_in: 1,
            tokens_out: 1,
            spent_usd: 1.5,
            limit_usd: 2.0,
        };
        let merged = with_gateway(&i, &g);
        assert_eq!(merged.spent_usd, 1.5);
        assert_eq!(merged.usage[0].used, 95.0);
        assert_eq!(merged.usage[2].used, 1.5);
        assert_eq!(
            account(&merged).1.map(|e| e.level),
            Some(BudgetLevel::Escalate)
        );
        // Without the gateway's numbers the same run is under every threshold.
        assert_eq!(account(&i).1, None);
    }

    #[test]
    fn ledger_amounts_survive_a_canonical_json_round_trip() {
        let mut i = input(10.0);
        i.spent_usd = 144_000.0 * 10.0 / 1e6 + 40.0 * 10.0 / 1e6 + 1_000.0 * 10.0 / 1e6;
        let (ledger, _) = account(&i);
        let bytes = protocol::canonical::to_vec(&ledger).unwrap();
        let back: Ledger = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(protocol::canonical::to_vec(&back).unwrap(), bytes);
        assert_eq!(ledger.spent_usd, 1.4504);
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
