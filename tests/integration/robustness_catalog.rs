//! Robustness against a failing catalog (docs/design.md, "Discovery"): the
//! real autopilot, advertising jobs with health checks every second and
//! watching their service, against the Consul double while it answers 503,
//! hangs longer than the request timeout, resets connections, restarts
//! (forgetting every service) and is out for 30 s.
//!
//! After each fault: the APP is still the same process, every service is
//! registered and passing again, the watch gets answers again, the log holds
//! one warning for the outage (not one per failed call) and one line for the
//! recovery, and memory did not grow beyond [`RSS_GROWTH_BOUND_KIB`].

use crate::common;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use common::{procfs, Autopilot, Mode, Running, Scratch};
use consul_double::{Config, ConsulDouble, Fault, FaultRule, Outcome, RecordedRequest, Restart};

/// How long a whole 30 s outage may take to recover from: the watch retries
/// with capped exponential backoff (1 s, 2 s, ... 30 s), so its first try
/// after the outage may come up to 30 s after it ended.
const OUTAGE_RECOVERY: Duration = Duration::from_secs(45);
/// How long anything else may take.
const DEADLINE: Duration = common::DEADLINE;
/// The whole outage.
const OUTAGE: Duration = Duration::from_secs(30);
/// autopilot's request timeout for catalog calls (`discovery::http`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much autopilot's resident memory may grow over a 30 s outage with
/// several services failing to heartbeat every second.
const RSS_GROWTH_BOUND_KIB: u64 = 1024;

/// The first line autopilot logs when the catalog fails (`discovery::outage`).
const OUTAGE_WARNING: &str = "catalog call failed";
/// The line autopilot logs when the catalog answers again.
const RECOVERY_LINE: &str = "catalog reachable again";

/// autopilot wrapping an APP, with `services` jobs that advertise themselves
/// (health checked every second, TTL 3 s) and a watch on the first.
struct Rig {
    scratch: Scratch,
    consul: ConsulDouble,
    autopilot: Running,
    pid: i32,
    app: i32,
    services: usize,
}

const APP: &str = "trap 'exit 0' TERM; while :; do sleep 1000 & wait; done";

impl Rig {
    fn start(services: usize) -> Rig {
        let scratch = Scratch::new();
        let consul = ConsulDouble::start(Config::default()).expect("start the Consul double");
        let jobs: String = (1..=services)
            .map(|n| {
                format!(
                    r#"{{ name: "web-{n}", exec: ["sleep", "3600"], port: {port},
                          interfaces: ["static:127.0.0.1"],
                          health: {{ exec: "true", interval: 1, ttl: 3 }} }},"#,
                    port = 8000 + n
                )
            })
            .collect();
        let config = scratch.config(&format!(
            r#"{{
              consul: "{addr}",
              logging: {{ output: {log:?} }},
              jobs: [{jobs}],
              watches: [{{ name: "web-1", interval: 1 }}],
            }}"#,
            addr = consul.addr(),
            log = scratch.path("autopilot.log").display().to_string(),
        ));
        let autopilot =
            Autopilot::new(Mode::Subreaper, ["-config", &config, "--", "sh", "-c", APP])
                .current_dir(scratch.dir())
                .start();
        let pid = autopilot.autopilot_pid();
        let mut app = None;
        common::wait_until("the APP to start", || {
            app = procfs::children(pid)
                .into_iter()
                .find(|&child| procfs::command_line(child).last().map(String::as_str) == Some(APP));
            app.is_some()
        });
        let rig = Rig {
            scratch,
            consul,
            autopilot,
            pid,
            app: app.expect("found"),
            services,
        };
        rig.wait_until_all_passing();
        rig
    }

    fn wait_until_all_passing(&self) {
        let services = self.services;
        self.consul
            .wait_for(DEADLINE, |state| {
                (1..=services).all(|n| state.passing_instances(&format!("web-{n}")).len() == 1)
            })
            .unwrap_or_else(|_| {
                panic!(
                    "the services are not all passing: {:#?}\nlog:\n{}",
                    self.consul.state(),
                    self.log()
                )
            });
    }

    /// Waits until the watch's blocking query is in flight: a fault set now
    /// fails the next heartbeats while that query is still answered, the
    /// hardest case for telling one outage from many.
    fn wait_for_blocking_watch_query(&self) {
        common::wait_until("a blocking watch query in flight", || {
            self.consul
                .requests()
                .iter()
                .rev()
                .find(|request| is_watch_query(request))
                .is_some_and(|request| {
                    request.outcome == Outcome::InFlight
                        && !request.query_values("index").is_empty()
                })
        });
    }

    /// The sequence number the next request will get.
    fn mark(&self) -> u64 {
        self.consul
            .requests()
            .last()
            .map_or(0, |request| request.seq + 1)
    }

    /// Waits until `count` requests since `mark` satisfy `condition`.
    fn wait_for_requests(
        &self,
        mark: u64,
        count: usize,
        deadline: Duration,
        what: &str,
        condition: impl Fn(&RecordedRequest) -> bool,
    ) {
        let give_up = Instant::now() + deadline;
        loop {
            let seen = self
                .consul
                .requests()
                .iter()
                .filter(|request| request.seq >= mark && condition(request))
                .count();
            if seen >= count {
                return;
            }
            assert!(
                Instant::now() < give_up,
                "only {seen} of {count} {what} within {deadline:?}; log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The catalog is healthy again: every service passes, a heartbeat and
    /// two watch queries since `mark` were answered 200 (the watch loop is
    /// back to blocking queries), and autopilot logged the end of every
    /// outage it logged.
    fn wait_for_recovery(&self, mark: u64, deadline: Duration) {
        self.wait_for_requests(mark, 1, deadline, "heartbeats answered", |request| {
            is_heartbeat(request) && request.outcome == Outcome::Answered(200)
        });
        self.wait_for_requests(mark, 2, deadline, "watch queries answered", |request| {
            is_watch_query(request) && request.outcome == Outcome::Answered(200)
        });
        self.wait_until_all_passing();
        common::wait_until("the recovery to be logged", || {
            self.count_in_log(RECOVERY_LINE) == self.count_in_log(OUTAGE_WARNING)
        });
    }

    fn log(&self) -> String {
        fs::read_to_string(self.scratch.path("autopilot.log")).unwrap_or_default()
    }

    fn count_in_log(&self, text: &str) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains(text))
            .count()
    }

    /// One warning and one recovery line per outage, whatever the number of
    /// failed calls.
    fn assert_logged_outages(&self, outages: usize) {
        assert_eq!(
            (
                self.count_in_log(OUTAGE_WARNING),
                self.count_in_log(RECOVERY_LINE)
            ),
            (outages, outages),
            "warnings and recoveries; log:\n{}",
            self.log()
        );
    }

    fn assert_app_untouched(&self) {
        assert!(procfs::is_alive(self.pid), "autopilot is gone");
        assert!(procfs::is_alive(self.app), "the APP is gone");
        assert_eq!(
            procfs::children(self.pid)
                .iter()
                .filter(|&&child| child == self.app)
                .count(),
            1,
            "the APP is still autopilot's child"
        );
    }

    fn rss_kib(&self) -> u64 {
        let rss = procfs::status_field(self.pid, "VmRSS").expect("VmRSS");
        rss.trim_end_matches(" kB").parse().expect("VmRSS in kB")
    }

    /// Stops autopilot; it must exit 0 (the APP's code) with nothing on stderr.
    /// Ends the injected faults, waits until the catalog is healthy again
    /// and checks what the fault left behind: the APP untouched and
    /// `outages` outages logged (each with its recovery).
    fn clear_faults_and_recover(&self, deadline: Duration, outages: usize) {
        let cleared = self.mark();
        self.consul.clear_faults();
        self.wait_for_recovery(cleared, deadline);
        self.assert_app_untouched();
        self.assert_logged_outages(outages);
    }

    fn stop(self) {
        let log = self.scratch.path("autopilot.log");
        self.autopilot.signal(nix::sys::signal::Signal::SIGTERM);
        let finished = self.autopilot.finish();
        assert_eq!(finished.code, 0, "stderr: {}", finished.stderr_text());
        let log = fs::read_to_string(log).unwrap_or_default();
        assert!(!log.contains("panic"), "log:\n{log}");
    }
}

fn is_heartbeat(request: &RecordedRequest) -> bool {
    request.path.starts_with("/v1/agent/check/")
}

fn is_watch_query(request: &RecordedRequest) -> bool {
    request.path == "/v1/health/service/web-1"
}

#[test]
fn catalog_answering_503_for_a_while() {
    let rig = Rig::start(1);
    rig.wait_for_blocking_watch_query();
    let mark = rig.mark();
    rig.consul
        .set_fault(FaultRule::everywhere(Fault::unavailable()));
    rig.wait_for_requests(mark, 5, DEADLINE, "heartbeats answered 503", |request| {
        is_heartbeat(request) && request.outcome == Outcome::Answered(503)
    });
    rig.clear_faults_and_recover(DEADLINE, 1);
    rig.stop();
}

/// Heartbeats and registrations are refused (an ACL token without
/// `service:write`) while the watch's queries are answered: a configuration
/// error, logged at ERROR (once here: the rate limit allows one line a
/// minute), and no outage.
#[test]
fn agent_refusing_writes_while_queries_work() {
    let rig = Rig::start(1);
    rig.wait_for_blocking_watch_query();
    let mark = rig.mark();
    rig.consul.set_fault(FaultRule::on_path(
        "/v1/agent/",
        Fault::Status {
            code: 403,
            body: "Permission denied".into(),
        },
    ));
    rig.wait_for_requests(mark, 3, DEADLINE, "watch queries answered", |request| {
        is_watch_query(request) && request.outcome == Outcome::Answered(200)
    });
    rig.wait_for_requests(mark, 5, DEADLINE, "heartbeats refused", |request| {
        is_heartbeat(request) && request.outcome == Outcome::Answered(403)
    });
    assert_eq!(
        rig.count_in_log("consul denied check update (403 Permission denied)"),
        1,
        "{}",
        rig.log()
    );
    rig.clear_faults_and_recover(DEADLINE, 0);
    rig.stop();
}

#[test]
fn catalog_hanging_longer_than_the_request_timeout() {
    let rig = Rig::start(1);
    rig.wait_for_blocking_watch_query();
    let mark = rig.mark();
    let hung_at = Instant::now();
    rig.consul.set_fault(FaultRule::everywhere(Fault::Hang));
    // The heartbeat after the first hung one can only be sent once autopilot
    // gave up on that one, at its request timeout.
    rig.wait_for_requests(
        mark,
        2,
        DEADLINE,
        "heartbeats sent into the hang",
        is_heartbeat,
    );
    assert!(hung_at.elapsed() >= REQUEST_TIMEOUT);
    assert_eq!(
        rig.count_in_log("is unreachable during check update: no answer in time"),
        1,
        "{}",
        rig.log()
    );
    rig.clear_faults_and_recover(DEADLINE, 1);
    rig.stop();
}

#[test]
fn catalog_resetting_connections() {
    let rig = Rig::start(1);
    rig.wait_for_blocking_watch_query();
    let mark = rig.mark();
    rig.consul.set_fault(FaultRule::everywhere(Fault::Reset));
    rig.wait_for_requests(mark, 5, DEADLINE, "heartbeats dropped", |request| {
        is_heartbeat(request) && request.outcome == Outcome::Dropped
    });
    rig.clear_faults_and_recover(DEADLINE, 1);
    rig.stop();
}

#[test]
fn agent_restarts_forgetting_every_service() {
    let rig = Rig::start(2);
    for (restarts, restart) in [(1, Restart::KeepIndex), (2, Restart::ResetIndex)] {
        let mark = rig.mark();
        rig.consul.restart_agent(restart);
        rig.wait_for_requests(mark, 2, DEADLINE, "registrations", |request| {
            request.path == "/v1/agent/service/register"
                && request.outcome == Outcome::Answered(200)
        });
        rig.wait_for_recovery(mark, DEADLINE);
        rig.assert_app_untouched();
        // A restart cuts the connections autopilot has open: a call may fail
        // on one (an outage), or the restart may pass between calls.
        let warnings = rig.count_in_log(OUTAGE_WARNING);
        assert!(
            warnings <= restarts,
            "{warnings} warnings; log:\n{}",
            rig.log()
        );
        assert_eq!(
            rig.count_in_log(RECOVERY_LINE),
            warnings,
            "log:\n{}",
            rig.log()
        );
    }
    rig.stop();
}

/// Over half a minute: skipped by `-- --skip long::` (see the README, "Tests").
mod long {
    use super::*;

    /// The agent is out for 30 s (every connection reset: to autopilot's HTTP
    /// client that is the same transport failure as a refused connection) and
    /// comes back having forgotten everything.
    #[test]
    fn agent_down_for_thirty_seconds_then_back_empty() {
        let rig = Rig::start(5);
        let before = rig.rss_kib();
        rig.wait_for_blocking_watch_query();
        let mark = rig.mark();
        rig.consul.set_fault(FaultRule::everywhere(Fault::Reset));
        thread::sleep(OUTAGE);
        rig.wait_for_requests(mark, 5 * 20, DEADLINE, "heartbeats dropped", |request| {
            is_heartbeat(request) && request.outcome == Outcome::Dropped
        });
        rig.consul.restart_agent(Restart::ResetIndex);
        rig.clear_faults_and_recover(OUTAGE_RECOVERY, 1);
        let after = rig.rss_kib();
        assert!(
            after <= before + RSS_GROWTH_BOUND_KIB,
            "resident memory grew from {before} KiB to {after} KiB over the outage"
        );
        rig.stop();
    }
}
