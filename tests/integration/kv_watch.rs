//! KV watches with the real binary: a change to a watched key (or under a watched prefix)
//! fires the job waiting for `changed` from `watch.<name>` once, and that job's run sees
//! the values in its environment (`CONTAINERPILOT_<WATCH>_KV...`, docs/configuration.md,
//! "KV values in the environment"), against the Consul double and against the real etcd;
//! a change elsewhere fires nothing; a value too big or not text is left out with one
//! warning that never shows it.

use crate::common;
use crate::control_support;

use common::etcd::Etcd;
use common::{http, wait_until, Autopilot, Finished, Mode, Running, Scratch};
use consul_double::{Config, ConsulDouble, RecordedRequest};
use nix::sys::signal::Signal;

/// A job that appends the watched key's value (or `unset`) to `runs` on each `changed`.
const RECORD_VALUE: &str = r#"echo \"${CONTAINERPILOT_CFG_KV-unset}\" >> runs"#;

/// A job that writes every variable of the watch to `kv-env`, one per line, then
/// appends `run` to `runs`.
const RECORD_ENV: &str = r#"env | grep ^CONTAINERPILOT_CFG_KV | sort > kv-env.new; mv kv-env.new kv-env; echo run >> runs"#;

/// A configuration with one KV watch and a job running `script` per `changed`,
/// and a control socket in the working directory (for [`ran`]).
fn config(catalog: &str, watch: &str, script: &str) -> String {
    format!(
        r#"{{ {catalog}, control: {{ socket: "{SOCKET}" }},
            jobs: [{{ name: "on-change", exec: ["sh", "-c", "{script}"],
                     when: {{ source: "watch.cfg", each: "changed" }} }}],
            watches: [{watch}] }}"#
    )
}

fn start(scratch: &Scratch, config: &str) -> Running {
    Autopilot::new(Mode::Subreaper, ["-config", config])
        .current_dir(scratch.dir())
        .start()
}

const SOCKET: &str = "autopilot.socket";

fn runs(scratch: &Scratch) -> Vec<String> {
    scratch.read("runs").lines().map(str::to_string).collect()
}

/// Have the job's runs written exactly `expected`, and has autopilot seen the last run
/// end? A `changed` that comes while a run is still going starts no other run (as in
/// ContainerPilot), so a test changes the key again only after this. More runs than
/// `expected` fail at once.
fn ran(scratch: &Scratch, expected: &[&str]) -> bool {
    let runs = runs(scratch);
    assert!(
        runs.len() <= expected.len() && runs.iter().zip(expected).all(|(run, e)| run == e),
        "runs {runs:?}, expected {expected:?}"
    );
    runs == expected && {
        let status = control_support::call(&scratch.path(SOCKET), "GET", "/v3/status", "").json();
        status["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|job| job["name"] == "on-change"))
            .is_some_and(|job| job["state"] != "running")
    }
}

fn stop(autopilot: Running) -> Finished {
    autopilot.signal(Signal::SIGTERM);
    let finished = autopilot.finish();
    assert_eq!(
        finished.code,
        0,
        "{}{}",
        finished.stdout_text(),
        finished.stderr_text()
    );
    finished
}

/// A KV store the test writes to behind autopilot's back.
trait Store {
    fn put(&self, key: &str, value: &[u8]);
    fn delete(&self, key: &str);
}

/// Each change runs the job once, with the value it made; a change to another key runs
/// nothing, and a deleted key leaves the variable unset. The deletion comes only once
/// the second change's run has ended: had the other key or the second change fired an
/// extra run, it would show before the deletion's.
fn changes_fire_once_with_their_value(scratch: &Scratch, store: &impl Store) {
    store.put("app/config", b"v1");
    wait_until("one run after the first change", || ran(scratch, &["v1"]));
    store.put("app/other", b"x"); // not watched
    store.put("app/config", b"v2");
    wait_until("a second run after the second change", || {
        ran(scratch, &["v1", "v2"])
    });
    store.delete("app/config");
    wait_until("a third run, without the value, after the deletion", || {
        ran(scratch, &["v1", "v2", "unset"])
    });
}

/// Big, binary and text values under a watched prefix: only the text one, small enough,
/// reaches the job; each of the others is warned about once, by key, never by value.
/// Each change waits for its run to end, so that none comes while a run is going.
fn only_small_text_values_reach_the_job(
    scratch: &Scratch,
    store: &impl Store,
) -> [&'static str; 2] {
    const SECRET: &str = "hunter2-";
    let big = SECRET.repeat(1200); // 9600 bytes
    let changes: [(&str, &[u8], &str); 4] = [
        ("app/big", big.as_bytes(), ""),
        ("app/bin", b"\xff\xfe", ""),
        (
            "app/db/host",
            b"10.0.0.5",
            "CONTAINERPILOT_CFG_KV_DB_HOST=10.0.0.5\n",
        ),
        (
            "app/db/host",
            b"10.0.0.6",
            "CONTAINERPILOT_CFG_KV_DB_HOST=10.0.0.6\n",
        ),
    ];
    let mut expected = Vec::new();
    for (key, value, environment) in changes {
        store.put(key, value);
        expected.push("run");
        wait_until(&format!("the run after {key} changed"), || {
            ran(scratch, &expected)
        });
        assert_eq!(scratch.read("kv-env"), environment, "after {key} changed");
    }
    [SECRET, "\u{fffd}"]
}

/// autopilot's log after [`only_small_text_values_reach_the_job`]: one warning per key
/// left out, naming it and the limit, with no value in it.
fn check_warnings(finished: &Finished, values: [&str; 2]) {
    let log = finished.stderr_text() + &finished.stdout_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("not put in the environment"))
        .collect();
    assert_eq!(warnings.len(), 2, "one warning per key: {warnings:#?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("app/big") && w.contains("8192 bytes")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("app/bin") && w.contains("UTF-8")),
        "{warnings:#?}"
    );
    for value in values {
        assert!(!log.contains(value), "a value is in the log:\n{log}");
    }
}

struct Consul<'a>(&'a ConsulDouble);

impl Store for Consul<'_> {
    fn put(&self, key: &str, value: &[u8]) {
        let (status, body) =
            http::request(self.0.addr(), "PUT", &format!("/v1/kv/{key}"), value).unwrap();
        assert_eq!(status, 200, "{body}");
    }

    fn delete(&self, key: &str) {
        let (status, body) =
            http::request(self.0.addr(), "DELETE", &format!("/v1/kv/{key}"), "").unwrap();
        assert_eq!(status, 200, "{body}");
    }
}

/// autopilot with `watch` running `script` against a fresh double, once the watch blocks
/// on `path` (its first read, the baseline, is done).
fn watching_consul(
    watch: &str,
    path: &str,
    script: &str,
) -> (ConsulDouble, Scratch, Running, RecordedRequest) {
    let consul = ConsulDouble::start(Config::default()).unwrap();
    let scratch = Scratch::new();
    let catalog = format!(r#"consul: "{}""#, consul.addr());
    let autopilot = start(&scratch, &config(&catalog, watch, script));
    let blocked = consul
        .wait_for_request(common::DEADLINE, |r| r.path == path && r.blocked)
        .unwrap_or_else(|_| {
            let seen: Vec<String> = consul
                .requests()
                .iter()
                .map(|r| format!("{} {}?{} {:?}", r.method, r.path, r.query, r.outcome))
                .collect();
            panic!("the watch never blocked on {path}: {seen:#?}")
        });
    (consul, scratch, autopilot, blocked)
}

#[test]
fn a_consul_kv_change_fires_its_job_once_with_its_value() {
    let (consul, scratch, autopilot, _) = watching_consul(
        r#"{ name: "cfg", kv: "app/config" }"#,
        "/v1/kv/app/config",
        RECORD_VALUE,
    );
    changes_fire_once_with_their_value(&scratch, &Consul(&consul));
    stop(autopilot);
}

#[test]
fn a_consul_prefix_watch_fires_on_any_key_under_it() {
    let (consul, scratch, autopilot, blocked) = watching_consul(
        r#"{ name: "cfg", kv: "app/", prefix: true }"#,
        "/v1/kv/app/",
        "echo run >> runs",
    );
    assert_eq!(blocked.query_values("recurse"), [""]);
    let store = Consul(&consul);
    store.put("app/a", b"1");
    wait_until("a run for a new key", || ran(&scratch, &["run"]));
    store.put("app/b/c", b"2");
    wait_until("a run for a deeper key", || ran(&scratch, &["run", "run"]));
    stop(autopilot);
}

#[test]
fn a_consul_prefix_watch_passes_only_small_text_values() {
    let (consul, scratch, autopilot, _) = watching_consul(
        r#"{ name: "cfg", kv: "app/", prefix: true }"#,
        "/v1/kv/app/",
        RECORD_ENV,
    );
    let values = only_small_text_values_reach_the_job(&scratch, &Consul(&consul));
    check_warnings(&stop(autopilot), values);
}

struct EtcdStore(String);

impl EtcdStore {
    fn call(&self, path: &str, body: serde_json::Value) {
        let address = self.0.trim_start_matches("http://").parse().unwrap();
        let (status, answer) = http::request(address, "POST", path, body.to_string()).unwrap();
        assert_eq!(status, 200, "{answer}");
    }
}

impl Store for EtcdStore {
    fn put(&self, key: &str, value: &[u8]) {
        use base64::Engine as _;
        let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let body = serde_json::json!({ "key": encode(key.as_bytes()), "value": encode(value) });
        self.call("/v3/kv/put", body);
    }

    fn delete(&self, key: &str) {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        self.call("/v3/kv/deleterange", serde_json::json!({ "key": key }));
    }
}

/// autopilot with `watch` running `script` against `etcd`, once the watch is in place
/// (its first read, the baseline, is done).
async fn watching_etcd(etcd: &Etcd, watch: &str, script: &str) -> (Scratch, Running) {
    let scratch = Scratch::new();
    let catalog = format!(r#"etcd: {{ endpoints: ["{}"] }}"#, etcd.endpoint);
    let autopilot = start(&scratch, &config(&catalog, watch, script));
    etcd.wait_for_watchers(1).await;
    (scratch, autopilot)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_kv_change_fires_its_job_once_with_its_value() {
    let etcd = Etcd::start().await;
    let watch = r#"{ name: "cfg", kv: "app/config" }"#;
    let (scratch, autopilot) = watching_etcd(&etcd, watch, RECORD_VALUE).await;
    let store = EtcdStore(etcd.endpoint.clone());
    tokio::task::spawn_blocking(move || {
        changes_fire_once_with_their_value(&scratch, &store);
        stop(autopilot);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_prefix_watch_passes_only_small_text_values() {
    let etcd = Etcd::start().await;
    let watch = r#"{ name: "cfg", kv: "app/", prefix: true }"#;
    let (scratch, autopilot) = watching_etcd(&etcd, watch, RECORD_ENV).await;
    let store = EtcdStore(etcd.endpoint.clone());
    tokio::task::spawn_blocking(move || {
        let values = only_small_text_values_reach_the_job(&scratch, &store);
        check_warnings(&stop(autopilot), values);
    })
    .await
    .unwrap();
}
