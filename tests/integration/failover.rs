//! The failover example (`examples/failover/`), without Docker: three instances of the
//! same configuration, each autopilot as PID 1 of its own PID and UTS namespaces (so its
//! hostname, and with it its service IDs, is its own), against the Consul double.
//!
//! One instance takes the lock `primary` and is advertised as `db-primary`, the others as
//! `db-replica`, following it. Then the primary is stopped (`docker stop`): the test
//! measures the time until another instance holds the lock and until every remaining
//! replica follows the new primary, and prints both.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, wait_until, Autopilot, Mode, Running, Scratch};
use consul_double::{Config, ConsulDouble};
use nix::sys::signal::Signal;

const KEY: &str = "service/db/primary";

fn failover_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/failover")
}

struct Instance {
    autopilot: Running,
    hostname: String,
    state: PathBuf,
}

impl Instance {
    fn start(consul: &ConsulDouble, scratch: &Scratch, hostname: &str) -> Instance {
        let dir = scratch.path(hostname);
        std::fs::create_dir(&dir).expect("the instance's directory");
        let autopilot = Autopilot::new(Mode::Pid1, std::iter::empty::<&str>())
            .hostname(hostname)
            .env(
                "CONTAINERPILOT",
                &failover_dir()
                    .join("containerpilot.json5")
                    .display()
                    .to_string(),
            )
            .env("CONSUL", &consul.addr().to_string())
            .env("PORT", &free_port().to_string())
            .env("INTERFACE", "static:127.0.0.1")
            .env("FAILOVER_DIR", &failover_dir().display().to_string())
            .env("STATE_DIR", &dir.display().to_string())
            .env(
                "CONTROL_SOCKET",
                &dir.join("cp.socket").display().to_string(),
            )
            .current_dir(&dir)
            .start();
        Instance {
            autopilot,
            hostname: hostname.to_string(),
            state: dir,
        }
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// `autopilot --status --json` against this instance's control socket: its locks.
    fn locks_status(&self) -> serde_json::Value {
        let output = std::process::Command::new(common::binary())
            .args(["--status", "--json"])
            .env(
                "CONTAINERPILOT",
                failover_dir().join("containerpilot.json5"),
            )
            .env("CONTROL_SOCKET", self.state.join("cp.socket"))
            .output()
            .expect("run autopilot --status");
        assert!(output.status.success(), "{output:?}");
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        status["locks"].clone()
    }

    fn is_primary(&self) -> bool {
        self.read("role") == "primary"
    }

    fn follows(&self, primary: &Instance) -> bool {
        !self.is_primary() && self.read("following") == format!("db-primary-{}", primary.hostname)
    }

    /// `docker stop`: SIGTERM to PID 1, which must end cleanly.
    fn stop(self) {
        self.autopilot.signal(Signal::SIGTERM);
        let finished = self.autopilot.finish();
        assert_eq!(
            finished.code,
            0,
            "{} exited with {}:\n{}{}",
            self.hostname,
            finished.code,
            finished.stdout_text(),
            finished.stderr_text()
        );
    }
}

/// The one primary and whether every other instance follows it.
fn settled(instances: &[Instance]) -> Option<usize> {
    let primaries: Vec<usize> = (0..instances.len())
        .filter(|&i| instances[i].is_primary())
        .collect();
    let [primary] = primaries[..] else {
        return None;
    };
    let all_follow = instances
        .iter()
        .enumerate()
        .all(|(i, other)| i == primary || other.follows(&instances[primary]));
    all_follow.then_some(primary)
}

fn passing(consul: &ConsulDouble, service: &str) -> BTreeSet<String> {
    consul
        .state()
        .passing_instances(service)
        .iter()
        .map(|s| s.id.clone())
        .collect()
}

#[test]
fn three_instances_elect_a_primary_and_fail_over_when_it_stops() {
    common::require_program("python3", "python3");
    let consul = ConsulDouble::start(Config::default()).expect("the Consul double");
    let scratch = Scratch::new();
    let mut instances: Vec<Instance> = ["db-1", "db-2", "db-3"]
        .iter()
        .map(|host| Instance::start(&consul, &scratch, host))
        .collect();

    wait_until("one primary, two replicas following it", || {
        settled(&instances).is_some()
    });
    let primary = settled(&instances).unwrap();
    let primary_id = format!("db-primary-{}", instances[primary].hostname);
    wait_until("the roles advertised", || {
        passing(&consul, "db-primary") == BTreeSet::from([primary_id.clone()])
            && passing(&consul, "db-replica").len() == 2
    });
    let holder = consul.lock_holder(KEY).expect("the lock is held");
    for (i, instance) in instances.iter().enumerate() {
        let lock = &instance.locks_status()["primary"];
        assert_eq!(
            lock["holding"],
            i == primary,
            "{}: {lock}",
            instance.hostname
        );
    }

    let old = instances.remove(primary);
    let old_host = old.hostname.clone();
    let stopped = Instant::now();
    old.stop();
    let stop_took = stopped.elapsed();
    let requests = consul.requests();
    let seq_of = |what: &dyn Fn(&consul_double::RecordedRequest) -> bool| {
        requests.iter().find(|r| what(r)).map(|r| r.seq)
    };
    let released =
        seq_of(&|r| r.path == format!("/v1/kv/{KEY}") && r.query.starts_with("release="));
    let deregistered = seq_of(&|r| r.path == format!("/v1/agent/service/deregister/db-{old_host}"));
    assert!(
        released.is_some() && released < deregistered,
        "the lock is released ({released:?}) before the service is deregistered ({deregistered:?})"
    );
    wait_until("a new holder", || {
        consul
            .lock_holder(KEY)
            .is_some_and(|session| session != holder)
    });
    let elected = stopped.elapsed();
    let deadline = Instant::now() + common::DEADLINE;
    while settled(&instances).is_none() {
        if Instant::now() > deadline {
            let states: Vec<String> = instances
                .iter()
                .map(|i| {
                    format!(
                        "{}: {} following {:?}",
                        i.hostname,
                        i.read("role"),
                        i.read("following")
                    )
                })
                .collect();
            let outputs: Vec<String> = instances
                .into_iter()
                .map(|i| {
                    i.autopilot.signal(Signal::SIGTERM);
                    let f = i.autopilot.finish();
                    format!("{}{}", f.stdout_text(), f.stderr_text())
                })
                .collect();
            panic!(
                "no new settled primary: {states:?}\n{}",
                outputs.join("\n-----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let followed = stopped.elapsed();
    let new_primary = &instances[settled(&instances).unwrap()];
    let new_id = format!("db-primary-{}", new_primary.hostname);
    wait_until("the new primary advertised", || {
        passing(&consul, "db-primary") == BTreeSet::from([new_id.clone()])
    });
    let advertised = stopped.elapsed();
    eprintln!(
        "failover: old primary stopped in {stop_took:?}; new lock holder after {elected:?}; \
         every replica following the new primary after {followed:?}; \
         db-primary advertised after {advertised:?} (session TTL 10s, lock-delay 1s, checks every 1s)"
    );
    assert!(
        elected < Duration::from_secs(2),
        "a released lock is taken at once: {elected:?}"
    );
    for instance in instances {
        instance.stop();
    }
}
