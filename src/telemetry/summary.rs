//! The `summary` metric kind.
//!
//! ContainerPilot created its summaries with client_golang's defaults of the
//! time: objectives 0.5, 0.9 and 0.99 over observations of the last 10
//! minutes, with `_sum` and `_count` over all time. client_golang estimated
//! the quantiles with a streaming algorithm; we keep the recent observations
//! themselves and compute exact (nearest-rank) quantiles over them at each
//! scrape. The window is bounded by age (10 minutes) and by count (the
//! newest [`WINDOW_CAPACITY`] observations), so memory stays small however
//! fast values arrive. An empty window shows NaN quantiles, as client_golang
//! did.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::exposition::{Collector, Desc, Family, Kind, RegistrationError, Series, Value};

/// client_golang's `DefObjectives` (its quantiles; the error bounds do not
/// apply to exact quantiles).
const OBJECTIVES: [f64; 3] = [0.5, 0.9, 0.99];
/// client_golang's `DefMaxAge`.
const MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// The most observations kept for the quantiles.
const WINDOW_CAPACITY: usize = 1024;

/// A summary metric. Clones observe into the same metric.
#[derive(Clone)]
pub(super) struct Summary {
    core: Arc<Core>,
}

struct Core {
    desc: Arc<Desc>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sum: f64,
    count: u64,
    /// Observation times and values, oldest first.
    recent: VecDeque<(Instant, f64)>,
}

impl Summary {
    pub(super) fn new(name: &str, help: &str) -> Result<Self, RegistrationError> {
        Ok(Self {
            core: Arc::new(Core {
                desc: Desc::new(name, help, Kind::Summary)?,
                state: Mutex::default(),
            }),
        })
    }

    pub(super) fn observe(&self, value: f64) {
        self.observe_at(value, Instant::now());
    }

    fn observe_at(&self, value: f64, now: Instant) {
        let mut state = self.state();
        state.sum += value;
        state.count += 1;
        if state.recent.len() == WINDOW_CAPACITY {
            state.recent.pop_front();
        }
        state.recent.push_back((now, value));
    }

    fn snapshot_at(&self, now: Instant) -> Snapshot {
        let mut state = self.state();
        while let Some((observed, _)) = state.recent.front() {
            if now.saturating_duration_since(*observed) <= MAX_AGE {
                break;
            }
            state.recent.pop_front();
        }
        let mut values: Vec<f64> = state.recent.iter().map(|(_, value)| *value).collect();
        values.sort_by(f64::total_cmp);
        Snapshot {
            quantiles: OBJECTIVES
                .iter()
                .map(|&objective| (objective, nearest_rank(&values, objective)))
                .collect(),
            sum: state.sum,
            count: state.count,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.core
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `objective` quantile of `sorted`: its `ceil(objective · n)`-th
/// smallest value; NaN when there is none.
fn nearest_rank(sorted: &[f64], objective: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (objective * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The quantiles (objective, value), sum and count at one moment.
struct Snapshot {
    quantiles: Vec<(f64, f64)>,
    sum: f64,
    count: u64,
}

impl Collector for Summary {
    fn describe(&self) -> Vec<(&str, &str)> {
        self.core.desc.describe()
    }

    fn collect(&self) -> Vec<Family> {
        let Snapshot {
            quantiles,
            sum,
            count,
        } = self.snapshot_at(Instant::now());
        let series = Series {
            labels: Vec::new(),
            value: Value::Summary {
                quantiles,
                sum,
                count,
            },
        };
        vec![self.core.desc.family(vec![series])]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary::new("s", "help").unwrap()
    }

    fn quantile_values(snapshot: &Snapshot) -> Vec<f64> {
        snapshot.quantiles.iter().map(|(_, value)| *value).collect()
    }

    #[test]
    fn empty_summary_has_nan_quantiles_and_zero_count() {
        let snapshot = summary().snapshot_at(Instant::now());
        assert_eq!(snapshot.count, 0);
        assert_eq!(snapshot.sum, 0.0);
        assert!(quantile_values(&snapshot).iter().all(|v| v.is_nan()));
    }

    #[test]
    fn quantiles_forget_old_observations_but_sum_and_count_do_not() {
        let s = summary();
        let start = Instant::now();
        s.observe_at(1000.0, start);
        s.observe_at(1.0, start + Duration::from_secs(300));
        s.observe_at(2.0, start + Duration::from_secs(400));

        let within = s.snapshot_at(start + MAX_AGE);
        assert_eq!(quantile_values(&within), [2.0, 1000.0, 1000.0]);

        let later = s.snapshot_at(start + MAX_AGE + Duration::from_secs(1));
        assert_eq!(quantile_values(&later), [1.0, 2.0, 2.0]);
        assert_eq!(later.count, 3);
        assert_eq!(later.sum, 1003.0);
    }

    #[test]
    fn window_keeps_only_the_newest_observations() {
        let s = summary();
        let now = Instant::now();
        for value in 0..WINDOW_CAPACITY + 100 {
            s.observe_at(value as f64, now);
        }
        let snapshot = s.snapshot_at(now);
        assert_eq!(s.state().recent.len(), WINDOW_CAPACITY);
        assert_eq!(snapshot.count, (WINDOW_CAPACITY + 100) as u64);
        let median = quantile_values(&snapshot)[0];
        assert_eq!(median, (100 + WINDOW_CAPACITY / 2 - 1) as f64);
    }

    #[test]
    fn nearest_rank_picks_observed_values() {
        assert_eq!(nearest_rank(&[5.0], 0.99), 5.0);
        assert_eq!(nearest_rank(&[1.0, 2.0], 0.5), 1.0);
        assert_eq!(nearest_rank(&[1.0, 2.0], 0.9), 2.0);
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 0.0), 1.0);
    }
}
