//! Service discovery end to end (docs/design.md, "Discovery"): real autopilot processes advertising
//! jobs in, and watching, the Consul agent double (tools/consul-double), observed through
//! the double's state and request log, through files their jobs write, and through what
//! autopilot logs.
//!
//! Several autopilots on one machine would all be `<name>-<hostname>` with the same
//! hostname: each runs in a UTS namespace of its own with the hostname the test gives it.

use crate::common;

use std::time::{Duration, SystemTime};

use common::netns::Namespace;
use common::{free_port, procfs, wait_until, Autopilot, Mode, Running, Scratch, DEADLINE};
use consul_double::{
    Config, ConsulDouble, Fault, FaultRule, Outcome, RecordedRequest, Restart, State, Status,
    TokenSource,
};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// The `interval` of the watches below: the longest a blocking query waits, and the least
/// gap between two events of one watch.
const WATCH_INTERVAL: Duration = Duration::from_secs(3);

fn start_double(config: Config) -> ConsulDouble {
    ConsulDouble::start(config).expect("the consul double starts")
}

/// Starts autopilot with `args`, as host `hostname`, in the scratch directory.
fn start(scratch: &Scratch, hostname: &str, args: &[&str]) -> Running {
    Autopilot::new(Mode::Subreaper, args)
        .hostname(hostname)
        .current_dir(scratch.dir())
        .start()
}

/// Stops autopilot with SIGTERM and returns everything it printed, once it exited 0.
fn stop(autopilot: Running) -> String {
    autopilot.signal(Signal::SIGTERM);
    let finished = autopilot.finish();
    let output = format!("{}{}", finished.stdout_text(), finished.stderr_text());
    assert_eq!(finished.code, 0, "autopilot's output:\n{output}");
    output
}

/// A job exec (JSON) that appends a line to the file `name`: one line per run.
fn append_to(name: &str) -> String {
    format!(r#"["sh", "-c", "echo run >> {name}"]"#)
}

/// How many lines the file `name` has (0 while it does not exist).
fn lines(scratch: &Scratch, name: &str) -> usize {
    scratch.read(name).lines().count()
}

/// Waits until the double's state satisfies `condition`, and returns that state.
fn wait_for_state(
    consul: &ConsulDouble,
    what: &str,
    condition: impl FnMut(&State) -> bool,
) -> State {
    consul.wait_for(DEADLINE, condition).unwrap_or_else(|_| {
        panic!(
            "{what}: never happened; the double holds {:?}",
            consul.state()
        )
    })
}

/// Waits for the first recorded request satisfying `condition`.
fn wait_for_request(
    consul: &ConsulDouble,
    what: &str,
    condition: impl FnMut(&RecordedRequest) -> bool,
) -> RecordedRequest {
    consul
        .wait_for_request(DEADLINE, condition)
        .unwrap_or_else(|_| {
            let seen: Vec<String> = consul.requests().iter().map(summary).collect();
            panic!("{what}: no such request; received {seen:#?}")
        })
}

fn summary(request: &RecordedRequest) -> String {
    format!(
        "#{} {} {}?{} {:?}",
        request.seq, request.method, request.path, request.query, request.outcome
    )
}

fn health_query_path(service: &str) -> String {
    format!("/v1/health/service/{service}")
}

/// A blocking health query carries the index it waits to move past.
fn is_blocking_query(request: &RecordedRequest, service: &str) -> bool {
    request.path == health_query_path(service) && !request.query_values("index").is_empty()
}

fn blocking_queries(consul: &ConsulDouble, service: &str) -> usize {
    let requests = consul.requests();
    requests
        .iter()
        .filter(|r| is_blocking_query(r, service))
        .count()
}

fn is_check_update(request: &RecordedRequest, service_id: &str) -> bool {
    request.path == format!("/v1/agent/check/update/service:{service_id}")
}

fn is_deregistration(request: &RecordedRequest, service_id: &str) -> bool {
    request.path == format!("/v1/agent/service/deregister/{service_id}")
}

fn is_registration(request: &RecordedRequest) -> bool {
    request.path == "/v1/agent/service/register"
}

fn passing_ids(state: &State, name: &str) -> Vec<String> {
    state
        .passing_instances(name)
        .iter()
        .map(|service| service.id.clone())
        .collect()
}

/// A job `web` advertised on port 8080 at `address`, healthy while the file `sick` does not
/// exist in its directory.
fn web_config(consul: &ConsulDouble, address: &str) -> String {
    format!(
        r#"{{
          consul: "{consul}",
          jobs: [
            {{ name: "web", exec: "sleep 1000", port: 8080, interfaces: ["static:{address}"],
               health: {{ exec: "test ! -e sick", interval: 1, ttl: 10 }} }},
          ]
        }}"#,
        consul = consul.addr(),
    )
}

/// How often the watcher's handlers ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HandlerRuns {
    /// `changed` of `watch.web` (the onChange handler).
    changed: usize,
    healthy: usize,
    unhealthy: usize,
    /// `unhealthy` of `watch.nothing`, a service that never exists.
    nothing_unhealthy: usize,
}

impl HandlerRuns {
    fn read(scratch: &Scratch) -> HandlerRuns {
        HandlerRuns {
            changed: lines(scratch, "changed"),
            healthy: lines(scratch, "healthy"),
            unhealthy: lines(scratch, "unhealthy"),
            nothing_unhealthy: lines(scratch, "nothing-unhealthy"),
        }
    }

    fn wait_for(scratch: &Scratch, expected: HandlerRuns) -> SystemTime {
        wait_until(&format!("handler runs {expected:?}"), || {
            HandlerRuns::read(scratch) == expected
        });
        SystemTime::now()
    }
}

/// A job (JSON5) that appends a line to the file `file` each time `source` publishes `event`.
fn handler(file: &str, source: &str, event: &str) -> String {
    format!(
        r#"{{ name: "on-{file}", exec: {exec}, when: {{ source: "{source}", each: "{event}" }} }}"#,
        exec = append_to(file),
    )
}

/// A watcher of `web` and of `nothing`, with a handler for each event that matters here.
fn watcher_config(consul: &ConsulDouble) -> String {
    let interval = WATCH_INTERVAL.as_secs();
    let handlers = [
        handler("changed", "watch.web", "changed"),
        handler("healthy", "watch.web", "healthy"),
        handler("unhealthy", "watch.web", "unhealthy"),
        handler("nothing-unhealthy", "watch.nothing", "unhealthy"),
    ];
    format!(
        r#"{{
          consul: "{consul}",
          watches: [ {{ name: "web", interval: {interval} }}, {{ name: "nothing", interval: {interval} }} ],
          jobs: [ {handlers} ]
        }}"#,
        consul = consul.addr(),
        handlers = handlers.join(", "),
    )
}

/// Proves that the change `trigger` made in the catalog reached the watch through a
/// blocking query: the handler was seen running (`seen`) before the watch could have
/// asked again, had it polled. A polling watch asks, gets the old answer at once, and
/// asks next one interval later; so the earliest it could have learnt of the change is
/// one interval after its last query before the change.
fn assert_delivered_by_blocking_query(
    consul: &ConsulDouble,
    trigger: &RecordedRequest,
    seen: SystemTime,
) {
    let requests = consul.requests();
    let last_query = requests
        .iter()
        .rev()
        .find(|r| r.path == health_query_path("web") && r.seq < trigger.seq)
        .expect("the watch asked before the change");
    assert!(
        is_blocking_query(last_query, "web"),
        "the watch was blocking when the catalog changed: {}",
        summary(last_query)
    );
    assert!(
        seen < last_query.at + WATCH_INTERVAL,
        "the handler ran {:?} after the watch's last query, not before a poll could have seen \
         the change ({WATCH_INTERVAL:?})",
        seen.duration_since(last_query.at).unwrap_or_default()
    );
}

#[test]
fn a_watch_sees_instances_stop_and_turn_unhealthy_through_blocking_queries() {
    let consul = start_double(Config::default());
    let (a_dir, b_dir, watcher_dir) = (Scratch::new(), Scratch::new(), Scratch::new());
    let a_config = a_dir.config(&web_config(&consul, "192.0.2.11"));
    let b_config = b_dir.config(&web_config(&consul, "192.0.2.12"));
    let a = start(&a_dir, "a1", &["-config", &a_config]);
    let b = start(&b_dir, "b1", &["-config", &b_config]);
    wait_for_state(&consul, "both instances passing", |s| {
        passing_ids(s, "web") == ["web-a1", "web-b1"]
    });
    // Once both have heartbeated, their identical heartbeats no longer move the index:
    // the watcher's queries below wake only for the changes the test makes.
    for id in ["web-a1", "web-b1"] {
        wait_for_request(&consul, "a heartbeat", |r| is_check_update(r, id));
    }

    let watcher_config = watcher_dir.config(&watcher_config(&consul));
    let watcher = start(&watcher_dir, "w1", &["-config", &watcher_config]);
    // At start: `web` has two instances (changed, healthy); `nothing` is absent (unhealthy).
    let mut expected = HandlerRuns {
        changed: 1,
        healthy: 1,
        unhealthy: 0,
        nothing_unhealthy: 1,
    };
    HandlerRuns::wait_for(&watcher_dir, expected);

    // The first blocking query waits out the interval (nothing changes); the second is the
    // first one whose answer may be published at once. Stop an instance while it blocks.
    wait_until("the watch's second blocking query", || {
        blocking_queries(&consul, "web") >= 2
    });
    a.signal(Signal::SIGTERM);
    expected.changed += 1;
    let seen = HandlerRuns::wait_for(&watcher_dir, expected);
    let deregistered = wait_for_request(&consul, "a1's deregistration", |r| {
        is_deregistration(r, "web-a1")
    });
    assert_delivered_by_blocking_query(&consul, &deregistered, seen);
    assert_eq!(passing_ids(&consul.state(), "web"), ["web-b1"]);
    assert_eq!(a.finish().code, 0);

    // Again once the interval since that event has passed: the last instance turns unhealthy.
    wait_until("the watch's fourth blocking query", || {
        blocking_queries(&consul, "web") >= 4
    });
    b_dir.write("sick", "");
    expected.changed += 1;
    expected.unhealthy += 1;
    let seen = HandlerRuns::wait_for(&watcher_dir, expected);
    let critical = wait_for_request(&consul, "b1's critical check", |r| {
        is_check_update(r, "web-b1") && r.json().is_some_and(|b| b["Status"] == "critical")
    });
    assert_delivered_by_blocking_query(&consul, &critical, seen);

    // A change to the catalog that leaves the healthy set as it was (the critical instance
    // leaves) wakes the watch but publishes nothing.
    stop(b);
    let after = wait_for_state(&consul, "b1 deregistered", |s| {
        s.service("web-b1").is_none()
    });
    wait_until("the watch to have read the catalog after b1 left", || {
        consul.requests().iter().any(|r| {
            is_blocking_query(r, "web")
                && r.query_values("index")[0].parse::<u64>().unwrap() >= after.index
        })
    });
    assert_eq!(
        HandlerRuns::read(&watcher_dir),
        expected,
        "one run per change"
    );
    stop(watcher);
    assert_eq!(HandlerRuns::read(&watcher_dir), expected);
}

/// A job (or APP) that, on SIGTERM, saves the double's state as it is at that moment to
/// `state-at-term`, then exits 0. perl (perl-base) is on every Debian; curl is not.
const SNAPSHOT_ON_TERM: &str = r#"
use IO::Socket::INET;
$SIG{TERM} = sub {
    my $socket = IO::Socket::INET->new(PeerAddr => $ENV{CONSUL_DOUBLE})
        or die "cannot reach the double: $!";
    print $socket "GET /_double/state HTTP/1.0\r\n\r\n";
    local $/;
    my $answer = <$socket>;
    open(my $out, '>', 'state-at-term.tmp') or die $!;
    print $out $answer;
    close $out;
    rename('state-at-term.tmp', 'state-at-term') or die $!;
    exit 0;
};
open(my $ready, '>', 'ready') or die $!;
close $ready;
sleep 1 while 1;
"#;

/// Runs `args` (with `config`) until its service `web` passes, stops it with SIGTERM, and
/// checks that the service had left the catalog when the process got its signal.
fn assert_deregistered_before_the_signal(config: &str, app: &[&str]) {
    let consul = start_double(Config::default());
    let scratch = Scratch::new();
    scratch.write("snapshot.pl", SNAPSHOT_ON_TERM);
    let config = scratch.config(&config.replace("CONSUL", &consul.addr().to_string()));
    let mut args = vec!["-config", config.as_str()];
    args.extend_from_slice(app);
    let autopilot = Autopilot::new(Mode::Subreaper, &args)
        .hostname("h1")
        .env("CONSUL_DOUBLE", &consul.addr().to_string())
        .current_dir(scratch.dir())
        .start();
    wait_for_state(&consul, "web passing", |s| {
        passing_ids(s, "web") == ["web-h1"]
    });
    wait_until("the TERM handler to be installed", || {
        scratch.path("ready").exists()
    });

    // A slow agent: the deregistration takes effect a while after it is sent, so a process
    // signalled without waiting for its answer would see the service still there.
    consul.set_fault(FaultRule::on_path(
        "/v1/agent/service/deregister/",
        Fault::Delay {
            delay: Duration::from_millis(500),
        },
    ));
    stop(autopilot);
    let answer = scratch.read("state-at-term");
    let (_, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("an HTTP answer from the double: {answer:?}"));
    let state: Value = serde_json::from_str(body).expect("the double's state as JSON");
    assert_eq!(
        state["services"],
        json!([]),
        "the service was gone when the process got SIGTERM"
    );
}

#[test]
fn sigterm_deregisters_a_job_before_its_process_gets_the_signal() {
    assert_deregistered_before_the_signal(
        r#"{
          consul: "CONSUL",
          jobs: [ { name: "web", exec: "perl snapshot.pl", port: 8080,
                    interfaces: ["static:192.0.2.1"], health: { exec: "true", interval: 1, ttl: 10 } } ]
        }"#,
        &[],
    );
}

#[test]
fn sigterm_deregisters_2x_services_before_the_app_gets_the_signal() {
    // ContainerPilot 2 deregistered every service, then ran preStop, then signalled the APP.
    assert_deregistered_before_the_signal(
        r#"{
          consul: "CONSUL",
          services: [ { name: "web", port: 8080, interfaces: ["static:192.0.2.1"],
                        health: "true", poll: 1, ttl: 10 } ]
        }"#,
        &["perl", "snapshot.pl"],
    );
}

#[test]
fn a_consul_outage_leaves_the_app_running_and_the_service_comes_back() {
    let consul = start_double(Config::default());
    let scratch = Scratch::new();
    let config = scratch.config(&format!(
        r#"{{
          consul: "{consul}",
          jobs: [
            {{ name: "web", exec: ["sh", "-c", "echo $$ >> runs; exec sleep 1000"], port: 8080,
               interfaces: ["static:192.0.2.1"],
               health: {{ exec: ["sh", "-c", "if [ -e sick ]; then echo 'disk full on /data'; exit 1; fi"],
                          interval: 1, ttl: 30 }} }},
          ]
        }}"#,
        consul = consul.addr(),
    ));
    let autopilot = start(&scratch, "h1", &["-config", &config]);
    wait_for_state(&consul, "web passing", |s| {
        passing_ids(s, "web") == ["web-h1"]
    });
    let app: i32 = scratch.read("runs").trim().parse().expect("the job's pid");
    let before = consul.requests().last().expect("requests so far").seq;

    // One outage in several acts: 503s, then connection resets, then requests that hang
    // until the agent restarts (dropping them) having forgotten everything. The only
    // client is the job's registrar, whose calls follow one another.
    consul.set_faults([
        FaultRule::everywhere(Fault::unavailable()).times(2),
        FaultRule::everywhere(Fault::Reset).times(2),
        FaultRule::everywhere(Fault::Hang),
    ]);
    let outage = |consul: &ConsulDouble| -> Vec<Outcome> {
        let requests = consul.requests();
        let during = requests.iter().filter(|r| r.seq > before).take(5);
        during.map(|r| r.outcome).collect()
    };
    let hanging = [
        Outcome::Answered(503),
        Outcome::Answered(503),
        Outcome::Dropped,
        Outcome::Dropped,
        Outcome::InFlight,
    ];
    wait_until("503s, resets, then a hanging request", || {
        outage(&consul) == hanging
    });
    assert!(procfs::is_alive(app), "the job runs on through the outage");
    consul.restart_agent(Restart::KeepIndex);
    wait_until("the restart to drop the hanging request", || {
        outage(&consul)[4] == Outcome::Dropped
    });
    consul.clear_faults();

    wait_for_state(&consul, "web registered again and passing", |s| {
        passing_ids(s, "web") == ["web-h1"]
    });
    assert_eq!(lines(&scratch, "runs"), 1, "the job never restarted");
    assert!(procfs::is_alive(app));

    // [beyond] A failing check sets the catalog check critical at once, with its output
    // (the TTL of 30 s is far from lapsing).
    scratch.write("sick", "");
    let state = wait_for_state(&consul, "the check critical", |s| {
        s.check("service:web-h1")
            .is_some_and(|c| c.status == Status::Critical)
    });
    let output = &state.check("service:web-h1").unwrap().output;
    assert!(output.contains("disk full on /data"), "{output:?}");
    assert!(!output.contains("TTL expired"), "{output:?}");

    let log = stop(autopilot);
    let count = |text: &str| log.lines().filter(|line| line.contains(text)).count();
    assert_eq!(
        count("catalog call failed"),
        1,
        "one warning per outage:\n{log}"
    );
    assert_eq!(
        count("catalog reachable again"),
        1,
        "recovery logged:\n{log}"
    );
    // The failure and the service turning critical: one line each, at the
    // default level (docs/troubleshooting.md, "Failure lines").
    assert_eq!(
        count(" check.web exited with error: exit status 1"),
        1,
        "{log}"
    );
    assert_eq!(count(" web is critical in the catalog"), 1, "{log}");
}

#[test]
fn registration_body_token_and_job_ip() {
    const FILE_TOKEN: &str = "file-token-5c1d2e";
    const ENV_TOKEN: &str = "env-token-93ab7f";
    let consul = start_double(Config {
        acl_token: Some(FILE_TOKEN.to_string()),
        ..Config::default()
    });
    let scratch = Scratch::new();
    scratch.write("token", &format!("{FILE_TOKEN}\n"));
    let config = scratch.config(&format!(
        r#"{{
          consul: "{consul}",
          logging: {{ level: "DEBUG" }},
          jobs: [
            {{ name: "web", exec: ["sh", "-c", "echo $CONTAINERPILOT_WEB_IP > web-ip; exec sleep 1000"],
               port: 8080, tags: ["blue", "v2"], interfaces: ["eth9", "static:192.0.2.10"],
               initial_status: "warning",
               consul: {{ enableTagOverride: true, deregisterCriticalServiceAfter: "90s" }},
               health: {{ exec: "true", interval: 1, ttl: 7 }} }},
            {{ name: "neighbour", exec: ["sh", "-c", "echo $CONTAINERPILOT_WEB_IP > neighbour-ip"] }},
          ]
        }}"#,
        consul = consul.addr(),
    ));
    let autopilot = Autopilot::new(Mode::Subreaper, ["-config", &config])
        .hostname("node-7")
        .env("CONSUL_HTTP_TOKEN", ENV_TOKEN)
        .env(
            "CONSUL_HTTP_TOKEN_FILE",
            &scratch.path("token").display().to_string(),
        )
        .current_dir(scratch.dir())
        .start();
    let register = wait_for_request(&consul, "the registration", is_registration);
    let mut body = register.json().expect("a JSON body");
    assert!(body["Check"]["Notes"].is_string());
    body["Check"].as_object_mut().unwrap().remove("Notes");
    assert_eq!(
        body,
        json!({
            "ID": "web-node-7",
            "Name": "web",
            "Tags": ["blue", "v2"],
            "Port": 8080,
            "Address": "192.0.2.10",
            "EnableTagOverride": true,
            "Check": { "TTL": "7s", "Status": "warning", "DeregisterCriticalServiceAfter": "90s" },
        })
    );
    wait_for_state(&consul, "web passing", |s| {
        passing_ids(s, "web") == ["web-node-7"]
    });
    wait_until("both jobs to write the IP", || {
        !scratch.read("web-ip").is_empty() && !scratch.read("neighbour-ip").is_empty()
    });
    assert_eq!(scratch.read("web-ip"), "192.0.2.10\n");
    assert_eq!(scratch.read("neighbour-ip"), "192.0.2.10\n");

    let log = stop(autopilot);
    // DEBUG logs every event, and the HTTP client's own debug lines come through too.
    assert!(
        log.contains("event: global.startup"),
        "DEBUG logging is on:\n{log}"
    );
    for token in [FILE_TOKEN, ENV_TOKEN] {
        assert!(
            !log.contains(token),
            "the token leaked into the log:\n{log}"
        );
    }
    let requests = consul.requests();
    assert!(requests.len() >= 3, "register, heartbeat, deregister");
    for request in &requests {
        assert_eq!(request.token, TokenSource::Header, "{}", summary(request));
        assert!(
            request.token_accepted,
            "the file's token: {}",
            summary(request)
        );
        if !request.body.is_empty() {
            assert_eq!(
                request.content_type.as_deref(),
                Some("application/json"),
                "{}",
                summary(request)
            );
        }
    }
}

#[test]
fn maintenance_deregisters_pauses_checks_and_comes_back() {
    let consul = start_double(Config::default());
    let scratch = Scratch::new();
    let config = scratch.config(&format!(
        r#"{{
          consul: "{consul}",
          jobs: [
            {{ name: "web", exec: "sleep 1000", port: 8080, interfaces: ["static:192.0.2.1"],
               health: {{ exec: {check}, interval: 1, ttl: 10 }} }},
            {enter},
            {exit},
            {{ name: "clock", exec: {tick}, when: {{ interval: "1s" }} }},
          ]
        }}"#,
        consul = consul.addr(),
        check = append_to("checks"),
        tick = append_to("ticks"),
        enter = handler("entered", "global", "enterMaintenance"),
        exit = handler("exited", "global", "exitMaintenance"),
    ));
    let maintenance = |switch: &str| {
        let client = Autopilot::new(
            Mode::Subreaper,
            ["-maintenance", switch, "-config", &config],
        );
        let finished = client.run();
        assert_eq!(finished.code, 0, "{}", finished.stderr_text());
    };
    let autopilot = start(&scratch, "h1", &["-config", &config]);
    wait_for_state(&consul, "web passing", |s| {
        passing_ids(s, "web") == ["web-h1"]
    });

    maintenance("enable");
    let deregistered = wait_for_request(&consul, "the deregistration", |r| {
        is_deregistration(r, "web-h1")
    });
    wait_for_state(&consul, "web gone", |s| s.services.is_empty());
    wait_until("the enterMaintenance job", || {
        lines(&scratch, "entered") == 1
    });
    // As in ContainerPilot, no check runs in maintenance: over two ticks of a
    // one-second clock (two check intervals), the check count stays put.
    let checks = lines(&scratch, "checks");
    let ticks = lines(&scratch, "ticks");
    wait_until("two ticks", || lines(&scratch, "ticks") >= ticks + 2);
    assert_eq!(lines(&scratch, "checks"), checks, "no check in maintenance");
    let heartbeats = consul
        .requests()
        .into_iter()
        .filter(|r| r.seq > deregistered.seq && r.path.starts_with("/v1/agent/check/"))
        .map(|r| summary(&r))
        .collect::<Vec<_>>();
    assert_eq!(
        heartbeats,
        Vec::<String>::new(),
        "no heartbeat in maintenance"
    );

    maintenance("disable");
    let registered = wait_for_request(&consul, "registration again", |r| {
        is_registration(r) && r.seq > deregistered.seq
    });
    assert_eq!(registered.json().unwrap()["ID"], "web-h1");
    wait_for_state(&consul, "web passing again", |s| {
        passing_ids(s, "web") == ["web-h1"]
    });
    wait_until("the exitMaintenance job", || lines(&scratch, "exited") == 1);
    assert_eq!(lines(&scratch, "entered"), 1);
    stop(autopilot);
}

#[test]
fn telemetry_registers_containerpilot_with_a_15s_ttl_and_heartbeats_every_5s() {
    const TOKEN: &str = "env-token-41d0";
    let consul = start_double(Config {
        acl_token: Some(TOKEN.to_string()),
        ..Config::default()
    });
    let scratch = Scratch::new();
    let port = free_port();
    let config = scratch.config(&format!(
        r#"{{ consul: "{consul}", telemetry: {{ port: {port}, interfaces: ["lo"] }}, jobs: [] }}"#,
        consul = consul.addr(),
    ));
    let started = SystemTime::now();
    let autopilot = Autopilot::new(Mode::Subreaper, ["-config", &config])
        .hostname("h1")
        .env("CONSUL_HTTP_TOKEN", TOKEN)
        .current_dir(scratch.dir())
        .start();
    let register = wait_for_request(&consul, "the telemetry registration", is_registration);
    assert!(register.token_accepted, "CONSUL_HTTP_TOKEN is sent");
    let body = register.json().unwrap();
    assert_eq!(body["ID"], "containerpilot-h1");
    assert_eq!(body["Name"], "containerpilot");
    assert_eq!(body["Port"], port);
    assert_eq!(body["Address"], "127.0.0.1");
    assert_eq!(body["Check"]["TTL"], "15s");
    let first = wait_for_request(&consul, "a heartbeat", |r| {
        is_check_update(r, "containerpilot-h1")
    });
    let second = wait_for_request(&consul, "a second heartbeat", |r| {
        is_check_update(r, "containerpilot-h1") && r.seq > first.seq
    });
    // The heartbeat timer started after the test started autopilot; its second tick is
    // 5 s after its first, which was at once.
    assert!(
        second.at >= started + Duration::from_secs(5),
        "the second heartbeat came {:?} after autopilot started",
        second.at.duration_since(started).unwrap_or_default()
    );
    stop(autopilot);
}

#[test]
fn the_default_interface_is_eth0_inside_a_network_namespace() {
    let namespace = Namespace::create(&["10.77.0.9/24", "fd00:77::9/64"]);
    // The double listens on the namespace's loopback, where autopilot will look for it.
    let consul = namespace.inside(|| start_double(Config::default()));
    let scratch = Scratch::new();
    let config = scratch.config(&format!(
        r#"{{
          consul: "{consul}",
          jobs: [
            {{ name: "web", exec: ["sh", "-c", "echo $CONTAINERPILOT_WEB_IP > web-ip; exec sleep 1000"],
               port: 8080, health: {{ exec: "true", interval: 1, ttl: 10 }} }},
          ]
        }}"#,
        consul = consul.addr(),
    ));
    let autopilot = Autopilot::new(Mode::Subreaper, ["-config", &config])
        .hostname("h1")
        .network_namespace(&namespace.path())
        .current_dir(scratch.dir())
        .start();
    let register = wait_for_request(&consul, "the registration", is_registration);
    assert_eq!(register.json().unwrap()["Address"], "10.77.0.9");
    wait_for_state(&consul, "web passing", |s| {
        passing_ids(s, "web") == ["web-h1"]
    });
    wait_until("the job to write its IP", || {
        !scratch.read("web-ip").is_empty()
    });
    assert_eq!(scratch.read("web-ip"), "10.77.0.9\n");
    stop(autopilot);
    assert!(
        consul.state().services.is_empty(),
        "deregistered at shutdown"
    );
}

#[test]
fn a_sigterm_during_registration_still_leaves_the_catalog_clean() {
    let consul = start_double(Config::default());
    // A slow agent: the registration takes effect a while after it arrives.
    consul.set_fault(FaultRule::on_path(
        "/v1/agent/service/register",
        Fault::Delay {
            delay: Duration::from_millis(300),
        },
    ));
    let scratch = Scratch::new();
    let config = scratch.config(&web_config(&consul, "192.0.2.1"));
    let autopilot = start(&scratch, "h1", &["-config", &config]);
    wait_for_request(&consul, "the registration", is_registration);
    // Stopped while its registration is under way, autopilot waits for it to be answered,
    // then deregisters. (A real agent finishes a request whose client went away, so
    // exiting without waiting would leave the service behind; the double drops it.)
    stop(autopilot);
    let registered = wait_for_request(&consul, "the registration's answer", |r| {
        is_registration(r) && r.outcome != Outcome::InFlight
    });
    assert_eq!(registered.outcome, Outcome::Answered(200));
    assert_eq!(
        consul.state().services,
        [],
        "deregistered after its registration"
    );
}
