//! Locks at run time **\[beyond\]**: one task per configured lock, turning what the lock
//! reports into `acquired` / `lost` events under the source `lock.<name>` (and into the
//! `containerpilot_lock_*` metrics), keeping each lock's state for `--status`, following a
//! reload, and releasing every lock on shutdown.
//!
//! Owns the tasks, the status table and the reload rule for locks (the run generation
//! calls [`Locks::follow`]). The protocol (sessions, leases, the guarantee about `lost`) is
//! [`crate::discovery::lock`]'s; which jobs run on the events is the engine's. See
//! `docs/configuration.md`, "Leader locks".

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::model::LockConfig;
use crate::discovery::lock::{HolderValue, LockEvent, LockSpec};
use crate::discovery::{Discovery, ServiceRegistration};
use crate::events::{Bus, Event, EventCode};
use crate::tasks::Tasks;
use crate::telemetry::Metrics;

/// How long shutdown waits for the locks to be released before going on.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where one lock stands, as `--status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    /// Waiting for the key to be free; what the holder wrote, when one was seen.
    Contending { holder: Option<HolderValue> },
    /// This instance holds it.
    Holding { since: SystemTime },
}

/// Why a lock's task is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// autopilot is stopping: every job stops with the lock, so a held lock is
    /// released without an event.
    Shutdown,
    /// A reload removed or changed the lock while the jobs go on: a held lock is
    /// `lost` (published before the key is released), so that no job keeps acting as
    /// the holder of a lock another instance may take.
    Reload,
}

/// Where the locks run and what they feed.
pub(crate) struct Ground<'a> {
    pub tasks: &'a Tasks,
    pub bus: &'a Bus,
    pub metrics: &'a watch::Sender<Option<Metrics>>,
}

/// The running locks, and those a reload gave up that are still being released.
pub(crate) struct Locks {
    running: BTreeMap<String, Running>,
    releasing: Vec<JoinHandle<()>>,
}

/// One lock's task.
struct Running {
    spec: LockSpec,
    discovery: Arc<Discovery>,
    standing: Arc<Mutex<Standing>>,
    stop: watch::Sender<Option<Ending>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Is this the lock `spec` describes, held in `discovery`?
    fn serves(&self, spec: &LockSpec, discovery: &Arc<Discovery>) -> bool {
        self.spec == *spec && Arc::ptr_eq(&self.discovery, discovery)
    }

    /// Sets whether the lock is held in `metrics`: a reload may have replaced the
    /// registry.
    fn show_in(&self, metrics: &Option<Metrics>) {
        if let Some(metrics) = metrics {
            let standing = self.standing.lock().unwrap_or_else(PoisonError::into_inner);
            let held = matches!(*standing, Standing::Holding { .. });
            metrics.lock_held(&self.spec.name, held);
        }
    }

    /// Tells the task to stop; it ends once the lock is released.
    fn end(self, ending: Ending) -> JoinHandle<()> {
        self.stop.send_replace(Some(ending));
        self.task
    }
}

impl Locks {
    /// Brings the locks in line with `configs`, as a reload brings every piece of the run
    /// generation: a lock whose spec and catalog are unchanged keeps its session and, if
    /// held, its holding; a removed or changed one is released (`lost` if it was held,
    /// see [`Ending::Reload`]) and a changed one starts again; an added one starts
    /// contending. `service_of` gives a job's advertisement: a lock tied to a job writes
    /// that instance's ID and address and links its session to the service's check;
    /// `hostname` identifies the instance otherwise. `None` when no lock runs or is
    /// being released.
    pub(crate) fn follow<'s>(
        previous: Option<Locks>,
        configs: &[LockConfig],
        discovery: Option<&Arc<Discovery>>,
        service_of: impl Fn(&str) -> Option<&'s ServiceRegistration>,
        hostname: &str,
        ground: &Ground<'_>,
    ) -> Option<Locks> {
        let (mut old, mut releasing) = match previous {
            Some(previous) => (previous.running, previous.releasing),
            None => (BTreeMap::new(), Vec::new()),
        };
        releasing.retain(|task| !task.is_finished());
        let mut running = BTreeMap::new();
        for config in configs {
            // The configuration has locks only with a catalog.
            let Some(discovery) = discovery else { break };
            let service = config.job.as_deref().and_then(&service_of);
            let spec = lock_spec(config, service, hostname);
            let lock = match old.remove(&config.name) {
                Some(kept) if kept.serves(&spec, discovery) => {
                    kept.show_in(&ground.metrics.borrow());
                    kept
                }
                Some(changed) => {
                    releasing.push(changed.end(Ending::Reload));
                    start(spec, discovery, ground)
                }
                None => start(spec, discovery, ground),
            };
            running.insert(config.name.clone(), lock);
        }
        releasing.extend(old.into_values().map(|gone| gone.end(Ending::Reload)));
        (!running.is_empty() || !releasing.is_empty()).then_some(Locks { running, releasing })
    }

    /// Releases every held lock (and closes every session), waiting at most
    /// [`RELEASE_TIMEOUT`]: run before the services are deregistered.
    pub(crate) async fn release_all(self) {
        let tasks = (self.running.into_values())
            .map(|lock| lock.end(Ending::Shutdown))
            .chain(self.releasing);
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(RELEASE_TIMEOUT, all).await.is_err() {
            tracing::warn!("locks not released within {RELEASE_TIMEOUT:?}: they free when their sessions expire");
        }
    }

    /// `{"<name>": {"holding": bool, "since": "<RFC 3339>", "holder": <value>}}` for
    /// `--status`: `since` while this instance holds the lock, `holder` (what the holder
    /// wrote: its ID and address) while another one does.
    pub(crate) fn status(&self) -> Value {
        (self.running.iter())
            .map(|(name, lock)| {
                let standing = lock.standing.lock().unwrap_or_else(PoisonError::into_inner);
                let entry = match &*standing {
                    Standing::Contending { holder: None } => json!({ "holding": false }),
                    Standing::Contending {
                        holder: Some(holder),
                    } => json!({
                        "holding": false,
                        // The value autopilot writes is JSON; another writer's is shown as text.
                        "holder": serde_json::from_str::<Value>(holder)
                            .unwrap_or_else(|_| Value::from(&**holder)),
                    }),
                    Standing::Holding { since } => json!({
                        "holding": true,
                        "since": humantime::format_rfc3339_seconds(*since).to_string(),
                    }),
                };
                (name.clone(), entry)
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// What the holder writes to the key and which check ties its session.
fn lock_spec(
    config: &LockConfig,
    service: Option<&ServiceRegistration>,
    hostname: &str,
) -> LockSpec {
    let (value, checks) = match service {
        Some(service) => (
            json!({"ID": service.id, "Name": service.name, "Address": service.address.to_string(), "Port": service.port}),
            vec![format!("service:{}", service.id)],
        ),
        None => (json!({ "ID": hostname }), Vec::new()),
    };
    LockSpec {
        name: config.name.clone(),
        key: config.key.clone(),
        ttl: config.ttl,
        lock_delay: config.lock_delay,
        value: value.to_string(),
        checks,
    }
}

/// Starts one lock's task, contending at once.
fn start(spec: LockSpec, discovery: &Arc<Discovery>, ground: &Ground<'_>) -> Running {
    let standing = Arc::new(Mutex::new(Standing::Contending { holder: None }));
    let (stop, stopping) = watch::channel(None);
    let report = reporter(
        &spec.name,
        standing.clone(),
        stopping.clone(),
        ground.bus.clone(),
        ground.metrics.subscribe(),
    );
    let task = {
        let (spec, discovery) = (spec.clone(), discovery.clone());
        let mut stopping = stopping;
        // Tracked, not cancelled: a lock must be released, not dropped.
        ground.tasks.track(async move {
            let stop = async {
                // A dropped sender (the run is ending anyway) stops the lock too.
                let _ = stopping.wait_for(Option::is_some).await;
            };
            discovery.run_lock(&spec, report, stop).await;
        })
    };
    Running {
        spec,
        discovery: discovery.clone(),
        standing,
        stop,
        task,
    }
}

/// What a lock does with each [`LockEvent`]: the status, the metrics, and the events
/// under `lock.<name>`.
fn reporter(
    name: &str,
    standing: Arc<Mutex<Standing>>,
    ending: watch::Receiver<Option<Ending>>,
    bus: Bus,
    metrics: watch::Receiver<Option<Metrics>>,
) -> impl FnMut(LockEvent) + Send + 'static {
    let (name, source) = (name.to_string(), format!("lock.{name}"));
    let set = move |now| *standing.lock().unwrap_or_else(PoisonError::into_inner) = now;
    let count = {
        let name = name.clone();
        move |record: fn(&Metrics, &str)| {
            if let Some(metrics) = &*metrics.borrow() {
                record(metrics, &name);
            }
        }
    };
    count(not_held);
    move |event| match event {
        LockEvent::Acquired => {
            set(Standing::Holding {
                since: SystemTime::now(),
            });
            count(Metrics::lock_acquired);
            bus.publish(Event::new(EventCode::Acquired, &source));
        }
        LockEvent::Lost(_) => {
            set(Standing::Contending { holder: None });
            count(Metrics::lock_lost);
            bus.publish(Event::new(EventCode::Lost, &source));
        }
        LockEvent::Released => {
            set(Standing::Contending { holder: None });
            match *ending.borrow() {
                Some(Ending::Reload) => {
                    tracing::info!(lock = %name, "the reload removed or changed the lock: lost");
                    count(Metrics::lock_lost);
                    bus.publish(Event::new(EventCode::Lost, &source));
                }
                // Stopping: every job stops too, none should start on it.
                _ => count(not_held),
            }
        }
        LockEvent::HeldElsewhere(holder) => set(Standing::Contending {
            holder: Some(holder),
        }),
    }
}

fn not_held(metrics: &Metrics, lock: &str) {
    metrics.lock_held(lock, false);
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    #[test]
    fn a_lock_tied_to_a_job_writes_its_instance_and_links_its_check() {
        let config = LockConfig {
            name: "primary".into(),
            key: "service/db/primary".into(),
            ttl: Duration::from_secs(15),
            lock_delay: Duration::from_secs(5),
            job: Some("db".into()),
        };
        let service = ServiceRegistration {
            id: "db-host1".into(),
            name: "db".into(),
            tags: Vec::new(),
            port: 5432,
            address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
            ttl: Duration::from_secs(10),
            initial_status: None,
            enable_tag_override: false,
            deregister_critical_service_after: None,
        };
        let spec = lock_spec(&config, Some(&service), "host1");
        assert_eq!(spec.checks, ["service:db-host1"]);
        let value: Value = serde_json::from_str(&spec.value).unwrap();
        assert_eq!(value["Address"], "10.0.0.5");
        assert_eq!(value["Port"], 5432);
        let plain = lock_spec(&config, None, "host1");
        assert!(plain.checks.is_empty());
        assert_eq!(plain.value, r#"{"ID":"host1"}"#);
    }
}
