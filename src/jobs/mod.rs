//! Jobs: the lifecycle of one configured job, as an async task.
//!
//! A job is an explicit state machine ([`Phase`]): it waits for its `when`,
//! runs its exec, publishes `exitSuccess` / `exitFailed`, pauses before a
//! restart or the next interval tick, and ends by going through `stopping` →
//! (wait for its preStop-style dependents) → stop signal → kill timeout →
//! SIGKILL → `stopped`. Every input — a bus event, a supervisor command, the
//! run's exit, the phase's one timer — goes through one dispatch per input
//! kind, as ContainerPilot's `processEvent` does, and each handler says
//! whether the job goes on or halts ([`Flow`]). Runs are started through an
//! injected [`Spawner`], so the timing rules are unit-tested on paused time.
//! Health checks run beside the job in their own task ([`health`]). Each job
//! is one task with its own event queue, so no job ever blocks another.
//!
//! This module owns a job's state machine; it must not decide autopilot's exit
//! code (it reports to the supervisor) nor talk to the catalog directly.

mod health;
mod output;
mod registration;
mod render;
mod restart;
pub(crate) mod spawner;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config;
use crate::config::model::{Format, Frequency, JobConfig, JobRole, Restarts, When, GLOBAL_SOURCE};
use crate::discovery::{Discovery, ServiceRegistration};
use crate::environment::{self, job_variable, Environment};
use crate::events::{Bus, Event, EventCode};
use crate::process::SpawnSpec;
use crate::reaper::{ExitStatus, Reaper};
use crate::shutdown::{Stage, Stop};
use crate::tasks::Tasks;

pub(crate) use registration::InCatalog;
use registration::Registration;
use restart::Backoff;
pub(crate) use spawner::{Child, ProcessSpawner, Spawner};

/// How long a stopping job waits for the catalog to confirm deregistration
/// before it signals its process anyway.
pub(crate) const DEREGISTER_LIMIT: Duration = Duration::from_secs(2);

/// How long a job that only starts on `shutdown`/`stopping`/`stopped` (a
/// preStop or postStop hook) may run once the shutdown has begun.
pub(crate) const HOOK_RUN_LIMIT: Duration = Duration::from_secs(5);

/// What jobs tell the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Report {
    /// The job's process started.
    Started {
        job: String,
        role: JobRole,
        pid: nix::unistd::Pid,
    },
    /// A job with nothing to exec started: it is up until it stops.
    Up { job: String },
    /// The job's process ended; `last` when the job will not run it again.
    Exited {
        job: String,
        role: JobRole,
        primary: bool,
        status: ExitStatus,
        last: bool,
    },
    /// A reload replaced the job's configuration; its run, if one was
    /// going, was stopped, and it begins again.
    Replaced { job: String },
    /// The job is done for good (it published `stopped`).
    Finished { job: String },
}

/// What every job task shares, whatever the configuration.
#[derive(Clone)]
pub(crate) struct Shared {
    /// Starts the jobs' runs.
    pub spawner: Arc<dyn Spawner>,
    /// Health checks' processes are reaped through it.
    pub reaper: Reaper,
    /// Where health checks and heartbeats run.
    pub tasks: Tasks,
    pub bus: Bus,
    pub env: Environment,
    pub reports: mpsc::UnboundedSender<Report>,
    /// The run's stop, as every job follows it.
    pub stop: Stop,
    /// The configuration's dialect (2.x logs job stderr at DEBUG).
    pub format: Format,
    /// True while autopilot is in maintenance mode.
    pub maintenance: watch::Receiver<bool>,
    /// How many services are in the catalog (the APP waits for none at shutdown).
    pub in_catalog: InCatalog,
}

/// A service to keep in a catalog: the registration and the catalog.
#[derive(Debug, Clone)]
pub(crate) struct Advertisement {
    pub service: ServiceRegistration,
    pub discovery: Arc<Discovery>,
}

impl PartialEq for Advertisement {
    /// The same registration in the same catalog (the same backend instance).
    fn eq(&self, other: &Self) -> bool {
        self.service == other.service && Arc::ptr_eq(&self.discovery, &other.discovery)
    }
}

/// One job to run: its configuration, the jobs that run on its `stopping`,
/// and its catalog registration if it advertises a service.
#[derive(Debug, Clone)]
pub(crate) struct JobSpec {
    pub config: JobConfig,
    pub dependents: Vec<String>,
    pub advertisement: Option<Advertisement>,
    /// The catalog a `render` job reads.
    pub discovery: Option<Arc<Discovery>>,
}

/// How a job's task begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Wait for its `when` event.
    Waiting,
    /// Its `when` event already happened (the job is new or changed in a
    /// reload, or restarted by one): act on it at once, as the job would have
    /// when it happened.
    AlreadyTriggered,
}

/// Does this job only start on shutdown-time events (a preStop/postStop hook)?
/// Such jobs stay alive during shutdown until their trigger fires.
pub(crate) fn is_shutdown_hook(job: &JobConfig) -> bool {
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
pub(crate) fn stopping_dependents(job: &str, all: &[JobConfig]) -> Vec<String> {
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
pub(crate) enum Command {
    /// Stop gracefully and finish, as at shutdown (a job a reload removed).
    Stop,
    /// Send a signal to the job's process group; the reply says whether a
    /// process was running to receive it.
    Signal(Signal, oneshot::Sender<bool>),
    /// A reload changed the job: stop the current run (stop signal, kill
    /// timeout) without publishing anything, take the new configuration and
    /// begin again. The service stays registered when its registration is
    /// unchanged.
    Replace(Box<JobSpec>, Start),
    /// A reload kept the job's configuration: take its new surroundings
    /// (the jobs that run on its `stopping`, where it is advertised), moving
    /// the registration if that changed, and keep the process.
    Refresh(Box<JobSpec>),
}

/// The supervisor's handle on a running job task.
#[derive(Debug, Clone)]
pub(crate) struct Handle {
    commands: mpsc::UnboundedSender<Command>,
    /// Set, under its lock, when the task takes no more orders (see
    /// [`Job::next_life`]): an order sent before is seen, one sent after fails.
    ended: Arc<Mutex<bool>>,
}

/// The job's end of its [`Handle`].
struct Orders {
    queue: mpsc::UnboundedReceiver<Command>,
    ended: Arc<Mutex<bool>>,
}

impl Orders {
    /// A pair of ends, for a new job task.
    fn new() -> (Handle, Orders) {
        let (commands, queue) = mpsc::unbounded_channel();
        let ended = Arc::new(Mutex::new(false));
        let handle = Handle {
            commands,
            ended: ended.clone(),
        };
        (handle, Orders { queue, ended })
    }
}

/// Every holder leaves the flag consistent, so a poisoned lock is usable.
fn lock(ended: &Mutex<bool>) -> MutexGuard<'_, bool> {
    ended
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Handle {
    /// Asks the job to stop gracefully (it then publishes `stopped` and finishes).
    pub(crate) fn stop(&self) {
        self.send(Command::Stop);
    }

    /// Gives the job a new configuration (see [`Command::Replace`]); false
    /// when its task has ended, and the job must be started afresh.
    #[must_use]
    pub(crate) fn replace(&self, spec: JobSpec, start: Start) -> bool {
        self.send(Command::Replace(Box::new(spec), start))
    }

    /// Has the task ended (it takes no more orders)?
    pub(crate) fn has_ended(&self) -> bool {
        *lock(&self.ended)
    }

    /// Updates the job's surroundings (see [`Command::Refresh`]).
    pub(crate) fn refresh(&self, spec: JobSpec) {
        self.send(Command::Refresh(Box::new(spec)));
    }

    /// Signals the job's process group; false if no process was running.
    pub(crate) async fn signal(&self, signal: Signal) -> bool {
        let (reply, answer) = oneshot::channel();
        if !self.send(Command::Signal(signal, reply)) {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Queues `command`; false when the task has ended.
    fn send(&self, command: Command) -> bool {
        let ended = lock(&self.ended);
        !*ended && self.commands.send(command).is_ok()
    }
}

/// Starts the task for one job. It subscribes to the bus at once, so it sees
/// every event published after this call returns.
pub(crate) fn spawn(spec: JobSpec, shared: Shared, start: Start) -> Handle {
    let events = shared.bus.subscribe();
    let (handle, orders) = Orders::new();
    let tasks = shared.tasks.clone();
    let job = Job::new(spec, shared, events, orders);
    tasks.track(job.run(start));
    handle
}

/// Whether a job goes on after an input, or halts (and winds down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Halt,
}

/// Where a job is in its life.
enum Phase {
    /// Waiting for its `when` event; gives up at `deadline` (`when.timeout`).
    Waiting { deadline: Option<Instant> },
    /// Between runs: a restart delay, or the wait for the next interval tick.
    Pausing { until: Instant },
    /// A run is going.
    Running(Run),
    /// A job with nothing to exec has started: it stays up until it stops.
    Up,
    /// Nothing more will run.
    Done,
}

/// One run of the job's exec.
struct Run {
    child: Box<dyn Child>,
    started_at: Instant,
    /// The run is killed at this instant (the job's `timeout`, or a hook's
    /// budget once the shutdown has begun).
    deadline: Option<Instant>,
    /// An interval job's next tick; a run still going then is killed and the
    /// next one starts at the tick, as in ContainerPilot.
    next_tick: Option<Instant>,
}

impl Phase {
    /// The instant the phase's timer fires, if it has one.
    fn timer(&self) -> Option<Instant> {
        match self {
            Phase::Waiting { deadline } => *deadline,
            Phase::Pausing { until } => Some(*until),
            Phase::Running(run) => match (run.deadline, run.next_tick) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            Phase::Up | Phase::Done => None,
        }
    }

    fn is_running(&self) -> bool {
        matches!(self, Phase::Running(_))
    }

    /// Resolves when the current run's process exits; never without one.
    async fn exit(&mut self) -> ExitStatus {
        match self {
            Phase::Running(run) => run.child.wait().await,
            _ => std::future::pending().await,
        }
    }
}

/// The job's catalog presence while it is up: its registrar and its health
/// checks (or the telemetry service's heartbeat).
struct Presence {
    registration: Option<Arc<Registration>>,
    /// Stops the health checks (or the heartbeat).
    health: Option<CancellationToken>,
}

struct Job {
    hook: bool,
    backoff: Backoff,
    config: JobConfig,
    dependents: Vec<String>,
    advertisement: Option<Advertisement>,
    /// Present from the job's first start until it winds down.
    presence: Option<Presence>,
    shared: Shared,
    events: mpsc::UnboundedReceiver<Event>,
    orders: Orders,
    phase: Phase,
    /// Runs started so far (the restart budget counts them).
    runs: u32,
    /// The stage of the run's stop the job has acted on (a job a reload
    /// removed stops as at `Stopping`): past `Running`, only hooks still
    /// start runs.
    stage: Stage,
    /// The template of a `render` job and the data behind it.
    renderer: Option<render::Renderer>,
    /// The catalog the renderer reads.
    catalog: Option<Arc<Discovery>>,
    /// The render's data changed after a run: render again when idle.
    render_due: bool,
}

impl Job {
    fn new(
        spec: JobSpec,
        shared: Shared,
        events: mpsc::UnboundedReceiver<Event>,
        orders: Orders,
    ) -> Job {
        let JobSpec {
            config,
            dependents,
            advertisement,
            discovery,
        } = spec;
        Job {
            renderer: renderer_for(&config, discovery.clone(), &shared.tasks),
            catalog: discovery,
            render_due: false,
            hook: is_shutdown_hook(&config),
            backoff: Backoff::new(config.restart_delay),
            phase: waiting_for(&config.when),
            config,
            dependents,
            advertisement,
            presence: None,
            shared,
            events,
            orders,
            runs: 0,
            stage: Stage::Running,
        }
    }

    /// The job's whole task: its life, and a new life for a replacement a
    /// reload sent while it was winding down (see [`Job::next_life`]).
    async fn run(mut self, mut start: Start) {
        loop {
            self.live(start).await;
            self.finish().await;
            let Some((spec, next)) = self.next_life() else {
                break;
            };
            tracing::info!(job = %self.config.name, "configuration changed while it stopped: starting again");
            self.begin_again(spec);
            start = next;
        }
        self.report(Report::Finished {
            job: self.config.name.clone(),
        });
    }

    /// One life of the job, from `start` until it halts.
    async fn live(&mut self, start: Start) {
        let mut flow = match start {
            Start::Waiting => Flow::Continue,
            Start::AlreadyTriggered => self.on_when(),
        };
        let stop = self.shared.stop.clone();
        while flow == Flow::Continue {
            let timer = self.phase.timer();
            flow = tokio::select! {
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(&event),
                    None => Flow::Halt,
                },
                Some(command) = self.orders.queue.recv() => self.on_command(command).await,
                status = self.phase.exit() => self.on_exit(status),
                _ = sleep_until(timer) => self.on_timer().await,
                () = render_data_changed(&mut self.renderer) => {
                    self.render_due = self.runs > 0;
                    Flow::Continue
                }
                () = std::future::ready(()), if self.render_due && !self.phase.is_running() => {
                    self.render_due = false;
                    self.start_run()
                }
                stage = stop.past(self.stage) => self.on_stage(stage),
            };
        }
    }

    /// After its end, the orders a job received while it was winding down
    /// (stopping, waiting for its hooks) and did not read: the last
    /// replacement a reload sent (with the surroundings of any later
    /// reload) is its next life, unless a later reload removed it. When
    /// there is none the task takes no more orders: under the same lock, so
    /// an order either is read here or fails to send.
    fn next_life(&mut self) -> Option<(JobSpec, Start)> {
        let ended = self.orders.ended.clone();
        let mut ended = lock(&ended);
        let mut next = None;
        while let Ok(command) = self.orders.queue.try_recv() {
            match command {
                Command::Replace(spec, start) => next = Some((*spec, start)),
                Command::Refresh(spec) => {
                    if let Some((pending, _)) = &mut next {
                        *pending = *spec;
                    }
                }
                Command::Stop => next = None,
                Command::Signal(_, reply) => {
                    let _ = reply.send(false);
                }
            }
        }
        *ended = next.is_none();
        next
    }

    // ---- inputs -------------------------------------------------------

    fn on_event(&mut self, event: &Event) -> Flow {
        let mut flow = Flow::Continue;
        if let When::Event { code, source, .. } = &self.config.when {
            if event.is(*code, source) {
                flow = self.on_when();
            }
        }
        if event.is(EventCode::Startup, GLOBAL_SOURCE) {
            if let When::Interval { .. } = self.config.when {
                flow = self.on_when();
            }
        }
        flow
    }

    /// The job's `when` happened (or, at start, had already happened).
    fn on_when(&mut self) -> Flow {
        match (&self.config.when, &self.phase) {
            // As in ContainerPilot, the first run comes one interval after startup.
            (When::Interval { interval }, Phase::Waiting { .. }) => {
                self.phase = Phase::Pausing {
                    until: Instant::now() + *interval,
                };
                Flow::Continue
            }
            (When::Interval { .. }, _) => Flow::Continue,
            (When::Event { .. }, Phase::Waiting { .. }) => self.start_run(),
            // ContainerPilot lets a run that is still going finish and starts
            // again only for the next event; we do the same.
            (When::Event { .. }, Phase::Running(_)) => {
                tracing::debug!(job = %self.config.name, "still running; event not queued");
                Flow::Continue
            }
            (
                When::Event {
                    frequency: Frequency::Each,
                    ..
                },
                Phase::Pausing { .. },
            ) => self.start_run(),
            // A `once` job already triggered; an exec-less job is already up.
            (When::Event { .. }, _) => Flow::Continue,
        }
    }

    /// The run's stop moved on: a regular job halts (and stops
    /// gracefully); a hook stays for its trigger, its run within its
    /// budget, until nothing can trigger it any more.
    fn on_stage(&mut self, stage: Stage) -> Flow {
        let begun = self.stage == Stage::Running;
        self.stage = stage;
        if !self.hook {
            return Flow::Halt;
        }
        if begun {
            self.cap_hook_run();
        }
        self.on_shutdown_progress()
    }

    async fn on_command(&mut self, command: Command) -> Flow {
        match command {
            Command::Stop => {
                self.stage = self.stage.max(Stage::Stopping);
                Flow::Halt
            }
            Command::Signal(signal, reply) => {
                let running = match &self.phase {
                    Phase::Running(run) => {
                        run.child.signal_group(signal);
                        true
                    }
                    _ => false,
                };
                let _ = reply.send(running);
                Flow::Continue
            }
            Command::Replace(spec, start) => self.replace(*spec, start).await,
            Command::Refresh(spec) => {
                if self.renderer.is_some() && !same_catalog(&self.catalog, &spec.discovery) {
                    // The catalog moved: render from the new one.
                    self.renderer =
                        renderer_for(&spec.config, spec.discovery.clone(), &self.shared.tasks);
                    self.catalog = spec.discovery;
                }
                self.dependents = spec.dependents;
                self.readvertise(spec.advertisement).await;
                Flow::Continue
            }
        }
    }

    /// A run's process exited on its own (or at its deadline).
    fn on_exit(&mut self, status: ExitStatus) -> Flow {
        let Phase::Running(run) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return Flow::Continue;
        };
        self.log_failure(status);
        self.after_run(status, run.started_at.elapsed(), run.next_tick)
    }

    /// The phase's timer fired.
    async fn on_timer(&mut self) -> Flow {
        let now = Instant::now();
        match &mut self.phase {
            Phase::Waiting { .. } => self.give_up(),
            Phase::Pausing { .. } => self.start_run(),
            Phase::Running(run) if run.next_tick.is_some_and(|tick| tick <= now) => {
                self.overran_interval().await
            }
            Phase::Running(run) => {
                let limit = run.deadline.take().map(|end| end - run.started_at);
                tracing::warn!(
                    "{} timeout after {:?}: killing its process group",
                    self.config.name,
                    limit.unwrap_or_default()
                );
                run.child.signal_group(Signal::SIGKILL);
                Flow::Continue
            }
            Phase::Up | Phase::Done => Flow::Continue,
        }
    }

    /// While shutting down, a hook gives up once nothing can trigger it any
    /// more, and a second SIGTERM ends its run at once.
    fn on_shutdown_progress(&mut self) -> Flow {
        // Events already queued may still trigger us: handle them first.
        while let Ok(event) = self.events.try_recv() {
            if self.on_event(&event) == Flow::Halt {
                return Flow::Halt;
            }
        }
        if let (Stage::Hurried, Phase::Running(run)) = (self.stage, &self.phase) {
            run.child.signal_group(Signal::SIGKILL);
        }
        if self.stage >= Stage::Drained && !self.phase.is_running() {
            return Flow::Halt;
        }
        Flow::Continue
    }

    // ---- runs ---------------------------------------------------------

    fn start_run(&mut self) -> Flow {
        if self.stage > Stage::Running && !self.hook {
            return Flow::Continue;
        }
        self.runs += 1;
        self.advertise();
        if self.config.exec.is_none() && self.config.render.is_none() {
            self.phase = Phase::Up;
            self.report(Report::Up {
                job: self.config.name.clone(),
            });
            return Flow::Continue;
        }
        let next_tick = match self.config.when {
            When::Interval { interval } if self.may_run_again() => Some(Instant::now() + interval),
            _ => None,
        };
        let env = self.shared.env.snapshot_for(&self.config.when);
        let started = match self.render_before_run(&env) {
            RenderStep::Exec => self.spawn_run(env),
            RenderStep::End(status) => Err(status),
            // No run and no event: the job runs when the data arrives.
            RenderStep::Wait => {
                self.phase = match next_tick {
                    Some(tick) => Phase::Pausing { until: tick },
                    None => Phase::Waiting { deadline: None },
                };
                return Flow::Continue;
            }
        };
        match started {
            Ok(child) => {
                self.on_started(child, next_tick);
                Flow::Continue
            }
            // A run that ends before any process starts (nothing to exec, or
            // the exec could not be started) ends as if a process exited.
            Err(status) => self.after_run(status, Duration::ZERO, next_tick),
        }
    }

    /// Starts the run's process; the status a run that cannot start ends with.
    fn spawn_run(&mut self, env: environment::Table) -> Result<Box<dyn Child>, ExitStatus> {
        let argv = self.config.exec.clone().ok_or(ExitStatus::Code(0))?;
        let argv = match self.config.role {
            // The APP's arguments are templates, rendered just before each
            // exec so they see CONTAINERPILOT_<JOB>_IP and -putenv values.
            JobRole::App => {
                config::render_args(&argv, &environment::template_data(&env)).map_err(|error| {
                    crate::complain!("autopilot: {error}");
                    ExitStatus::Code(2)
                })?
            }
            _ => argv,
        };
        let spec = SpawnSpec {
            argv,
            env: Some(env),
            foreground: self.config.role == JobRole::App,
            piped_output: !self.config.logging_raw,
        };
        self.shared
            .spawner
            .spawn(&self.config.name, &self.config.role, spec)
            .map_err(|error| {
                if self.config.role == JobRole::App {
                    crate::complain!("autopilot: cannot run {error}");
                } else {
                    tracing::error!(job = %self.config.name, "cannot run {error}");
                }
                ExitStatus::Code(error.exit_code())
            })
    }

    /// Renders the job's template before a run [beyond]: the exec runs only
    /// when the output changed. The run ends at once with success when the
    /// output was already up to date (or there is no exec), with failure
    /// (exit code 1) when the template could not be rendered, and waits
    /// (no event) while the template's data is being fetched: the job runs
    /// again when it arrives.
    fn render_before_run(&self, env: &environment::Table) -> RenderStep {
        let Some(renderer) = &self.renderer else {
            return RenderStep::Exec;
        };
        let job = &self.config.name;
        let output = renderer.output().display();
        match renderer.render(&environment::template_data(env)) {
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

    fn on_started(&mut self, child: Box<dyn Child>, next_tick: Option<Instant>) {
        let pid = child.pid();
        tracing::debug!(job = %self.config.name, %pid, "started");
        for variable in self.pid_variables() {
            self.shared.env.set(&variable, Some(&pid.to_string()));
        }
        let now = Instant::now();
        self.phase = Phase::Running(Run {
            child,
            started_at: now,
            deadline: self.config.timeout.map(|timeout| now + timeout),
            next_tick,
        });
        self.cap_hook_run();
        self.report(Report::Started {
            job: self.config.name.clone(),
            role: self.config.role.clone(),
            pid,
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
        if let (true, true, Phase::Running(run)) =
            (self.hook, self.stage > Stage::Running, &mut self.phase)
        {
            let cap = Instant::now() + HOOK_RUN_LIMIT;
            run.deadline = Some(run.deadline.map_or(cap, |deadline| deadline.min(cap)));
        }
    }

    /// An interval job's run is still going at the next tick: as in
    /// ContainerPilot, it is killed (its timeout defaults to the interval)
    /// and the next run starts at this tick.
    async fn overran_interval(&mut self) -> Flow {
        let Phase::Running(mut run) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return Flow::Continue;
        };
        tracing::warn!(
            "{} still running at its next interval: killing its process group",
            self.config.name
        );
        run.child.signal_group(Signal::SIGKILL);
        let status = run.child.wait().await;
        self.log_failure(status);
        let tick = run.next_tick;
        match self.after_run(status, run.started_at.elapsed(), tick) {
            Flow::Continue if matches!(self.phase, Phase::Pausing { .. }) => self.start_run(),
            flow => flow,
        }
    }

    /// Publishes how a run ended, reports it, and decides what follows.
    fn after_run(
        &mut self,
        status: ExitStatus,
        ran_for: Duration,
        next_tick: Option<Instant>,
    ) -> Flow {
        for variable in self.pid_variables() {
            self.shared.env.set(&variable, None);
        }
        tracing::debug!(job = %self.config.name, code = status.code(), "exited");
        self.publish(if status.success() {
            EventCode::ExitSuccess
        } else {
            EventCode::ExitFailed
        });
        self.phase = self.phase_after_run(status, ran_for, next_tick);
        let flow = match self.phase {
            Phase::Done => Flow::Halt,
            _ => Flow::Continue,
        };
        self.report(Report::Exited {
            job: self.config.name.clone(),
            role: self.config.role.clone(),
            primary: self.config.primary,
            status,
            last: flow == Flow::Halt,
        });
        flow
    }

    /// What follows a run: a restart after the back-off while the budget
    /// lasts, the next interval tick, the next event of an `each` job, or the end.
    fn phase_after_run(
        &mut self,
        status: ExitStatus,
        ran_for: Duration,
        next_tick: Option<Instant>,
    ) -> Phase {
        if self.stage > Stage::Running {
            return Phase::Done;
        }
        let delay = self.backoff.next(status.success(), ran_for);
        match (&self.config.when, next_tick) {
            (When::Interval { .. }, Some(tick)) => Phase::Pausing { until: tick },
            (When::Interval { .. }, None) => Phase::Done,
            (When::Event { .. }, _) if self.may_run_again() => {
                if !status.success() {
                    self.log_restart(delay);
                }
                Phase::Pausing {
                    until: Instant::now() + delay,
                }
            }
            (
                When::Event {
                    frequency: Frequency::Each,
                    ..
                },
                _,
            ) => Phase::Waiting { deadline: None },
            // A render job that reads the catalog renders again when that data changes.
            (When::Event { .. }, _) if self.follows_data() => Phase::Waiting { deadline: None },
            (When::Event { .. }, _) => Phase::Done,
        }
    }

    /// ContainerPilot's line for a run that failed: `<job> exited with error:
    /// exit status 255` at ERROR. The APP's exit is autopilot's own exit code,
    /// and its output is the container's: DEBUG, as quiet as tini.
    fn log_failure(&self, status: ExitStatus) {
        if status.success() {
            return;
        }
        let name = &self.config.name;
        match self.config.role {
            JobRole::App => tracing::debug!("{name} exited with error: {status}"),
            _ => tracing::error!("{name} exited with error: {status}"),
        }
    }

    /// Did a stopped run end the way its stop meant it to: with 0, by its
    /// stop signal (or with 128 + its number, as a JVM or a shell trap
    /// reports it), or by the SIGKILL [`spawner::stop`] already logged?
    fn stopped_as_asked(&self, status: ExitStatus) -> bool {
        let stop_signal = self.stop_signal() as i32;
        match status {
            ExitStatus::Code(code) => code == 0 || code == 128 + stop_signal,
            ExitStatus::Signal(number) => number == stop_signal || number == Signal::SIGKILL as i32,
        }
    }

    /// A failed run is followed by another after `delay`.
    fn log_restart(&self, delay: Duration) {
        let budget = match self.config.restarts {
            Restarts::Count(limit) => format!("restart {} of {limit}", self.runs),
            Restarts::Unlimited | Restarts::Never => format!("restart {}", self.runs),
        };
        let after = match delay {
            Duration::ZERO => String::new(),
            delay => format!(" in {delay:?}"),
        };
        tracing::info!(
            "{} restarting after failure{after} ({budget})",
            self.config.name
        );
    }

    /// Does the job render from catalog data it follows?
    fn follows_data(&self) -> bool {
        self.renderer
            .as_ref()
            .is_some_and(render::Renderer::follows_data)
    }

    /// Is there restart budget left after `self.runs` runs?
    fn may_run_again(&self) -> bool {
        match self.config.restarts {
            Restarts::Unlimited => true,
            Restarts::Never => false,
            Restarts::Count(restarts) => self.runs <= restarts,
        }
    }

    /// `when.timeout` expired before the event: as in ContainerPilot, the
    /// job publishes `timerExpired` and then stops (`stopping`, `stopped`).
    fn give_up(&mut self) -> Flow {
        tracing::warn!(job = %self.config.name, "when.timeout expired before its event: giving up");
        self.publish(EventCode::TimerExpired);
        self.phase = Phase::Done;
        Flow::Halt
    }

    // ---- reload -------------------------------------------------------

    /// Takes a changed configuration: the current run is stopped quietly
    /// (its stop signal and kill timeout, no events: its hooks are for the
    /// container's stop, not a reload), and the job begins again. It keeps
    /// its catalog registration when that did not change.
    async fn replace(&mut self, spec: JobSpec, start: Start) -> Flow {
        tracing::info!(job = %self.config.name, "configuration changed: restarting");
        if let Phase::Running(mut run) = std::mem::replace(&mut self.phase, Phase::Done) {
            self.stop_run(&mut run).await;
            for variable in self.pid_variables() {
                self.shared.env.set(&variable, None);
            }
        }
        if spec.advertisement != self.advertisement || spec.config.health != self.config.health {
            self.withdraw().await;
        }
        self.begin_again(spec);
        match start {
            Start::Waiting => Flow::Continue,
            Start::AlreadyTriggered => self.on_when(),
        }
    }

    /// Takes `spec` and begins again as a new job would, keeping the queues
    /// and what is still in the catalog.
    fn begin_again(&mut self, spec: JobSpec) {
        let presence = self.presence.take();
        let events = std::mem::replace(&mut self.events, mpsc::unbounded_channel().1);
        let orders = std::mem::replace(&mut self.orders, Orders::new().1);
        *self = Job {
            presence,
            ..Job::new(spec, self.shared.clone(), events, orders)
        };
        self.report(Report::Replaced {
            job: self.config.name.clone(),
        });
    }

    /// Moves the catalog registration; the process keeps running.
    async fn readvertise(&mut self, advertisement: Option<Advertisement>) {
        if advertisement == self.advertisement {
            return;
        }
        let was_up = self.presence.is_some();
        self.withdraw().await;
        self.advertisement = advertisement;
        if was_up {
            self.advertise();
        }
    }

    /// Stops a run with the job's stop signal and kill timeout (or at once
    /// on a second SIGTERM).
    async fn stop_run(&self, run: &mut Run) -> ExitStatus {
        spawner::stop(
            &self.config.name,
            run.child.as_mut(),
            self.stop_signal(),
            self.config.kill_timeout,
            self.shared.stop.hurried(),
        )
        .await
    }

    // ---- the end ------------------------------------------------------

    /// The end of every job, as in ContainerPilot: `stopping` (and a wait
    /// for the jobs that run on it), out of the catalog, the running process
    /// stopped, `stopped`. A job that completes on its own goes through it too.
    async fn finish(&mut self) {
        let stopping_a_run = self.phase.is_running();
        if self.config.role == JobRole::App && stopping_a_run {
            self.wait_for_services_to_leave().await;
        }
        self.publish(EventCode::Stopping);
        self.wait_for_dependents().await;
        self.withdraw().await;
        if let Phase::Running(mut run) = std::mem::replace(&mut self.phase, Phase::Done) {
            let status = self.stop_run(&mut run).await;
            if !self.stopped_as_asked(status) {
                self.log_failure(status);
            }
            self.stage = self.stage.max(Stage::Stopping);
            self.after_run(status, run.started_at.elapsed(), None);
        }
        self.publish(EventCode::Stopped);
    }

    fn stop_signal(&self) -> Signal {
        match self.shared.stop.app_signal() {
            Some(signal) if self.config.role == JobRole::App => signal,
            _ => Signal::try_from(self.config.stop_signal).unwrap_or(Signal::SIGTERM),
        }
    }

    /// The APP is signalled (and its preStop run) only once every service has
    /// left the catalog, as ContainerPilot 2 did: its services were separate
    /// from the APP (`services[]`, the telemetry service), each deregistering
    /// as it stops, so without this wait the APP would get its signal while
    /// the catalog still sent it traffic. A second SIGTERM skips the wait.
    async fn wait_for_services_to_leave(&self) {
        tokio::select! {
            _ = self.shared.in_catalog.wait_until_none(DEREGISTER_LIMIT) => {}
            _ = self.shared.stop.hurried() => {}
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
        let stop = self.shared.stop.clone();
        let hurry = stop.hurried();
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

    // ---- health and the catalog ----------------------------------------

    /// On the job's first start: register (if it advertises a service) and
    /// start its health checks, or the telemetry service's heartbeat.
    fn advertise(&mut self) {
        if self.presence.is_some() {
            return;
        }
        let registration = self.advertisement.as_ref().map(|advertisement| {
            Arc::new(Registration::start(
                advertisement.service.clone(),
                advertisement.discovery.clone(),
                self.shared.maintenance.clone(),
                self.shared.in_catalog.clone(),
                &self.shared.tasks,
            ))
        });
        let health = match (&self.config.health, &self.config.role) {
            (Some(health), _) => Some(health::spawn(
                self.config.public_name().to_string(),
                health.clone(),
                self.shared.clone(),
                registration.clone(),
            )),
            (None, JobRole::Telemetry) => registration
                .clone()
                .map(|registration| health::spawn_heartbeat(&self.shared.tasks, registration)),
            (None, _) => None,
        };
        self.presence = Some(Presence {
            registration,
            health,
        });
    }

    /// Stops the health checks and takes the service out of the catalog,
    /// before the process is signalled.
    async fn withdraw(&mut self) {
        let Some(presence) = self.presence.take() else {
            return;
        };
        if let Some(health) = presence.health {
            health.cancel();
        }
        if let Some(registration) = presence.registration {
            registration.deregister(DEREGISTER_LIMIT).await;
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

/// The renderer of a `render` job, reading `discovery`.
fn renderer_for(
    config: &JobConfig,
    discovery: Option<Arc<Discovery>>,
    tasks: &Tasks,
) -> Option<render::Renderer> {
    let render = config.render.clone()?;
    Some(render::Renderer::new(render, discovery, tasks))
}

/// Are these the same catalog (the same backend instance), or both none?
fn same_catalog(a: &Option<Arc<Discovery>>, b: &Option<Arc<Discovery>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// The phase a job with this `when` begins in.
fn waiting_for(when: &When) -> Phase {
    let deadline = match when {
        When::Event {
            timeout: Some(timeout),
            ..
        } => Some(Instant::now() + *timeout),
        _ => None,
    };
    Phase::Waiting { deadline }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
