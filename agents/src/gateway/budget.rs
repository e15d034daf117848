//! Admission and thresholds, as pure state: a request is admitted only if its estimate, added to
//! what is spent and what is already in flight, stays within the per-request, per-run and
//! per-month limits; booked spend crossing warn/escalate/stop percentages yields one event per
//! level. Escalate pauses the gateway until [`BudgetState::resume`]; stop is final.

use protocol::frame::{BudgetEvent, BudgetLevel};
use protocol::roles::Budgets;
use serde::Serialize;

/// Why a request was refused before it was sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum Refusal {
    /// The estimate alone exceeds the per-request ceiling.
    PerRequest {
        /// Estimate, USD.
        estimate_usd: f64,
        /// Ceiling, USD.
        limit_usd: f64,
    },
    /// Spent + in flight + estimate would exceed the run's ceiling.
    PerRun {
        /// Estimate, USD.
        estimate_usd: f64,
        /// Already committed (spent + in flight), USD.
        committed_usd: f64,
        /// Ceiling, USD.
        limit_usd: f64,
    },
    /// Spent + in flight + estimate would exceed the month's ceiling.
    PerMonth {
        /// Estimate, USD.
        estimate_usd: f64,
        /// Already committed this month, USD.
        committed_usd: f64,
        /// Ceiling, USD.
        limit_usd: f64,
    },
    /// The escalate threshold was reached; a human must resume the run.
    Paused {
        /// Percent of the tightest budget spent.
        pct: f64,
    },
    /// The stop threshold was reached: STOP_BUDGET_EXCEEDED.
    Stopped {
        /// Percent of the tightest budget spent.
        pct: f64,
    },
}

/// The gateway's budget state for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetState {
    budgets: Budgets,
    run_spent: f64,
    month_spent: f64,
    in_flight: f64,
    reached: Option<BudgetLevel>,
    paused: bool,
}

impl BudgetState {
    /// State for a run that has spent `run_spent` in a month that has spent `month_spent`.
    pub fn new(budgets: Budgets, run_spent: f64, month_spent: f64) -> Self {
        let mut s = Self {
            budgets,
            run_spent,
            month_spent,
            in_flight: 0.0,
            reached: None,
            paused: false,
        };
        s.reached = s.level();
        s.paused = s.reached == Some(BudgetLevel::Escalate);
        s
    }

    /// Budgets in force (the run ceiling may have been raised on resume).
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Spent by this run, USD.
    pub fn run_spent(&self) -> f64 {
        self.run_spent
    }

    /// Admit a request estimated at `estimate_usd` (reserving it), or say why not.
    pub fn admit(&mut self, estimate_usd: f64) -> Result<(), Refusal> {
        let pct = self.pct().0;
        if self.reached == Some(BudgetLevel::Stop) {
            return Err(Refusal::Stopped { pct });
        }
        if self.paused {
            return Err(Refusal::Paused { pct });
        }
        let b = &self.budgets;
        if estimate_usd > b.per_request_usd {
            return Err(Refusal::PerRequest {
                estimate_usd,
                limit_usd: b.per_request_usd,
            });
        }
        let committed_usd = self.run_spent + self.in_flight;
        if committed_usd + estimate_usd > b.per_run_usd {
            return Err(Refusal::PerRun {
                estimate_usd,
                committed_usd,
                limit_usd: b.per_run_usd,
            });
        }
        let committed_usd = self.month_spent + self.in_flight;
        if committed_usd + estimate_usd > b.per_month_usd {
            return Err(Refusal::PerMonth {
                estimate_usd,
                committed_usd,
                limit_usd: b.per_month_usd,
            });
        }
        self.in_flight += estimate_usd;
        Ok(())
    }

    /// Book a finished request: release its reservation, add its real cost, return the events of
    /// every threshold newly crossed (lowest first).
    pub fn book(&mut self, estimate_usd: f64, actual_usd: f64) -> Vec<BudgetEvent> {
        self.in_flight = (self.in_flight - estimate_usd).max(0.0);
        self.run_spent += actual_usd;
        self.month_spent += actual_usd;
        let now = self.level();
        let mut events = Vec::new();
        for level in [BudgetLevel::Warn, BudgetLevel::Escalate, BudgetLevel::Stop] {
            if Some(level) <= now && self.reached.is_none_or(|r| level > r) {
                let (pct, spent_usd, limit_usd) = self.pct();
                events.push(BudgetEvent {
                    level,
                    spent_usd,
                    limit_usd,
                    pct,
                });
            }
        }
        if now > self.reached {
            if now == Some(BudgetLevel::Escalate) {
                self.paused = true;
            }
            self.reached = now;
        }
        events
    }

    /// A human resumed the run, optionally raising its ceiling. Stop is final unless the raise
    /// brings the run back under the stop threshold.
    pub fn resume(&mut self, raise_run_usd: Option<f64>) {
        if let Some(limit) = raise_run_usd {
            self.budgets.per_run_usd = self.budgets.per_run_usd.max(limit);
        }
        self.paused = false;
        // Recompute which thresholds now stand, so crossing them again warns/pauses again.
        self.reached = self.level();
        if self.reached == Some(BudgetLevel::Escalate) {
            // Resumed at or above escalate without a raise: the human chose to continue; do not
            // pause again until stop.
            self.paused = false;
        }
    }

    /// Whether requests are held for a human.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Whether the stop threshold was reached.
    pub fn stopped(&self) -> bool {
        self.reached == Some(BudgetLevel::Stop)
    }

    /// (percent, spent, limit) of the tightest budget, run or month.
    fn pct(&self) -> (f64, f64, f64) {
        let ratio = |spent: f64, limit: f64| {
            if limit <= 0.0 {
                100.0
            } else {
                spent * 100.0 / limit
            }
        };
        let run = ratio(self.run_spent, self.budgets.per_run_usd);
        let month = ratio(self.month_spent, self.budgets.per_month_usd);
        if month > run {
            (month, self.month_spent, self.budgets.per_month_usd)
        } else {
            (run, self.run_spent, self.budgets.per_run_usd)
        }
    }

    fn level(&self) -> Option<BudgetLevel> {
        // Sums of float prices drift (0.7 + 0.2 < 0.9): a billionth of a percent counts as reached.
        let p = self.pct().0 + 1e-9;
        let b = &self.budgets;
        if p >= f64::from(b.stop_pct) {
            Some(BudgetLevel::Stop)
        } else if p >= f64::from(b.escalate_pct) {
            Some(BudgetLevel::Escalate)
        } else if p >= f64::from(b.warn_pct) {
            Some(BudgetLevel::Warn)
        } else {
            None
        }
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
