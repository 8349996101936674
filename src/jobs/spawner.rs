//! The seam between a job's rules and real processes.
//!
//! A job asks its [`Spawner`] for each run and holds the [`Child`] it gets
//! back; nothing else in the engine starts a job's process. The real spawner
//! ([`ProcessSpawner`]) starts a process group through [`crate::process`] and
//! relays its output into the log; the engine's unit tests inject a scripted
//! one, so restarts, intervals, timeouts and stop budgets run on paused tokio
//! time without a single process. This module owns starting a run and its
//! output relay; it must not decide when a run starts or ends.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::watch;

use crate::config::model::{Format, JobRole};
use crate::logging::{OutputLabel, OutputTail};
use crate::process::{self, Process, SpawnError, SpawnSpec};
use crate::reaper::{ExitStatus, Reaper};
use crate::tasks::Tasks;
use crate::telemetry::Metrics;

use super::output;

/// Starts a job's runs.
pub(crate) trait Spawner: Send + Sync {
    /// Starts one run of `job` (whose role says how its output is treated).
    fn spawn(
        &self,
        job: &str,
        role: &JobRole,
        spec: SpawnSpec,
    ) -> Result<Box<dyn Child>, SpawnError>;
}

/// One run's process, as the job sees it.
pub(crate) trait Child: Send + Sync {
    fn pid(&self) -> Pid;
    /// Signals the run's whole process group.
    fn signal_group(&self, signal: Signal);
    /// Resolves with the exit status; cancel-safe (asking again after the
    /// status arrived answers the same status).
    fn wait(&mut self) -> BoxFuture<'_, ExitStatus>;
}

impl Child for Process {
    fn pid(&self) -> Pid {
        Process::pid(self)
    }

    fn signal_group(&self, signal: Signal) {
        Process::signal_group(self, signal);
    }

    fn wait(&mut self) -> BoxFuture<'_, ExitStatus> {
        Box::pin(Process::wait(self))
    }
}

/// Stops a run of `job`: `signal` to its group, then SIGKILL after `grace`
/// (logged: the run is cut short) or as soon as `hurry` resolves (a second
/// SIGTERM). Returns its exit status. A run that already exited is not
/// signalled (its group id may be reused).
pub(crate) async fn stop(
    job: &str,
    child: &mut dyn Child,
    signal: Signal,
    grace: std::time::Duration,
    hurry: impl std::future::Future<Output = ()>,
) -> ExitStatus {
    if let Some(status) = child.wait().now_or_never() {
        return status;
    }
    child.signal_group(signal);
    tokio::select! {
        status = child.wait() => return status,
        _ = tokio::time::sleep(grace) => tracing::warn!(
            "{job} did not exit within {grace:?} of {signal}: killing it with SIGKILL"
        ),
        _ = hurry => {}
    }
    child.signal_group(Signal::SIGKILL);
    child.wait().await
}

/// Real processes: one process group per run, output relayed into the log.
pub(crate) struct ProcessSpawner {
    pub reaper: Reaper,
    /// The configuration's dialect (2.x logs job stderr at DEBUG).
    pub format: Format,
    /// The current telemetry registry: a 2.x sensor's stdout is recorded into it.
    pub metrics: watch::Receiver<Option<Metrics>>,
    /// Where output relays run (autopilot's exit waits for them).
    pub tasks: Tasks,
}

impl Spawner for ProcessSpawner {
    fn spawn(
        &self,
        job: &str,
        role: &JobRole,
        spec: SpawnSpec,
    ) -> Result<Box<dyn Child>, SpawnError> {
        let mut process = process::spawn(&self.reaper, spec)?;
        let label = OutputLabel::job(job);
        let metrics = self.metrics.borrow().clone();
        let (JobRole::Sensor { metric }, Some(metrics)) = (role, metrics) else {
            output::relay(&mut process, &label, self.format, None, &self.tasks);
            return Ok(Box::new(process));
        };
        // A sensor's stdout is recorded into its metric once the output has ended.
        let tail = OutputTail::new();
        let relays = output::relay(&mut process, &label, self.format, Some(&tail), &self.tasks);
        let metric = metric.clone();
        self.tasks.track(async move {
            futures_util::future::join_all(relays).await;
            if let Err(error) = metrics.record_sensor_output(&metric, &tail.text()) {
                tracing::warn!("sensor for {metric}: {error}");
            }
        });
        Ok(Box::new(process))
    }
}
