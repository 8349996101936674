//! A run generation: everything one configuration started, apart from its
//! jobs' tasks — the discovery backend, the advertised services, the watches
//! (of services and **\[beyond\]** of KV keys), **\[beyond\]** the leader locks,
//! the telemetry server and its metrics, the control socket, and the
//! configuration itself.
//!
//! A reload [`prepare`](Generation::prepare)s the next generation beside the
//! running one, reusing every piece whose configuration did not change and
//! binding what is new (a telemetry port in use, a control socket that cannot
//! be created, an unreadable TLS file fail here, while the old generation
//! runs untouched). Only a prepared generation
//! is [`commit`](Prepared::commit)ted: the pieces that changed are started,
//! the old ones they replace cancelled. Every task a generation starts runs
//! in the run's one [`Tasks`] (one cancellation tree, one tracker), so a
//! piece is retired by cancelling its token and shutdown by cancelling the root.
//!
//! This module owns building, diffing and retiring those pieces; the jobs'
//! diff belongs to the supervisor, a job's life to [`crate::jobs`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::model::{Config, ControlConfig, KvWatchConfig, TelemetryConfig, WatchConfig};
use crate::control::{self, SocketFile};
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
    /// What the control socket serves, wherever it is.
    pub control_api: control::Api,
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
    control: Option<ControlSocket>,
    watches: BTreeMap<String, Watch<WatchConfig>>,
    /// **\[beyond\]** The KV watches, by name.
    kv_watches: BTreeMap<String, Watch<KvWatchConfig>>,
    /// **\[beyond\]** The leader locks, until shutdown takes them to release them.
    pub locks: Option<Locks>,
}

/// What a running generation hands to the next one at commit: the pieces
/// the next one keeps, moves or retires.
#[derive(Default)]
struct HandOver {
    control: Option<ControlSocket>,
    telemetry: Option<Telemetry>,
    watches: BTreeMap<String, Watch<WatchConfig>>,
    kv_watches: BTreeMap<String, Watch<KvWatchConfig>>,
    discovery: Option<Arc<Discovery>>,
    locks: Option<Locks>,
}

impl Generation {
    fn hand_over(&mut self) -> HandOver {
        HandOver {
            control: self.control.take(),
            telemetry: self.telemetry.take(),
            watches: std::mem::take(&mut self.watches),
            kv_watches: std::mem::take(&mut self.kv_watches),
            discovery: self.discovery.clone(),
            locks: self.locks.take(),
        }
    }
}

/// The `/metrics` server of one telemetry configuration.
struct Telemetry {
    config: TelemetryConfig,
    metrics: Metrics,
    stop: CancellationToken,
}

/// The control socket of one `control` configuration. Dropping it closes
/// the socket and removes its file; the connections it accepted run on.
struct ControlSocket {
    config: ControlConfig,
    stop: CancellationToken,
    _file: SocketFile,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What a commit replaced and must outlive the reload's answer: the old
/// control socket, which may be carrying it. Dropped once it is sent.
pub(crate) struct Retired {
    _control: Option<ControlSocket>,
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
    /// `CONTAINERPILOT_<JOB>_IP` of every job with a `port`, set only at
    /// commit: a reload that fails must leave the jobs' environment as it was.
    addresses: Vec<(String, IpAddr)>,
    telemetry: TelemetryPlan,
    control: ControlPlan,
    hostname: String,
}

/// What becomes of the control socket.
enum ControlPlan {
    /// None configured, or the default path is unavailable (warned about).
    None,
    /// The configuration did not change: the running socket stays.
    Keep,
    /// A new socket, already bound.
    Start {
        config: ControlConfig,
        listener: tokio::net::UnixListener,
        file: SocketFile,
    },
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
        previous: Option<&Generation>,
    ) -> Result<Prepared, StartError> {
        let hostname = discovery::hostname()?;
        let (services, addresses) = advertised_services(&config, &hostname)?;
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
        let running = previous.and_then(|previous| previous.control.as_ref());
        let control = match (&config.control, running) {
            (None, _) => ControlPlan::None,
            (Some(wanted), Some(running)) if *wanted == running.config => ControlPlan::Keep,
            (Some(wanted), _) => match control::bind(wanted)? {
                Some((listener, file)) => ControlPlan::Start {
                    config: wanted.clone(),
                    listener,
                    file,
                },
                None => ControlPlan::None,
            },
        };
        Ok(Prepared {
            config,
            discovery,
            services,
            addresses,
            telemetry,
            control,
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
    /// replaced; returns the new running generation, and what must go only
    /// once the reload is answered.
    pub(super) fn commit(
        self,
        previous: Option<&mut Generation>,
        ground: &Ground,
    ) -> (Generation, Retired) {
        for (variable, address) in &self.addresses {
            ground.env.set(variable, Some(&address.to_string()));
        }
        let mut old = previous.map(Generation::hand_over).unwrap_or_default();
        let control = match self.control {
            ControlPlan::None => None,
            ControlPlan::Keep => old.control.take(),
            ControlPlan::Start {
                config,
                listener,
                file,
            } => Some(ControlSocket {
                stop: control::serve(listener, ground.control_api.clone(), &ground.tasks),
                config,
                _file: file,
            }),
        };
        let telemetry = match self.telemetry {
            TelemetryPlan::None => None,
            TelemetryPlan::Keep => old.telemetry.take(),
            TelemetryPlan::Start {
                config,
                metrics,
                listener,
                address,
            } => {
                let stop = telemetry::serve(
                    listener,
                    metrics.clone(),
                    ground.status.clone(),
                    &ground.tasks,
                );
                tracing::info!("telemetry: serving /metrics and /status on {address}");
                Some(Telemetry {
                    config,
                    metrics,
                    stop,
                })
            }
        };
        if let Some(replaced) = old.telemetry {
            replaced.stop.cancel();
        }
        ground
            .metrics
            .send_replace(telemetry.as_ref().map(|t| t.metrics.clone()));
        let same_discovery = match (&old.discovery, &self.discovery) {
            (Some(old), Some(new)) => Arc::ptr_eq(old, new),
            _ => false,
        };
        let watches = rewatch(
            &self.config.watches,
            |watch| &watch.name,
            old.watches,
            same_discovery,
            |config| start_watch(config, self.discovery.as_ref(), ground),
        );
        ground
            .watched
            .send_modify(|latest| latest.retain(|name, _| watches.contains_key(name)));
        let kv_watches = rewatch(
            &self.config.kv_watches,
            |watch| &watch.name,
            old.kv_watches,
            same_discovery,
            |config| start_kv_watch(config, self.discovery.as_ref(), ground),
        );
        let locks = Locks::follow(
            old.locks,
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
        let generation = Generation {
            config: self.config,
            started_at: SystemTime::now(),
            discovery: self.discovery,
            services: self.services,
            telemetry,
            control,
            watches,
            kv_watches,
            locks,
        };
        let retired = Retired {
            _control: old.control,
        };
        (generation, retired)
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

/// What every job that has a `port` advertises.
type Advertised = (HashMap<String, ServiceRegistration>, Vec<(String, IpAddr)>);

/// The catalog registration of every job that has a `port`, with its IP
/// chosen from its `interfaces`, and that IP as `CONTAINERPILOT_<JOB>_IP`
/// for [`Prepared::commit`] to publish.
fn advertised_services(config: &Config, hostname: &str) -> Result<Advertised, StartError> {
    let mut services = HashMap::new();
    let mut addresses = Vec::new();
    for job in config.jobs.iter().filter(|job| job.port.is_some()) {
        let address = find_ip(&job.interfaces).map_err(|source| StartError::Interfaces {
            job: job.name.clone(),
            source,
        })?;
        addresses.push((job_variable(job.public_name(), "IP"), address));
        if let Some(service) = ServiceRegistration::for_job(job, address, hostname) {
            services.insert(job.name.clone(), service);
        }
    }
    Ok((services, addresses))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, Origin};

    fn config(text: &str) -> Config {
        load_str(text, &Origin::Inline, None, &Default::default())
            .expect("a valid configuration")
            .config
    }

    fn ground() -> Ground {
        let metrics = watch::Sender::new(None);
        Ground {
            tasks: Tasks::default(),
            bus: Bus::default(),
            env: Environment::from_process(),
            watched: watch::Sender::new(BTreeMap::new()),
            metrics: metrics.clone(),
            status: Arc::new(|| Box::pin(async { None })),
            control_api: control::Api {
                env: Environment::from_process(),
                requests: tokio::sync::mpsc::unbounded_channel().0,
                metrics: metrics.subscribe(),
            },
        }
    }

    fn ip_of(ground: &Ground, job: &str) -> Option<std::ffi::OsString> {
        let variable = job_variable(job, "IP");
        ground
            .env
            .snapshot()
            .remove(std::ffi::OsStr::new(&variable))
    }

    #[tokio::test]
    async fn a_failed_reload_leaves_the_jobs_environment_as_it_was() {
        let ground = ground();
        let mut running = Generation::prepare(
            config(r#"{ jobs: [{ name: "main", exec: "true" }] }"#),
            None,
        )
        .expect("the first generation builds")
        .commit(None, &ground)
        .0;
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let reloaded = config(&format!(
            r#"{{ telemetry: {{ port: {port}, interfaces: ["lo"] }},
                 jobs: [{{ name: "web", exec: "true", port: 80, interfaces: ["lo"],
                          health: {{ exec: "true", interval: 1, ttl: 5 }} }}] }}"#
        ));
        let failed = Generation::prepare(reloaded.clone(), Some(&running));
        assert!(matches!(failed, Err(StartError::TelemetryListen { .. })));
        assert_eq!(ip_of(&ground, "web"), None, "a failed reload sets nothing");
        drop(taken);
        let prepared = Generation::prepare(reloaded, Some(&running)).expect("the port is free now");
        assert_eq!(ip_of(&ground, "web"), None, "preparing sets nothing");
        running = prepared.commit(Some(&mut running), &ground).0;
        assert_eq!(
            ip_of(&ground, "web"),
            Some("127.0.0.1".into()),
            "commit publishes it"
        );
        drop(running);
        ground.tasks.shut_down().await;
    }
}
