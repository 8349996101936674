//! The rate limit of failure lines that can recur every second (a failing
//! health check, a catalog that keeps answering 403): the first failure of a
//! streak is logged in full, then at most one summary per [`SUMMARY_PERIOD`]
//! with the number of failures since the previous line (docs/troubleshooting.md,
//! "Failure lines").
//!
//! This module only counts and decides; its callers word and log the lines.

use std::time::Duration;

use tokio::time::Instant;

/// The least time between two lines about one streak of failures.
pub(crate) const SUMMARY_PERIOD: Duration = Duration::from_secs(60);

/// What to log for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// The first failure of a streak: log it in full.
    First,
    /// A summary: `failures` happened since the previous line (this one included).
    Summary { failures: u64 },
    /// Nothing: a line about this streak was logged less than a period ago.
    Quiet,
}

/// Whether something is failing, and what was last said about it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Streak {
    #[default]
    Clear,
    Failing {
        /// Failures in this streak.
        total: u64,
        /// Failures since the last line.
        unlogged: u64,
        last_line: Instant,
    },
}

impl Streak {
    /// Records a failure and says what to log.
    pub(crate) fn failed(&mut self) -> Line {
        let now = Instant::now();
        match self {
            Streak::Clear => {
                *self = Streak::Failing {
                    total: 1,
                    unlogged: 0,
                    last_line: now,
                };
                Line::First
            }
            Streak::Failing {
                total,
                unlogged,
                last_line,
            } => {
                *total += 1;
                *unlogged += 1;
                if now.duration_since(*last_line) < SUMMARY_PERIOD {
                    return Line::Quiet;
                }
                *last_line = now;
                Line::Summary {
                    failures: std::mem::take(unlogged),
                }
            }
        }
    }

    /// Records a success: ends the streak, returning how many failures it had.
    pub(crate) fn cleared(&mut self) -> Option<u64> {
        match std::mem::take(self) {
            Streak::Failing { total, .. } => Some(total),
            Streak::Clear => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn first_failure_then_one_summary_per_period() {
        let mut streak = Streak::default();
        let second = Duration::from_secs(1);
        let mut lines = Vec::new();
        // A check failing every second for 150 s.
        for _ in 0..150 {
            lines.push(streak.failed());
            tokio::time::advance(second).await;
        }
        let logged: Vec<(usize, Line)> = lines
            .into_iter()
            .enumerate()
            .filter(|(_, line)| *line != Line::Quiet)
            .collect();
        assert_eq!(
            logged,
            [
                (0, Line::First),
                (60, Line::Summary { failures: 60 }),
                (120, Line::Summary { failures: 60 }),
            ]
        );
        assert_eq!(streak.cleared(), Some(150));
        assert_eq!(streak.cleared(), None, "the streak ended");
        assert_eq!(
            streak.failed(),
            Line::First,
            "a new streak is logged in full"
        );
    }
}
