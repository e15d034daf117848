//! `orchestrate resume RUN --reauthorize --raise-budget USD`: a person raises a run's cost ceiling.
//!
//! The raise is an append-only `budget.raised` event (who — the real uid and OS user, as
//! `--reauthorize` records them —, from, to, the month's limit) and the event is the one source of
//! the raised figure: every later resume applies the newest raise to the policy it loads (so the
//! gateway cost-control starts admits against it), and the budget stage measures spend against it
//! ([`Engine::cost_ceiling`]), so 70/90/100 % are relative to the new ceiling. A raise must be
//! greater than the ceiling in force (the newest raise, else the signed plan's) and within
//! roles.yaml's `budgets.per_month_usd`; anything else is refused before the run is touched.

use protocol::plan::WorkPlan;

use super::engine::Engine;
use super::layout::RunDir;
use super::preflight::Policy;
use crate::state::{Store, StoreError};

/// The audit event kind of a raise.
pub const RAISED: &str = "budget.raised";

/// Why a raise was refused (exit 2; nothing was changed).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RaiseError {
    /// Not a finite positive amount.
    #[error("--raise-budget {value}: not a positive amount of USD")]
    NotPositive {
        /// The value given.
        value: f64,
    },
    /// Not above the ceiling in force.
    #[error("--raise-budget {to}: must be greater than the run's current cost ceiling of {from} USD (a raise cannot lower or keep it)")]
    NotHigher {
        /// The value given.
        to: f64,
        /// The ceiling in force.
        from: f64,
    },
    /// Above the month's limit.
    #[error("--raise-budget {to}: above roles.yaml budgets.per_month_usd of {month} USD (a run's ceiling stays within the month's limit)")]
    AboveMonth {
        /// The value given.
        to: f64,
        /// The month's limit.
        month: f64,
    },
}

/// One recorded raise.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Raise {
    /// Audit sequence number of the event.
    pub seq: i64,
    /// Ceiling before, USD.
    pub from_usd: f64,
    /// Ceiling after, USD.
    pub to_usd: f64,
    /// Who raised it (`{"uid": .., "name": ..}`).
    pub by: serde_json::Value,
}

/// The raises recorded for `run_id`, oldest first.
pub fn raises(store: &Store, run_id: &str) -> Result<Vec<Raise>, StoreError> {
    Ok(store
        .run_events(run_id, 0)?
        .into_iter()
        .filter(|e| e.kind == RAISED)
        .filter_map(|e| {
            Some(Raise {
                seq: e.seq,
                from_usd: e.body.get("from_usd")?.as_f64()?,
                to_usd: e.body.get("to_usd")?.as_f64()?,
                by: e.body.get("by").cloned().unwrap_or_default(),
            })
        })
        .collect())
}

/// The ceiling in force for a run: the newest raise, else the ceiling of its signed plan
/// (`WORK_PLAN.json`), else the policy's.
pub fn current_ceiling(raises: &[Raise], dir: &RunDir, policy: &Policy) -> f64 {
    if let Some(r) = raises.last() {
        return r.to_usd;
    }
    std::fs::read(dir.work_plan())
        .ok()
        .and_then(|b| serde_json::from_slice::<WorkPlan>(&b).ok())
        .map_or(policy.cost_usd, |p| p.budget.limits.per_run_usd)
}

/// Whether raising `current` to `to` is allowed under a month's limit of `month`.
pub fn check(to: f64, current: f64, month: f64) -> Result<(), RaiseError> {
    if !to.is_finite() || to <= 0.0 {
        return Err(RaiseError::NotPositive { value: to });
    }
    if to <= current {
        return Err(RaiseError::NotHigher { to, from: current });
    }
    if to > month {
        return Err(RaiseError::AboveMonth { to, month });
    }
    Ok(())
}

/// `policy` with the run's ceiling raised to `to`: the effective ceiling and roles.yaml's per-run
/// budget (the gateway admits against the stricter of the two).
pub fn apply(policy: &mut Policy, to: f64) {
    policy.cost_usd = to;
    policy.roles.budgets.per_run_usd = to;
}

impl Engine {
    /// The cost ceiling the budget stage measures spend against: the newest raise a person made
    /// (`resume --raise-budget`), else the signed plan's. If the audit store cannot be read the
    /// plan's (stricter) figure is used.
    pub(super) fn cost_ceiling(&self, plan: &WorkPlan) -> f64 {
        match raises(&self.store, &self.run_id) {
            Ok(r) => r
                .last()
                .map_or(plan.budget.limits.per_run_usd, |r| r.to_usd),
            Err(e) => {
                tracing::warn!(error = %e, "reading the run's budget raises; using the plan's ceiling");
                plan.budget.limits.per_run_usd
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raise_must_be_positive_higher_and_within_the_month() {
        assert_eq!(check(4.0, 2.0, 100.0), Ok(()));
        assert_eq!(check(100.0, 2.0, 100.0), Ok(()));
        assert_eq!(
            check(1.5, 2.0, 100.0),
            Err(RaiseError::NotHigher { to: 1.5, from: 2.0 })
        );
        assert_eq!(
            check(2.0, 2.0, 100.0),
            Err(RaiseError::NotHigher { to: 2.0, from: 2.0 })
        );
        assert_eq!(
            check(101.0, 2.0, 100.0),
            Err(RaiseError::AboveMonth {
                to: 101.0,
                month: 100.0
            })
        );
        assert!(matches!(
            check(f64::NAN, 2.0, 100.0),
            Err(RaiseError::NotPositive { .. })
        ));
        assert!(matches!(
            check(f64::INFINITY, 2.0, 100.0),
            Err(RaiseError::NotPositive { .. })
        ));
        assert!(matches!(
            check(-3.0, -4.0, 100.0),
            Err(RaiseError::NotPositive { .. })
        ));
    }
}
