//! Discovery: advertising jobs in a service catalog and reading it back (docs/design.md, "Discovery").
//!
//! Owns the catalog backends ([`consul`] over Consul's HTTP API v1, [`etcd`] over etcd's v3
//! JSON gateway), the pure logic around them ([`watch`]: which events a watch result means;
//! [`outage`]: backoff and "one warning per outage") and IP selection ([`interfaces`]). It must
//! not run processes, publish events or own timers: the engine decides *when* to call, this
//! module only knows *how* to talk to the catalog.
//!
//! # How the engine uses it
//!
//! - Build one [`Discovery`] with [`Discovery::from_config`] and share it (`Arc<Discovery>`;
//!   every method takes `&self` and its future is `Send`).
//! - For each job with a `port`: pick its IP with [`interfaces::find_ip`] and build a
//!   [`ServiceRegistration`] with [`ServiceRegistration::for_job`].
//! - Jobs with an `initial_status` call [`Discovery::register`] at start; the others call it
//!   on their first passing check. Later passing checks call [`Discovery::pass`] (which
//!   re-registers by itself if the catalog forgot the service); a failing check calls
//!   [`Discovery::mark_critical`]. On shutdown, [`Discovery::deregister`] before signalling.
//! - Maintenance: [`Discovery::enter_maintenance`] deregisters every service and the engine
//!   stops heartbeats; [`Discovery::exit_maintenance`] re-registers the services that have an
//!   initial status, and the engine treats the others as unregistered again (they come back
//!   at their first passing check, as at startup).
//! - Each watch keeps a [`watch::WatchState`] and loops: [`Discovery::healthy_instances`] with
//!   `state.index()` (0 on the first call: answers at once), then `state.update(result)` gives
//!   the events to publish. The watch's `interval` is both the blocking wait and the minimum
//!   gap between two events (the engine enforces the gap).
//! - Any call may fail: the error is returned and the outage is logged here (one warning per
//!   outage, one line on recovery). Loops that must retry (registration, watches) wait
//!   [`outage::Backoff::next_delay`] between attempts; heartbeats just try again next check.

pub(crate) mod consul;
pub(crate) mod etcd;
mod http;
pub(crate) mod interfaces;
pub(crate) mod kv;
pub(crate) mod lock;
pub(crate) mod outage;
mod reads;
pub(crate) mod watch;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::config::model::{CheckStatus, Config, EtcdConfig, JobConfig, WatchConfig};

pub(crate) use consul::ConsulBackend;
pub use consul::ConsulSettings;
pub(crate) use etcd::EtcdBackend;
pub use http::Transport;
pub(crate) use reads::Read;

use outage::{CallKind, OutageLog};

/// How long the telemetry service's TTL is (docs/design.md, "Discovery").
pub(crate) const TELEMETRY_TTL: Duration = Duration::from_secs(15);
/// How often the telemetry service heartbeats (docs/design.md, "Discovery").
pub(crate) const TELEMETRY_HEARTBEAT: Duration = Duration::from_secs(5);
/// The most check output sent to the catalog: the last 4 KiB.
pub const MAX_CHECK_OUTPUT: usize = 4096;

/// Everything the catalog needs to advertise one job.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRegistration {
    /// `<name>-<hostname>` (see [`service_id`]).
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub port: u16,
    pub address: IpAddr,
    /// The TTL of the service's check: it goes critical when no heartbeat arrives in time.
    pub ttl: Duration,
    /// The status to register with; `None` registers as passing.
    pub initial_status: Option<CheckStatus>,
    pub enable_tag_override: bool,
    pub deregister_critical_service_after: Option<Duration>,
}

impl ServiceRegistration {
    /// The registration of `job` at `address`, or `None` when the job has no `port`.
    ///
    /// The TTL is the job's `health.ttl`; a job without `health` (only the telemetry service
    /// may have a port without one) gets [`TELEMETRY_TTL`].
    pub fn for_job(job: &JobConfig, address: IpAddr, hostname: &str) -> Option<Self> {
        let port = job.port?;
        let ttl = job
            .health
            .as_ref()
            .map_or(TELEMETRY_TTL, |health| health.ttl);
        Some(ServiceRegistration {
            id: service_id(job.public_name(), hostname),
            name: job.public_name().to_string(),
            tags: job.tags.clone(),
            port,
            address,
            ttl,
            initial_status: job.initial_status,
            enable_tag_override: job.consul.enable_tag_override,
            deregister_critical_service_after: job.consul.deregister_critical_service_after,
        })
    }

    /// The status the service registers with.
    pub fn registration_status(&self) -> CheckStatus {
        self.initial_status.unwrap_or(CheckStatus::Passing)
    }
}

/// The catalog ID of a service: `<name>-<hostname>`, as ContainerPilot did.
pub(crate) fn service_id(name: &str, hostname: &str) -> String {
    format!("{name}-{hostname}")
}

/// This machine's (container's) hostname, for [`service_id`].
pub(crate) fn hostname() -> std::io::Result<String> {
    let name = nix::unistd::gethostname().map_err(std::io::Error::from)?;
    Ok(name.to_string_lossy().into_owned())
}

/// One healthy instance of a service, as a watch compares them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instance {
    pub id: String,
    pub address: String,
    pub port: u16,
}

/// The answer to a health query: the healthy instances and the index to block on next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthyInstances {
    pub instances: Vec<Instance>,
    /// Consul's `X-Consul-Index`, or etcd's revision.
    pub index: u64,
}

/// Why a catalog call failed. Never contains the ACL token.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No answer from `peer` (`host:port`), for the reason `cause` says.
    #[error("{backend} at {peer} is unreachable during {operation}: {cause}")]
    Unreachable {
        backend: &'static str,
        operation: &'static str,
        peer: String,
        cause: Transport,
    },
    /// A 403: the ACL token is missing, unknown or lacks a permission. A
    /// configuration error, not an outage: retrying will not fix it.
    #[error(
        "{backend} denied {operation} (403 {body}): the ACL token in {setting} is missing, \
         unknown or lacks the permission"
    )]
    Forbidden {
        backend: &'static str,
        operation: &'static str,
        /// Where the token comes from (never its value).
        setting: &'static str,
        body: String,
    },
    /// An answer other than 2xx.
    #[error("{backend} answered {status} to {operation}: {body}")]
    Rejected {
        backend: &'static str,
        operation: &'static str,
        status: u16,
        body: String,
    },
    /// A 2xx answer we could not understand.
    #[error("{backend} sent an unreadable answer to {operation}: {reason}")]
    InvalidResponse {
        backend: &'static str,
        operation: &'static str,
        reason: String,
    },
    /// A setting (config or environment) that cannot be used.
    #[error("{setting}: {reason}")]
    Settings {
        setting: &'static str,
        reason: String,
    },
}

/// The catalog autopilot talks to, shared by every job and watch.
#[derive(Debug)]
pub struct Discovery {
    backend: Backend,
    outage: Mutex<OutageLog>,
}

/// An enum rather than a trait object: two backends, no dynamic dispatch needed, and the
/// futures stay `Send` without boxing.
#[derive(Debug)]
enum Backend {
    Consul(ConsulBackend),
    Etcd(EtcdBackend),
}

impl Discovery {
    /// The backend the configuration names: etcd when `etcd` is configured, else Consul when
    /// `consul` is, else none. Consul settings come from the config and the process
    /// environment (`CONSUL_HTTP_ADDR`, ...).
    pub fn from_config(config: &Config) -> Result<Option<Discovery>, DiscoveryError> {
        if let Some(etcd) = &config.etcd {
            return Discovery::etcd(etcd).map(Some);
        }
        match &config.consul {
            Some(consul) => {
                let settings =
                    ConsulSettings::resolve(Some(consul), |name| std::env::var(name).ok())?;
                Discovery::consul(settings).map(Some)
            }
            None => Ok(None),
        }
    }

    pub fn consul(settings: ConsulSettings) -> Result<Discovery, DiscoveryError> {
        Ok(Discovery::with_backend(Backend::Consul(
            ConsulBackend::new(settings)?,
        )))
    }

    pub fn etcd(config: &EtcdConfig) -> Result<Discovery, DiscoveryError> {
        Ok(Discovery::with_backend(Backend::Etcd(EtcdBackend::new(
            config,
        )?)))
    }

    fn with_backend(backend: Backend) -> Discovery {
        Discovery {
            backend,
            outage: Mutex::new(OutageLog::default()),
        }
    }

    /// Advertises the service with its initial status (passing when it has none).
    pub async fn register(&self, service: &ServiceRegistration) -> Result<(), DiscoveryError> {
        self.observe(CallKind::Agent, async {
            match &self.backend {
                Backend::Consul(consul) => consul.register(service).await,
                Backend::Etcd(etcd) => etcd.register(service).await,
            }
        })
        .await
    }

    /// A passing check: renews the TTL. If the catalog no longer knows the service (agent
    /// restarted, lease expired), registers it again and retries once.
    pub async fn pass(
        &self,
        service: &ServiceRegistration,
        output: &str,
    ) -> Result<(), DiscoveryError> {
        self.observe(CallKind::Agent, async {
            match &self.backend {
                Backend::Consul(consul) => consul.pass(service, check_output_tail(output)).await,
                Backend::Etcd(etcd) => etcd.pass(service).await,
            }
        })
        .await
    }

    /// **\[beyond\]** A failing check: the service goes critical at once (Consul: check status
    /// critical with the last 4 KiB of `output`; etcd: the instance disappears).
    pub async fn mark_critical(
        &self,
        service: &ServiceRegistration,
        output: &str,
    ) -> Result<(), DiscoveryError> {
        self.observe(CallKind::Agent, async {
            match &self.backend {
                Backend::Consul(consul) => {
                    consul
                        .mark_critical(service, check_output_tail(output))
                        .await
                }
                Backend::Etcd(etcd) => etcd.withdraw(service).await,
            }
        })
        .await
    }

    /// Removes the service from the catalog.
    pub async fn deregister(&self, service: &ServiceRegistration) -> Result<(), DiscoveryError> {
        self.observe(CallKind::Agent, async {
            match &self.backend {
                Backend::Consul(consul) => consul.deregister(service).await,
                Backend::Etcd(etcd) => etcd.withdraw(service).await,
            }
        })
        .await
    }

    /// Deregisters every service (concurrently). Tries them all; returns the first error.
    pub async fn enter_maintenance(
        &self,
        services: &[ServiceRegistration],
    ) -> Result<(), DiscoveryError> {
        let results = join_all(services.iter().map(|s| self.deregister(s))).await;
        results.into_iter().collect()
    }

    /// Registers again (concurrently) the services that have an initial status; the others
    /// come back at their first passing check (the engine calls [`Discovery::register`]
    /// then, as at startup). Tries them all; returns the first error.
    pub async fn exit_maintenance(
        &self,
        services: &[ServiceRegistration],
    ) -> Result<(), DiscoveryError> {
        let with_status = services.iter().filter(|s| s.initial_status.is_some());
        let results = join_all(with_status.map(|s| self.register(s))).await;
        results.into_iter().collect()
    }

    /// The healthy instances of the watched service (with its `tag` and `dc`). With
    /// `index > 0` the call blocks until the catalog changes past `index` or the watch's
    /// `interval` passes; with 0 it answers at once.
    pub async fn healthy_instances(
        &self,
        watch: &WatchConfig,
        index: u64,
    ) -> Result<HealthyInstances, DiscoveryError> {
        self.observe(CallKind::Query, async {
            match &self.backend {
                Backend::Consul(consul) => consul.healthy_instances(watch, index).await,
                Backend::Etcd(etcd) => etcd.healthy_instances(watch, index).await,
            }
        })
        .await
    }

    /// Makes the call and records its outcome for the outage log; passes the result through.
    async fn observe<T>(
        &self,
        kind: CallKind,
        call: impl Future<Output = Result<T, DiscoveryError>>,
    ) -> Result<T, DiscoveryError> {
        let sent = Instant::now();
        let result = call.await;
        let mut outage = self.outage.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(_) => drop(outage.succeeded(kind, sent)),
            Err(error) => drop(outage.failed(kind, error)),
        }
        result
    }
}

/// The engine spawns these futures on its runtime, so they must be `Send`: checked at
/// compile time.
const _: () = {
    fn send<T: Send>(_: T) {}
    #[allow(dead_code)]
    fn futures_are_send(d: &Discovery, s: &ServiceRegistration, w: &WatchConfig) {
        send(d.register(s));
        send(d.pass(s, ""));
        send(d.mark_critical(s, ""));
        send(d.deregister(s));
        send(d.enter_maintenance(&[]));
        send(d.exit_maintenance(&[]));
        send(d.healthy_instances(w, 0));
    }
};

/// The last [`MAX_CHECK_OUTPUT`] bytes of `output`, cut at a character boundary.
pub(crate) fn check_output_tail(output: &str) -> &str {
    let mut start = output.len().saturating_sub(MAX_CHECK_OUTPUT);
    while !output.is_char_boundary(start) {
        start += 1;
    }
    &output[start..]
}

/// A duration in Go's syntax, as Consul parses it: whole seconds as `"10s"`, else
/// milliseconds or nanoseconds.
fn go_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{}ns", duration.as_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{
        HealthCheck, HealthConfig, JobConsulExtras, JobRole, Restarts, When,
    };

    #[test]
    fn output_tail_keeps_the_last_4_kib_on_a_char_boundary() {
        assert_eq!(check_output_tail("short"), "short");
        let long = format!("{}{}", "x".repeat(10), "y".repeat(MAX_CHECK_OUTPUT));
        assert_eq!(check_output_tail(&long), "y".repeat(MAX_CHECK_OUTPUT));
        // 'é' is two bytes: a cut through it moves forward to the next character.
        let multibyte = format!("é{}", "z".repeat(MAX_CHECK_OUTPUT - 1));
        assert_eq!(
            check_output_tail(&multibyte),
            "z".repeat(MAX_CHECK_OUTPUT - 1)
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(go_duration(Duration::from_nanos(1_000_001)), "1000001ns");
    }

    fn job(port: Option<u16>, health: Option<HealthConfig>) -> JobConfig {
        JobConfig {
            name: "web".to_string(),
            shared_name: None,
            role: JobRole::Plain,
            exec: None,
            logging_raw: false,
            when: When::default(),
            timeout: None,
            stop_timeout: Duration::from_secs(5),
            restarts: Restarts::Never,
            health,
            port,
            initial_status: Some(CheckStatus::Warning),
            tags: vec!["a".to_string()],
            interfaces: vec!["eth0:inet".to_string()],
            consul: JobConsulExtras {
                enable_tag_override: true,
                deregister_critical_service_after: Some(Duration::from_secs(60)),
            },
            stop_signal: 15,
            kill_timeout: Duration::from_secs(5),
            restart_delay: Duration::ZERO,
            primary: false,
            render: None,
        }
    }

    #[test]
    fn registration_of_a_job() {
        let health = HealthConfig {
            check: HealthCheck::Tcp("127.0.0.1:80".to_string()),
            interval: Duration::from_secs(3),
            ttl: Duration::from_secs(7),
            timeout: Some(Duration::from_secs(3)),
            start_period: Duration::from_secs(7),
            logging_raw: false,
        };
        let address: IpAddr = "10.0.0.5".parse().unwrap();
        let registration =
            ServiceRegistration::for_job(&job(Some(80), Some(health)), address, "h1").unwrap();
        assert_eq!(
            registration,
            ServiceRegistration {
                id: "web-h1".to_string(),
                name: "web".to_string(),
                tags: vec!["a".to_string()],
                port: 80,
                address,
                ttl: Duration::from_secs(7),
                initial_status: Some(CheckStatus::Warning),
                enable_tag_override: true,
                deregister_critical_service_after: Some(Duration::from_secs(60)),
            }
        );
        let telemetry = ServiceRegistration::for_job(&job(Some(9090), None), address, "h1");
        assert_eq!(telemetry.unwrap().ttl, TELEMETRY_TTL);
        assert_eq!(
            ServiceRegistration::for_job(&job(None, None), address, "h1"),
            None
        );
    }

    #[test]
    fn service_id_is_name_dash_hostname() {
        assert_eq!(service_id("app", "4f2a9c"), "app-4f2a9c");
    }
}
