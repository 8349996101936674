//! Reload end to end (docs/control-plane.md, "Reload"): the real autopilot
//! binary reloading a changed configuration file through its control socket,
//! observed through `--status`, `/metrics`, the files its jobs write and the
//! Consul double's state and request journal.

use crate::common;
use crate::control_support;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Instant;

use common::{procfs, wait_until, Scratch, DEADLINE};
use consul_double::{Config as ConsulConfig, ConsulDouble, RecordedRequest};
use control_support::{free_port, scrape, Pilot};
use nix::sys::signal::Signal;

fn start_double() -> ConsulDouble {
    ConsulDouble::start(ConsulConfig::default()).expect("the consul double starts")
}

/// Reloads through the socket and expects success.
fn reload(pilot: &Pilot) {
    let reply = pilot.call("POST", "/v3/reload", "");
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// A job `web` advertised on port 8080, always healthy, that writes `web-<version>`.
fn web(version: &str) -> String {
    format!(
        r#"{{ name: "web", exec: ["sh", "-c", "echo web-{version} >> log; exec sleep 100"],
             port: 8080, interfaces: ["lo"], health: {{ exec: "true", interval: 1, ttl: 10 }} }}"#
    )
}

fn consul_at(consul: &ConsulDouble) -> String {
    format!(r#"consul: "{}","#, consul.addr())
}

fn web_is_passing(consul: &ConsulDouble) {
    consul
        .wait_for(DEADLINE, |state| state.passing_instances("web").len() == 1)
        .unwrap_or_else(|_| panic!("web never passed in {:?}", consul.state()));
}

fn is_check_update(request: &RecordedRequest) -> bool {
    request.path.starts_with("/v1/agent/check/")
}

fn is_deregistration(request: &RecordedRequest) -> bool {
    request.path.starts_with("/v1/agent/service/deregister/")
}

#[test]
fn a_reload_to_a_second_agent_moves_registration_and_heartbeats_there() {
    let (first, second) = (start_double(), start_double());
    let pilot = Pilot::start_in(Scratch::new(), |port| {
        Pilot::config_text(port, &consul_at(&first), &web("v1"), "")
    });
    web_is_passing(&first);
    let pid = pilot.running_pid("web");

    pilot.rewrite_config(&Pilot::config_text(
        pilot.port,
        &consul_at(&second),
        &web("v1"),
        "",
    ));
    reload(&pilot);
    web_is_passing(&second);
    first
        .wait_for(DEADLINE, |state| state.services.is_empty())
        .expect("the first agent no longer holds web");
    assert!(first.requests().iter().any(is_deregistration));
    // Heartbeats now go to the second agent only.
    first.clear_requests();
    second.clear_requests();
    second
        .wait_for_request(DEADLINE, is_check_update)
        .expect("a heartbeat reaches the second agent");
    second
        .wait_for_request(DEADLINE, |r| is_check_update(r) && r.seq > 1)
        .expect("heartbeats keep reaching the second agent");
    assert!(
        !first.requests().iter().any(is_check_update),
        "no heartbeat reached the first agent: {:?}",
        first.requests()
    );
    assert_eq!(pilot.running_pid("web"), pid, "the process was kept");
    assert_eq!(pilot.scratch.lines(), ["web-v1"]);
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn a_watch_added_by_reload_fires_its_job() {
    let consul = start_double();
    let on_change = r#"{ name: "on-change", exec: ["sh", "-c", "echo changed >> log"],
                         when: { source: "watch.web", each: "changed" } }"#;
    let jobs = format!("{}, {on_change}", web("v1"));
    let pilot = Pilot::start_in(Scratch::new(), |port| {
        Pilot::config_text(port, &consul_at(&consul), &jobs, "")
    });
    web_is_passing(&consul);
    pilot.scratch.wait_for_lines(&["web-v1"]);

    let watches = format!(
        r#"{} watches: [ {{ name: "web", interval: 1 }} ],"#,
        consul_at(&consul)
    );
    pilot.rewrite_config(&Pilot::config_text(pilot.port, &watches, &jobs, ""));
    reload(&pilot);
    pilot.scratch.wait_for_lines(&["web-v1", "changed"]);
    let watches = pilot.status()["watches"].clone();
    assert_eq!(watches[0]["name"], "web", "{watches}");
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn telemetry_moves_to_a_new_port_and_frees_the_old_one() {
    let pilot = Pilot::start(r#"{ name: "main", exec: ["sleep", "100"] }"#, "");
    let old = pilot.port;
    scrape(old);
    let new = free_port();
    pilot.rewrite_config(&Pilot::config_text(
        new,
        "",
        r#"{ name: "main", exec: ["sleep", "100"] }"#,
        "",
    ));
    reload(&pilot);
    assert!(scrape(new).contains_key("containerpilot_events{code=\"startup\",source=\"global\"}"));
    wait_until("the old telemetry port to be free", || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, old)).is_err()
    });
    TcpListener::bind((Ipv4Addr::LOCALHOST, old)).expect("the old port can be bound again");
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn a_reload_whose_telemetry_port_is_taken_fails_clearly_and_changes_nothing() {
    let pilot = Pilot::start(r#"{ name: "main", exec: ["sleep", "100"] }"#, "");
    let pid = pilot.running_pid("main");
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    pilot.rewrite_config(&Pilot::config_text(
        port,
        "",
        r#"{ name: "main", exec: ["sleep", "200"] }"#,
        "",
    ));
    let reply = pilot.call("POST", "/v3/reload", "");
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply
            .body
            .contains(&format!("cannot serve telemetry on 127.0.0.1:{port}"))
            && reply.body.contains("in use"),
        "{}",
        reply.body
    );
    assert_eq!(
        pilot.running_pid("main"),
        pid,
        "the old configuration runs on"
    );
    scrape(pilot.port);
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn putenv_then_reload_restarts_exactly_the_jobs_whose_rendered_configuration_changed() {
    let jobs = r#"{ name: "templated", exec: ["sh", "-c", "echo mode-{{ .MODE }} >> log; exec sleep 100"] },
                  { name: "plain", exec: ["sh", "-c", "echo plain >> log; exec sleep 100"] }"#;
    let pilot = Pilot::start(jobs, "");
    let templated = pilot.running_pid("templated");
    let plain = pilot.running_pid("plain");
    pilot.scratch.wait_for_lines_unordered(&["plain", "mode-"]);

    assert_eq!(pilot.client_ok(&["-putenv", "MODE=b"]), "");
    assert_eq!(pilot.client_ok(&["-reload"]), "");
    pilot
        .scratch
        .wait_for_lines_unordered(&["plain", "mode-", "mode-b"]);
    assert_ne!(pilot.running_pid("templated"), templated);
    assert_eq!(pilot.running_pid("plain"), plain);
    wait_until("the old templated process to go", || {
        !procfs::is_alive(templated as i32)
    });
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn an_unchanged_job_keeps_its_process_across_ten_reloads() {
    let pilot = Pilot::start(
        r#"{ name: "keep", exec: ["sh", "-c", "echo keep >> log; exec sleep 100"] }"#,
        "",
    );
    let pid = pilot.running_pid("keep");
    let first = pilot.status()["generation"]["startedAt"].clone();
    assert!(first.is_string(), "{first}");
    for _ in 0..10 {
        reload(&pilot);
    }
    assert_eq!(pilot.running_pid("keep"), pid);
    assert_eq!(pilot.scratch.lines(), ["keep"]);
    assert_eq!(pilot.stop().code, 0);
}

/// ContainerPilot's standard pattern: preStart → app, with stop hooks and a
/// catalog. Changing the app's exec restarts the app once and only the app.
#[test]
fn a_reload_restarts_only_the_changed_app_of_a_prestart_pattern_without_its_stop_hooks() {
    let consul = start_double();
    let jobs = |version: &str| {
        format!(
            r#"{{ name: "preStart", exec: ["sh", "-c", "echo preStart >> log"] }},
               {web},
               {{ name: "preStop", exec: ["sh", "-c", "echo preStop >> log"],
                  when: {{ source: "web", once: "stopping" }} }},
               {{ name: "postStop", exec: ["sh", "-c", "echo postStop >> log"],
                  when: {{ source: "web", once: "stopped" }} }}"#,
            web = web(version).replacen(
                "port:",
                r#"when: { source: "preStart", once: "exitSuccess" }, port:"#,
                1
            ),
        )
    };
    let pilot = Pilot::start_in(Scratch::new(), |port| {
        Pilot::config_text(port, &consul_at(&consul), &jobs("v1"), "")
    });
    pilot.scratch.wait_for_lines(&["preStart", "web-v1"]);
    web_is_passing(&consul);
    let old = pilot.running_pid("web");
    consul.clear_requests();

    pilot.rewrite_config(&Pilot::config_text(
        pilot.port,
        &consul_at(&consul),
        &jobs("v2"),
        "",
    ));
    reload(&pilot);
    pilot
        .scratch
        .wait_for_lines(&["preStart", "web-v1", "web-v2"]);
    assert_ne!(pilot.running_pid("web"), old);
    assert!(
        !consul.requests().iter().any(is_deregistration),
        "the service stayed registered: {:?}",
        consul.requests()
    );
    web_is_passing(&consul);

    let stopping = Instant::now();
    pilot.running.signal(Signal::SIGTERM);
    let finished = pilot.running.finish();
    assert_eq!(finished.code, 0);
    assert!(
        stopping.elapsed() < std::time::Duration::from_secs(4),
        "the stop did not wait for a hook that already ran: {:?}",
        stopping.elapsed()
    );
    assert_eq!(
        pilot.scratch.lines(),
        ["preStart", "web-v1", "web-v2", "preStop", "postStop"]
    );
}

#[test]
fn status_agrees_with_the_events_for_finished_and_telemetry_jobs() {
    let pilot = Pilot::start(
        r#"{ name: "once", exec: "true" }, { name: "main", exec: ["sleep", "100"] }"#,
        "",
    );
    pilot.wait_for_metric(
        r#"containerpilot_events{code="stopped",source="once"}"#,
        1.0,
    );
    assert_eq!(pilot.job("once")["state"], "stopped");
    assert_eq!(pilot.job("containerpilot")["state"], "running");
    let reply = pilot.call("POST", "/v3/jobs/once/signal", r#"{"signal": "SIGHUP"}"#);
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn new_metrics_are_served_on_the_same_port_after_a_reload() {
    let main = r#"{ name: "main", exec: ["sleep", "100"] }"#;
    let pilot = Pilot::start(main, "");
    let metric = r#"{ name: "queue_depth", help: "queued", type: "gauge" }"#;
    pilot.rewrite_config(&Pilot::config_text(pilot.port, "", main, metric));
    reload(&pilot);
    assert_eq!(pilot.client_ok(&["-putmetric", "queue_depth=7"]), "");
    assert_eq!(scrape(pilot.port).get("queue_depth"), Some(&7.0));
    assert_eq!(pilot.stop().code, 0);
}

/// **\[beyond\]** A KV watch is part of the run generation: a reload that
/// moves it to another key stops the old watch and starts the new one.
#[test]
fn a_kv_watch_moved_by_reload_follows_the_new_key_only() {
    let consul = start_double();
    let put = |key: &str, value: &str| {
        let (status, body) =
            common::http::request(consul.addr(), "PUT", &format!("/v1/kv/{key}"), value).unwrap();
        assert_eq!(status, 200, "{body}");
    };
    let blocked_on = |key: &str| {
        let path = format!("/v1/kv/{key}");
        consul
            .wait_for_request(DEADLINE, |r| r.path == path && r.blocked)
            .unwrap_or_else(|_| panic!("the watch never blocked on {path}"));
    };
    // Each run writes the value it was started for.
    let on_change = r#"{ name: "on-change", exec: ["sh", "-c", "echo $CONTAINERPILOT_CFG_KV >> log"],
                         when: { source: "watch.cfg", each: "changed" } }"#;
    let watching = |key: &str| {
        format!(
            r#"{} watches: [ {{ name: "cfg", kv: "{key}" }} ],"#,
            consul_at(&consul)
        )
    };
    let pilot = Pilot::start_in(Scratch::new(), |port| {
        Pilot::config_text(port, &watching("app/a"), on_change, "")
    });
    blocked_on("app/a");
    put("app/a", "a1");
    pilot.scratch.wait_for_lines(&["a1"]);

    consul.clear_requests();
    pilot.rewrite_config(&Pilot::config_text(
        pilot.port,
        &watching("app/b"),
        on_change,
        "",
    ));
    reload(&pilot);
    blocked_on("app/b");
    // No longer watched: had it fired, its run would show before the next one, or
    // would have held that one back.
    put("app/a", "a2");
    put("app/b", "b1");
    pilot.scratch.wait_for_lines(&["a1", "b1"]);
    assert_eq!(pilot.stop().code, 0);
}

/// The configuration as [`Pilot::config_text`] writes it, with its control
/// socket at `socket` (written as is: [`Scratch::config`] would add its own).
fn with_socket(pilot: &Pilot, socket: &std::path::Path, jobs: &str) {
    let text = Pilot::config_text(pilot.port, "", jobs, "").replacen(
        '{',
        &format!("{{ control: {{ socket: {socket:?} }},"),
        1,
    );
    pilot.scratch.write("config.json5", &text);
}

#[test]
fn a_moved_control_socket_is_bound_at_reload_and_the_old_one_goes_once_it_answered() {
    const MAIN: &str = r#"{ name: "main", exec: ["sleep", "100"] }"#;
    let pilot = Pilot::start(MAIN, "");
    let pid = pilot.running_pid("main");
    // A socket whose directory does not exist fails the reload, names the
    // directory, and the old socket serves on.
    let nowhere = pilot.scratch.path("missing");
    with_socket(&pilot, &nowhere.join("control.sock"), MAIN);
    let reply = pilot.call("POST", "/v3/reload", "");
    assert_eq!(reply.status, 400, "{}", reply.body);
    let named = format!("its directory {} does not exist", nowhere.display());
    assert!(reply.body.contains(&named), "{}", reply.body);
    assert_eq!(pilot.call("GET", "/v3/ping", "").body, "ok");
    // Moved: the reloading client gets its answer through the old socket,
    // which then closes, its file gone; jobs' clients reach the new one
    // through CONTAINERPILOT (the configuration file).
    let moved = pilot.scratch.path("moved.sock");
    let client = format!("{:?} -ping && echo reached > probe", common::binary());
    let probe = format!(r#"{{ name: "probe", exec: ["sh", "-c", {client:?}] }}"#);
    with_socket(&pilot, &moved, &format!("{MAIN}, {probe}"));
    reload(&pilot);
    wait_until("the old socket file to be removed", || {
        !pilot.socket.exists()
    });
    assert_eq!(
        control_support::call(&moved, "GET", "/v3/ping", "").body,
        "ok"
    );
    wait_until("the new job to reach the new socket", || {
        pilot.scratch.read("probe") == "reached\n"
    });
    let status = control_support::call(&moved, "GET", "/v3/status", "").json();
    let main = status["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|job| job["name"] == "main"))
        .cloned()
        .expect("main is listed");
    assert_eq!(main["pid"].as_i64(), Some(pid), "the jobs ran on");
    pilot.running.signal(Signal::SIGTERM);
    assert_eq!(pilot.running.finish().code, 0);
    assert!(!moved.exists(), "the new socket file is removed at exit");
}

/// A changed job that is stopping when the reload reaches it (its one run
/// over, waiting for its preStop) starts again with its new configuration.
#[test]
fn a_job_changed_while_it_stops_starts_again_with_its_new_configuration() {
    let jobs = |version: &str| {
        format!(
            r#"{{ name: "main", exec: ["sleep", "100"] }},
               {{ name: "once", exec: ["sh", "-c", "echo once-{version} >> log"], stopTimeout: "1s" }},
               {{ name: "preStop", exec: ["sh", "-c", "echo preStop >> log; exec sleep 2"],
                  when: {{ source: "once", once: "stopping" }} }}"#
        )
    };
    let pilot = Pilot::start(&jobs("v1"), "");
    pilot.running_pid("preStop");
    pilot.rewrite_config(&Pilot::config_text(pilot.port, "", &jobs("v2"), ""));
    reload(&pilot);
    pilot
        .scratch
        .wait_for_lines(&["once-v1", "preStop", "once-v2"]);
    assert_eq!(pilot.stop().code, 0);
}
