//! What to do while the catalog is unavailable (docs/design.md, "Discovery"): retry with capped exponential
//! backoff, and log one warning per outage (not per call) plus one line when it ends.
//!
//! An outage starts with the first failed call and ends once every kind of call that failed
//! during it ([`CallKind`]) has succeeded again with a request sent after that kind first
//! failed. So neither the late answer to a request sent before the outage (a blocking query
//! that was already waiting) nor calls of another kind that still work (a Consul agent whose
//! servers lost their leader accepts check updates but fails health queries) split one
//! outage into many warnings.
//!
//! A 403 is no outage but a configuration error (the ACL token): it is logged at ERROR
//! each time it recurs, at most once a minute per kind of call ([`Streak`]), and
//! starts no outage.
//!
//! Pure bookkeeping: it never sleeps and never calls the catalog. [`Backoff`] belongs to
//! each retry loop; one [`OutageLog`] is shared by every call to a backend (it lives inside
//! [`super::Discovery`]).

use std::time::{Duration, Instant};

use super::DiscoveryError;
use crate::failure_streak::{Line, Streak, SUMMARY_PERIOD};

/// The first retry delay after a failed catalog call.
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(30);

/// Capped exponential backoff: `first`, `2·first`, `4·first`, ... up to `max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first.min(max),
        }
    }

    /// How long to wait before the next attempt; each call doubles the following delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// After a success: the next failure waits `first` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }
}

impl Default for Backoff {
    /// [`FIRST_RETRY`] up to [`MAX_RETRY`].
    fn default() -> Backoff {
        Backoff::new(FIRST_RETRY, MAX_RETRY)
    }
}

/// The kinds of catalog calls, which can fail independently of each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// Registering, heartbeats, deregistering: the local agent (Consul) or the leases (etcd).
    Agent,
    /// Health queries of watches: Consul answers them from its servers.
    Query,
}

impl CallKind {
    const ALL: usize = 2;

    fn index(self) -> usize {
        match self {
            CallKind::Agent => 0,
            CallKind::Query => 1,
        }
    }
}

/// Whether the catalog is in an outage, and since when.
#[derive(Debug, Default)]
pub(crate) struct OutageLog {
    outage: Option<Outage>,
    /// Calls of each kind denied (403) since that kind last succeeded.
    denied: [Streak; CallKind::ALL],
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    failures: u64,
    /// For each kind of call still failing, when it first failed in this outage.
    failing_since: [Option<Instant>; CallKind::ALL],
}

/// The end of an outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Calls that failed during the outage.
    pub failures: u64,
    pub lasted: Duration,
}

impl OutageLog {
    /// Records a failed call of `kind`. The first failure of an outage is logged as a warning
    /// (and returns true); the following ones only at debug level.
    pub(crate) fn failed(&mut self, kind: CallKind, error: &DiscoveryError) -> bool {
        if let DiscoveryError::Forbidden { .. } = error {
            self.denied(kind, error);
            return false;
        }
        let now = Instant::now();
        match &mut self.outage {
            Some(outage) => {
                outage.failures += 1;
                outage.failing_since[kind.index()].get_or_insert(now);
                tracing::debug!("catalog call failed again: {error}");
                false
            }
            None => {
                let mut failing_since = [None; CallKind::ALL];
                failing_since[kind.index()] = Some(now);
                self.outage = Some(Outage {
                    since: now,
                    failures: 1,
                    failing_since,
                });
                tracing::warn!(
                    "catalog call failed: {error}; retrying in the background \
                     (further failures are logged at debug level until it recovers)"
                );
                true
            }
        }
    }

    /// Records a successful call of `kind` whose request was sent at `sent`. Ends the outage
    /// (logged) when no kind of call is failing any more.
    pub(crate) fn succeeded(&mut self, kind: CallKind, sent: Instant) -> Option<Recovery> {
        self.denied[kind.index()].cleared();
        let outage = self.outage.as_mut()?;
        let failing = &mut outage.failing_since[kind.index()];
        if failing.is_some_and(|first_failure| sent >= first_failure) {
            *failing = None;
        }
        if outage.failing_since.iter().any(Option::is_some) {
            return None;
        }
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

impl OutageLog {
    /// A 403: at ERROR, the first of a streak in full, then once a minute with a count.
    fn denied(&mut self, kind: CallKind, error: &DiscoveryError) {
        match self.denied[kind.index()].failed() {
            Line::First => tracing::error!("{error}"),
            Line::Summary { failures } => tracing::error!(
                "{error} ({failures} time(s) in the last {}s)",
                SUMMARY_PERIOD.as_secs()
            ),
            Line::Quiet => tracing::debug!("{error}"),
        }
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
        let succeeded = |log: &mut OutageLog| log.succeeded(CallKind::Agent, Instant::now());
        assert_eq!(
            succeeded(&mut log),
            None,
            "no outage, nothing to recover from"
        );
        assert!(
            log.failed(CallKind::Agent, &failure()),
            "the first failure starts an outage"
        );
        assert!(!log.failed(CallKind::Agent, &failure()));
        assert!(!log.failed(CallKind::Agent, &failure()));
        let recovery = succeeded(&mut log).expect("the outage ends");
        assert_eq!(recovery.failures, 3);
        assert_eq!(succeeded(&mut log), None, "recovery is reported once");
        assert!(
            log.failed(CallKind::Agent, &failure()),
            "a new outage warns again"
        );
    }

    #[test]
    fn the_late_answer_to_a_request_sent_before_the_outage_does_not_end_it() {
        let mut log = OutageLog::default();
        let sent_before = Instant::now();
        log.failed(CallKind::Agent, &failure());
        assert_eq!(log.succeeded(CallKind::Agent, sent_before), None);
        assert!(
            !log.failed(CallKind::Agent, &failure()),
            "still the same outage"
        );
        assert!(log.succeeded(CallKind::Agent, Instant::now()).is_some());
    }

    #[test]
    fn the_outage_lasts_until_every_failing_kind_of_call_works_again() {
        let mut log = OutageLog::default();
        log.failed(CallKind::Agent, &failure());
        assert_eq!(
            log.succeeded(CallKind::Query, Instant::now()),
            None,
            "queries work, heartbeats still fail"
        );
        assert!(!log.failed(CallKind::Query, &failure()));
        assert_eq!(log.succeeded(CallKind::Agent, Instant::now()), None);
        let recovery = log
            .succeeded(CallKind::Query, Instant::now())
            .expect("all work again");
        assert_eq!(recovery.failures, 2);
    }

    #[test]
    fn a_403_is_no_outage() {
        let denied = DiscoveryError::Forbidden {
            backend: "consul",
            operation: "register",
            setting: "`consul.token`",
            body: "ACL not found".to_string(),
        };
        let mut log = OutageLog::default();
        assert!(!log.failed(CallKind::Agent, &denied), "no outage begins");
        assert!(!log.failed(CallKind::Agent, &denied));
        assert_eq!(log.succeeded(CallKind::Agent, Instant::now()), None);
        assert!(
            log.failed(CallKind::Agent, &failure()),
            "an outage after it still warns"
        );
    }
}
