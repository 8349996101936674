//! A run generation: everything one configuration started, apart from its
//! jobs' tasks — the discovery backend, the advertised services, the watches
//! (of services and **\[beyond\]** of KV keys), **\[beyond\]** the leader locks,
//! the telemetry server and its metrics, and the configuration itself.
//!
//! A reload [`prepare`](Generation::prepare)s the next generation beside the
//! running one, reusing every piece whose configuration did not change and
//! binding what is new (a telemetry port in use, an unreadable TLS file fail
//! here, while the old generation runs untouched). Only a prepared generation
//! is [`commit`](Prepared::commit)ted: the pieces that changed are started,
//! the old ones they replace cancelled. Every task a generation starts runs
//! in the run's one [`Tasks`] (one cancellation tree, one tracker), so a
//! piece is retired by cancelling its token and shutdown by cancelling the root.
//!
//! This module owns building, diffing and retiring those pieces; the jobs'
//! diff belongs to the supervisor, a job's life to [`crate::jobs`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::model::{Config, KvWatchConfig, TelemetryConfig, WatchConfig};
use crate::discovery::interfaces::find_ip;
use crate::discovery::{self, Discovery, ServiceRegistration};
use crate::environment::{job_variable, Environment};
use crate::events::Bus;
use crate::jobs::Advertisement;
use crate::kv_watches;
use crate::locks::{self, Locks};
use crate::tasks::Tasks;
use crate::telemetry::{self, Metrics};
use crate::watches::{self, LatestInstances};

use super::StartError;

/// What the generations share: where their tasks run and what they feed.
pub(crate) struct Ground {
    /// Every piece's task runs here, under its own token.
    pub tasks: Tasks,
    pub bus: Bus,
    pub env: Environment,
    /// What each watch saw last.
    pub watched: LatestInstances,
    /// The current telemetry registry, for everyone who records into it.
    pub metrics: watch::Sender<Option<Metrics>>,
    /// ContainerPilot's `/status` document, served beside `/metrics`.
    pub status: telemetry::StatusQuery,
}

/// The running configuration and what it started.
pub(crate) struct Generation {
    pub config: Config,
    /// When this configuration took over (shown by `--status`).
    pub started_at: SystemTime,
    pub discovery: Option<Arc<Discovery>>,
    /// Each advertised job's catalog registration, by job name.
    pub services: HashMap<String, ServiceRegistration>,
    telemetry: Option<Telemetry>,
    watches: BTreeMap<String, Watch<WatchConfig>>,
    /// **\[beyond\]** The KV watches, by name.
    kv_watches: BTreeMap<String, Watch<KvWatchConfig>>,
    /// **\[beyond\]** The leader locks, until shutdown takes them to release them.
    pub locks: Option<Locks>,
}

/// The `/metrics` server of one telemetry configuration.
struct Telemetry {
    config: TelemetryConfig,
    metrics: Metrics,
    stop: CancellationToken,
}

/// One watch's task: a service watch, or a KV watch **\[beyond\]**.
struct Watch<C> {
    config: C,
    stop: CancellationToken,
}

/// A generation built but not yet running.
pub(crate) struct Prepared {
    config: Config,
    discovery: Option<Arc<Discovery>>,
    services: HashMap<String, ServiceRegistration>,
    telemetry: TelemetryPlan,
    hostname: String,
}

/// What becomes of the telemetry server.
enum TelemetryPlan {
    None,
    /// The configuration did not change: the running server stays.
    Keep,
    /// A new server, already bound.
    Start {
        config: TelemetryConfig,
        metrics: Metrics,
        listener: tokio::net::TcpListener,
        address: SocketAddr,
    },
}

impl Generation {
    /// Builds everything `config` needs that can fail, reusing what
    /// `previous` already runs where the configuration is unchanged.
    /// Nothing runs and nothing of `previous` changes until
    /// [`Prepared::commit`].
    pub(super) fn prepare(
        config: Config,
        env: &Environment,
        previous: Option<&Generation>,
    ) -> Result<Prepared, StartError> {
        let hostname = discovery::hostname()?;
        let services = advertised_services(&config, env, &hostname)?;
        let discovery = match previous {
            Some(previous) if same_catalog(&previous.config, &config) => previous.discovery.clone(),
            _ => Discovery::from_config(&config)?.map(Arc::new),
        };
        let running = previous.and_then(|previous| previous.telemetry.as_ref());
        let telemetry = match (&config.telemetry, running) {
            (None, _) => TelemetryPlan::None,
            (Some(wanted), Some(running)) if *wanted == running.config => TelemetryPlan::Keep,
            (Some(wanted), running) => {
                // The counters survive a move to another address.
                let metrics = match running {
                    Some(running) if running.config.metrics == wanted.metrics => {
                        running.metrics.clone()
                    }
                    _ => Metrics::new(&wanted.metrics)?,
                };
                bind_telemetry(wanted, metrics)?
            }
        };
        Ok(Prepared {
            config,
            discovery,
            services,
            telemetry,
            hostname,
        })
    }

    /// The advertisement of `job`, when it has a service and there is a catalog.
    pub(super) fn advertisement(&self, job: &str) -> Option<Advertisement> {
        Some(Advertisement {
            service: self.services.get(job)?.clone(),
            discovery: self.discovery.clone()?,
        })
    }
}

impl Prepared {
    /// Starts what changed and retires what `previous` ran that is gone or
    /// replaced; returns the new running generation.
    pub(super) fn commit(self, previous: Option<&mut Generation>, ground: &Ground) -> Generation {
        let (mut old_telemetry, old_watches, old_kv_watches, old_discovery, old_locks) =
            match previous {
                Some(previous) => (
                    previous.telemetry.take(),
                    std::mem::take(&mut previous.watches),
                    std::mem::take(&mut previous.kv_watches),
                    previous.discovery.clone(),
                    previous.locks.take(),
                ),
                None => (None, BTreeMap::new(), BTreeMap::new(), None, None),
            };
        let telemetry = match self.telemetry {
            TelemetryPlan::None => None,
            TelemetryPlan::Keep => old_telemetry.take(),
            TelemetryPlan::Start {
                config,
                metrics,
                listener,
                address,
            } => {
                let server = telemetry::serve(listener, metrics.clone(), ground.status.clone());
                // The server is its own task: stop it when its token is cancelled.
                let stop = ground.tasks.spawn(async move {
                    let _server = AbortOnDrop(server);
                    std::future::pending::<()>().await
                });
                tracing::info!("telemetry: serving /metrics and /status on {address}");
                Some(Telemetry {
                    config,
                    metrics,
                    stop,
                })
            }
        };
        if let Some(old) = old_telemetry {
            old.stop.cancel();
        }
        ground
            .metrics
            .send_replace(telemetry.as_ref().map(|t| t.metrics.clone()));
        let same_discovery = match (&old_discovery, &self.discovery) {
            (Some(old), Some(new)) => Arc::ptr_eq(old, new),
            _ => false,
        };
        let watches = rewatch(
            &self.config.watches,
            |watch| &watch.name,
            old_watches,
            same_discovery,
            |config| start_watch(config, self.discovery.as_ref(), ground),
        );
        ground
            .watched
            .send_modify(|latest| latest.retain(|name, _| watches.contains_key(name)));
        let kv_watches = rewatch(
            &self.config.kv_watches,
            |watch| &watch.name,
            old_kv_watches,
            same_discovery,
            |config| start_kv_watch(config, self.discovery.as_ref(), ground),
        );
        let locks = Locks::follow(
            old_locks,
            &self.config.locks,
            self.discovery.as_ref(),
            |job| self.services.get(job),
            &self.hostname,
            &locks::Ground {
                tasks: &ground.tasks,
                bus: &ground.bus,
                metrics: &ground.metrics,
            },
        );
        if self.discovery.is_none()
            && !(self.config.watches.is_empty() && self.config.kv_watches.is_empty())
        {
            tracing::warn!(
                "watches are configured but no catalog (consul or etcd): they will never fire"
            );
        }
        Generation {
            config: self.config,
            started_at: SystemTime::now(),
            discovery: self.discovery,
            services: self.services,
            telemetry,
            watches,
            kv_watches,
            locks,
        }
    }
}

/// Keeps each running watch whose configuration (and catalog) did not
/// change, starts the others, and cancels every old task it does not keep:
/// dropping a token cancels nothing.
fn rewatch<C: PartialEq>(
    configs: &[C],
    name: impl Fn(&C) -> &String,
    mut old: BTreeMap<String, Watch<C>>,
    same_discovery: bool,
    mut start: impl FnMut(&C) -> Watch<C>,
) -> BTreeMap<String, Watch<C>> {
    let mut watches = BTreeMap::new();
    for config in configs {
        let watch = match old.remove(name(config)) {
            Some(kept) if same_discovery && kept.config == *config => kept,
            Some(replaced) => {
                replaced.stop.cancel();
                start(config)
            }
            None => start(config),
        };
        watches.insert(name(config).clone(), watch);
    }
    for gone in old.into_values() {
        gone.stop.cancel();
    }
    watches
}

/// Starts one watch's task (a watch with no catalog is listed, never asked).
fn start_watch(
    config: &WatchConfig,
    discovery: Option<&Arc<Discovery>>,
    ground: &Ground,
) -> Watch<WatchConfig> {
    // Listed at once (with no instances until it answers), so templates and
    // `--status` know every watch.
    ground.watched.send_modify(|latest| {
        latest.insert(config.name.clone(), Vec::new());
    });
    let stop = match discovery {
        Some(discovery) => ground.tasks.spawn(watches::run(
            config.clone(),
            discovery.clone(),
            ground.bus.clone(),
            ground.watched.clone(),
            ground.metrics.subscribe(),
        )),
        None => CancellationToken::new(),
    };
    Watch {
        config: config.clone(),
        stop,
    }
}

/// Starts one KV watch's task **\[beyond\]** (with no catalog, none).
fn start_kv_watch(
    config: &KvWatchConfig,
    discovery: Option<&Arc<Discovery>>,
    ground: &Ground,
) -> Watch<KvWatchConfig> {
    let stop = match discovery {
        Some(discovery) => ground.tasks.spawn(kv_watches::run(
            config.clone(),
            discovery.clone(),
            ground.bus.clone(),
            ground.env.clone(),
        )),
        None => CancellationToken::new(),
    };
    Watch {
        config: config.clone(),
        stop,
    }
}

/// Do two configurations name the same catalog with the same settings?
fn same_catalog(old: &Config, new: &Config) -> bool {
    old.consul == new.consul && old.etcd == new.etcd
}

/// The catalog registration of every job that has a `port`, with its IP
/// chosen from its `interfaces`; also publishes `CONTAINERPILOT_<JOB>_IP`.
fn advertised_services(
    config: &Config,
    env: &Environment,
    hostname: &str,
) -> Result<HashMap<String, ServiceRegistration>, StartError> {
    let mut services = HashMap::new();
    for job in config.jobs.iter().filter(|job| job.port.is_some()) {
        let address = find_ip(&job.interfaces).map_err(|source| StartError::Interfaces {
            job: job.name.clone(),
            source,
        })?;
        env.set(
            &job_variable(job.public_name(), "IP"),
            Some(&address.to_string()),
        );
        if let Some(service) = ServiceRegistration::for_job(job, address, hostname) {
            services.insert(job.name.clone(), service);
        }
    }
    Ok(services)
}

/// Binds the telemetry address for `metrics`. The socket
/// is bound with `SO_REUSEPORT`, so a reload that only changes the metrics
/// binds the same port again before the old server lets go of it; a port
/// another program holds still fails.
fn bind_telemetry(config: &TelemetryConfig, metrics: Metrics) -> Result<TelemetryPlan, StartError> {
    let ip = find_ip(&config.interfaces).map_err(|source| StartError::Interfaces {
        job: "containerpilot (telemetry)".to_string(),
        source,
    })?;
    let address = SocketAddr::new(ip, config.port);
    let listen = |source| StartError::TelemetryListen { address, source };
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(listen)?;
    socket.set_reuseaddr(true).map_err(listen)?;
    socket.set_reuseport(true).map_err(listen)?;
    socket.bind(address).map_err(listen)?;
    let listener = socket.listen(1024).map_err(listen)?;
    Ok(TelemetryPlan::Start {
        config: config.clone(),
        metrics,
        listener,
        address,
    })
}

/// Aborts a task spawned elsewhere when its holder is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
