//! The agent's clocks: fires TTL timers when they are due, invalidates sessions whose TTL
//! ran out, and reaps services whose check has been critical longer than
//! `DeregisterCriticalServiceAfter`, every `reap_interval`.
//!
//! Owns only the scheduling; what expiring and reaping do is in `agent` and `session`. It
//! sleeps until the earliest deadline or the next reap, and re-plans on every change.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::control::Shared;
use crate::session;

pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut changes = shared.subscribe();
    let reap_interval = shared.config.reap_interval;
    let mut next_reap = Instant::now() + reap_interval;
    loop {
        let next_ttl = shared.read(|inner| {
            let checks = inner.agent.next_ttl_deadline();
            let sessions = inner.sessions.next_expiry();
            checks.into_iter().chain(sessions).min()
        });
        let wake = next_ttl.map_or(next_reap, |deadline| deadline.min(next_reap));
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        let now = Instant::now();
        let reap_due = now >= next_reap;
        if reap_due {
            next_reap = now + reap_interval;
        }
        tick(&shared, now, reap_due);
    }
}

fn tick(shared: &Shared, now: Instant, reap_due: bool) {
    let minimum = shared.config.deregister_interval_min;
    let (expired, reaped) = shared.write_if_changed(|inner| {
        let expired = inner.agent.expire_ttls(now);
        let reaped = if reap_due {
            inner.agent.reap_critical_services(now, minimum)
        } else {
            Vec::new()
        };
        let sessions_expired = inner.sessions.expired(now);
        let sessions_changed = session::invalidate(inner, &sessions_expired, now);
        let changed = !expired.is_empty() || !reaped.is_empty() || sessions_changed;
        ((expired, reaped), changed)
    });
    for check in expired {
        tracing::info!(%check, "check missed its TTL, now critical");
    }
    for service in reaped {
        tracing::info!(%service, "critical service reaped (DeregisterCriticalServiceAfter)");
    }
}
