//! Locks at run time **\[beyond\]**: one task per configured lock, turning what the lock
//! reports into `acquired` / `lost` events under the source `lock.<name>`, keeping each
//! lock's state for `--status`, and releasing every lock on shutdown.
//!
//! Owns the tasks and the status table. The protocol (sessions, leases, the guarantee
//! about `lost`) is [`crate::discovery::lock`]'s; which jobs run on the events is the
//! engine's. See `docs/configuration.md`, "Leader locks".

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::model::LockConfig;
use crate::discovery::lock::{HolderValue, LockEvent, LockSpec};
use crate::discovery::{Discovery, ServiceRegistration};
use crate::events::{Bus, Event, EventCode};

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

type Table = Arc<Mutex<BTreeMap<String, Standing>>>;

/// The running locks.
pub(crate) struct Locks {
    running: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
    table: Table,
}

impl Locks {
    /// Starts one task per lock. `service_of` gives a job's advertisement: a lock tied
    /// to a job writes that instance's ID and address and links its session to the
    /// service's check; `hostname` identifies the instance otherwise.
    pub(crate) fn start<'s>(
        configs: &[LockConfig],
        discovery: &Arc<Discovery>,
        bus: &Bus,
        service_of: impl Fn(&str) -> Option<&'s ServiceRegistration>,
        hostname: &str,
    ) -> Locks {
        let table: Table = Arc::default();
        let running = configs
            .iter()
            .map(|config| {
                let service = config.job.as_deref().and_then(&service_of);
                let spec = lock_spec(config, service, hostname);
                spawn(spec, discovery.clone(), bus.clone(), table.clone())
            })
            .collect();
        Locks { running, table }
    }

    /// Releases every held lock (and closes every session), waiting at most
    /// [`RELEASE_TIMEOUT`]: run before the services are deregistered.
    pub(crate) async fn release_all(self) {
        let tasks: Vec<JoinHandle<()>> = self
            .running
            .into_iter()
            .map(|(stop, task)| {
                let _ = stop.send(());
                task
            })
            .collect();
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(RELEASE_TIMEOUT, all).await.is_err() {
            tracing::warn!("locks not released within {RELEASE_TIMEOUT:?}: they free when their sessions expire");
        }
    }

    /// `{"<name>": {"holding": bool, "since": "<RFC 3339>", "holder": <value>}}` for
    /// `--status`: `since` while this instance holds the lock, `holder` (what the holder
    /// wrote: its ID and address) while another one does.
    pub(crate) fn status(&self) -> Value {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table
            .iter()
            .map(|(name, standing)| {
                let entry = match standing {
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

fn spawn(
    spec: LockSpec,
    discovery: Arc<Discovery>,
    bus: Bus,
    table: Table,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel();
    let set = {
        let (table, name) = (table.clone(), spec.name.clone());
        move |standing| {
            let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
            table.insert(name.clone(), standing);
        }
    };
    set(Standing::Contending { holder: None });
    let task = tokio::spawn(async move {
        let source = format!("lock.{}", spec.name);
        let report = |event| match event {
            LockEvent::Acquired => {
                set(Standing::Holding {
                    since: SystemTime::now(),
                });
                bus.publish(Event::new(EventCode::Acquired, &source));
            }
            LockEvent::Lost(_) => {
                set(Standing::Contending { holder: None });
                bus.publish(Event::new(EventCode::Lost, &source));
            }
            // Stopping: no job should start on it.
            LockEvent::Released => set(Standing::Contending { holder: None }),
            LockEvent::HeldElsewhere(holder) => set(Standing::Contending {
                holder: Some(holder),
            }),
        };
        let stop = async {
            let _ = stopped.await;
        };
        discovery.run_lock(&spec, report, stop).await;
    });
    (stop, task)
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
