//! `restartDelay` back-off [beyond ContainerPilot].
//!
//! The wait before a restart starts at the configured delay, doubles after
//! every consecutive failed run up to [`MAX_DELAY`], and goes back to the
//! configured delay after a run that outlived the current delay (the process
//! was up long enough to count as recovered). A zero delay never grows, which
//! is ContainerPilot's behaviour.

use std::time::Duration;

/// The longest wait between restarts.
pub(super) const MAX_DELAY: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub(super) struct Backoff {
    base: Duration,
    current: Duration,
}

impl Backoff {
    pub(super) fn new(base: Duration) -> Backoff {
        Backoff {
            base,
            current: base,
        }
    }

    /// The delay before the next restart, given how the last run went.
    pub(super) fn next(&mut self, succeeded: bool, ran_for: Duration) -> Duration {
        if ran_for > self.current {
            self.current = self.base;
        }
        let delay = self.current;
        if !succeeded {
            self.current = (self.current * 2).min(MAX_DELAY).max(self.base);
        }
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_on_consecutive_failures_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_secs(1));
        let delays: Vec<u64> = (0..12)
            .map(|_| backoff.next(false, SHORT).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }

    #[test]
    fn resets_after_a_run_that_outlived_the_delay() {
        let mut backoff = Backoff::new(Duration::from_secs(1));
        backoff.next(false, SHORT);
        backoff.next(false, SHORT);
        assert_eq!(backoff.next(false, SHORT), Duration::from_secs(4));
        assert_eq!(
            backoff.next(false, Duration::from_secs(10)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn zero_delay_stays_zero() {
        let mut backoff = Backoff::new(Duration::ZERO);
        for _ in 0..5 {
            assert_eq!(backoff.next(false, SHORT), Duration::ZERO);
        }
    }

    #[test]
    fn successful_runs_do_not_grow_the_delay() {
        let mut backoff = Backoff::new(Duration::from_secs(2));
        for _ in 0..5 {
            assert_eq!(backoff.next(true, SHORT), Duration::from_secs(2));
        }
    }
}
