//! Watches: follow a service in the catalog and publish what changes.
//!
//! Each watch is a task that asks the catalog for the service's healthy
//! instances with a blocking query (so a change arrives within milliseconds
//! instead of one poll interval later [beyond]), turns the answer into
//! `changed` / `healthy` / `unhealthy` events under the source `watch.<name>`,
//! and keeps `interval` as the minimum gap between two events. The first query
//! runs at once. While the catalog is unreachable it retries with back-off.
//!
//! The instances each watch saw last are shared through a [`LatestInstances`]
//! channel (for `--status` and for `jobs[].render` templates), updated before
//! the events that announce them are published.
//!
//! This module owns the watch loop; what an answer means is
//! [`crate::discovery::watch`]'s business, talking to the catalog
//! [`crate::discovery`]'s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::model::WatchConfig;
use crate::discovery::outage::Backoff;
use crate::discovery::watch::WatchState;
use crate::discovery::{Discovery, Instance};
use crate::events::{Bus, Event};
use crate::telemetry::Metrics;

/// A query that comes back this fast without news is not blocking (an old
/// catalog, or a proxy in between): the next one then waits an interval, so a
/// watch never spins.
const NOT_BLOCKING: Duration = Duration::from_millis(50);

/// The healthy instances each watch saw last (sorted by ID), by watch name.
pub(crate) type LatestInstances = watch::Sender<BTreeMap<String, Vec<Instance>>>;

/// One watch's loop; it runs until the future is dropped (the run generation
/// cancels it when a reload removes or changes the watch).
pub(crate) async fn run(
    config: WatchConfig,
    discovery: Arc<Discovery>,
    bus: Bus,
    latest: LatestInstances,
    metrics: watch::Receiver<Option<Metrics>>,
) {
    let source = config.source();
    let mut state = WatchState::new();
    let mut backoff = Backoff::default();
    let mut quiet_until = Instant::now();
    loop {
        let asked_at = Instant::now();
        let answer = match discovery.healthy_instances(&config, state.index()).await {
            Ok(answer) => answer,
            Err(_) => {
                // `Discovery` logs the outage once; keep trying.
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        backoff.reset();
        let events = state.update(answer);
        latest.send_modify(|latest| {
            latest.insert(config.name.clone(), state.instances());
        });
        if let Some(metrics) = &*metrics.borrow() {
            metrics.watch_instances(&config.name, state.instance_count());
        }
        if events.is_empty() {
            if asked_at.elapsed() < NOT_BLOCKING && state.index() != 0 {
                tokio::time::sleep(config.interval).await;
            }
            continue;
        }
        // Two events for the same watch are at least `interval` apart.
        tokio::time::sleep_until(quiet_until).await;
        for code in events {
            bus.publish(Event::new(code, &source));
        }
        quiet_until = Instant::now() + config.interval;
    }
}
