//! What a user migrating a running image from ContainerPilot meets at run
//! time, tried with the real binary: `/status` on the telemetry port, `-ping`,
//! the environment jobs get (`CONTAINERPILOT`, `CONTAINERPILOT_<JOB>_PID`),
//! `--check`'s verdicts and warnings, 2.x files as ContainerPilot 2 ran them,
//! jobs sharing a name, the `loaded config:` line, and the example's words.

mod common;

use std::net::SocketAddr;
use std::process::Output;

use common::{binary, free_port, http, wait_until, Autopilot, Mode, Scratch};
use consul_double::{Config as DoubleConfig, ConsulDouble, RecordedRequest};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// `autopilot ARGS` run to completion with no configuration in the environment.
fn autopilot(args: &[&str]) -> Output {
    std::process::Command::new(binary())
        .args(args)
        .env_remove("CONTAINERPILOT")
        .env_remove("CONTAINERBUDDY")
        .output()
        .expect("run autopilot")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `--check` of an inline document: its exit code and what it printed on stderr.
fn check(config: &str) -> (Option<i32>, String) {
    let output = autopilot(&["--check", "-config", config]);
    (output.status.code(), stderr(&output))
}

fn get_status(address: SocketAddr) -> Option<Value> {
    let (code, body) = http::request(address, "GET", "/status", "").ok()?;
    assert_eq!(code, 200, "{body}");
    Some(serde_json::from_str(&body).expect("/status is JSON"))
}

#[test]
fn status_on_the_telemetry_port_reports_jobs_services_and_watches() {
    let scratch = Scratch::new();
    let port = free_port();
    let config = scratch.config(&format!(
        r#"{{
          jobs: [
            {{ name: "pre", exec: "true" }},
            {{ name: "web", exec: ["sleep", "1000"], port: 8080, interfaces: ["static:192.0.2.1"],
               health: {{ exec: "true", interval: 1, ttl: 5 }} }},
          ],
          watches: [{{ name: "db", interval: 3 }}],
          telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"] }},
        }}"#
    ));
    let running = Autopilot::new(Mode::Subreaper, ["-config", &config]).start();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let expected = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        // A job that ran once and is done is `unknown`, as in ContainerPilot 3.8.
        "Jobs": [{"Name": "pre", "Status": "unknown"}],
        "Services": [
            {"Name": "web", "Address": "192.0.2.1", "Port": 8080, "Status": "healthy"},
            {"Name": "containerpilot", "Address": "127.0.0.1", "Port": port, "Status": "healthy"},
        ],
        "Watches": ["db"],
    });
    let mut seen = None;
    wait_until("/status to show web healthy", || {
        seen = get_status(address);
        seen.as_ref() == Some(&expected)
    });
    for method in ["POST", "PUT", "HEAD"] {
        let (code, _) = http::request(address, method, "/status", "").expect("an answer");
        assert_eq!(code, 405, "{method} /status");
    }
    stop(running);
}

#[test]
fn a_job_reaches_its_own_autopilot_through_containerpilot_and_ping_says_ok() {
    let scratch = Scratch::new();
    scratch.config(
        r#"{
          jobs: [
            { name: "client",
              exec: ["sh", "-c", "\"$AUTOPILOT\" -ping > ping.out && \"$AUTOPILOT\" -putenv MARK=from-client"] },
            { name: "reader", when: { source: "client", once: "exitSuccess" },
              exec: ["sh", "-c", "echo \"$MARK $CONTAINERPILOT\" > reader.out"] },
          ]
        }"#,
    );
    // A relative -config: the jobs must still find the file.
    let finished = Autopilot::new(Mode::Pid1, ["-config", "config.json5"])
        .current_dir(scratch.dir())
        .env("AUTOPILOT", &binary().display().to_string())
        .run();
    assert_eq!(finished.code, 0, "{}", finished.stderr_text());
    assert_eq!(scratch.read("ping.out"), "ok\n");
    assert_eq!(
        scratch.read("reader.out"),
        format!("from-client {}\n", scratch.path("config.json5").display())
    );
}

#[test]
fn pid_variables_are_named_as_containerpilot_named_them() {
    let scratch = Scratch::new();
    let job = |name: &str, variable: &str, tag: &str| {
        format!(
            r#"{{ name: "{name}", exec: ["sh", "-c", "echo $$ > self-{tag}; exec sleep 1000"],
                 health: {{ exec: ["sh", "-c", "echo ${variable} > seen-{tag}"], interval: 1, ttl: 5 }} }}"#
        )
    };
    let config = scratch.config(&format!(
        "{{ jobs: [{}, {}] }}",
        job("test-Case--now", "CONTAINERPILOT_TEST_CASE_NOW_PID", "a"),
        job("x.sh", "CONTAINERPILOT_X_SH_PID", "b"),
    ));
    let running = Autopilot::new(Mode::Pid1, ["-config", &config])
        .current_dir(scratch.dir())
        .start();
    for tag in ["a", "b"] {
        wait_until(&format!("job {tag}'s health check to see its pid"), || {
            let own = scratch.read(&format!("self-{tag}"));
            !own.trim().is_empty() && scratch.read(&format!("seen-{tag}")) == own
        });
    }
    stop(running);
}

#[test]
fn check_refuses_what_run_time_would_refuse_naming_the_field() {
    for (config, message) in [
        (
            "{consul: '127.0.0.1:99999', jobs: []}",
            "config error: consul: \"127.0.0.1:99999\" is not a valid address: port \"99999\" is not a TCP port (1-65535)",
        ),
        (
            "{consul: 'http//bad address', jobs: []}",
            "config error: consul: \"http//bad address\" is not a valid address",
        ),
        (
            "{control: {socket: ''}, jobs: []}",
            "config error: control.socket: must not be empty",
        ),
        (
            "{jobs: [{name: 'web', exec: 'x', port: 80, interfaces: ['127.0.0.1'], health: {exec: 'true', interval: 1, ttl: 5}}]}",
            "config error: jobs[0] \"web\".interfaces[0]: invalid interface spec \"127.0.0.1\": an IP address is not an interface name",
        ),
        (
            "{jobs: [{name: 'web', exec: 'x', port: 80, interfaces: ['!'], health: {exec: 'true', interval: 1, ttl: 5}}]}",
            "config error: jobs[0] \"web\".interfaces[0]: invalid interface spec \"!\"",
        ),
        (
            r#"{"consul": "c:8500", "services": [{"name": "web", "health": "true", "poll": 1, "ttl": 5}]}"#,
            "config error: services[0] \"web\".port: must be > 0",
        ),
    ] {
        let (code, printed) = check(config);
        assert_eq!(code, Some(2), "{config}: {printed}");
        assert!(printed.starts_with(message), "{config}:\n{printed}");
    }
}

#[test]
fn check_accepts_what_containerpilot_accepted_and_warns() {
    let (code, printed) = check(
        "{jobs: [
           {name: 'web', exec: 'x', port: 80, health: {interval: 10, ttl: 5}},
           {name: 'web', exec: 'y'},
           {name: 'db', exec: 'z', port: 5432, health: {exec: 'no-such-checker', interval: 1, ttl: 5}},
         ]}",
    );
    assert_eq!(code, Some(0), "{printed}");
    let warnings: Vec<&str> = printed.lines().collect();
    assert_eq!(
        warnings,
        [
            "autopilot: warning: jobs[1] \"web\": jobs[0] \"web\" has the same name \"web\"; ContainerPilot ran both, and so does autopilot: this one runs as \"web-2\" (--status, -signal) and publishes its events, variables and catalog service as \"web\"",
            "autopilot: warning: job \"web\": health.ttl (5s) is shorter than health.interval (10s): the catalog will mark the service critical between two checks",
            "autopilot: warning: job \"web\" has port 80 but no catalog (consul or etcd) is configured: it is not advertised",
            "autopilot: warning: job \"db\" has port 5432 but no catalog (consul or etcd) is configured: it is not advertised",
            "autopilot: warning: job \"db\": health check command \"no-such-checker\" is not found on PATH on this machine: every check will fail until it is installed",
        ]
    );
}

#[test]
fn jobs_sharing_a_name_both_run_and_publish_under_it() {
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{
          jobs: [
            { name: "worker", exec: ["sh", "-c", "echo first >> log"] },
            { name: "worker", when: { source: "after", once: "exitSuccess" },
              exec: ["sh", "-c", "echo second >> log"] },
            { name: "after", when: { source: "worker", each: "exitSuccess" },
              exec: ["sh", "-c", "echo after >> log"] },
          ]
        }"#,
    );
    let running = Autopilot::new(Mode::Subreaper, ["-config", &config])
        .current_dir(scratch.dir())
        .start();
    // Each exitSuccess of either "worker" starts "after": both publish as "worker".
    scratch.wait_for_lines(&["first", "after", "second", "after"]);
    running.signal(Signal::SIGTERM);
    let finished = running.finish();
    assert_eq!(finished.code, 0);
    assert!(
        finished
            .stdout_text()
            .contains("this one runs as \"worker-2\""),
        "the warning is logged: {}",
        finished.stdout_text()
    );
}

#[test]
fn the_loaded_configuration_is_logged_at_debug() {
    for (config, prefix) in [
        (
            "{logging: {level: 'DEBUG'}, control: {socket: 'SOCKET'}, jobs: [{name: 'a', exec: 'true'}]}",
            "loaded config: {\"format\":\"v3\"",
        ),
        (
            r#"{"logging": {"level": "DEBUG"}, "consul": "c:8500", "preStart": "true"}"#,
            "Loaded config: {\"format\":\"v2\"",
        ),
    ] {
        let scratch = Scratch::new();
        let socket = scratch.path("control.sock").display().to_string();
        let config = config.replace("SOCKET", &socket);
        let finished = Autopilot::new(Mode::Subreaper, ["-config", &config]).run();
        let logged = finished.stdout_text();
        assert!(
            logged.lines().any(|line| line.contains(prefix)),
            "no {prefix:?} line in:\n{logged}"
        );
    }
}

/// Starts the Consul double and autopilot on a 2.x file (`CONSUL` replaced
/// by the double's address), as host `h1`.
fn run_2x(text: &str) -> (ConsulDouble, common::Running, Scratch) {
    let consul = ConsulDouble::start(DoubleConfig::default()).expect("the consul double starts");
    let scratch = Scratch::new();
    let config = scratch.config(&text.replace("CONSUL", &consul.addr().to_string()));
    let running = Autopilot::new(Mode::Subreaper, ["-config", &config])
        .hostname("h1")
        .current_dir(scratch.dir())
        .start();
    (consul, running, scratch)
}

/// The outputs of the check updates autopilot sent for `service_id`, all of
/// which must have been `passing`.
fn passing_outputs(consul: &ConsulDouble, service_id: &str) -> Vec<String> {
    let path = format!("/v1/agent/check/update/service:{service_id}");
    let updates: Vec<Value> = consul
        .requests()
        .iter()
        .filter(|r: &&RecordedRequest| r.path == path)
        .filter_map(RecordedRequest::json)
        .collect();
    assert!(
        updates.iter().all(|body| body["Status"] == "passing"),
        "{updates:?}"
    );
    updates
        .iter()
        .map(|body| body["Output"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Stops autopilot with SIGTERM; it must exit 0.
fn stop(running: common::Running) {
    running.signal(Signal::SIGTERM);
    assert_eq!(running.finish().code, 0);
}

#[test]
fn a_2x_service_without_health_is_heartbeated_as_passing() {
    // The shape of a 2.x file for a service nothing checks, as ContainerPilot 2.0-2.7.8 ran it.
    let (consul, running, _scratch) = run_2x(
        r#"{
          "consul": "CONSUL",
          "services": [{ "name": "app", "port": 8080, "interfaces": ["static:192.0.2.1"],
                         "poll": 1, "ttl": 5 }]
        }"#,
    );
    wait_until("two heartbeats of app", || {
        passing_outputs(&consul, "app-h1").len() >= 2
    });
    stop(running);
}

#[test]
fn a_2x_check_slower_than_poll_is_not_killed() {
    // A `mongo --eval`-style check that takes longer than `poll`: ContainerPilot 2
    // had no check timeout, so it passed there and must pass here.
    let (consul, running, _scratch) = run_2x(
        r#"{
          "consul": "CONSUL",
          "services": [{ "name": "db", "port": 27017, "interfaces": ["static:192.0.2.1"],
                         "health": ["sh", "-c", "sleep 2; echo slow but healthy"],
                         "poll": 1, "ttl": 10 }]
        }"#,
    );
    wait_until("the slow check's passing update", || {
        passing_outputs(&consul, "db-h1")
            .iter()
            .any(|output| output.contains("slow but healthy"))
    });
    stop(running);
}

#[test]
fn the_example_says_whose_pid_its_health_check_reads() {
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.json5"),
    )
    .expect("examples/hello.json5");
    assert!(
        !example.contains("is the app's pid"),
        "CONTAINERPILOT_APP_PID is the pid of the job named app, not of \"the app\""
    );
    assert!(
        example.contains("because this job is named")
            && example.contains("\"app\"")
            && example.contains("CONTAINERPILOT_APP_PID"),
        "the example must say the variable follows the job's name"
    );
}
