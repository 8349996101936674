//! Leader locks end to end, against the Consul double and the real etcd: never two holders
//! over many rounds of random stops, starts, crashes and failed renewals; `lost` before the
//! TTL when renewals fail; a released (or invalidated) lock taken by a waiting contender
//! within lock-delay + 1 s; a critical check taking the lock away; and, with the binary,
//! locks following a reload and counted in `/metrics`.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use autopilot::testing::discovery::lock::{LockEvent, LockSpec};
use autopilot::testing::discovery::{ConsulSettings, Discovery};
use common::etcd::Etcd;
use common::DEADLINE;
use consul_double::{Config, ConsulDouble, Fault, FaultRule};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const KEY: &str = "service/db/primary";

fn spec(ttl: Duration, lock_delay: Duration) -> LockSpec {
    LockSpec {
        name: "primary".into(),
        key: KEY.into(),
        ttl,
        lock_delay,
        value: "{\"ID\":\"db\"}".into(),
        checks: Vec::new(),
    }
}

/// A double that accepts session TTLs under Consul's 10 s floor.
fn consul() -> ConsulDouble {
    ConsulDouble::start(Config {
        session_ttl_min: Duration::ZERO,
        ..Config::default()
    })
    .unwrap()
}

fn consul_discovery(consul: &ConsulDouble) -> Arc<Discovery> {
    let mut settings = ConsulSettings::resolve(None, |_| None).unwrap();
    settings.address = consul.addr().to_string();
    Arc::new(Discovery::consul(settings).unwrap())
}

/// Every contender's events, checked as they happen: who believes it holds the lock.
#[derive(Default)]
struct Ledger {
    holder: Option<usize>,
    acquisitions: usize,
    violations: Vec<String>,
    events: Vec<(usize, LockEvent, SystemTime)>,
}

impl Ledger {
    fn record(&mut self, who: usize, event: LockEvent) {
        if let LockEvent::HeldElsewhere(_) = event {
            return;
        }
        self.events.push((who, event.clone(), SystemTime::now()));
        match event {
            LockEvent::Acquired => {
                if let Some(other) = self.holder {
                    self.violations.push(format!(
                        "{who} acquired while {other} believed it held the lock"
                    ));
                }
                self.holder = Some(who);
                self.acquisitions += 1;
            }
            LockEvent::Lost(_) | LockEvent::Released => {
                if self.holder != Some(who) {
                    self.violations
                        .push(format!("{who} reported {event:?} without holding the lock"));
                }
                self.holder = None;
            }
            LockEvent::HeldElsewhere(_) => {}
        }
    }

    /// A crashed contender believes nothing any more.
    fn crashed(&mut self, who: usize) {
        if self.holder == Some(who) {
            self.holder = None;
        }
    }
}

struct Contender {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn start(
    discovery: &Arc<Discovery>,
    spec: &LockSpec,
    ledger: &Arc<Mutex<Ledger>>,
    who: usize,
) -> Contender {
    let (stop, stopped) = oneshot::channel();
    let (discovery, spec, ledger) = (discovery.clone(), spec.clone(), ledger.clone());
    let task = tokio::spawn(async move {
        let report = |event| ledger.lock().unwrap().record(who, event);
        discovery
            .run_lock(&spec, report, async {
                let _ = stopped.await;
            })
            .await;
    });
    Contender { stop, task }
}

impl Contender {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the lock stops")
            .unwrap();
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A small deterministic generator (xorshift64): the rounds are random but repeatable.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

/// Random rounds over three contenders: graceful stops, crashes (the task dropped without
/// releasing), starts, and, with `fail_renewals`, renewals failing for a while.
async fn random_rounds(
    discovery: Arc<Discovery>,
    spec: LockSpec,
    rounds: usize,
    mut fail_renewals: impl FnMut(&mut Dice),
) -> Ledger {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut contenders: Vec<Option<Contender>> = (0..3)
        .map(|who| Some(start(&discovery, &spec, &ledger, who)))
        .collect();
    let mut dice = Dice(0x5eed_1234_abcd_0042);
    for _ in 0..rounds {
        // Half the time the holder is picked, so that the lock changes hands often.
        let holder = ledger.lock().unwrap().holder;
        let who = match (dice.roll(2), holder) {
            (0, Some(holder)) => holder,
            _ => dice.roll(3) as usize,
        };
        match (contenders[who].take(), dice.roll(4)) {
            (None, _) => contenders[who] = Some(start(&discovery, &spec, &ledger, who)),
            (Some(contender), 0) => contender.stop().await,
            (Some(contender), 1) => {
                contender.task.abort();
                let _ = contender.task.await;
                ledger.lock().unwrap().crashed(who);
            }
            (running, action) => {
                contenders[who] = running;
                if action == 2 {
                    fail_renewals(&mut dice);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100 + dice.roll(600))).await;
    }
    for contender in contenders.into_iter().flatten() {
        contender.stop().await;
    }
    Arc::try_unwrap(ledger)
        .ok()
        .expect("every contender stopped")
        .into_inner()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_contenders_never_both_hold_the_lock() {
    let consul = consul();
    let control = consul.control();
    let spec = spec(Duration::from_millis(900), Duration::from_millis(200));
    let ledger = random_rounds(consul_discovery(&consul), spec, 40, |dice| {
        let fault = if dice.roll(2) == 0 {
            Fault::unavailable()
        } else {
            Fault::Hang
        };
        let times = 1 + dice.roll(4) as u32;
        control.set_fault(FaultRule::on_path("/v1/session/renew/", fault).times(times));
    })
    .await;
    control.clear_faults();
    assert!(ledger.violations.is_empty(), "{:#?}", ledger.violations);
    assert!(
        ledger.acquisitions >= 5,
        "too few acquisitions to mean anything: {}",
        ledger.acquisitions
    );
    eprintln!(
        "consul: {} acquisitions over 40 rounds",
        ledger.acquisitions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_renewals_fail_reports_lost_before_its_ttl() {
    let consul = consul();
    let ttl = Duration::from_secs(2);
    let discovery = consul_discovery(&consul);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let holder = start(&discovery, &spec(ttl, Duration::ZERO), &ledger, 0);
    wait_until("acquired", || ledger.lock().unwrap().acquisitions == 1).await;
    consul
        .wait_for_request_async(DEADLINE, |r| {
            r.path.starts_with("/v1/session/renew/")
                && r.outcome == consul_double::Outcome::Answered(200)
        })
        .await
        .unwrap();
    consul.set_fault(FaultRule::on_path("/v1/session/renew/", Fault::Hang));
    let first_loss = || {
        let ledger = ledger.lock().unwrap();
        let mut events = ledger.events.iter();
        events
            .find(|(_, event, _)| matches!(event, LockEvent::Lost(_)))
            .map(|e| e.2)
    };
    wait_until("lost", || first_loss().is_some()).await;
    let lost_at = first_loss().unwrap();
    let last_renewal = consul
        .requests()
        .into_iter()
        .rev()
        .filter(|r| r.path.starts_with("/v1/session/renew/") && r.at < lost_at)
        .find(|r| r.outcome == consul_double::Outcome::Answered(200))
        .expect("a renewal succeeded")
        .at;
    let believed = lost_at.duration_since(last_renewal).unwrap();
    assert!(believed < ttl, "lost {believed:?} after the last renewal");
    consul.clear_faults();
    holder.stop().await;
    eprintln!("lost {believed:?} after the last successful renewal (TTL {ttl:?})");
}

/// Starts a holder and a waiting contender; returns them once the waiter blocks on the key.
async fn holder_and_waiter(
    consul: &ConsulDouble,
    spec: &LockSpec,
) -> (Arc<Mutex<Ledger>>, Contender, Contender) {
    let discovery = consul_discovery(consul);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let holder = start(&discovery, spec, &ledger, 0);
    wait_until("the first holder", || {
        ledger.lock().unwrap().holder == Some(0)
    })
    .await;
    let waiter = start(&discovery, spec, &ledger, 1);
    consul
        .wait_for_request_async(DEADLINE, |r| r.path == format!("/v1/kv/{KEY}") && r.blocked)
        .await
        .unwrap();
    (ledger, holder, waiter)
}

/// How long after `from` the lock was next acquired (by anyone).
fn taken_after(ledger: &Mutex<Ledger>, from: SystemTime) -> Duration {
    let ledger = ledger.lock().unwrap();
    let (_, _, at) = ledger
        .events
        .iter()
        .find(|(_, event, at)| *event == LockEvent::Acquired && *at > from)
        .unwrap();
    at.duration_since(from).unwrap()
}

/// Whether the lock was acquired after `from`.
fn taken_since(ledger: &Mutex<Ledger>, from: SystemTime) -> bool {
    let ledger = ledger.lock().unwrap();
    ledger
        .events
        .iter()
        .any(|(_, event, at)| *event == LockEvent::Acquired && *at > from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lock_is_taken_by_a_waiting_contender_at_once() {
    let consul = consul();
    let lock_delay = Duration::from_secs(2);
    let (ledger, holder, waiter) =
        holder_and_waiter(&consul, &spec(Duration::from_secs(10), lock_delay)).await;
    let took = hand_over(&ledger, holder, waiter).await;
    eprintln!("released lock taken after {took:?}");
}

/// Stops the holder (which releases the lock) and returns how long the waiter took to
/// hold it: under a second, as a release is not an invalidation (no lock-delay applies).
async fn hand_over(ledger: &Mutex<Ledger>, holder: Contender, waiter: Contender) -> Duration {
    let released = SystemTime::now();
    holder.stop().await;
    wait_until("taken over", || ledger.lock().unwrap().holder == Some(1)).await;
    let took = taken_after(ledger, released);
    assert!(
        took < Duration::from_secs(1),
        "taken {took:?} after the release"
    );
    waiter.stop().await;
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_lock_is_taken_within_lock_delay_plus_a_second() {
    let consul = consul();
    let lock_delay = Duration::from_secs(1);
    let (ledger, holder, waiter) =
        holder_and_waiter(&consul, &spec(Duration::from_secs(10), lock_delay)).await;
    let session = consul.lock_holder(KEY).unwrap();
    let destroyed = SystemTime::now();
    reqwest::Client::new()
        .put(format!("{}/v1/session/destroy/{session}", consul.url()))
        .send()
        .await
        .unwrap();
    // Both the old holder (with a new session) and the waiter contend now.
    wait_until("taken over", || taken_since(&ledger, destroyed)).await;
    let took = taken_after(&ledger, destroyed);
    assert!(
        took >= lock_delay - Duration::from_millis(50)
            && took < lock_delay + Duration::from_secs(1),
        "taken {took:?} after the invalidation"
    );
    let first_lost = ledger.lock().unwrap().events[1].clone();
    assert!(
        matches!(first_lost, (0, LockEvent::Lost(_), _)),
        "{first_lost:?}"
    );
    holder.stop().await;
    waiter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_check_takes_the_lock_away() {
    let consul = consul();
    let client = reqwest::Client::new();
    let register = serde_json::json!({"ID": "db-1", "Name": "db", "Port": 5432,
                                      "Check": {"TTL": "30s", "Status": "passing"}});
    client
        .put(format!("{}/v1/agent/service/register", consul.url()))
        .json(&register)
        .send()
        .await
        .unwrap();
    let mut spec = spec(Duration::from_secs(10), Duration::from_secs(1));
    spec.checks = vec!["service:db-1".into()];
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let holder = start(&consul_discovery(&consul), &spec, &ledger, 0);
    wait_until("acquired", || ledger.lock().unwrap().holder == Some(0)).await;
    let create = consul
        .wait_for_request_async(DEADLINE, |r| r.path == "/v1/session/create")
        .await
        .unwrap();
    assert_eq!(
        create.json().unwrap()["ServiceChecks"][0]["ID"],
        "service:db-1"
    );
    let failed = Instant::now();
    client
        .put(format!("{}/v1/agent/check/fail/service:db-1", consul.url()))
        .send()
        .await
        .unwrap();
    wait_until("lost", || ledger.lock().unwrap().holder.is_none()).await;
    assert!(failed.elapsed() < Duration::from_secs(1));
    holder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_contenders_never_both_hold_the_lock() {
    let etcd = Etcd::start().await;
    let discovery = Arc::new(etcd.discovery());
    let spec = spec(Duration::from_secs(2), Duration::ZERO);
    let rounds = random_rounds(discovery.clone(), spec.clone(), 25, |_| {}).await;
    assert!(rounds.violations.is_empty(), "{:#?}", rounds.violations);
    assert!(rounds.acquisitions >= 3, "{:#?}", rounds.events);

    // A hung etcd: the holder's keepalives go unanswered, so it must report `lost` before
    // its TTL, and only then may anyone else hold the key.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let holder = start(&discovery, &spec, &ledger, 0);
    wait_until("acquired", || ledger.lock().unwrap().holder == Some(0)).await;
    let paused = Instant::now();
    etcd.pause();
    wait_until("lost", || ledger.lock().unwrap().holder.is_none()).await;
    let believed = paused.elapsed();
    etcd.resume();
    assert!(believed < spec.ttl, "lost {believed:?} after etcd hung");
    holder.stop().await;
    eprintln!(
        "etcd: {} acquisitions over 25 rounds; lost {believed:?} after etcd hung",
        rounds.acquisitions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_released_lock_is_taken_by_a_waiting_contender_at_once() {
    let etcd = Etcd::start().await;
    let discovery = Arc::new(etcd.discovery());
    let spec = spec(Duration::from_secs(5), Duration::ZERO);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let holder = start(&discovery, &spec, &ledger, 0);
    wait_until("the first holder", || {
        ledger.lock().unwrap().holder == Some(0)
    })
    .await;
    // The holder watches its key while it holds it; the waiter's watch is the second.
    etcd.wait_for_watchers(1).await;
    let waiter = start(&discovery, &spec, &ledger, 1);
    etcd.wait_for_watchers(2).await;
    // etcd has no lock-delay: lock-delay + 1 s is 1 s.
    let took = hand_over(&ledger, holder, waiter).await;
    assert!(
        etcd.get(KEY).await.is_none(),
        "the last holder deleted the key"
    );
    eprintln!("etcd: released lock taken after {took:?}");
}

/// With the binary: locks follow a reload (docs/control-plane.md, "Reload") and are
/// counted in `/metrics`.
mod with_the_binary {
    use super::KEY;
    use crate::common::{wait_until, Scratch};
    use crate::control_support::Pilot;
    use consul_double::{Config, ConsulDouble};

    const BACKUP: &str = "service/db/backup";

    /// Jobs that write `acquired` / `lost` to `log` on the events of `lock.primary`.
    const JOBS: &str = r#"
        { name: "on-acquired", exec: ["sh", "-c", "echo acquired >> log"],
          when: { source: "lock.primary", each: "acquired" } },
        { name: "on-lost", exec: ["sh", "-c", "echo lost >> log"],
          when: { source: "lock.primary", each: "lost" } }"#;

    fn config(consul: &ConsulDouble, port: u16, locks: &str) -> String {
        let extra = format!(r#"consul: "{}", locks: [ {locks} ],"#, consul.addr());
        Pilot::config_text(port, &extra, JOBS, "")
    }

    fn primary(ttl: &str) -> String {
        format!(r#"{{ name: "primary", key: "{KEY}", ttl: "{ttl}" }}"#)
    }

    fn reload(pilot: &Pilot, text: &str) {
        pilot.rewrite_config(text);
        let reply = pilot.call("POST", "/v3/reload", "");
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    /// The sessions autopilot created, in order, by their TTL.
    fn session_ttls(consul: &ConsulDouble) -> Vec<String> {
        (consul.requests().iter())
            .filter(|r| r.path == "/v1/session/create")
            .map(|r| {
                let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                body["TTL"].as_str().unwrap_or_default().to_string()
            })
            .collect()
    }

    fn holder_becomes(
        consul: &ConsulDouble,
        key: &str,
        what: &str,
        wanted: impl Fn(Option<String>) -> bool,
    ) {
        wait_until(what, || wanted(consul.lock_holder(key)));
    }

    /// An unchanged lock keeps its session and holding; a changed one is released
    /// (`lost`, as its jobs go on) and taken again with a new session; an added one
    /// contends; a removed one is released (`lost`) and leaves `--status`. Acquisitions,
    /// losses and holding are in `/metrics` throughout.
    #[test]
    fn locks_follow_a_reload_and_are_counted() {
        let consul = ConsulDouble::start(Config::default()).unwrap();
        let pilot = Pilot::start_in(Scratch::new(), |port| {
            config(&consul, port, &primary("10s"))
        });
        let series =
            |name: &str, lock: &str| format!(r#"containerpilot_lock_{name}{{lock="{lock}"}}"#);
        pilot.scratch.wait_for_lines(&["acquired"]);
        pilot.wait_for_metric(&series("acquisitions", "primary"), 1.0);
        pilot.wait_for_metric(&series("held", "primary"), 1.0);
        let first = consul.lock_holder(KEY).expect("held");

        // Unchanged: the same session keeps the key. (Had it been released, the next
        // step's log would show one more `lost` and `acquired`.)
        reload(&pilot, &config(&consul, pilot.port, &primary("10s")));
        assert_eq!(consul.lock_holder(KEY), Some(first.clone()));

        // Changed: released with `lost`, then taken again with the new TTL.
        reload(&pilot, &config(&consul, pilot.port, &primary("11s")));
        pilot
            .scratch
            .wait_for_lines_unordered(&["acquired", "lost", "acquired"]);
        holder_becomes(&consul, KEY, "a new session to hold the key", |holder| {
            holder.is_some_and(|holder| holder != first)
        });
        assert_eq!(session_ttls(&consul), ["10s", "11s"]);
        let released = format!("release={first}");
        assert!(
            consul
                .requests()
                .iter()
                .any(|r| r.path == format!("/v1/kv/{KEY}") && r.query.contains(&released)),
            "the first session released the key"
        );
        pilot.wait_for_metric(&series("acquisitions", "primary"), 2.0);
        pilot.wait_for_metric(&series("losses", "primary"), 1.0);

        // Added: the new lock contends (and takes its free key); the other keeps its own.
        let second = consul.lock_holder(KEY);
        let backup = format!(r#"{{ name: "backup", key: "{BACKUP}", ttl: "10s" }}"#);
        reload(
            &pilot,
            &config(
                &consul,
                pilot.port,
                &format!("{}, {backup}", primary("11s")),
            ),
        );
        holder_becomes(&consul, BACKUP, "the added lock to be held", |h| {
            h.is_some()
        });
        pilot.wait_for_metric(&series("held", "backup"), 1.0);
        assert_eq!(consul.lock_holder(KEY), second);

        // Removed: released with `lost`, gone from `--status`.
        reload(&pilot, &config(&consul, pilot.port, &backup));
        pilot
            .scratch
            .wait_for_lines_unordered(&["acquired", "lost", "acquired", "lost"]);
        holder_becomes(&consul, KEY, "the removed lock to be released", |h| {
            h.is_none()
        });
        pilot.wait_for_metric(&series("held", "primary"), 0.0);
        pilot.wait_for_metric(&series("losses", "primary"), 2.0);
        let locks = pilot.status()["locks"].clone();
        assert_eq!(locks["backup"]["holding"], true, "{locks}");
        assert!(locks.get("primary").is_none(), "{locks}");
        assert_eq!(session_ttls(&consul), ["10s", "11s", "10s"]);

        // Shutdown releases the rest, with no event.
        assert_eq!(pilot.stop().code, 0);
        assert_eq!(consul.lock_holder(BACKUP), None);
    }
}
