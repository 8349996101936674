//! What to do while the catalog is unavailable (SPEC.md 8.1): retry with capped exponential
//! backoff, and log one warning per outage (not per call) plus one line when it ends.
//!
//! Pure bookkeeping: it never sleeps and never calls the catalog. [`Backoff`] belongs to
//! each retry loop; one [`OutageLog`] is shared by every call to a backend (it lives inside
//! [`super::Discovery`]).

use std::time::{Duration, Instant};

use super::DiscoveryError;

/// The first retry delay after a failed catalog call.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// Capped exponential backoff: `first`, `2·first`, `4·first`, ... up to `max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first.min(max),
        }
    }

    /// How long to wait before the next attempt; each call doubles the following delay.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }
}

impl Default for Backoff {
    /// [`FIRST_RETRY`] up to [`MAX_RETRY`].
    fn default() -> Backoff {
        Backoff::new(FIRST_RETRY, MAX_RETRY)
    }
}

/// Whether the catalog is in an outage, and since when.
#[derive(Debug, Default)]
pub struct OutageLog {
    outage: Option<Outage>,
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    failures: u64,
}

/// The end of an outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Calls that failed during the outage.
    pub failures: u64,
    pub lasted: Duration,
}

impl OutageLog {
    /// Records a failed call. The first failure of an outage is logged as a warning (and
    /// returns true); the following ones only at debug level.
    pub fn failed(&mut self, error: &DiscoveryError) -> bool {
        match &mut self.outage {
            Some(outage) => {
                outage.failures += 1;
                tracing::debug!("catalog call failed again: {error}");
                false
            }
            None => {
                self.outage = Some(Outage {
                    since: Instant::now(),
                    failures: 1,
                });
                tracing::warn!(
                    "catalog call failed: {error}; retrying in the background \
                     (further failures are logged at debug level until it recovers)"
                );
                true
            }
        }
    }

    /// Records a successful call; ends the outage (logged) if there was one.
    pub fn succeeded(&mut self) -> Option<Recovery> {
        let outage = self.outage.take()?;
        let recovery = Recovery {
            failures: outage.failures,
            lasted: outage.since.elapsed(),
        };
        tracing::info!(
            "catalog reachable again after {} failed call(s) over {:.1?}",
            recovery.failures,
            recovery.lasted
        );
        Some(recovery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(list: &[u64]) -> Vec<Duration> {
        list.iter().copied().map(Duration::from_secs).collect()
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, secs(&[1, 2, 4, 8, 16, 30, 30, 30]));
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn backoff_first_delay_never_exceeds_the_cap() {
        let mut backoff = Backoff::new(Duration::from_secs(60), Duration::from_secs(5));
        assert_eq!(backoff.next_delay(), Duration::from_secs(5));
    }

    fn failure() -> DiscoveryError {
        DiscoveryError::Rejected {
            backend: "consul",
            operation: "register",
            status: 500,
            body: "down".to_string(),
        }
    }

    #[test]
    fn one_warning_per_outage_and_one_recovery() {
        let mut log = OutageLog::default();
        assert_eq!(log.succeeded(), None, "no outage, nothing to recover from");
        assert!(log.failed(&failure()), "the first failure starts an outage");
        assert!(!log.failed(&failure()));
        assert!(!log.failed(&failure()));
        let recovery = log.succeeded().expect("the outage ends");
        assert_eq!(recovery.failures, 3);
        assert_eq!(log.succeeded(), None, "recovery is reported once");
        assert!(log.failed(&failure()), "a new outage warns again");
    }
}
