//! Health checks: run a job's check every interval, turn results into
//! `healthy` / `unhealthy` events on transitions, and tell the job's catalog
//! registration what to say.
//!
//! The first check runs as soon as the job starts (ContainerPilot waited one
//! interval). An exec check passes when it exits 0 within its timeout (2.x
//! checks have none unless the file sets one); at the timeout its process
//! group is SIGKILLed and the check fails. Its output is logged as
//! `check=check.<job>` and its last 4 KiB become the catalog check's output.
//! `http` and `tcp` checks [beyond] need no helper binary in the image. A
//! check without a command only heartbeats the catalog. This module owns the check loop and the health state; it must not
//! touch the job's process.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{timeout, MissedTickBehavior};

use crate::config::model::{HealthCheck, HealthConfig};
use crate::discovery::TELEMETRY_HEARTBEAT;
use crate::events::{Event, EventCode};
use crate::logging::{OutputLabel, OutputTail};
use crate::process::{self, SpawnSpec};

use super::output;
use super::registration::Registration;
use super::Shared;

/// How long a finished check's output may take to drain from its pipes into
/// the log before its tail is read.
const OUTPUT_DRAIN: Duration = Duration::from_millis(100);

/// The outcome of one check, with the output the catalog should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed(String),
    Failed(String),
}

/// Starts the check loop for `job`; abort the handle to stop it.
pub fn spawn(
    job: String,
    config: HealthConfig,
    shared: Shared,
    registration: Option<Arc<Registration>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut healthy: Option<bool> = None;
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let outcome = check(&job, &config, &shared).await;
            let passed = matches!(outcome, Outcome::Passed(_));
            match (&outcome, &registration) {
                (Outcome::Passed(output), Some(registration)) => registration.passing(output),
                (Outcome::Failed(output), Some(registration)) => registration.critical(output),
                _ => {}
            }
            if let Outcome::Failed(output) = &outcome {
                tracing::debug!(job = %job, "health check failed: {output}");
            }
            if config.check == HealthCheck::Heartbeat {
                continue; // ContainerPilot published no events for it
            }
            if healthy != Some(passed) {
                healthy = Some(passed);
                let code = if passed {
                    EventCode::Healthy
                } else {
                    EventCode::Unhealthy
                };
                shared.bus.publish(Event::new(code, &job));
            }
        }
    })
}

/// The telemetry service has no check: it heartbeats every 5 s while
/// autopilot runs (SPEC.md 8.2).
pub fn spawn_heartbeat(registration: Arc<Registration>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(TELEMETRY_HEARTBEAT);
        loop {
            ticker.tick().await;
            registration.passing("ok");
        }
    })
}

async fn check(job: &str, config: &HealthConfig, shared: &Shared) -> Outcome {
    // Only 2.x checks, which are all exec checks, go without a timeout.
    let limit = config.timeout.unwrap_or(config.interval);
    match &config.check {
        HealthCheck::Exec(argv) => {
            check_exec(job, argv, config.logging_raw, config.timeout, shared).await
        }
        HealthCheck::Tcp(address) => check_tcp(address, limit).await,
        HealthCheck::Http(url) => check_http(url, limit).await,
        HealthCheck::Heartbeat => Outcome::Passed("ok".to_string()),
    }
}

async fn check_exec(
    job: &str,
    argv: &[String],
    raw: bool,
    limit: Option<Duration>,
    shared: &Shared,
) -> Outcome {
    let spec = SpawnSpec {
        argv: argv.to_vec(),
        env: Some(shared.env.snapshot()),
        piped_output: !raw,
        ..SpawnSpec::default()
    };
    let mut process = match process::spawn(&shared.reaper, spec) {
        Ok(process) => process,
        Err(error) => return Outcome::Failed(format!("cannot run {error}")),
    };
    let tail = OutputTail::new();
    let relays = output::relay(
        &mut process,
        &OutputLabel::check(job),
        shared.format,
        Some(&tail),
    );
    let exited = match limit {
        Some(limit) => timeout(limit, process.wait()).await.map_err(|_| limit),
        None => Ok(process.wait().await),
    };
    let verdict = match exited {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("exit status {}", status.code())),
        Err(limit) => {
            process.signal_group(nix::sys::signal::Signal::SIGKILL);
            process.wait().await;
            Err(format!("timed out after {limit:?}"))
        }
    };
    // A grandchild may hold the pipes open: wait only briefly for the output.
    let _ = timeout(OUTPUT_DRAIN, futures_util::future::join_all(relays)).await;
    let output = tail.text();
    match verdict {
        Ok(()) => Outcome::Passed(output),
        Err(reason) if output.is_empty() => Outcome::Failed(reason),
        Err(reason) => Outcome::Failed(format!("{output}\n({reason})")),
    }
}

async fn check_tcp(address: &str, limit: Duration) -> Outcome {
    match timeout(limit, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => Outcome::Passed(format!("connected to {address}")),
        Ok(Err(error)) => Outcome::Failed(format!("connect {address}: {error}")),
        Err(_) => Outcome::Failed(format!("connect {address}: timed out after {limit:?}")),
    }
}

async fn check_http(url: &str, limit: Duration) -> Outcome {
    let client = match reqwest::Client::builder().timeout(limit).build() {
        Ok(client) => client,
        Err(error) => return Outcome::Failed(format!("GET {url}: {error}")),
    };
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => {
            Outcome::Passed(format!("GET {url}: {}", response.status()))
        }
        Ok(response) => Outcome::Failed(format!("GET {url}: {}", response.status())),
        Err(error) => Outcome::Failed(format!("GET {url}: {error}")),
    }
}
