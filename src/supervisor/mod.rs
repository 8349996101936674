//! The supervisor: autopilot's run loop as PID 1.
//!
//! It installs the reaper and the signal listener, opens the control socket,
//! starts one task per job, publishes `startup`, gives signals their meaning
//! (shutdown, signal events, reload, maintenance, forwarding to the APP's
//! process group), answers the control plane, runs the graceful shutdown,
//! and turns what the jobs report into autopilot's exit code (docs/design.md,
//! "Exit codes", "PID 1 duties" and "Control plane"). What one configuration started lives in its run
//! [`generation`]; a reload prepares the next one beside it and swaps only
//! once it is built, keeping every job whose configuration did not change.
//! It owns the top-level control flow and the exit
//! code; a job's own lifecycle belongs to [`crate::jobs`], spawning and
//! reaping to [`crate::process`] and [`crate::reaper`], the HTTP protocol to
//! [`crate::control`].

mod generation;
mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};

use crate::config::model::{Config, Format, JobConfig, JobRole, When, GLOBAL_SOURCE};
use crate::config::Env;
use crate::control::{self, Request, SignalOutcome};
use crate::discovery::interfaces::InterfaceError;
use crate::discovery::DiscoveryError;
use crate::environment::{self, Environment};
use crate::events::{Event, EventCode};
use crate::jobs::{self, JobSpec, ProcessSpawner, Report, Shared, Start};
use crate::logging::LogHandle;
use crate::process;
use crate::reaper::Reaper;
use crate::shutdown::Shutdown;
use crate::signals;
use crate::tasks::Tasks;
use crate::telemetry::{self, MetricError};

use generation::{Generation, Ground, Retired};
use status::StatusBoard;

/// SIGTERMs and SIGINTs less than this apart are one burst, and one request
/// to stop: a signal storm (a script or an orchestrator signalling again and
/// again, `kill` from several places at once) must not cut the APP's cleanup
/// short. Only a shutdown signal that comes at least this long after the
/// previous one is a second request, which skips the remaining waits.
pub const SHUTDOWN_SIGNAL_BURST: Duration = Duration::from_secs(1);

/// How requests to stop (SIGTERM, SIGINT) reach the APP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopRequests {
    /// With a configuration, ContainerPilot's way: the APP gets its stop
    /// signal, and a later request skips the remaining waits.
    Graceful,
    /// Wrap mode, tini's way: each request reaches the APP as `signal`, or
    /// as itself when no stop signal is set; the kill timeout still applies.
    Passed { signal: Option<Signal> },
}

/// Re-reads, renders (with the given environment: autopilot's, as `-putenv`
/// changed it) and validates the configuration, for reload; the error is the
/// message to show the user.
pub(crate) type Reloader = Box<dyn Fn(&Env) -> Result<Config, String>>;

/// Runs `config` to completion and returns autopilot's exit code.
pub(crate) fn run(
    config: Config,
    reloader: Option<Reloader>,
    log: LogHandle,
    requests: StopRequests,
) -> i32 {
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
        match Supervisor::start(config, reloader, log, requests) {
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
pub(crate) enum StartError {
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

/// The exit codes that decide autopilot's own (docs/design.md, "Exit codes").
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
    /// The running configuration and what it started.
    generation: Generation,
    /// Where every generation's tasks run.
    ground: Ground,
    reloader: Option<Reloader>,
    log: LogHandle,
    shared: Shared,
    maintenance_switch: watch::Sender<bool>,
    signals: mpsc::UnboundedReceiver<signals::Received>,
    reports: mpsc::UnboundedReceiver<Report>,
    events: mpsc::UnboundedReceiver<Event>,
    requests: mpsc::UnboundedReceiver<Request>,
    /// The run's stop: the supervisor alone moves it.
    shutdown: Shutdown,
    live: HashMap<String, LiveJob>,
    status: StatusBoard,
    /// Every event published so far, as `when` matches it: a job a reload
    /// starts acts at once on a `when` that already happened.
    seen: HashSet<(EventCode, Arc<str>)>,
    app_pgid: Option<Pid>,
    /// The running process group of the `primary: true` job: signals with
    /// no meaning of their own go there when there is no APP.
    primary_pgid: Option<Pid>,
    /// The signals already reported as dropped (reported once each).
    dropped: HashSet<i32>,
    codes: ExitCodes,
    maintenance: bool,
    shutting_down: bool,
    /// When the last SIGTERM or SIGINT arrived (see [`SHUTDOWN_SIGNAL_BURST`]).
    last_shutdown_signal: Option<Instant>,
    stop_requests: StopRequests,
}

impl Supervisor {
    /// Sets up reaping, signals and the control socket, and starts every
    /// job's task (they wait for `startup`).
    fn start(
        config: Config,
        reloader: Option<Reloader>,
        log: LogHandle,
        stop_requests: StopRequests,
    ) -> Result<Supervisor, StartError> {
        let env = Environment::from_process();
        let (request_sender, requests) = mpsc::unbounded_channel();
        let reaper = Reaper::install()?;
        let signals = signals::listen(reaper.clone())?;
        // Bound (the control socket among them) once signals are handled.
        let prepared = Generation::prepare(config, None)?;
        let (report_sender, reports) = mpsc::unbounded_channel();
        let (maintenance_switch, maintenance) = watch::channel(false);
        let metrics = watch::Sender::new(None);
        let ground = Ground {
            tasks: Tasks::default(),
            bus: Default::default(),
            control_api: control::Api {
                env: env.clone(),
                requests: request_sender.clone(),
                metrics: metrics.subscribe(),
            },
            env,
            watched: watch::Sender::new(BTreeMap::new()),
            metrics,
            status: status_query(request_sender),
        };
        let (generation, _) = prepared.commit(None, &ground);
        let shutdown = Shutdown::new(ground.bus.clone());
        let shared = Shared {
            spawner: Arc::new(ProcessSpawner {
                reaper: reaper.clone(),
                format: generation.config.format,
                metrics: ground.metrics.subscribe(),
                tasks: ground.tasks.clone(),
            }),
            reaper,
            tasks: ground.tasks.clone(),
            bus: ground.bus.clone(),
            env: ground.env.clone(),
            reports: report_sender,
            stop: shutdown.follower(),
            format: generation.config.format,
            maintenance,
            in_catalog: Default::default(),
        };
        let mut supervisor = Supervisor {
            events: shared.bus.subscribe(),
            generation,
            ground,
            reloader,
            log,
            shared,
            maintenance_switch,
            signals,
            reports,
            requests,
            shutdown,
            live: HashMap::new(),
            status: StatusBoard::default(),
            seen: HashSet::new(),
            app_pgid: None,
            primary_pgid: None,
            dropped: HashSet::new(),
            codes: ExitCodes::default(),
            maintenance: false,
            shutting_down: false,
            last_shutdown_signal: None,
            stop_requests,
        };
        for job in supervisor.generation.config.jobs.clone() {
            supervisor.start_job(supervisor.job_spec(job), Start::Waiting);
        }
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
        self.ground.tasks.shut_down().await;
        self.codes.exit_code()
    }

    fn on_event(&mut self, event: &Event) {
        self.status.on_event(event);
        if let Some(metrics) = &*self.ground.metrics.borrow() {
            metrics.event(event.code.as_str(), &event.source);
        }
        self.seen.insert((event.code, event.source.clone()));
        if event.is(EventCode::Shutdown, GLOBAL_SOURCE) {
            self.check_all_regular_jobs_done();
        }
    }

    fn start_job(&mut self, spec: JobSpec, start: Start) {
        let hook = jobs::is_shutdown_hook(&spec.config);
        let name = spec.config.name.clone();
        self.status.add(&name, self.generation.services.get(&name));
        let handle = jobs::spawn(spec, self.shared.clone(), start);
        self.live.insert(name, LiveJob { hook, handle });
    }

    /// A job as the running generation runs it.
    fn job_spec(&self, config: JobConfig) -> JobSpec {
        JobSpec {
            dependents: jobs::stopping_dependents(
                config.public_name(),
                &self.generation.config.jobs,
            ),
            advertisement: self.generation.advertisement(&config.name),
            discovery: self.generation.discovery.clone(),
            config,
        }
    }

    /// How a job a reload starts (or restarts) begins: at once when what it
    /// waits for already happened (as it would have started then), else
    /// waiting. Signals are moments, not states: a job on a signal waits for
    /// the next one.
    fn start_for(&self, when: &When) -> Start {
        let happened = match when {
            When::Interval { .. } => self
                .seen
                .contains(&(EventCode::Startup, Arc::from(GLOBAL_SOURCE))),
            When::Event {
                code: EventCode::Signal,
                ..
            } => false,
            When::Event { code, source, .. } => {
                self.seen.contains(&(*code, Arc::from(source.as_str())))
            }
        };
        match happened {
            true => Start::AlreadyTriggered,
            false => Start::Waiting,
        }
    }

    // ---- signals ------------------------------------------------------

    fn on_signal(&mut self, received: signals::Received) {
        let signal = match received {
            signals::Received::Standard(signal) => signal,
            signals::Received::RealTime(number) => return self.forward(number),
        };
        match signal {
            Signal::SIGTERM | Signal::SIGINT => self.on_shutdown_signal(signal),
            Signal::SIGHUP if self.generation.config.format == Format::V2 => {
                if let Err(error) = self.reload() {
                    tracing::error!(
                        "reload on SIGHUP failed, keeping the old configuration: {error}"
                    );
                }
            }
            Signal::SIGUSR1 if self.generation.config.format == Format::V2 => {
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
            _ => self.forward(signal as i32),
        }
    }

    /// The first SIGTERM/SIGINT starts the graceful shutdown; a later one
    /// (not part of the same burst) skips the remaining waits, or in wrap
    /// mode is passed on to the APP.
    fn on_shutdown_signal(&mut self, signal: Signal) {
        let now = Instant::now();
        let previous = self.last_shutdown_signal.replace(now);
        let passed_as = match self.stop_requests {
            StopRequests::Graceful => None,
            StopRequests::Passed { signal: stop } => Some(stop.unwrap_or(signal)),
        };
        if previous.is_some_and(|previous| now - previous < SHUTDOWN_SIGNAL_BURST) {
            tracing::debug!("{signal} again within {SHUTDOWN_SIGNAL_BURST:?}: the same request");
        } else if !self.shutting_down {
            tracing::info!("{signal} received: shutting down");
            self.begin_shutdown(passed_as);
        } else if let Some(passed_as) = passed_as {
            tracing::info!("{signal} again: passing it on to the APP as {passed_as}");
            self.forward(passed_as as i32);
        } else {
            tracing::info!("{signal} again: skipping the remaining waits");
            self.shutdown.hurry();
        }
    }

    fn logs_to_file(&self) -> bool {
        matches!(
            self.generation.config.logging.output,
            crate::config::model::LogOutput::File(_)
        )
    }

    /// Does some job wait for this signal (`when: {source: "SIGHUP"}`)?
    fn listens_for(&self, signal: Signal) -> bool {
        self.generation.config.jobs.iter().any(|job| {
            matches!(&job.when, When::Event { code: EventCode::Signal, source, .. } if source == signal.as_str())
        })
    }

    /// Passes a signal with no meaning of its own to the APP's process
    /// group or, with no APP on the command line, to the `primary: true`
    /// job's (docs/signals-and-exit-codes.md, "Without an APP").
    fn forward(&mut self, signal: i32) {
        let has_app = self
            .generation
            .config
            .jobs
            .iter()
            .any(|job| job.role == JobRole::App);
        let (target, why) = match has_app {
            true => (self.app_pgid, "the APP is not running"),
            false => match self.generation.config.jobs.iter().find(|job| job.primary) {
                Some(_) => (self.primary_pgid, "the primary job is not running"),
                None => (
                    None,
                    "there is no APP on the command line and no job is primary: true to forward it to",
                ),
            },
        };
        match target {
            Some(pgid) => process::signal_group_by_number(pgid, signal),
            None if self.dropped.insert(signal) => {
                tracing::info!("{} dropped: {why}", signal_name(signal));
            }
            None => {}
        }
    }

    // ---- job reports --------------------------------------------------

    fn on_report(&mut self, report: Report) {
        if let Report::Finished { job } = &report {
            if self
                .live
                .get(job)
                .is_some_and(|live| !live.handle.has_ended())
            {
                // The end of a task a reload could no longer replace: the
                // job already runs again in a new one.
                return;
            }
        }
        self.status.on_report(&report);
        match report {
            Report::Started {
                role: JobRole::App,
                pid,
                ..
            } => self.app_pgid = Some(pid),
            Report::Started { job, pid, .. } if self.is_primary(&job) => {
                self.primary_pgid = Some(pid)
            }
            Report::Started { .. } | Report::Up { .. } | Report::Replaced { .. } => {}
            Report::Exited {
                role,
                primary,
                status,
                last,
                ..
            } => {
                if primary {
                    self.primary_pgid = None;
                }
                self.on_exit(role, primary, status.code(), last)
            }
            Report::Finished { job } => {
                self.live.remove(&job);
                self.check_all_regular_jobs_done();
            }
        }
    }

    fn is_primary(&self, job: &str) -> bool {
        self.generation
            .config
            .jobs
            .iter()
            .any(|config| config.primary && config.name == job)
    }

    fn on_exit(&mut self, role: JobRole, primary: bool, code: i32, last: bool) {
        match role {
            JobRole::App => {
                self.codes.app = Some(code);
                if let Some(pgid) = self.app_pgid.take() {
                    // Whatever the APP left behind in its process group goes with it.
                    process::signal_group(pgid, Signal::SIGKILL);
                }
                self.begin_shutdown(None);
            }
            JobRole::PreStart if code != 0 && last => {
                tracing::error!("preStart failed with exit code {code}: shutting down");
                self.codes.failed_pre_start = Some(code);
                self.begin_shutdown(None);
            }
            JobRole::PostStop if code != 0 => self.codes.failed_post_stop = Some(code),
            _ => {}
        }
        if primary && last {
            self.codes.primary = Some(code);
            self.begin_shutdown(None);
        }
    }

    /// The one way a stop starts (docs/design.md, "How a stop travels"):
    /// the leader locks are released, then the run's [`Shutdown`] begins
    /// (jobs stop, the APP with `app_signal` when given, and `shutdown` is
    /// published for the hooks that wait for it).
    fn begin_shutdown(&mut self, app_signal: Option<Signal>) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        match self.generation.locks.take() {
            // Locks are released before any job stops (and deregisters its service).
            Some(locks) => {
                let shutdown = self.shutdown.clone();
                self.ground.tasks.track(async move {
                    locks.release_all().await;
                    shutdown.begin(app_signal);
                });
            }
            None => self.shutdown.begin(app_signal),
        }
        self.check_all_regular_jobs_done();
    }

    /// When every job that is not a shutdown hook is done, autopilot shuts
    /// down (if it was not already) and hooks still waiting give up.
    fn check_all_regular_jobs_done(&mut self) {
        if self.live.values().any(|job| !job.hook) {
            return;
        }
        if !self.shutting_down {
            // It comes back here.
            return self.begin_shutdown(None);
        }
        // Nothing while the locks hold the stop back: asked again on
        // `shutdown` (see on_event).
        self.shutdown.drain();
    }

    // ---- control plane ------------------------------------------------

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Reload(reply) => {
                let (answer, retired) = match self.reload() {
                    Ok(retired) => (Ok(()), Some(retired)),
                    Err(error) => (Err(error), None),
                };
                let _ = reply.send(answer);
                // The old control socket closes only once the answer is on its way.
                drop(retired);
            }
            Request::Maintenance(enable, reply) => {
                let _ = reply.send(self.set_maintenance(enable));
            }
            Request::Status(reply) => {
                let counts: BTreeMap<String, usize> = self
                    .ground
                    .watched
                    .borrow()
                    .iter()
                    .map(|(name, instances)| (name.clone(), instances.len()))
                    .collect();
                let mut status = self.status.to_json(self.maintenance, &counts);
                status["generation"] = serde_json::json!({
                    "startedAt": humantime::format_rfc3339_seconds(self.generation.started_at).to_string(),
                });
                if let Some(locks) = &self.generation.locks {
                    status["locks"] = locks.status();
                }
                let _ = reply.send(status);
            }
            Request::SignalJob { job, signal, reply } => {
                let Some(live) = self.live.get(&job) else {
                    // A job that finished is still listed by `--status`: it
                    // exists, with no process to signal.
                    let outcome = match self.status.knows(&job) {
                        true => SignalOutcome::NotRunning,
                        false => SignalOutcome::NoSuchJob,
                    };
                    let _ = reply.send(outcome);
                    return;
                };
                // The job answers from its own task, which may be busy
                // stopping: wait for it off the supervisor's loop.
                let handle = live.handle.clone();
                self.ground.tasks.spawn(async move {
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

    /// Re-reads the configuration (rendered with the environment as
    /// `-putenv` left it), prepares the new run generation beside the
    /// running one and swaps only once it is built; then restarts only the
    /// jobs whose configuration changed. The APP keeps running. On error
    /// nothing changes. What it replaced and the answer may still need (the
    /// old control socket) is returned, to be dropped once that is sent.
    fn reload(&mut self) -> Result<Retired, String> {
        if self.shutting_down {
            return Err("autopilot is shutting down".to_string());
        }
        let reloader = self
            .reloader
            .as_ref()
            .ok_or("there is no configuration file to reload")?;
        let mut new = reloader(&environment::template_data(&self.shared.env.snapshot()))?;
        let app = self
            .generation
            .config
            .jobs
            .iter()
            .find(|job| job.role == JobRole::App)
            .cloned();
        new.jobs.retain(|job| job.role != JobRole::App);
        new.jobs.extend(app);
        let logging = new.logging.clone();
        let prepared =
            Generation::prepare(new, Some(&self.generation)).map_err(|error| error.to_string())?;
        self.log
            .reconfigure(&logging)
            .map_err(|error| error.to_string())?;
        let old_jobs: HashMap<String, JobConfig> = self
            .generation
            .config
            .jobs
            .iter()
            .map(|job| (job.name.clone(), job.clone()))
            .collect();
        let (generation, retired) = prepared.commit(Some(&mut self.generation), &self.ground);
        self.generation = generation;
        tracing::info!("configuration reloaded");
        self.apply_job_changes(old_jobs);
        Ok(retired)
    }

    /// Stops the jobs a reload removed, restarts the changed ones, starts
    /// the new ones, and tells the unchanged ones about their new
    /// surroundings (stop hooks added or removed, a service or catalog that
    /// moved), keeping their processes.
    fn apply_job_changes(&mut self, mut old_jobs: HashMap<String, JobConfig>) {
        for job in self.generation.config.jobs.clone() {
            let old = old_jobs.remove(&job.name);
            let start = self.start_for(&job.when);
            let spec = self.job_spec(job);
            let name = spec.config.name.clone();
            self.status
                .set_service(&name, spec.advertisement.as_ref().map(|a| &a.service));
            match (old, self.live.get(&name)) {
                (Some(old), Some(live)) if old == spec.config => live.handle.refresh(spec),
                (Some(old), None) if old == spec.config => {}
                (Some(_), Some(live)) if live.handle.replace(spec.clone(), start) => {}
                (old, _) => {
                    match old {
                        Some(_) => tracing::info!(job = %name, "configuration changed: starting"),
                        None => tracing::info!(job = %name, "new in the configuration: starting"),
                    }
                    self.start_job(spec, start);
                }
            }
        }
        for (name, live) in &mut self.live {
            // A replaced job may have become, or ceased to be, a stop hook.
            if let Some(job) = self
                .generation
                .config
                .jobs
                .iter()
                .find(|job| job.name == *name)
            {
                live.hook = jobs::is_shutdown_hook(job);
            }
        }
        for name in old_jobs.keys() {
            match self.live.get(name) {
                Some(live) => {
                    tracing::info!(job = %name, "removed from the configuration: stopping");
                    live.handle.stop();
                }
                None => self.status.remove(name),
            }
        }
    }
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

/// A signal's name for the log: `SIGUSR2`, or `signal 40` for a real-time one.
fn signal_name(number: i32) -> String {
    Signal::try_from(number).map_or_else(
        |_| format!("signal {number}"),
        |signal| signal.as_str().to_string(),
    )
}
