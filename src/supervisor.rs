//! The supervisor: autopilot's run loop as PID 1.
//!
//! It installs the reaper and the signal listener, starts one task per job,
//! publishes `startup`, gives signals their meaning (shutdown, signal events,
//! forwarding to the APP's process group), runs the graceful shutdown, and
//! turns what the jobs report into autopilot's exit code (SPEC.md sections 2
//! and 7). It owns the top-level control flow and the exit code; a job's own
//! lifecycle belongs to [`crate::jobs`], spawning and reaping to
//! [`crate::process`] and [`crate::reaper`].

use std::collections::HashMap;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};

use crate::config::model::{Config, Format, JobRole, When, GLOBAL_SOURCE};
use crate::environment::Environment;
use crate::events::{Bus, Event, EventCode};
use crate::jobs::{self, Report, Shared, ShutdownState};
use crate::process;
use crate::reaper::Reaper;
use crate::signals;

/// Runs `config` to completion and returns autopilot's exit code.
pub fn run(config: Config) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("autopilot: cannot start the runtime: {error}");
            return 1;
        }
    };
    runtime.block_on(async {
        match Supervisor::start(config) {
            Ok(supervisor) => supervisor.run().await,
            Err(error) => {
                eprintln!("autopilot: {error}");
                1
            }
        }
    })
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

struct Supervisor {
    format: Format,
    bus: Bus,
    signals: mpsc::UnboundedReceiver<Signal>,
    reports: mpsc::UnboundedReceiver<Report>,
    shutdown: watch::Sender<ShutdownState>,
    /// Jobs whose task is still running, and whether each is a shutdown hook.
    live: HashMap<String, bool>,
    /// Signals some job listens for (`when: {source: "SIGHUP"}`).
    signal_events: Vec<String>,
    app_pgid: Option<Pid>,
    codes: ExitCodes,
    shutting_down: bool,
}

impl Supervisor {
    /// Sets up the reaper and signals, and starts every job's task.
    fn start(config: Config) -> std::io::Result<Supervisor> {
        let reaper = Reaper::install()?;
        let signals = signals::listen(reaper.clone())?;
        let bus = Bus::default();
        let (report_sender, reports) = mpsc::unbounded_channel();
        let (shutdown, shutdown_receiver) = watch::channel(ShutdownState::default());
        let shared = Shared {
            reaper,
            bus: bus.clone(),
            env: Environment::from_process(),
            reports: report_sender,
            shutdown: shutdown_receiver,
        };
        let mut live = HashMap::new();
        for job in &config.jobs {
            let dependents = jobs::stopping_dependents(&job.name, &config.jobs);
            live.insert(job.name.clone(), jobs::is_shutdown_hook(job));
            jobs::spawn(job.clone(), dependents, shared.clone());
        }
        Ok(Supervisor {
            format: config.format,
            bus,
            signals,
            reports,
            shutdown,
            live,
            signal_events: signal_event_sources(&config),
            app_pgid: None,
            codes: ExitCodes::default(),
            shutting_down: false,
        })
    }

    async fn run(mut self) -> i32 {
        self.bus
            .publish(Event::new(EventCode::Startup, GLOBAL_SOURCE));
        self.check_all_regular_jobs_done();
        while !self.live.is_empty() {
            tokio::select! {
                Some(signal) = self.signals.recv() => self.on_signal(signal),
                Some(report) = self.reports.recv() => self.on_report(report),
            }
        }
        self.codes.exit_code()
    }

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::SIGTERM | Signal::SIGINT if self.shutting_down => {
                tracing::info!("{signal} again: skipping the remaining waits");
                self.shutdown.send_modify(|state| state.hurry = true);
            }
            Signal::SIGTERM | Signal::SIGINT => {
                tracing::info!("{signal} received: shutting down");
                self.begin_shutdown();
            }
            _ if self.signal_events.iter().any(|s| s == signal.as_str()) => {
                self.bus
                    .publish(Event::new(EventCode::Signal, signal.as_str()));
            }
            _ => self.forward(signal),
        }
    }

    /// Passes a signal with no meaning of its own to the APP's process group.
    fn forward(&self, signal: Signal) {
        match self.app_pgid {
            Some(pgid) => process::signal_group(pgid, signal),
            None => {
                tracing::debug!(format = ?self.format, "{signal} ignored: no APP to forward it to")
            }
        }
    }

    fn on_report(&mut self, report: Report) {
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
            self.bus
                .publish(Event::new(EventCode::Shutdown, GLOBAL_SOURCE));
            self.check_all_regular_jobs_done();
        }
    }

    /// When every job that is not a shutdown hook is done, autopilot shuts
    /// down (if it was not already) and hooks still waiting give up.
    fn check_all_regular_jobs_done(&mut self) {
        if self.live.values().any(|hook| !hook) {
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
}

/// The signals that some job waits for, which therefore are not forwarded.
fn signal_event_sources(config: &Config) -> Vec<String> {
    config
        .jobs
        .iter()
        .filter_map(|job| match &job.when {
            When::Event {
                code: EventCode::Signal,
                source,
                ..
            } => Some(source.clone()),
            _ => None,
        })
        .collect()
}
