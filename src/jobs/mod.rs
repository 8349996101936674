//! Jobs: the lifecycle of one configured job, as an async task.
//!
//! A job waits for its `when`, runs its exec, publishes `exitSuccess` /
//! `exitFailed`, restarts while its budget lasts, and at shutdown goes through
//! `stopping` → (wait for its preStop-style dependents) → stop signal →
//! kill timeout → SIGKILL → `stopped`. Health checks run beside it in their
//! own task ([`health`]). Each job is one task with its own event queue, so no
//! job ever blocks another.
//!
//! This module owns a job's state machine; it must not decide autopilot's exit
//! code (it reports to the supervisor) nor talk to the catalog directly.

mod health;
mod output;
mod registration;
mod render;
mod restart;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config;
use crate::config::model::{Format, Frequency, JobConfig, JobRole, Restarts, When, GLOBAL_SOURCE};
use crate::discovery::{Discovery, Instance, ServiceRegistration};
use crate::environment::{job_variable, Environment};
use crate::events::{Bus, Event, EventCode};
use crate::logging::{OutputLabel, OutputTail};
use crate::process::{self, Process, SpawnSpec};
use crate::reaper::{ExitStatus, Reaper};
use crate::telemetry::Metrics;

pub use registration::InCatalog;
use registration::Registration;
use restart::Backoff;

/// How long a stopping job waits for the catalog to confirm deregistration
/// before it signals its process anyway.
pub const DEREGISTER_LIMIT: Duration = Duration::from_secs(2);

/// How long a job that only starts on `shutdown`/`stopping`/`stopped` (a
/// preStop or postStop hook) may run once the shutdown has begun.
pub const HOOK_RUN_LIMIT: Duration = Duration::from_secs(5);

/// What jobs tell the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The job's process started.
    Started {
        job: String,
        role: JobRole,
        pid: nix::unistd::Pid,
    },
    /// The job's process ended; `last` when the job will not run it again.
    Exited {
        job: String,
        role: JobRole,
        primary: bool,
        status: ExitStatus,
        last: bool,
    },
    /// The job is done for good (it published `stopped`).
    Finished { job: String },
}

/// Shutdown progress, broadcast by the supervisor to every job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownState {
    /// A second SIGTERM/SIGINT: skip every remaining wait.
    pub hurry: bool,
    /// Every job that is not a shutdown hook has finished: hooks still
    /// waiting for their trigger give up.
    pub drained: bool,
}

/// What every job task shares.
#[derive(Clone)]
pub struct Shared {
    pub reaper: Reaper,
    pub bus: Bus,
    pub env: Environment,
    pub reports: mpsc::UnboundedSender<Report>,
    pub shutdown: watch::Receiver<ShutdownState>,
    /// The configuration's dialect (2.x logs job stderr at DEBUG).
    pub format: Format,
    /// The service catalog, if one is configured.
    pub discovery: Option<Arc<Discovery>>,
    /// True while autopilot is in maintenance mode.
    pub maintenance: watch::Receiver<bool>,
    /// The telemetry registry (2.x sensors record into it).
    pub metrics: Option<Metrics>,
    /// The healthy instances each watch saw last, for `render` templates.
    pub watched: watch::Receiver<BTreeMap<String, Vec<Instance>>>,
    /// How many services are in the catalog (the APP waits for none at shutdown).
    pub in_catalog: InCatalog,
}

/// One job to run: its configuration, the jobs that run on its `stopping`,
/// and its catalog registration if it advertises a service.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub config: JobConfig,
    pub dependents: Vec<String>,
    pub service: Option<ServiceRegistration>,
}

/// Does this job only start on shutdown-time events (a preStop/postStop hook)?
/// Such jobs stay alive during shutdown until their trigger fires.
pub fn is_shutdown_hook(job: &JobConfig) -> bool {
    matches!(
        job.when,
        When::Event {
            code: EventCode::Shutdown | EventCode::Stopping | EventCode::Stopped,
            ..
        }
    )
}

/// The names of the jobs that start on `stopping` of `job`: a stopping job
/// waits (up to its `stopTimeout`) for their `stopped` before it stops itself.
pub fn stopping_dependents(job: &str, all: &[JobConfig]) -> Vec<String> {
    all.iter()
        .filter(|other| {
            matches!(&other.when, When::Event { code: EventCode::Stopping, source, .. } if source == job)
        })
        .map(|other| other.name.clone())
        .collect()
}

/// What a run does after rendering its template.
enum RenderStep {
    Exec,
    End(ExitStatus),
    Wait,
}

/// Resolves when a render job's data changed; never for other jobs.
async fn render_data_changed(renderer: &mut Option<render::Renderer>) {
    match renderer {
        Some(renderer) => renderer.data_changed().await,
        None => std::future::pending().await,
    }
}

/// Orders the supervisor gives one job.
#[derive(Debug)]
pub enum Command {
    /// Stop gracefully and finish, as at shutdown (used by reload).
    Stop,
    /// Send a signal to the job's process group; the reply says whether a
    /// process was running to receive it.
    Signal(Signal, oneshot::Sender<bool>),
}

/// The supervisor's handle on a running job task.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: mpsc::UnboundedSender<Command>,
}

impl Handle {
    /// Asks the job to stop gracefully (it then publishes `stopped` and finishes).
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// Signals the job's process group; false if no process was running.
    pub async fn signal(&self, signal: Signal) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Signal(signal, reply)).is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

/// Starts the task for one job. It subscribes to the bus at once, so it sees
/// every event published after this call returns. A job started after
/// `startup` was published (by a reload) gets its own private `startup`.
pub fn spawn(spec: JobSpec, shared: Shared, late: bool) -> Handle {
    let events = shared.bus.subscribe();
    let (commands, command_receiver) = mpsc::unbounded_channel();
    let job = Job::new(spec, shared, events, command_receiver);
    tokio::spawn(job.run(late));
    Handle { commands }
}

struct Job {
    hook: bool,
    backoff: Backoff,
    config: JobConfig,
    dependents: Vec<String>,
    service: Option<ServiceRegistration>,
    registration: Option<Arc<Registration>>,
    shared: Shared,
    events: mpsc::UnboundedReceiver<Event>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// The current run, if one is going.
    process: Option<Process>,
    started_at: Option<Instant>,
    /// Kill the current run at this instant (the job's `timeout`).
    run_deadline: Option<Instant>,
    /// Start a run at this instant (a restart, or the next interval tick).
    next_start: Option<Instant>,
    /// Give up waiting for the `when` event at this instant (`when.timeout`).
    give_up_at: Option<Instant>,
    /// A `once` trigger has fired.
    triggered: bool,
    runs: u32,
    /// An exec-less job that has started (it stays up until shutdown).
    active: bool,
    shutting_down: bool,
    announced_stopping: bool,
    advertised: bool,
    finished: bool,
    health: Option<JoinHandle<()>>,
    /// The template of a `render` job and the data behind it.
    renderer: Option<render::Renderer>,
    /// The render's data changed after a run: render again when idle.
    render_due: bool,
}

impl Job {
    fn new(
        spec: JobSpec,
        shared: Shared,
        events: mpsc::UnboundedReceiver<Event>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Job {
        let JobSpec {
            config,
            dependents,
            service,
        } = spec;
        let give_up_at = match &config.when {
            When::Event {
                timeout: Some(timeout),
                ..
            } => Some(Instant::now() + *timeout),
            _ => None,
        };
        let renderer = config
            .render
            .clone()
            .map(|render| render::Renderer::new(render, shared.discovery.clone()));
        Job {
            hook: is_shutdown_hook(&config),
            backoff: Backoff::new(config.restart_delay),
            config,
            dependents,
            service,
            registration: None,
            shared,
            events,
            commands,
            process: None,
            started_at: None,
            run_deadline: None,
            next_start: None,
            give_up_at,
            triggered: false,
            runs: 0,
            active: false,
            shutting_down: false,
            announced_stopping: false,
            advertised: false,
            finished: false,
            health: None,
            renderer,
            render_due: false,
        }
    }

    async fn run(mut self, late: bool) {
        if late {
            self.on_event(Event::new(EventCode::Startup, GLOBAL_SOURCE))
                .await;
        }
        let mut shutdown = self.shared.shutdown.clone();
        while !self.finished {
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(event).await,
                    None => break,
                },
                Some(command) = self.commands.recv() => self.on_command(command).await,
                status = wait_for(&mut self.process) => self.on_exit(status),
                _ = sleep_until(self.next_start) => self.on_timer(),
                _ = sleep_until(self.run_deadline) => self.kill_for_timeout(),
                _ = sleep_until(self.give_up_at) => self.give_up(),
                () = render_data_changed(&mut self.renderer) => self.render_due = self.runs > 0,
                () = std::future::ready(()), if self.render_due && self.process.is_none() => {
                    self.render_due = false;
                    self.start_run();
                }
                Ok(()) = shutdown.changed(), if self.hook && self.shutting_down => {
                    let state = *shutdown.borrow_and_update();
                    self.on_shutdown_progress(state).await;
                }
            }
        }
        self.finish().await;
    }

    // ---- events -------------------------------------------------------

    async fn on_event(&mut self, event: Event) {
        if event.is(EventCode::Shutdown, GLOBAL_SOURCE) && !self.shutting_down {
            self.shutting_down = true;
            if self.hook {
                self.cap_hook_run();
                let state = *self.shared.shutdown.borrow();
                self.on_shutdown_progress(state).await;
            } else {
                self.stop().await;
                return;
            }
        }
        match self.config.when.clone() {
            // As in ContainerPilot, the first run comes one interval after startup.
            When::Interval { interval } => {
                if event.is(EventCode::Startup, GLOBAL_SOURCE) && self.runs == 0 {
                    self.next_start = Some(Instant::now() + interval);
                }
            }
            When::Event {
                code,
                source,
                frequency,
                ..
            } => {
                if event.is(code, &source) {
                    self.on_trigger(frequency);
                }
            }
        }
    }

    fn on_trigger(&mut self, frequency: Frequency) {
        self.give_up_at = None;
        match frequency {
            Frequency::Once if self.triggered => {}
            Frequency::Once => {
                self.triggered = true;
                self.start_run();
            }
            // ContainerPilot lets a run that is still going finish and starts
            // again only for the next event; we do the same.
            Frequency::Each if self.process.is_some() => {
                tracing::debug!(job = %self.config.name, "still running; event not queued");
            }
            Frequency::Each => self.start_run(),
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Stop => {
                self.shutting_down = true;
                self.stop().await;
            }
            Command::Signal(signal, reply) => {
                if let Some(process) = &self.process {
                    process.signal_group(signal);
                }
                let _ = reply.send(self.process.is_some());
            }
        }
    }

    /// While shutting down, a hook gives up once nothing can trigger it any
    /// more, and a second SIGTERM ends its run at once.
    async fn on_shutdown_progress(&mut self, state: ShutdownState) {
        // Events already queued may still trigger us: handle them first.
        while let Ok(event) = self.events.try_recv() {
            Box::pin(self.on_event(event)).await;
        }
        if state.hurry {
            if let Some(process) = &self.process {
                process.signal_group(Signal::SIGKILL);
            }
        }
        if (state.drained || state.hurry) && self.process.is_none() {
            self.finished = true;
        }
    }

    // ---- runs ---------------------------------------------------------

    /// A restart is due, or the next interval tick. An interval run that is
    /// still going when the next is due is not started twice.
    fn on_timer(&mut self) {
        self.next_start = None;
        match self.config.when {
            When::Interval { interval } if self.process.is_some() => {
                self.next_start = Some(Instant::now() + interval);
            }
            _ => self.start_run(),
        }
    }

    fn start_run(&mut self) {
        if self.shutting_down && !self.hook {
            return;
        }
        self.runs += 1;
        self.advertise();
        if self.config.exec.is_none() && self.config.render.is_none() {
            self.active = true;
            return;
        }
        if let When::Interval { interval } = self.config.when {
            if self.may_run_again() {
                self.next_start = Some(Instant::now() + interval);
            }
        }
        let env = self.shared.env.snapshot();
        match self.render_before_run(&env) {
            RenderStep::Exec => {}
            RenderStep::End(status) => {
                self.end_run_without_process(status);
                return;
            }
            RenderStep::Wait => return,
        }
        let Some(argv) = self.config.exec.clone() else {
            return;
        };
        let argv = match self.config.role {
            // The APP's arguments are templates, rendered just before each
            // exec so they see CONTAINERPILOT_<JOB>_IP and -putenv values.
            JobRole::App => match config::render_args(&argv, &env) {
                Ok(argv) => argv,
                Err(error) => {
                    crate::complain!("autopilot: {error}");
                    self.end_run_without_process(ExitStatus::Code(2));
                    return;
                }
            },
            _ => argv,
        };
        let spec = SpawnSpec {
            argv,
            env: Some(env),
            foreground: self.config.role == JobRole::App,
            piped_output: !self.config.logging_raw,
        };
        match process::spawn(&self.shared.reaper, spec) {
            Ok(mut process) => {
                self.relay_output(&mut process);
                self.on_started(process);
            }
            Err(error) => {
                if self.config.role == JobRole::App {
                    crate::complain!("autopilot: cannot run {error}");
                } else {
                    tracing::error!(job = %self.config.name, "cannot run {error}");
                }
                self.end_run_without_process(ExitStatus::Code(error.exit_code()));
            }
        }
    }

    /// A run that ends before any process starts (nothing to exec, or the
    /// exec could not be started) ends as if a process exited with `status`.
    fn end_run_without_process(&mut self, status: ExitStatus) {
        self.started_at = Some(Instant::now());
        self.on_exit(status);
    }

    /// Renders the job's template before a run [beyond]: the exec runs only
    /// when the output changed. The run ends at once with success when the
    /// output was already up to date (or there is no exec), with failure
    /// (exit code 1) when the template could not be rendered, and waits
    /// (no event) while the template's data is being fetched: the job runs
    /// again when it arrives.
    fn render_before_run(&self, env: &config::Env) -> RenderStep {
        let Some(renderer) = &self.renderer else {
            return RenderStep::Exec;
        };
        let job = &self.config.name;
        let output = renderer.output().display();
        match renderer.render(env) {
            Ok(render::Outcome::Changed) => {
                tracing::info!(job = %job, "rendered {output}");
                match self.config.exec {
                    Some(_) => RenderStep::Exec,
                    None => RenderStep::End(ExitStatus::Code(0)),
                }
            }
            Ok(render::Outcome::Unchanged) => {
                tracing::debug!(job = %job, "{output} is up to date: nothing to run");
                RenderStep::End(ExitStatus::Code(0))
            }
            Ok(render::Outcome::Waiting(missing)) => {
                let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
                // Visible by default: an absent key can hold a render back for good.
                tracing::info!(job = %job, "{output}: waiting for {}", missing.join(", "));
                RenderStep::Wait
            }
            Err(error) => {
                tracing::error!(job = %job, "render: {error}");
                RenderStep::End(ExitStatus::Code(1))
            }
        }
    }

    fn on_started(&mut self, process: Process) {
        let pid = process.pid();
        tracing::debug!(job = %self.config.name, %pid, "started");
        for variable in self.pid_variables() {
            self.shared.env.set(&variable, Some(&pid.to_string()));
        }
        let now = Instant::now();
        self.started_at = Some(now);
        self.run_deadline = self.config.timeout.map(|timeout| now + timeout);
        self.process = Some(process);
        self.cap_hook_run();
        self.report(Report::Started {
            job: self.config.name.clone(),
            role: self.config.role.clone(),
            pid,
        });
    }

    /// Logs the run's output; a 2.x sensor's stdout is also recorded into
    /// its metric once the output has ended.
    fn relay_output(&self, process: &mut Process) {
        let label = OutputLabel::job(&self.config.name);
        let format = self.shared.format;
        let (JobRole::Sensor { metric }, Some(metrics)) = (&self.config.role, &self.shared.metrics)
        else {
            output::relay(process, &label, format, None);
            return;
        };
        let tail = OutputTail::new();
        let relays = output::relay(process, &label, format, Some(&tail));
        let (metric, metrics) = (metric.clone(), metrics.clone());
        tokio::spawn(async move {
            futures_util::future::join_all(relays).await;
            if let Err(error) = metrics.record_sensor_output(&metric, &tail.text()) {
                tracing::warn!("sensor for {metric}: {error}");
            }
        });
    }

    /// The variables that carry this job's pid while it runs:
    /// `CONTAINERPILOT_<JOB>_PID`, and for the APP also ContainerPilot 2's
    /// `CONTAINERPILOT_APP_PID`.
    fn pid_variables(&self) -> Vec<String> {
        let mut variables = vec![job_variable(self.config.public_name(), "PID")];
        if self.config.role == JobRole::App {
            variables.push(job_variable("app", "PID"));
        }
        variables.dedup();
        variables
    }

    /// A hook running during shutdown gets at most [`HOOK_RUN_LIMIT`].
    fn cap_hook_run(&mut self) {
        if self.hook && self.shutting_down && self.process.is_some() {
            let cap = Instant::now() + HOOK_RUN_LIMIT;
            self.run_deadline = Some(self.run_deadline.map_or(cap, |d| d.min(cap)));
        }
    }

    fn kill_for_timeout(&mut self) {
        self.run_deadline = None;
        if let Some(process) = &self.process {
            tracing::warn!(job = %self.config.name, "timed out: killing its process group");
            process.signal_group(Signal::SIGKILL);
        }
    }

    fn on_exit(&mut self, status: ExitStatus) {
        self.process = None;
        self.run_deadline = None;
        for variable in self.pid_variables() {
            self.shared.env.set(&variable, None);
        }
        let ran_for = self.started_at.map_or(Duration::ZERO, |at| at.elapsed());
        tracing::debug!(job = %self.config.name, code = status.code(), "exited");
        self.publish(if status.success() {
            EventCode::ExitSuccess
        } else {
            EventCode::ExitFailed
        });
        // A render job that reads the catalog renders again when that data changes.
        let follows_data = self
            .renderer
            .as_ref()
            .is_some_and(render::Renderer::follows_data);
        let last = self.schedule_after_exit(status, ran_for) && !follows_data;
        self.report(Report::Exited {
            job: self.config.name.clone(),
            role: self.config.role.clone(),
            primary: self.config.primary,
            status,
            last,
        });
        if last {
            self.finished = true;
        }
    }

    /// Decides what follows a run; returns true when the job is complete.
    fn schedule_after_exit(&mut self, status: ExitStatus, ran_for: Duration) -> bool {
        if self.shutting_down {
            return true;
        }
        let delay = self.backoff.next(status.success(), ran_for);
        match &self.config.when {
            When::Interval { .. } => self.next_start.is_none(),
            When::Event { frequency, .. } => {
                if self.may_run_again() {
                    self.next_start = Some(Instant::now() + delay);
                    false
                } else {
                    // An `each` job runs again on its next event.
                    *frequency == Frequency::Once
                }
            }
        }
    }

    /// Is there restart budget left after `self.runs` runs?
    fn may_run_again(&self) -> bool {
        match self.config.restarts {
            Restarts::Unlimited => true,
            Restarts::Never => false,
            Restarts::Count(restarts) => self.runs <= restarts,
        }
    }

    fn give_up(&mut self) {
        self.give_up_at = None;
        tracing::warn!(job = %self.config.name, "when.timeout expired before its event: giving up");
        self.finished = true;
    }

    // ---- shutdown -----------------------------------------------------

    /// The graceful stop of SPEC.md section 7, for a job that is not a hook.
    async fn stop(&mut self) {
        self.next_start = None;
        if self.config.role == JobRole::App {
            self.wait_for_services_to_leave().await;
        }
        self.announce_stopping().await;
        self.stop_health_checks();
        self.deregister().await;
        if let Some(mut process) = self.process.take() {
            let signal = Signal::try_from(self.config.stop_signal).unwrap_or(Signal::SIGTERM);
            let status = process
                .stop(
                    signal,
                    self.config.kill_timeout,
                    hurried(&self.shared.shutdown),
                )
                .await;
            self.on_exit(status);
        }
        self.finished = true;
    }

    /// The APP is signalled (and its preStop run) only once every service has
    /// left the catalog, as ContainerPilot 2 did: its services were separate
    /// from the APP (`services[]`, the telemetry service), each deregistering
    /// as it stops, so without this wait the APP would get its signal while
    /// the catalog still sent it traffic. A second SIGTERM skips the wait.
    async fn wait_for_services_to_leave(&self) {
        tokio::select! {
            _ = self.shared.in_catalog.wait_until_none(DEREGISTER_LIMIT) => {}
            _ = hurried(&self.shared.shutdown) => {}
        }
    }

    /// Waits until every job that runs on our `stopping` has published
    /// `stopped`, for at most `stopTimeout` (or until a second SIGTERM).
    async fn wait_for_dependents(&mut self) {
        let mut pending = self.dependents.clone();
        if pending.is_empty() {
            return;
        }
        let deadline = tokio::time::sleep(self.config.stop_timeout);
        tokio::pin!(deadline);
        let hurry = hurried(&self.shared.shutdown);
        tokio::pin!(hurry);
        while !pending.is_empty() {
            tokio::select! {
                Some(event) = self.events.recv() => {
                    if event.code == EventCode::Stopped {
                        pending.retain(|name| *name != *event.source);
                    }
                }
                _ = &mut deadline => {
                    tracing::warn!(job = %self.config.name, waiting_for = ?pending, "stopTimeout expired");
                    return;
                }
                _ = &mut hurry => return,
            }
        }
    }

    /// Publishes `stopping` (once) and waits for the jobs that run on it.
    async fn announce_stopping(&mut self) {
        if !self.announced_stopping {
            self.announced_stopping = true;
            self.publish(EventCode::Stopping);
            self.wait_for_dependents().await;
        }
    }

    /// The end of every job, as in ContainerPilot: a job that completes on
    /// its own also goes through `stopping` (so its preStop-style jobs run)
    /// before `stopped`.
    async fn finish(&mut self) {
        self.announce_stopping().await;
        self.stop_health_checks();
        self.deregister().await;
        if let Some(process) = &self.process {
            process.signal_group(Signal::SIGKILL);
        }
        self.publish(EventCode::Stopped);
        self.report(Report::Finished {
            job: self.config.name.clone(),
        });
    }

    // ---- health and the catalog ----------------------------------------

    /// On the job's first start: register (if it advertises a service) and
    /// start its health checks, or the telemetry service's heartbeat.
    fn advertise(&mut self) {
        if self.advertised {
            return;
        }
        self.advertised = true;
        if let (Some(service), Some(discovery)) = (&self.service, &self.shared.discovery) {
            self.registration = Some(Arc::new(Registration::start(
                service.clone(),
                discovery.clone(),
                self.shared.maintenance.clone(),
                self.shared.in_catalog.clone(),
            )));
        }
        let registration = self.registration.clone();
        self.health = match (&self.config.health, &self.config.role) {
            (Some(health), _) => Some(health::spawn(
                self.config.public_name().to_string(),
                health.clone(),
                self.shared.clone(),
                registration,
            )),
            (None, JobRole::Telemetry) => registration.map(health::spawn_heartbeat),
            (None, _) => None,
        };
    }

    /// Takes the service out of the catalog, before the process is signalled.
    async fn deregister(&mut self) {
        if let Some(registration) = self.registration.take() {
            registration.deregister(DEREGISTER_LIMIT).await;
        }
    }

    fn stop_health_checks(&mut self) {
        if let Some(task) = self.health.take() {
            task.abort();
        }
    }

    // ---- helpers ------------------------------------------------------

    fn publish(&self, code: EventCode) {
        self.shared
            .bus
            .publish(Event::new(code, self.config.public_name()));
    }

    fn report(&self, report: Report) {
        // The supervisor outlives every job; a closed channel means it is gone.
        let _ = self.shared.reports.send(report);
    }
}

/// Resolves when a second SIGTERM asks to skip the remaining waits.
async fn hurried(shutdown: &watch::Receiver<ShutdownState>) {
    let mut shutdown = shutdown.clone();
    // An error means the supervisor is gone; then nothing will hurry us.
    if shutdown.wait_for(|state| state.hurry).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn wait_for(process: &mut Option<Process>) -> ExitStatus {
    match process {
        Some(process) => process.wait().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::JobConfig;

    fn job(name: &str, when: When) -> JobConfig {
        JobConfig {
            when,
            ..JobConfig::with_defaults(name, JobRole::Plain)
        }
    }

    fn on(code: EventCode, source: &str) -> When {
        When::Event {
            code,
            source: source.into(),
            frequency: Frequency::Once,
            timeout: None,
        }
    }

    #[test]
    fn hooks_and_dependents() {
        let jobs = vec![
            job("app", When::default()),
            job("preStop", on(EventCode::Stopping, "app")),
            job("postStop", on(EventCode::Stopped, "app")),
        ];
        assert!(!is_shutdown_hook(&jobs[0]));
        assert!(is_shutdown_hook(&jobs[1]));
        assert!(is_shutdown_hook(&jobs[2]));
        assert_eq!(stopping_dependents("app", &jobs), ["preStop"]);
        assert!(stopping_dependents("preStop", &jobs).is_empty());
    }
}
