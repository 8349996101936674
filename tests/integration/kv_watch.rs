//! KV watches with the real binary: a change to a watched key (or under a watched prefix)
//! fires the job waiting for `changed` from `watch.<name>` once, against the Consul double
//! and against the real etcd; a change elsewhere fires nothing.

use crate::common;
use crate::control_support;

use std::time::Duration;

use common::etcd::Etcd;
use common::{http, wait_until, Autopilot, Mode, Running, Scratch};
use consul_double::{Config, ConsulDouble, RecordedRequest};
use nix::sys::signal::Signal;

/// A configuration with one KV watch and a job that appends a line per `changed`,
/// and a control socket in the working directory (for [`ran`]).
fn config(catalog: &str, watch: &str) -> String {
    format!(
        r#"{{ {catalog}, control: {{ socket: "{SOCKET}" }},
            jobs: [{{ name: "on-change", exec: ["sh", "-c", "echo run >> runs"],
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

fn runs(scratch: &Scratch) -> usize {
    scratch.read("runs").lines().count()
}

/// Has the job run `count` times, and has autopilot seen the last run end?
/// A `changed` that comes while a run is still going starts no other run
/// (as in ContainerPilot), so a test changes the key again only after this.
fn ran(scratch: &Scratch, count: usize) -> bool {
    runs(scratch) == count && {
        let status = control_support::call(&scratch.path(SOCKET), "GET", "/v3/status", "").json();
        status["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|job| job["name"] == "on-change"))
            .is_some_and(|job| job["state"] != "running")
    }
}

fn stop(autopilot: Running) {
    autopilot.signal(Signal::SIGTERM);
    let finished = autopilot.finish();
    assert_eq!(
        finished.code,
        0,
        "{}{}",
        finished.stdout_text(),
        finished.stderr_text()
    );
}

/// Writes through `put`, then checks that exactly `expected` runs happened: a change
/// after `put` proves the watch is past it, so a second run would already show.
fn changes_fire_once(scratch: &Scratch, mut put: impl FnMut(&str, &str)) {
    put("app/config", "v1");
    wait_until("one run after the first change", || ran(scratch, 1));
    put("app/other", "x"); // not watched
    put("app/config", "v2");
    wait_until("a second run after the second change", || {
        runs(scratch) >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        runs(scratch),
        2,
        "one run per change, none for the other key"
    );
}

fn consul_put(consul: &ConsulDouble, key: &str, value: &str) {
    let (status, body) =
        http::request(consul.addr(), "PUT", &format!("/v1/kv/{key}"), value).unwrap();
    assert_eq!(status, 200, "{body}");
}

/// autopilot with `watch` against a fresh double, once the watch blocks on `path`.
fn watching_consul(watch: &str, path: &str) -> (ConsulDouble, Scratch, Running, RecordedRequest) {
    let consul = ConsulDouble::start(Config::default()).unwrap();
    let scratch = Scratch::new();
    let catalog = format!(r#"consul: "{}""#, consul.addr());
    let autopilot = start(&scratch, &config(&catalog, watch));
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
fn a_consul_kv_change_fires_its_job_once() {
    let (consul, scratch, autopilot, _) =
        watching_consul(r#"{ name: "cfg", kv: "app/config" }"#, "/v1/kv/app/config");
    changes_fire_once(&scratch, |key, value| consul_put(&consul, key, value));
    stop(autopilot);
}

#[test]
fn a_consul_prefix_watch_fires_on_any_key_under_it() {
    let (consul, scratch, autopilot, blocked) = watching_consul(
        r#"{ name: "cfg", kv: "app/", prefix: true }"#,
        "/v1/kv/app/",
    );
    assert_eq!(blocked.query_values("recurse"), [""]);
    consul_put(&consul, "app/a", "1");
    wait_until("a run for a new key", || ran(&scratch, 1));
    consul_put(&consul, "app/b/c", "2");
    wait_until("a run for a deeper key", || runs(&scratch) == 2);
    stop(autopilot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_kv_change_fires_its_job_once() {
    let etcd = Etcd::start().await;
    let scratch = Scratch::new();
    let catalog = format!(r#"etcd: {{ endpoints: ["{}"] }}"#, etcd.endpoint);
    let autopilot = start(
        &scratch,
        &config(&catalog, r#"{ name: "cfg", kv: "app/config" }"#),
    );
    // The watch's first read sets its baseline; give it a moment to be in place.
    let gateway = etcd.endpoint.clone();
    tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(500));
        changes_fire_once(&scratch, |key, value| etcd_put(&gateway, key, value));
        stop(autopilot);
    })
    .await
    .unwrap();
}

fn etcd_put(endpoint: &str, key: &str, value: &str) {
    use base64::Engine as _;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let body = serde_json::json!({ "key": encode(key), "value": encode(value) });
    let address = endpoint.trim_start_matches("http://").parse().unwrap();
    let (status, answer) = http::request(address, "POST", "/v3/kv/put", &body.to_string()).unwrap();
    assert_eq!(status, 200, "{answer}");
}
