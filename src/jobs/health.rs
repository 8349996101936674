//! Health checks: run a job's check every interval, turn results into
//! `healthy` / `unhealthy` events on transitions, and tell the job's catalog
//! registration what to say.
//!
//! In maintenance no check runs and no health event is published
//! (ContainerPilot's rule); the first check after it reports afresh.
//! The first check runs as soon as the job starts (ContainerPilot waited one
//! interval). An exec check passes when it exits 0 within its timeout (2.x
//! checks have none unless the file sets one); at the timeout its process
//! group is SIGKILLed and the check fails. Its output is logged as
//! `check=check.<job>` and its last 4 KiB become the catalog check's output.
//! `http` and `tcp` checks [beyond] need no helper binary in the image; they
//! resolve host names with getaddrinfo like the rest of autopilot, and an
//! `http` check keeps one client (and its idle connection) from one check to
//! the next. A check without a command only heartbeats the catalog.
//!
//! Before the job's first passing check, failures publish no `unhealthy`
//! until its `startPeriod` (default: its `ttl`) has passed, so an APP that
//! binds its port late does not raise an alert on every start; the catalog
//! check is critical all the same (docs/configuration.md, "health").
//! Failures are logged with ContainerPilot's wording (`check.web exited with
//! error: exit status 1`), rate-limited by [`Streak`]: the first failure of a
//! streak, then a summary at most once a minute, then one line when the check
//! passes again. This module owns the check loop and the health state; it
//! must not touch the job's process.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::{timeout, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::config::model::{HealthCheck, HealthConfig};
use crate::discovery::TELEMETRY_HEARTBEAT;
use crate::events::{Bus, Event, EventCode};
use crate::failure_streak::{Line, Streak, SUMMARY_PERIOD};
use crate::http_client::Url;
use crate::logging::{OutputLabel, OutputTail};
use crate::process::{self, SpawnSpec};
use crate::tasks::Tasks;

use super::output;
use super::registration::Registration;
use super::Shared;

/// How long a finished check's output may take to drain from its pipes into
/// the log before its tail is read.
const OUTPUT_DRAIN: Duration = Duration::from_millis(100);

/// The outcome of one check, with the output the catalog should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Passed(String),
    /// `output` for the catalog; `line` says why, for the log.
    Failed {
        output: String,
        line: String,
    },
}

/// Starts the check loop for `job`; cancel the token to stop it.
pub(super) fn spawn(
    job: String,
    config: HealthConfig,
    shared: Shared,
    registration: Option<Arc<Registration>>,
) -> CancellationToken {
    let checks = Checks {
        job: job.clone(),
        interval: config.interval,
        start_period: config.start_period,
        publishes_health: config.check != HealthCheck::Heartbeat,
        maintenance: shared.maintenance.clone(),
        bus: shared.bus.clone(),
        registration,
    };
    let tasks = shared.tasks.clone();
    // One client for all of the job's `http` checks (it keeps the idle
    // connection); each check's future holds a handle to it.
    let mut http: Option<HttpClient> = None;
    tasks.spawn(checks.run(move || {
        let (job, config, shared) = (job.clone(), config.clone(), shared.clone());
        if matches!(config.check, HealthCheck::Http(_)) {
            http.get_or_insert_with(http_client);
        }
        let mut client = http.clone();
        Box::pin(async move { check(&job, &config, &shared, &mut client).await })
    }))
}

/// The check loop of one job, whatever the check is.
struct Checks {
    job: String,
    interval: Duration,
    /// How long failures before the first pass publish no `unhealthy`.
    start_period: Duration,
    /// False for a heartbeat-only check: it publishes no health events.
    publishes_health: bool,
    maintenance: watch::Receiver<bool>,
    bus: Bus,
    registration: Option<Arc<Registration>>,
}

impl Checks {
    /// Checks every interval. In maintenance, as in ContainerPilot, no check
    /// runs and no `healthy`/`unhealthy` is published; the health is unknown
    /// again afterwards, so the first check after it publishes its result.
    async fn run(mut self, mut check: impl FnMut() -> BoxFuture<'static, Outcome>) {
        let mut healthy: Option<bool> = None;
        let mut failures = Streak::default();
        let start_period_ends = tokio::time::Instant::now() + self.start_period;
        let mut passed_once = false;
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if *self.maintenance.borrow_and_update() {
                healthy = None;
                if self.maintenance.wait_for(|on| !on).await.is_err() {
                    return;
                }
                ticker.reset_immediately();
                continue;
            }
            let outcome = check().await;
            if *self.maintenance.borrow() {
                continue;
            }
            self.tell_the_catalog(&outcome);
            let passed = matches!(outcome, Outcome::Passed(_));
            passed_once |= passed;
            if !passed_once && tokio::time::Instant::now() < start_period_ends {
                if let Outcome::Failed { line, .. } = &outcome {
                    tracing::debug!("{line} (within its startPeriod)");
                }
                continue;
            }
            self.log(&outcome, healthy, &mut failures);
            if !self.publishes_health {
                continue; // ContainerPilot published no events for a heartbeat
            }
            if healthy != Some(passed) {
                healthy = Some(passed);
                let code = if passed {
                    EventCode::Healthy
                } else {
                    EventCode::Unhealthy
                };
                self.bus.publish(Event::new(code, &self.job));
            }
        }
    }

    fn tell_the_catalog(&self, outcome: &Outcome) {
        match (outcome, &self.registration) {
            (Outcome::Passed(output), Some(registration)) => registration.passing(output),
            (Outcome::Failed { output, .. }, Some(registration)) => registration.critical(output),
            _ => {}
        }
    }

    /// Logs a failure (rate-limited by `failures`), the service going
    /// critical after it was `healthy`, and the first pass after failures.
    fn log(&self, outcome: &Outcome, healthy: Option<bool>, failures: &mut Streak) {
        let line = match outcome {
            Outcome::Passed(_) => {
                if let Some(count) = failures.cleared() {
                    tracing::info!("check.{} passed again after {count} failure(s)", self.job);
                }
                return;
            }
            Outcome::Failed { line, .. } => line,
        };
        match failures.failed() {
            Line::First => tracing::error!("{line}"),
            Line::Summary { failures } => tracing::error!(
                "check.{} failed {failures} more time(s) in the last {}s; the latest: {line}",
                self.job,
                SUMMARY_PERIOD.as_secs()
            ),
            Line::Quiet => tracing::debug!("{line}"),
        }
        if healthy == Some(true) && self.registration.is_some() {
            tracing::warn!("{} is critical in the catalog", self.job);
        }
    }
}

/// The telemetry service has no check: it heartbeats every 5 s while
/// autopilot runs (docs/design.md, "Discovery").
pub(super) fn spawn_heartbeat(tasks: &Tasks, registration: Arc<Registration>) -> CancellationToken {
    tasks.spawn(async move {
        let mut ticker = tokio::time::interval(TELEMETRY_HEARTBEAT);
        loop {
            ticker.tick().await;
            registration.passing("ok");
        }
    })
}

/// The client of a job's `http` checks (built at its first check), or why
/// there is none.
type HttpClient = Result<crate::http_client::Client, String>;

/// As many redirects as an `http` check follows (Go's `http.Get` and
/// Consul's HTTP checks follow ten).
const HTTP_CHECK_REDIRECTS: usize = 10;

fn http_client() -> HttpClient {
    crate::http_client::Client::builder()
        .redirects(HTTP_CHECK_REDIRECTS)
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))
}

async fn check(
    job: &str,
    config: &HealthConfig,
    shared: &Shared,
    http: &mut Option<HttpClient>,
) -> Outcome {
    // Only 2.x checks, which are all exec checks, go without a timeout.
    let limit = config.timeout.unwrap_or(config.interval);
    match &config.check {
        HealthCheck::Exec(argv) => {
            check_exec(job, argv, config.logging_raw, config.timeout, shared).await
        }
        HealthCheck::Tcp(address) => probed(job, check_tcp(address, limit).await),
        HealthCheck::Http(url) => {
            let client = http.get_or_insert_with(http_client);
            probed(job, check_http(client, url, limit).await)
        }
        HealthCheck::Heartbeat => Outcome::Passed("ok".to_string()),
    }
}

/// A network check's result: what it saw, passing or not.
type Probe = Result<String, String>;

/// A probe's outcome; a failure's log line names the check, as exec checks' lines do.
fn probed(job: &str, probe: Probe) -> Outcome {
    match probe {
        Ok(output) => Outcome::Passed(output),
        Err(output) => Outcome::Failed {
            line: format!("check.{job} failed: {output}"),
            output,
        },
    }
}

async fn check_exec(
    job: &str,
    argv: &[std::ffi::OsString],
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
        Err(error) => {
            return Outcome::Failed {
                output: format!("cannot run {error}"),
                line: format!("unable to start check.{job}: {error}"),
            }
        }
    };
    let tail = OutputTail::new();
    let relays = output::relay(
        &mut process,
        &OutputLabel::check(job),
        shared.format,
        Some(&tail),
        &shared.tasks,
    );
    let exited = match limit {
        Some(limit) => timeout(limit, process.wait()).await.map_err(|_| limit),
        None => Ok(process.wait().await),
    };
    let verdict = match exited {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err((
            status.to_string(),
            format!("check.{job} exited with error: {status}"),
        )),
        Err(limit) => {
            process.signal_group(nix::sys::signal::Signal::SIGKILL);
            process.wait().await;
            Err((
                format!("timed out after {limit:?}"),
                format!("check.{job} timeout after {limit:?}: killed"),
            ))
        }
    };
    // A grandchild may hold the pipes open: wait only briefly for the output.
    let _ = timeout(OUTPUT_DRAIN, futures_util::future::join_all(relays)).await;
    let output = tail.text();
    match verdict {
        Ok(()) => Outcome::Passed(output),
        Err((reason, line)) if output.is_empty() => Outcome::Failed {
            output: reason,
            line,
        },
        Err((reason, line)) => Outcome::Failed {
            output: format!("{output}\n({reason})"),
            line,
        },
    }
}

async fn check_tcp(address: &str, limit: Duration) -> Probe {
    match timeout(limit, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => Ok(format!("connected to {address}")),
        Ok(Err(error)) => Err(format!("connect {address}: {error}")),
        Err(_) => Err(format!("connect {address}: timed out after {limit:?}")),
    }
}

async fn check_http(client: &HttpClient, url: &str, limit: Duration) -> Probe {
    let shown = without_secrets(url);
    let client = client
        .as_ref()
        .map_err(|error| format!("GET {shown}: {error}"))?;
    match client.get(url).timeout(limit).send().await {
        Ok(response) if response.status().is_success() => {
            Ok(format!("GET {shown}: {}", response.status()))
        }
        Ok(response) => Err(format!("GET {shown}: {}", response.status())),
        Err(error) => Err(format!("GET {shown}: {error}")),
    }
}

/// The check's URL as the log and the catalog show it (see
/// [`Url::redacted`]); one that does not parse is not shown.
fn without_secrets(url: &str) -> String {
    Url::parse(url).map_or_else(|_| "(not a valid URL)".to_string(), |url| url.redacted())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// Job `web`'s checks every second, publishing on `bus`, with no catalog.
    fn checks_of_web(
        bus: Bus,
        maintenance: watch::Receiver<bool>,
        start_period: Duration,
    ) -> Checks {
        Checks {
            job: "web".into(),
            interval: Duration::from_secs(1),
            start_period,
            publishes_health: true,
            maintenance,
            bus,
            registration: None,
        }
    }

    /// Checks that always pass, counted; maintenance from 2.5 s to 5.5 s.
    #[tokio::test(start_paused = true)]
    async fn maintenance_pauses_checks_and_their_events() {
        let bus = Bus::default();
        let mut events = bus.subscribe();
        let (switch, maintenance) = watch::channel(false);
        let checks = checks_of_web(bus, maintenance, Duration::ZERO);
        let count = Arc::new(AtomicU32::new(0));
        let counted = count.clone();
        let task = tokio::spawn(checks.run(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Outcome::Passed(String::new()) })
        }));
        let start = tokio::time::Instant::now();
        let at = |ms: u64| tokio::time::sleep_until(start + Duration::from_millis(ms));
        at(2500).await;
        assert_eq!(count.load(Ordering::SeqCst), 3, "checks at 0, 1 and 2 s");
        assert!(events.try_recv().unwrap().is(EventCode::Healthy, "web"));
        switch.send_replace(true);
        at(5500).await;
        assert_eq!(count.load(Ordering::SeqCst), 3, "no check in maintenance");
        assert!(events.try_recv().is_err(), "no event in maintenance");
        switch.send_replace(false);
        at(5600).await;
        assert_eq!(count.load(Ordering::SeqCst), 4, "checks resume at once");
        assert!(
            events.try_recv().unwrap().is(EventCode::Healthy, "web"),
            "the health is published afresh after maintenance"
        );
        task.abort();
    }

    /// The events the checks published, as (milliseconds after the start, code).
    type Published = Arc<std::sync::Mutex<Vec<(u128, EventCode)>>>;

    /// Checks every second whose result the test switches (failing at first),
    /// with a 5 s start period; every event is recorded with its instant.
    fn start_period_rig() -> (Published, Arc<AtomicBool>) {
        let bus = Bus::default();
        let mut events = bus.subscribe();
        let (_, maintenance) = watch::channel(false);
        let checks = checks_of_web(bus, maintenance, Duration::from_secs(5));
        let passing = Arc::new(AtomicBool::new(false));
        let result = passing.clone();
        tokio::spawn(checks.run(move || {
            let outcome = match result.load(Ordering::SeqCst) {
                true => Outcome::Passed(String::new()),
                false => Outcome::Failed {
                    output: "exit status 1".into(),
                    line: "check.web exited with error: exit status 1".into(),
                },
            };
            Box::pin(async move { outcome })
        }));
        let published = Published::default();
        let record = published.clone();
        let start = tokio::time::Instant::now();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let at = start.elapsed().as_millis();
                record.lock().unwrap().push((at, event.code));
            }
        });
        (published, passing)
    }

    fn at(ms: u64) -> tokio::time::Sleep {
        tokio::time::sleep(Duration::from_millis(ms))
    }

    /// An APP that is ready 2.5 s after its start: its first checks fail,
    /// inside the start period, so the start publishes `healthy` alone; a
    /// failure after the first pass publishes `unhealthy` at once.
    #[tokio::test(start_paused = true)]
    async fn a_healthy_start_publishes_no_unhealthy() {
        let (published, passing) = start_period_rig();
        at(2500).await;
        assert_eq!(*published.lock().unwrap(), []);
        passing.store(true, Ordering::SeqCst);
        at(1000).await;
        passing.store(false, Ordering::SeqCst);
        at(1000).await;
        assert_eq!(
            *published.lock().unwrap(),
            [(3000, EventCode::Healthy), (4000, EventCode::Unhealthy)],
            "healthy at the first pass; after it, a failure counts at once"
        );
    }

    /// An APP that never becomes ready is `unhealthy` at the first failing
    /// check once the start period is over, and only once.
    #[tokio::test(start_paused = true)]
    async fn a_start_that_never_passes_is_unhealthy_after_the_start_period() {
        let (published, _passing) = start_period_rig();
        at(9500).await;
        assert_eq!(*published.lock().unwrap(), [(5000, EventCode::Unhealthy)]);
    }

    #[test]
    fn a_password_or_query_in_a_check_url_is_never_shown() {
        assert_eq!(
            without_secrets("http://monitor:s3cret@127.0.0.1:8080/health"),
            "http://monitor:***@127.0.0.1:8080/health"
        );
        assert_eq!(
            without_secrets("http://127.0.0.1:8080/health?token=s3cret"),
            "http://127.0.0.1:8080/health?***"
        );
        assert_eq!(
            without_secrets("http://127.0.0.1:8080/health"),
            "http://127.0.0.1:8080/health"
        );
    }
}
