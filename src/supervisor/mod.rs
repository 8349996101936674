//! The supervisor: autopilot's run loop as PID 1.
//!
//! It installs the reaper and the signal listener, opens the control socket,
//! starts one task per job, publishes `startup`, gives signals their meaning
//! (shutdown, signal events, reload, maintenance, forwarding to the APP's
//! process group), answers the control plane, runs the graceful shutdown,
//! and turns what the jobs report into autopilot's exit code (SPEC.md
//! sections 2, 7 and 9). It owns the top-level control flow and the exit
//! code; a job's own lifecycle belongs to [`crate::jobs`], spawning and
//! reaping to [`crate::process`] and [`crate::reaper`], the HTTP protocol to
//! [`crate::control`].

mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};

use crate::config::model::{Config, Format, JobConfig, JobRole, When, GLOBAL_SOURCE};
use crate::control::{self, Request, SignalOutcome, SocketFile};
use crate::discovery::interfaces::{find_ip, InterfaceError};
use crate::discovery::{self, Discovery, DiscoveryError, ServiceRegistration};
use crate::environment::{job_variable, Environment};
use crate::events::{Event, EventCode};
use crate::jobs::{self, JobSpec, Report, Shared, ShutdownState};
use crate::kv_watches;
use crate::locks::Locks;
use crate::logging::LogHandle;
use crate::process;
use crate::reaper::Reaper;
use crate::signals;
use crate::telemetry::{self, MetricError, Metrics};
use crate::watches;

use status::StatusBoard;

/// SIGTERMs and SIGINTs less than this apart are one burst, and one request
/// to stop: a signal storm (a script or an orchestrator signalling again and
/// again, `kill` from several places at once) must not cut the APP's cleanup
/// short. Only a shutdown signal that comes at least this long after the
/// previous one is a second request, which skips the remaining waits.
pub const SHUTDOWN_SIGNAL_BURST: Duration = Duration::from_secs(1);

/// Re-reads and validates the configuration (for reload); the error is the
/// message to show the user.
pub type Reloader = Box<dyn Fn() -> Result<Config, String>>;

/// Runs `config` to completion and returns autopilot's exit code.
pub fn run(config: Config, reloader: Option<Reloader>, log: LogHandle) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            crate::complain!("autopilot: cannot start the runtime: {error}");
            return 1;
        }
    };
    runtime.block_on(async {
        match Supervisor::start(config, reloader, log) {
            Ok(supervisor) => supervisor.run().await,
            Err(error) => {
                crate::complain!("autopilot: {error}");
                error.exit_code()
            }
        }
    })
}

/// Why the supervisor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot set up signal handling or reaping: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error("config error: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("config error: job {job:?}: interfaces: {source}")]
    Interfaces {
        job: String,
        #[source]
        source: InterfaceError,
    },
    #[error("config error: telemetry: {0}")]
    Metrics(#[from] MetricError),
    #[error("cannot serve telemetry on {address}: {source}")]
    TelemetryListen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl StartError {
    /// Configuration problems exit 2, like every config error found before
    /// anything runs; system failures exit 1.
    fn exit_code(&self) -> i32 {
        match self {
            StartError::Io(_) | StartError::TelemetryListen { .. } => 1,
            StartError::Control(_)
            | StartError::Discovery(_)
            | StartError::Interfaces { .. }
            | StartError::Metrics(_) => 2,
        }
    }
}

/// The exit codes that decide autopilot's own (SPEC.md section 2).
#[derive(Debug, Default)]
struct ExitCodes {
    app: Option<i32>,
    failed_pre_start: Option<i32>,
    failed_post_stop: Option<i32>,
    primary: Option<i32>,
}

impl ExitCodes {
    /// A failed postStop wins, then a failed preStart, then the APP's code,
    /// then the primary job's; otherwise 0.
    fn exit_code(&self) -> i32 {
        self.failed_post_stop
            .or(self.failed_pre_start)
            .or(self.app)
            .or(self.primary)
            .unwrap_or(0)
    }
}

/// A job whose task is running.
struct LiveJob {
    hook: bool,
    handle: jobs::Handle,
}

struct Supervisor {
    config: Config,
    reloader: Option<Reloader>,
    log: LogHandle,
    shared: Shared,
    /// Each advertised job's catalog registration, by job name.
    services: HashMap<String, ServiceRegistration>,
    maintenance_switch: watch::Sender<bool>,
    /// What each watch saw last; jobs read it to render templates.
    watched: watches::LatestInstances,
    signals: mpsc::UnboundedReceiver<Signal>,
    reports: mpsc::UnboundedReceiver<Report>,
    events: mpsc::UnboundedReceiver<Event>,
    requests: mpsc::UnboundedReceiver<Request>,
    shutdown: watch::Sender<ShutdownState>,
    /// Held for its `Drop`: the socket file is removed at exit.
    _socket: Option<SocketFile>,
    live: HashMap<String, LiveJob>,
    /// Jobs changed by a reload, started again once their old task finished.
    restart_after_stop: HashMap<String, JobConfig>,
    status: StatusBoard,
    app_pgid: Option<Pid>,
    codes: ExitCodes,
    maintenance: bool,
    shutting_down: bool,
    /// When the last SIGTERM or SIGINT arrived (see [`SHUTDOWN_SIGNAL_BURST`]).
    last_shutdown_signal: Option<Instant>,
    /// The leader locks, until shutdown releases them.
    locks: Option<Locks>,
}

impl Supervisor {
    /// Sets up reaping, signals and the control socket, and starts every
    /// job's task (they wait for `startup`).
    fn start(
        config: Config,
        reloader: Option<Reloader>,
        log: LogHandle,
    ) -> Result<Supervisor, StartError> {
        let env = Environment::from_process();
        let services = advertised_services(&config, &env)?;
        let discovery = Discovery::from_config(&config)?.map(Arc::new);
        let (request_sender, requests) = mpsc::unbounded_channel();
        let metrics = serve_telemetry(&config, status_query(request_sender.clone()))?;
        let reaper = Reaper::install()?;
        let signals = signals::listen(reaper.clone())?;
        let (report_sender, reports) = mpsc::unbounded_channel();
        let (shutdown, shutdown_receiver) = watch::channel(ShutdownState::default());
        let (maintenance_switch, maintenance) = watch::channel(false);
        // Every watch is listed from the start (with no instances until it
        // answers), so templates and `--status` know all of them.
        let (watched, watched_receiver) = watch::channel(
            config
                .watches
                .iter()
                .map(|w| (w.name.clone(), Vec::new()))
                .collect::<BTreeMap<_, _>>(),
        );
        let shared = Shared {
            reaper,
            bus: Default::default(),
            env,
            reports: report_sender,
            shutdown: shutdown_receiver,
            format: config.format,
            discovery,
            maintenance,
            metrics,
            watched: watched_receiver,
            in_catalog: Default::default(),
        };
        let bound = match &config.control {
            Some(control) => control::bind(control)?,
            None => None,
        };
        let socket = bound.map(|(listener, file)| {
            let api = control::Api {
                env: shared.env.clone(),
                requests: request_sender,
                metrics: shared.metrics.clone(),
            };
            control::serve(listener, api);
            file
        });
        let mut supervisor = Supervisor {
            events: shared.bus.subscribe(),
            config,
            reloader,
            log,
            shared,
            services,
            maintenance_switch,
            watched,
            signals,
            reports,
            requests,
            shutdown,
            _socket: socket,
            live: HashMap::new(),
            restart_after_stop: HashMap::new(),
            status: StatusBoard::default(),
            app_pgid: None,
            codes: ExitCodes::default(),
            maintenance: false,
            shutting_down: false,
            last_shutdown_signal: None,
            locks: None,
        };
        for job in supervisor.config.jobs.clone() {
            supervisor.start_job(job, false);
        }
        supervisor.start_watches();
        supervisor.locks = supervisor.start_locks()?;
        Ok(supervisor)
    }

    async fn run(mut self) -> i32 {
        self.shared
            .bus
            .publish(Event::new(EventCode::Startup, GLOBAL_SOURCE));
        self.check_all_regular_jobs_done();
        while !self.live.is_empty() {
            tokio::select! {
                Some(signal) = self.signals.recv() => self.on_signal(signal),
                Some(report) = self.reports.recv() => self.on_report(report),
                Some(event) = self.events.recv() => self.on_event(&event),
                Some(request) = self.requests.recv() => self.on_request(request),
            }
        }
        self.codes.exit_code()
    }

    fn on_event(&mut self, event: &Event) {
        self.status.on_event(event);
        if let Some(metrics) = &self.shared.metrics {
            metrics.event(event.code.as_str(), &event.source);
        }
    }

    fn start_job(&mut self, config: JobConfig, late: bool) {
        let hook = jobs::is_shutdown_hook(&config);
        self.status
            .add(&config.name, self.services.get(&config.name));
        let name = config.name.clone();
        let spec = JobSpec {
            dependents: jobs::stopping_dependents(config.public_name(), &self.config.jobs),
            service: self.services.get(&name).cloned(),
            config,
        };
        let handle = jobs::spawn(spec, self.shared.clone(), late);
        self.live.insert(name, LiveJob { hook, handle });
    }

    /// Starts one task per watch; they run until autopilot exits.
    fn start_watches(&self) {
        let Some(discovery) = &self.shared.discovery else {
            if !self.config.watches.is_empty() || !self.config.kv_watches.is_empty() {
                tracing::warn!(
                    "watches are configured but no catalog (consul or etcd): they will never fire"
                );
            }
            return;
        };
        for watch in &self.config.watches {
            watches::spawn(
                watch.clone(),
                discovery.clone(),
                self.shared.bus.clone(),
                self.watched.clone(),
                self.shared.metrics.clone(),
            );
        }
        for watch in &self.config.kv_watches {
            kv_watches::spawn(watch.clone(), discovery.clone(), self.shared.bus.clone());
        }
    }

    /// Starts the leader locks (the configuration guarantees a catalog when there are any).
    fn start_locks(&self) -> Result<Option<Locks>, StartError> {
        let (Some(discovery), false) = (&self.shared.discovery, self.config.locks.is_empty())
        else {
            return Ok(None);
        };
        let hostname = discovery::hostname()?;
        let service_of = |job: &str| self.services.get(job);
        Ok(Some(Locks::start(
            &self.config.locks,
            discovery,
            &self.shared.bus,
            service_of,
            &hostname,
        )))
    }

    // ---- signals ------------------------------------------------------

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::SIGTERM | Signal::SIGINT => self.on_shutdown_signal(signal),
            Signal::SIGHUP if self.config.format == Format::V2 => {
                if let Err(error) = self.reload() {
                    tracing::error!(
                        "reload on SIGHUP failed, keeping the old configuration: {error}"
                    );
                }
            }
            Signal::SIGUSR1 if self.config.format == Format::V2 => {
                self.set_maintenance(!self.maintenance);
            }
            Signal::SIGUSR1 if self.logs_to_file() => {
                if let Err(error) = self.log.reopen() {
                    tracing::error!("cannot reopen the log file: {error}");
                }
            }
            _ if self.listens_for(signal) => {
                self.shared
                    .bus
                    .publish(Event::new(EventCode::Signal, signal.as_str()));
            }
            _ => self.forward(signal),
        }
    }

    /// The first SIGTERM/SIGINT starts the graceful shutdown; a later one
    /// (not part of the same burst) skips the remaining waits.
    fn on_shutdown_signal(&mut self, signal: Signal) {
        let now = Instant::now();
        let previous = self.last_shutdown_signal.replace(now);
        if previous.is_some_and(|previous| now - previous < SHUTDOWN_SIGNAL_BURST) {
            tracing::debug!("{signal} again within {SHUTDOWN_SIGNAL_BURST:?}: the same request");
        } else if self.shutting_down {
            tracing::info!("{signal} again: skipping the remaining waits");
            self.shutdown.send_modify(|state| state.hurry = true);
        } else {
            tracing::info!("{signal} received: shutting down");
            self.begin_shutdown();
        }
    }

    fn logs_to_file(&self) -> bool {
        matches!(
            self.config.logging.output,
            crate::config::model::LogOutput::File(_)
        )
    }

    /// Does some job wait for this signal (`when: {source: "SIGHUP"}`)?
    fn listens_for(&self, signal: Signal) -> bool {
        self.config.jobs.iter().any(|job| {
            matches!(&job.when, When::Event { code: EventCode::Signal, source, .. } if source == signal.as_str())
        })
    }

    /// Passes a signal with no meaning of its own to the APP's process group.
    fn forward(&self, signal: Signal) {
        match self.app_pgid {
            Some(pgid) => process::signal_group(pgid, signal),
            None => tracing::debug!("{signal} ignored: no APP to forward it to"),
        }
    }

    // ---- job reports --------------------------------------------------

    fn on_report(&mut self, report: Report) {
        self.status.on_report(&report);
        match report {
            Report::Started {
                role: JobRole::App,
                pid,
                ..
            } => self.app_pgid = Some(pid),
            Report::Started { .. } => {}
            Report::Exited {
                role,
                primary,
                status,
                last,
                ..
            } => self.on_exit(role, primary, status.code(), last),
            Report::Finished { job } => {
                self.live.remove(&job);
                if let Some(config) = self.restart_after_stop.remove(&job) {
                    self.start_job(config, true);
                }
                self.check_all_regular_jobs_done();
            }
        }
    }

    fn on_exit(&mut self, role: JobRole, primary: bool, code: i32, last: bool) {
        match role {
            JobRole::App => {
                self.codes.app = Some(code);
                if let Some(pgid) = self.app_pgid.take() {
                    // Whatever the APP left behind in its process group goes with it.
                    process::signal_group(pgid, Signal::SIGKILL);
                }
                self.begin_shutdown();
            }
            JobRole::PreStart if code != 0 && last => {
                tracing::error!("preStart failed with exit code {code}: shutting down");
                self.codes.failed_pre_start = Some(code);
                self.begin_shutdown();
            }
            JobRole::PostStop if code != 0 => self.codes.failed_post_stop = Some(code),
            _ => {}
        }
        if primary && last {
            self.codes.primary = Some(code);
            self.begin_shutdown();
        }
    }

    fn begin_shutdown(&mut self) {
        if !self.shutting_down {
            self.shutting_down = true;
            self.restart_after_stop.clear();
            let shutdown = Event::new(EventCode::Shutdown, GLOBAL_SOURCE);
            match self.locks.take() {
                // Locks are released before any job stops (and deregisters its service).
                Some(locks) => {
                    let bus = self.shared.bus.clone();
                    tokio::spawn(async move {
                        locks.release_all().await;
                        bus.publish(shutdown);
                    });
                }
                None => self.shared.bus.publish(shutdown),
            }
            self.check_all_regular_jobs_done();
        }
    }

    /// When every job that is not a shutdown hook is done, autopilot shuts
    /// down (if it was not already) and hooks still waiting give up.
    fn check_all_regular_jobs_done(&mut self) {
        if self.live.values().any(|job| !job.hook) || !self.restart_after_stop.is_empty() {
            return;
        }
        if !self.shutting_down {
            self.begin_shutdown();
        } else {
            self.shutdown.send_if_modified(|state| {
                let changed = !state.drained;
                state.drained = true;
                changed
            });
        }
    }

    // ---- control plane ------------------------------------------------

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Reload(reply) => {
                let _ = reply.send(self.reload());
            }
            Request::Maintenance(enable, reply) => {
                let _ = reply.send(self.set_maintenance(enable));
            }
            Request::Status(reply) => {
                let counts: BTreeMap<String, usize> = self
                    .watched
                    .borrow()
                    .iter()
                    .map(|(name, instances)| (name.clone(), instances.len()))
                    .collect();
                let mut status = self.status.to_json(self.maintenance, &counts);
                if let Some(locks) = &self.locks {
                    status["locks"] = locks.status();
                }
                let _ = reply.send(status);
            }
            Request::SignalJob { job, signal, reply } => {
                let Some(live) = self.live.get(&job) else {
                    let _ = reply.send(SignalOutcome::NoSuchJob);
                    return;
                };
                // The job answers from its own task, which may be busy
                // stopping: wait for it off the supervisor's loop.
                let handle = live.handle.clone();
                tokio::spawn(async move {
                    let outcome = match handle.signal(signal).await {
                        true => SignalOutcome::Signalled,
                        false => SignalOutcome::NotRunning,
                    };
                    let _ = reply.send(outcome);
                });
            }
        }
    }

    /// Enters or leaves maintenance; returns whether anything changed.
    fn set_maintenance(&mut self, enable: bool) -> bool {
        if self.maintenance == enable {
            return false;
        }
        self.maintenance = enable;
        self.maintenance_switch.send_replace(enable);
        let code = if enable {
            EventCode::EnterMaintenance
        } else {
            EventCode::ExitMaintenance
        };
        tracing::info!(
            "maintenance {}",
            if enable { "enabled" } else { "disabled" }
        );
        self.shared.bus.publish(Event::new(code, GLOBAL_SOURCE));
        true
    }

    /// Re-reads the configuration and restarts only the jobs whose
    /// configuration changed; the APP keeps running. On error nothing changes.
    fn reload(&mut self) -> Result<(), String> {
        if self.shutting_down {
            return Err("autopilot is shutting down".to_string());
        }
        let reloader = self
            .reloader
            .as_ref()
            .ok_or("there is no configuration file to reload")?;
        let mut new = reloader()?;
        let services = advertised_services(&new, &self.shared.env).map_err(|e| e.to_string())?;
        if let Err(error) = self.log.reconfigure(&new.logging) {
            return Err(error.to_string());
        }
        self.services = services;
        let app = self
            .config
            .jobs
            .iter()
            .find(|job| job.role == JobRole::App)
            .cloned();
        new.jobs.retain(|job| job.role != JobRole::App);
        new.jobs.extend(app);
        let old = std::mem::replace(&mut self.config, new);
        for job in old
            .jobs
            .iter()
            .filter(|job| !self.config.jobs.contains(job))
        {
            if let Some(live) = self.live.get(&job.name) {
                tracing::info!(job = %job.name, "configuration changed: stopping");
                live.handle.stop();
            }
        }
        let changed: Vec<JobConfig> = self
            .config
            .jobs
            .iter()
            .filter(|job| !old.jobs.contains(job))
            .cloned()
            .collect();
        for job in changed {
            if self.live.contains_key(&job.name) {
                self.restart_after_stop.insert(job.name.clone(), job);
            } else {
                tracing::info!(job = %job.name, "new in the configuration: starting");
                self.start_job(job, true);
            }
        }
        Ok(())
    }
}

/// The catalog registration of every job that has a `port`, with its IP
/// chosen from its `interfaces`; also publishes `CONTAINERPILOT_<JOB>_IP`.
fn advertised_services(
    config: &Config,
    env: &Environment,
) -> Result<HashMap<String, ServiceRegistration>, StartError> {
    let hostname = discovery::hostname()?;
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
        if let Some(service) = ServiceRegistration::for_job(job, address, &hostname) {
            services.insert(job.name.clone(), service);
        }
    }
    Ok(services)
}

/// Builds ContainerPilot's `/status` document from the supervisor's status,
/// asked for as the control plane asks for it.
fn status_query(requests: mpsc::UnboundedSender<Request>) -> telemetry::StatusQuery {
    Arc::new(move || {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = requests.send(Request::Status(reply)).is_ok();
        Box::pin(async move {
            let status = if sent { answer.await.ok() } else { None };
            status.map(|status| status::containerpilot_document(&status))
        })
    })
}

/// Builds the metrics registry and serves `/metrics` and `/status` on the
/// telemetry interface and port, when telemetry is configured.
fn serve_telemetry(
    config: &Config,
    status: telemetry::StatusQuery,
) -> Result<Option<Metrics>, StartError> {
    let Some(telemetry) = &config.telemetry else {
        return Ok(None);
    };
    let metrics = Metrics::new(&telemetry.metrics)?;
    let ip = find_ip(&telemetry.interfaces).map_err(|source| StartError::Interfaces {
        job: "containerpilot (telemetry)".to_string(),
        source,
    })?;
    let address = std::net::SocketAddr::new(ip, telemetry.port);
    let listen = |source| StartError::TelemetryListen { address, source };
    let listener = std::net::TcpListener::bind(address).map_err(listen)?;
    listener.set_nonblocking(true).map_err(listen)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(listen)?;
    telemetry::serve(listener, metrics.clone(), status);
    tracing::info!("telemetry: serving /metrics and /status on {address}");
    Ok(Some(metrics))
}
