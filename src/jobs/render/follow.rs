//! What a render job reads, kept fresh [beyond]: consul-template's "watch the
//! dependencies" half. The job tells the [`Follower`] which dependencies its
//! last render used; the follower reads each with blocking queries (one task
//! per dependency), stops reading those no longer used, and publishes the
//! data whenever it changed, after the `wait` quiescence if one is set
//! ([`Quiet`]). Data read for the first time is published at once: a render
//! is waiting for it.
//!
//! This module owns fetching and timing; rendering and running belong to the
//! job ([`super`], [`crate::jobs`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::model::RenderWait;
use crate::config::template::{Catalog, Dependency, Fetched};
use crate::discovery::outage::Backoff;
use crate::discovery::Discovery;

/// How long one blocking query may wait at the catalog.
const BLOCKING_WAIT: Duration = Duration::from_secs(60);
/// How often endpoints that cannot block (the datacenter list) are read again.
const POLL_INTERVAL: Duration = Duration::from_secs(15);

/// The handle of a render job on its data; dropping it stops every read.
#[derive(Debug)]
pub struct Follower {
    data: watch::Receiver<Arc<Catalog>>,
    wanted: mpsc::UnboundedSender<BTreeSet<Dependency>>,
    task: JoinHandle<()>,
}

impl Follower {
    pub fn start(discovery: Arc<Discovery>, wait: Option<RenderWait>) -> Follower {
        let (publish, data) = watch::channel(Arc::new(Catalog::new()));
        let (wanted, wanted_receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(follow(discovery, wait, wanted_receiver, publish));
        Follower { data, wanted, task }
    }

    /// The data as last published.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.data.borrow().clone()
    }

    /// The dependencies the last render used: read the new ones, forget the rest.
    pub fn want(&self, dependencies: BTreeSet<Dependency>) {
        let _ = self.wanted.send(dependencies);
    }

    /// Resolves when new data has been published since the last call.
    pub async fn changed(&mut self) {
        if self.data.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// consul-template's `wait { min, max }`: publish once the data has been
/// quiet for `min`, and at the latest `max` after the first unpublished
/// change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    wait: Option<RenderWait>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Quiet {
    pub fn new(wait: Option<RenderWait>) -> Quiet {
        Quiet {
            wait,
            first: None,
            last: None,
        }
    }

    /// The data changed at `now`.
    pub fn changed(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When to publish the changes seen so far (`None`: nothing to publish).
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some(match self.wait {
            None => last,
            Some(wait) => (last + wait.min).min(first + wait.max),
        })
    }

    /// The changes were published.
    pub fn published(&mut self) {
        self.first = None;
        self.last = None;
    }
}

/// One dependency's new answer.
type Update = (Dependency, Fetched);

async fn follow(
    discovery: Arc<Discovery>,
    wait: Option<RenderWait>,
    mut wanted: mpsc::UnboundedReceiver<BTreeSet<Dependency>>,
    publish: watch::Sender<Arc<Catalog>>,
) {
    let (updates, mut received) = mpsc::unbounded_channel::<Update>();
    let mut readers: BTreeMap<Dependency, JoinHandle<()>> = BTreeMap::new();
    let mut data = Catalog::new();
    let mut quiet = Quiet::new(wait);
    loop {
        tokio::select! {
            Some(dependencies) = wanted.recv() => {
                readers.retain(|dependency, reader| {
                    let keep = dependencies.contains(dependency);
                    if !keep {
                        reader.abort();
                        data.remove(dependency);
                    }
                    keep
                });
                for dependency in dependencies {
                    readers.entry(dependency.clone()).or_insert_with(|| {
                        tokio::spawn(read_forever(discovery.clone(), dependency, updates.clone()))
                    });
                }
            }
            Some((dependency, fetched)) = received.recv() => {
                if !readers.contains_key(&dependency) {
                    continue;
                }
                let first_read = !data.contains_key(&dependency);
                if data.get(&dependency) == Some(&fetched) {
                    continue;
                }
                data.insert(dependency, fetched);
                if first_read {
                    quiet.published();
                    publish.send_replace(Arc::new(data.clone()));
                } else {
                    quiet.changed(Instant::now());
                }
            }
            () = sleep_until(quiet.deadline()) => {
                quiet.published();
                publish.send_replace(Arc::new(data.clone()));
            }
            else => break,
        }
    }
    for reader in readers.into_values() {
        reader.abort();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Reads one dependency over and over: a blocking query past the last index,
/// or a poll where the endpoint cannot block. Failures are logged by
/// [`Discovery`] (once per outage); this waits and tries again.
async fn read_forever(
    discovery: Arc<Discovery>,
    dependency: Dependency,
    updates: mpsc::UnboundedSender<Update>,
) {
    let mut index = 0;
    let mut backoff = Backoff::default();
    loop {
        match discovery.read(&dependency, index, BLOCKING_WAIT).await {
            Ok(read) => {
                backoff.reset();
                if updates.send((dependency.clone(), read.fetched)).is_err() {
                    return;
                }
                if read.index == 0 {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                // An index that goes backwards (the catalog was rebuilt) starts over.
                index = if read.index < index { 0 } else { read.index };
            }
            Err(_) => tokio::time::sleep(backoff.next_delay()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn quiescence_waits_for_min_and_never_beyond_max() {
        let wait = RenderWait {
            min: Duration::from_secs(2),
            max: Duration::from_secs(5),
        };
        let start = Instant::now();
        let mut quiet = Quiet::new(Some(wait));
        assert_eq!(quiet.deadline(), None, "nothing changed yet");
        quiet.changed(start);
        assert_eq!(quiet.deadline(), Some(start + Duration::from_secs(2)));
        tokio::time::advance(Duration::from_secs(1)).await;
        quiet.changed(Instant::now());
        assert_eq!(quiet.deadline(), Some(start + Duration::from_secs(3)));
        for _ in 0..4 {
            tokio::time::advance(Duration::from_secs(1)).await;
            quiet.changed(Instant::now());
        }
        assert_eq!(
            quiet.deadline(),
            Some(start + Duration::from_secs(5)),
            "changes every second: max caps the wait"
        );
        quiet.published();
        assert_eq!(quiet.deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn without_wait_changes_publish_at_once() {
        let mut quiet = Quiet::new(None);
        let now = Instant::now();
        quiet.changed(now);
        assert_eq!(quiet.deadline(), Some(now));
    }
}
