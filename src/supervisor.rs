//! The supervisor: autopilot's run loop as PID 1.
//!
//! It installs the reaper and the signal listener, starts the wrapped APP,
//! forwards signals to the APP's process group, runs the graceful shutdown on
//! SIGTERM/SIGINT and turns the APP's end into autopilot's exit code
//! (SPEC.md sections 2 and 7). It owns the top-level control flow; spawning and
//! reaping belong to [`crate::process`] and [`crate::reaper`].

use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::process::{self, SpawnSpec};
use crate::reaper::Reaper;
use crate::signals;

/// Grace between SIGTERM and SIGKILL when nothing else is configured
/// (ContainerPilot's `stopTimeout` default).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// What to supervise.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The wrapped APP and its arguments.
    pub app: Vec<String>,
    /// How long the APP gets between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// Runs `plan` to completion and returns autopilot's exit code.
pub fn run(plan: Plan) -> i32 {
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
    runtime.block_on(supervise(plan))
}

async fn supervise(plan: Plan) -> i32 {
    let reaper = match Reaper::install() {
        Ok(reaper) => reaper,
        Err(error) => {
            eprintln!("autopilot: cannot become a child subreaper: {error}");
            return 1;
        }
    };
    let mut signals = match signals::listen(reaper.clone()) {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("autopilot: cannot install signal handlers: {error}");
            return 1;
        }
    };
    let spec = SpawnSpec {
        argv: plan.app,
        foreground: true,
        ..SpawnSpec::default()
    };
    let mut app = match process::spawn(&reaper, &spec) {
        Ok(app) => app,
        Err(error) => {
            eprintln!("autopilot: cannot run {error}");
            return error.exit_code();
        }
    };
    let pgid = app.pid();
    let status = loop {
        tokio::select! {
            status = app.wait() => break status,
            Some(signal) = signals.recv() => {
                if is_shutdown(signal) {
                    let hurry = wait_for_second_shutdown_signal(&mut signals, pgid);
                    break app.stop(Signal::SIGTERM, plan.grace, hurry).await;
                }
                process::signal_group(pgid, signal);
            }
        }
    };
    // Whatever the APP left behind in its process group goes with it.
    process::signal_group(pgid, Signal::SIGKILL);
    status.code()
}

fn is_shutdown(signal: Signal) -> bool {
    matches!(signal, Signal::SIGTERM | Signal::SIGINT)
}

/// Resolves on the next SIGTERM/SIGINT, forwarding any other signal to the
/// APP's group meanwhile.
async fn wait_for_second_shutdown_signal(signals: &mut UnboundedReceiver<Signal>, pgid: Pid) {
    while let Some(signal) = signals.recv().await {
        if is_shutdown(signal) {
            return;
        }
        process::signal_group(pgid, signal);
    }
    std::future::pending().await
}
