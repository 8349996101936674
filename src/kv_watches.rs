//! KV watches at run time **\[beyond\]**: one task per `watches[]` entry with `kv`,
//! publishing `changed` under `watch.<name>` each time the key's value (with `prefix`, any
//! value or the set of keys under it) differs from what the previous read saw.
//!
//! Owns the loop; reading the KV store is [`crate::discovery::kv`]'s. The first read sets
//! the baseline and publishes nothing: a job that needs the values at startup also runs on
//! `startup`. While the catalog is unreachable it retries with back-off.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::model::KvWatchConfig;
use crate::discovery::outage::Backoff;
use crate::discovery::Discovery;
use crate::events::{Bus, Event, EventCode};

/// A read that comes back this fast without news is not blocking (an old catalog, or a
/// proxy in between): the next one then waits a second, so a watch never spins.
const NOT_BLOCKING: Duration = Duration::from_millis(50);
const NOT_BLOCKING_PAUSE: Duration = Duration::from_secs(1);

/// One KV watch's task: runs until the run generation that started it
/// cancels it (a reload that changes or removes the watch, or shutdown).
pub(crate) async fn run(config: KvWatchConfig, discovery: Arc<Discovery>, bus: Bus) {
    let source = config.source();
    let mut backoff = Backoff::default();
    let mut last = None;
    let mut index = 0;
    loop {
        let asked_at = Instant::now();
        let snapshot = match discovery
            .kv_snapshot(&config.key, config.prefix, index)
            .await
        {
            Ok(snapshot) => snapshot,
            Err(_) => {
                // `Discovery` logs the outage once; keep trying.
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        backoff.reset();
        // An index that went back (a restored or restarted catalog) starts over; one of
        // 0 (an empty KV store) is waited on as 1, as Consul's documentation advises, so
        // that the next read blocks.
        let answered = snapshot.index.max(1);
        index = if answered < index { 0 } else { answered };
        let changed = last.as_ref().is_some_and(|seen| *seen != snapshot.entries);
        last = Some(snapshot.entries);
        if changed {
            tracing::debug!(watch = %config.name, key = %config.key, "KV value changed");
            bus.publish(Event::new(EventCode::Changed, &source));
        } else if asked_at.elapsed() < NOT_BLOCKING && index != 0 {
            tokio::time::sleep(NOT_BLOCKING_PAUSE).await;
        }
    }
}
