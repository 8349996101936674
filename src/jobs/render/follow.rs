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
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::DropGuard;

use crate::tasks::Tasks;
use tokio::time::Instant;

use crate::config::model::RenderWait;
use crate::config::template::{Catalog, Dependency, Fetched};
use crate::discovery::outage::Backoff;
use crate::discovery::{Discovery, DiscoveryError, Read};

/// How long one blocking query may wait at the catalog.
const BLOCKING_WAIT: Duration = Duration::from_secs(60);
/// How often endpoints that cannot block (the datacenter list) are read again.
const POLL_INTERVAL: Duration = Duration::from_secs(15);

/// Where a follower reads its dependencies: the catalog ([`Discovery`]), or
/// a test's stand-in.
pub(crate) trait Source: Send + Sync + 'static {
    /// Reads `dependency`, blocking (at most `wait`) until it changes past
    /// `index` when `index > 0`.
    fn read(
        &self,
        dependency: &Dependency,
        index: u64,
        wait: Duration,
    ) -> impl Future<Output = Result<Read, DiscoveryError>> + Send;
}

impl Source for Discovery {
    fn read(
        &self,
        dependency: &Dependency,
        index: u64,
        wait: Duration,
    ) -> impl Future<Output = Result<Read, DiscoveryError>> + Send {
        Discovery::read(self, dependency, index, wait)
    }
}

/// The handle of a render job on its data; dropping it stops every read.
#[derive(Debug)]
pub(crate) struct Follower {
    data: watch::Receiver<Arc<Catalog>>,
    wanted: mpsc::UnboundedSender<BTreeSet<Dependency>>,
    /// Retires the following task, and with it every read (it holds theirs).
    _task: DropGuard,
}

impl Follower {
    /// Follows `source` in `tasks` (the run's tracker) until dropped.
    pub(crate) fn start(
        source: Arc<impl Source>,
        wait: Option<RenderWait>,
        tasks: &Tasks,
    ) -> Follower {
        let (publish, data) = watch::channel(Arc::new(Catalog::new()));
        let (wanted, wanted_receiver) = mpsc::unbounded_channel();
        let following = follow(source, wait, wanted_receiver, publish, tasks.clone());
        Follower {
            data,
            wanted,
            _task: tasks.spawn(following).drop_guard(),
        }
    }

    /// The data as last published.
    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        self.data.borrow().clone()
    }

    /// The dependencies the last render used: read the new ones, forget the rest.
    pub(crate) fn want(&self, dependencies: BTreeSet<Dependency>) {
        let _ = self.wanted.send(dependencies);
    }

    /// Resolves when new data has been published since the last call.
    pub(crate) async fn changed(&mut self) {
        if self.data.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// consul-template's `wait { min, max }`: publish once the data has been
/// quiet for `min`, and at the latest `max` after the first unpublished
/// change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quiet {
    wait: Option<RenderWait>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Quiet {
    pub(super) fn new(wait: Option<RenderWait>) -> Quiet {
        Quiet {
            wait,
            first: None,
            last: None,
        }
    }

    /// The data changed at `now`.
    pub(super) fn changed(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When to publish the changes seen so far (`None`: nothing to publish).
    pub(super) fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some(match self.wait {
            None => last,
            Some(wait) => (last + wait.min).min(first + wait.max),
        })
    }

    /// The changes were published.
    pub(super) fn published(&mut self) {
        self.first = None;
        self.last = None;
    }
}

/// One dependency's new answer.
type Update = (Dependency, Fetched);

async fn follow(
    source: Arc<impl Source>,
    wait: Option<RenderWait>,
    mut wanted: mpsc::UnboundedReceiver<BTreeSet<Dependency>>,
    publish: watch::Sender<Arc<Catalog>>,
    tasks: Tasks,
) {
    let (updates, mut received) = mpsc::unbounded_channel::<Update>();
    // Each read is retired when its guard is dropped: when it is no longer
    // wanted, and all of them when this task ends or is cancelled.
    let mut readers: BTreeMap<Dependency, DropGuard> = BTreeMap::new();
    let mut data = Catalog::new();
    let mut quiet = Quiet::new(wait);
    loop {
        tokio::select! {
            Some(dependencies) = wanted.recv() => {
                readers.retain(|dependency, _| {
                    let keep = dependencies.contains(dependency);
                    if !keep {
                        data.remove(dependency);
                    }
                    keep
                });
                for dependency in dependencies {
                    readers.entry(dependency.clone()).or_insert_with(|| {
                        let read = read_forever(source.clone(), dependency, updates.clone());
                        tasks.spawn(read).drop_guard()
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
    source: Arc<impl Source>,
    dependency: Dependency,
    updates: mpsc::UnboundedSender<Update>,
) {
    let mut index = 0;
    let mut backoff = Backoff::default();
    loop {
        match source.read(&dependency, index, BLOCKING_WAIT).await {
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
    use std::sync::Mutex;

    /// A KV store that answers blocking reads the way Consul does, and counts
    /// the reads of each key.
    #[derive(Default)]
    struct FakeKv {
        state: Mutex<KvState>,
        changes: tokio::sync::Notify,
    }

    #[derive(Default)]
    struct KvState {
        index: u64,
        values: BTreeMap<String, String>,
        reads: BTreeMap<String, u32>,
    }

    impl FakeKv {
        fn set(&self, key: &str, value: &str) {
            let mut state = self.state.lock().unwrap();
            state.index += 1;
            state.values.insert(key.to_string(), value.to_string());
            drop(state);
            self.changes.notify_waiters();
        }

        fn reads(&self, key: &str) -> u32 {
            self.state
                .lock()
                .unwrap()
                .reads
                .get(key)
                .copied()
                .unwrap_or(0)
        }

        fn answer(&self, key: &str) -> Read {
            let mut state = self.state.lock().unwrap();
            *state.reads.entry(key.to_string()).or_default() += 1;
            Read {
                fetched: Fetched::Key(state.values.get(key).cloned()),
                index: state.index,
            }
        }
    }

    impl Source for FakeKv {
        async fn read(
            &self,
            dependency: &Dependency,
            index: u64,
            wait: Duration,
        ) -> Result<Read, DiscoveryError> {
            let Dependency::Key(key) = dependency else {
                unreachable!("the tests read keys only")
            };
            let deadline = Instant::now() + wait;
            while index > 0 && self.state.lock().unwrap().index <= index {
                let changed = self.changes.notified();
                if tokio::time::timeout_at(deadline, changed).await.is_err() {
                    break;
                }
            }
            Ok(self.answer(key))
        }
    }

    fn key(name: &str) -> Dependency {
        Dependency::Key(name.to_string())
    }

    fn value(follower: &Follower, name: &str) -> Option<String> {
        match follower.catalog().get(&key(name)) {
            Some(Fetched::Key(value)) => value.clone(),
            other => panic!("{other:?}"),
        }
    }

    const WAIT: RenderWait = RenderWait {
        min: Duration::from_secs(2),
        max: Duration::from_secs(5),
    };

    async fn following_a(wait: Option<RenderWait>) -> (Arc<FakeKv>, Follower) {
        let kv = Arc::new(FakeKv::default());
        kv.set("a", "1");
        let mut follower = Follower::start(kv.clone(), wait, &Tasks::default());
        follower.want(BTreeSet::from([key("a")]));
        let start = Instant::now();
        follower.changed().await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "a first read is published at once"
        );
        assert_eq!(value(&follower, "a").as_deref(), Some("1"));
        (kv, follower)
    }

    /// A render job a reload removed or changed drops its follower: no read
    /// may outlive it (each holds the source while it runs).
    #[tokio::test(start_paused = true)]
    async fn dropping_the_follower_ends_every_read() {
        let (kv, follower) = following_a(None).await;
        assert!(Arc::strong_count(&kv) > 1, "a read holds the source");
        drop(follower);
        let ended = async {
            while Arc::strong_count(&kv) > 1 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(1), ended)
            .await
            .expect("every read ended");
        let reads = kv.reads("a");
        kv.set("a", "2");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(kv.reads("a"), reads, "nothing reads any more");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_is_published_once_quiet_for_min() {
        let (kv, mut follower) = following_a(Some(WAIT)).await;
        let start = Instant::now();
        kv.set("a", "2");
        follower.changed().await;
        assert_eq!(start.elapsed(), WAIT.min);
        assert_eq!(value(&follower, "a").as_deref(), Some("2"));
    }

    #[tokio::test(start_paused = true)]
    async fn changes_that_never_stop_are_published_after_max() {
        let (kv, mut follower) = following_a(Some(WAIT)).await;
        let start = Instant::now();
        let writer = {
            let kv = kv.clone();
            tokio::spawn(async move {
                for n in 2..100 {
                    kv.set("a", &n.to_string());
                    tokio::time::sleep(Duration::from_millis(700)).await;
                }
            })
        };
        follower.changed().await;
        assert_eq!(start.elapsed(), WAIT.max);
        // Written at 0, 0.7, ... 4.9 s: the eighth value is the last before 5 s.
        assert_eq!(value(&follower, "a").as_deref(), Some("9"));
        writer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn without_wait_a_change_is_published_at_once_and_sameness_never() {
        let (kv, mut follower) = following_a(None).await;
        let start = Instant::now();
        kv.set("a", "2");
        follower.changed().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        kv.set("a", "2");
        kv.set("other", "x");
        let quiet = tokio::time::timeout(Duration::from_secs(600), follower.changed()).await;
        assert!(quiet.is_err(), "the same value is no change");
    }

    #[tokio::test(start_paused = true)]
    async fn dependencies_no_longer_wanted_are_no_longer_read() {
        let (kv, follower) = following_a(None).await;
        follower.want(BTreeSet::from([key("b")]));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let reads = kv.reads("a");
        kv.set("a", "2");
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(kv.reads("a"), reads, "a is not read any more");
        assert!(kv.reads("b") >= 1);
        assert!(!follower.catalog().contains_key(&key("a")));
    }

    #[test]
    fn quiescence_waits_for_min_and_never_beyond_max() {
        let start = Instant::now();
        let mut quiet = Quiet::new(Some(WAIT));
        assert_eq!(quiet.deadline(), None, "nothing changed yet");
        quiet.changed(start);
        assert_eq!(quiet.deadline(), Some(start + WAIT.min));
        let second = Duration::from_secs(1);
        quiet.changed(start + second);
        assert_eq!(quiet.deadline(), Some(start + second + WAIT.min));
        quiet.changed(start + second * 4);
        assert_eq!(
            quiet.deadline(),
            Some(start + WAIT.max),
            "max caps the wait"
        );
        quiet.published();
        assert_eq!(quiet.deadline(), None);
    }
}
