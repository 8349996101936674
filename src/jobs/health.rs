//! Health checks: run a job's check every interval and turn results into
//! `healthy` / `unhealthy` events on transitions.
//!
//! The first check runs as soon as the job starts (ContainerPilot waited one
//! interval). An exec check passes when it exits 0 within its timeout; at the
//! timeout its process group is SIGKILLed and the check fails. `http` and
//! `tcp` checks [beyond] need no helper binary in the image. This module owns
//! the check loop and the health state; it must not touch the job's process.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{timeout, MissedTickBehavior};

use crate::config::model::{HealthCheck, HealthConfig};
use crate::events::{Event, EventCode};
use crate::process::{self, SpawnSpec};

use super::Shared;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(String),
}

/// Starts the check loop for `job`; abort the handle to stop it.
pub fn spawn(job: String, config: HealthConfig, shared: Shared) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut healthy: Option<bool> = None;
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let outcome = check(&job, &config, &shared).await;
            let passed = outcome == Outcome::Passed;
            if let Outcome::Failed(reason) = &outcome {
                tracing::debug!(job = %job, "health check failed: {reason}");
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

async fn check(job: &str, config: &HealthConfig, shared: &Shared) -> Outcome {
    let limit = config.timeout;
    match &config.check {
        HealthCheck::Exec(argv) => check_exec(job, argv, limit, shared).await,
        HealthCheck::Tcp(address) => check_tcp(address, limit).await,
        HealthCheck::Http(url) => check_http(url, limit).await,
    }
}

async fn check_exec(job: &str, argv: &[String], limit: Duration, shared: &Shared) -> Outcome {
    let spec = SpawnSpec {
        argv: argv.to_vec(),
        env: Some(shared.env.snapshot()),
        ..SpawnSpec::default()
    };
    let mut process = match process::spawn(&shared.reaper, &spec) {
        Ok(process) => process,
        Err(error) => return Outcome::Failed(format!("check.{job}: cannot run {error}")),
    };
    match timeout(limit, process.wait()).await {
        Ok(status) if status.success() => Outcome::Passed,
        Ok(status) => Outcome::Failed(format!("exit status {}", status.code())),
        Err(_) => {
            process.signal_group(nix::sys::signal::Signal::SIGKILL);
            process.wait().await;
            Outcome::Failed(format!("timed out after {limit:?}"))
        }
    }
}

async fn check_tcp(address: &str, limit: Duration) -> Outcome {
    match timeout(limit, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => Outcome::Passed,
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
        Ok(response) if response.status().is_success() => Outcome::Passed,
        Ok(response) => Outcome::Failed(format!("GET {url}: {}", response.status())),
        Err(error) => Outcome::Failed(format!("GET {url}: {error}")),
    }
}
