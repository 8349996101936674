//! The control plane end to end (docs/control-plane.md): the real
//! autopilot binary, its real unix socket spoken to in raw HTTP/1.1, every
//! client subcommand run through the binary, the socket file's life, and
//! SIGUSR1 reopening the log file.
//!
//! Jobs write marker lines to `log` in the test's scratch directory; when a
//! test must know that a job's run is over, it waits for the job's
//! `exitSuccess` in `containerpilot_events` on `/metrics` (the count goes up
//! only after the job has let go of its process).

use crate::common;
use crate::control_support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Command;

use common::{procfs, wait_until, Autopilot, Mode, Scratch};
use consul_double::{Config as ConsulConfig, ConsulDouble};
use control_support::{call, client, connect, exchange, parse_reply, stderr, stdout, Pilot};
use nix::sys::signal::Signal;
use serde_json::json;

/// A job that runs until autopilot stops it.
const MAIN: &str = r#"{ name: "main", exec: ["sleep", "100"] }"#;

/// A job that runs on every SIGHUP and writes what it sees of FOO and BAZ.
const SHOW: &str = r#"{ name: "show", when: { source: "SIGHUP" },
  exec: ["sh", "-c", "echo FOO=${FOO-unset} BAZ=${BAZ-unset} >> log"] }"#;

/// Counts the `show` job's finished runs.
const SHOW_RUNS: &str = r#"containerpilot_events{code="exitSuccess",source="show"}"#;

/// The largest body the control plane accepts.
const MAX_BODY: usize = 1 << 20;

/// Sends SIGHUP, waits for the `show` job's run to end, and returns the line
/// it wrote.
fn show_env(pilot: &Pilot) -> String {
    let runs = pilot.metrics().get(SHOW_RUNS).copied().unwrap_or(0.0);
    pilot.running.signal(Signal::SIGHUP);
    pilot.wait_for_metric(SHOW_RUNS, runs + 1.0);
    let lines = pilot.scratch.lines();
    assert_eq!(
        lines.len() as f64,
        runs + 1.0,
        "one line per run: {lines:?}"
    );
    lines.last().cloned().expect("show wrote a line")
}

/// The `updated` answer of `POST /v3/maintenance/<switch>`.
fn switch_maintenance(pilot: &Pilot, switch: &str) -> serde_json::Value {
    let reply = pilot.call("POST", &format!("/v3/maintenance/{switch}"), "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["updated"].clone()
}

// ---- endpoints over the raw socket ------------------------------------------

#[test]
fn ping_answers_ok() {
    let pilot = Pilot::start(MAIN, "");
    let reply = pilot.call("GET", "/v3/ping", "");
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn status_and_maintenance_follow_jobs_health_watches_and_the_catalog() {
    let consul = ConsulDouble::start(ConsulConfig::default()).expect("the Consul double");
    let extra = format!(
        r#"consul: "{}", watches: [ {{ name: "web", interval: 1 }} ],"#,
        consul.addr()
    );
    let jobs = format!(
        r#"{{ name: "web", exec: ["sleep", "100"], port: 8080, interfaces: ["static:127.0.0.1"],
             health: {{ exec: "true", interval: 1, ttl: 5 }} }},
           {SHOW}"#
    );
    let pilot = Pilot::start_in(Scratch::new(), |port| {
        Pilot::config_text(port, &extra, &jobs, "")
    });
    let pid = pilot.running_pid("web");
    assert!(
        procfs::is_alive(pid as i32),
        "the status shows the real pid"
    );
    wait_until("web to be healthy and watched", || {
        let status = pilot.status();
        status["watches"] == json!([{ "name": "web", "instances": 1 }])
            && pilot.job("web")["health"] == "healthy"
    });
    let status = pilot.status();
    let web = pilot.job("web");
    assert_eq!(web["state"], "running", "{status}");
    assert_eq!(web["pid"], pid, "{status}");
    assert_eq!(web["restarts"], 0, "{status}");
    let show = pilot.job("show");
    assert_eq!(show["state"], "waiting", "{status}");
    assert_eq!(show["pid"], json!(null), "{status}");
    assert_eq!(show["health"], json!(null), "{status}");
    assert_eq!(status["maintenance"], false);
    pilot.wait_for_metric(r#"containerpilot_watch_instances{service="web"}"#, 1.0);
    let table = pilot.client_ok(&["--status"]);
    let watch_row = ["web", "1"];
    assert!(
        table
            .lines()
            .any(|line| line.split_whitespace().eq(watch_row)),
        "{table}"
    );

    assert_eq!(switch_maintenance(&pilot, "enable"), true);
    assert_eq!(switch_maintenance(&pilot, "enable"), false, "idempotent");
    assert_eq!(pilot.status()["maintenance"], true);
    consul
        .wait_for(common::DEADLINE, |state| {
            state.passing_instances("web").is_empty()
        })
        .expect("maintenance takes web out of the catalog");
    wait_until("the watch to see no instance", || {
        pilot.status()["watches"][0]["instances"] == 0
    });
    assert_eq!(pilot.job("web")["pid"], pid, "maintenance stops no job");

    assert_eq!(switch_maintenance(&pilot, "disable"), true);
    assert_eq!(switch_maintenance(&pilot, "disable"), false, "idempotent");
    assert_eq!(pilot.status()["maintenance"], false);
    consul
        .wait_for(common::DEADLINE, |state| {
            state.passing_instances("web").len() == 1
        })
        .expect("leaving maintenance puts web back");
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn env_updates_reach_processes_started_later_and_bad_ones_change_nothing() {
    let pilot = Pilot::start(&format!("{MAIN}, {SHOW}"), "");
    assert_eq!(show_env(&pilot), "FOO=unset BAZ=unset");

    let reply = pilot.call("POST", "/v3/env", r#"{"FOO": "bar", "BAZ": "b a z"}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(show_env(&pilot), "FOO=bar BAZ=b a z");

    // Each bad body starts with a good update that must not be applied.
    let bad_bodies = [
        r#"{"FOO": "new", "1BAD": "x"}"#,
        r#"{"FOO": "new", "A-B": "x"}"#,
        r#"{"FOO": "new", "": "x"}"#,
        r#"{"FOO": "new", "BAZ": 5}"#,
        r#"{"FOO": "new", "BAZ": true}"#,
        r#"{"FOO": ["new"]}"#,
        r#"{"FOO": "new""#,
        r#"["FOO", "new"]"#,
        "FOO=new",
        "",
    ];
    for body in bad_bodies {
        for path in ["/v3/env", "/v3/environ"] {
            let reply = pilot.call("POST", path, body);
            assert_eq!(reply.status, 422, "{path} {body:?}: {}", reply.body);
            assert!(
                !reply.body.is_empty(),
                "{path} {body:?}: the answer says why"
            );
        }
    }
    assert_eq!(show_env(&pilot), "FOO=bar BAZ=b a z", "nothing was applied");

    let reply = pilot.call("POST", "/v3/environ", r#"{"FOO": ""}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = pilot.call("POST", "/v3/env", r#"{"BAZ": null}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(show_env(&pilot), "FOO=unset BAZ=unset");
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn reload_restarts_only_changed_jobs_and_a_broken_file_changes_nothing() {
    let jobs = |version: &str| {
        format!(
            r#"{{ name: "keep", exec: ["sh", "-c", "echo keep >> log; exec sleep 100"] }},
               {{ name: "change", exec: ["sh", "-c", "echo change-{version} >> log; exec sleep 100"] }}"#
        )
    };
    let pilot = Pilot::start(&jobs("v1"), "");
    pilot
        .scratch
        .wait_for_lines_unordered(&["keep", "change-v1"]);
    let keep = pilot.running_pid("keep");
    let change = pilot.running_pid("change");

    let unchanged = pilot.call("POST", "/v3/reload", "");
    assert_eq!(unchanged.status, 200, "{}", unchanged.body);

    // A syntax error on line 4, then a file that parses but is invalid.
    pilot.rewrite_config(
        "{\n  jobs: [\n    { name: \"keep\", exec: \"true\" }\n    { name: \"x\" },\n  ]\n}",
    );
    let broken = pilot.call("POST", "/v3/reload", "");
    assert_eq!(broken.status, 400, "{}", broken.body);
    assert!(broken.body.contains("config.json5:4:"), "{}", broken.body);
    let client = pilot.client(&["-reload"]);
    assert_eq!(client.status.code(), Some(1));
    assert!(
        stderr(&client).contains("config.json5:4:"),
        "{}",
        stderr(&client)
    );
    pilot.rewrite_config(r#"{ jobs: [ { name: "keep", exec: "true", bogus: 1 } ] }"#);
    let invalid = pilot.call("POST", "/v3/reload", "");
    assert_eq!(invalid.status, 400, "{}", invalid.body);
    assert!(invalid.body.contains("bogus"), "{}", invalid.body);

    assert_eq!(
        pilot.running_pid("keep"),
        keep,
        "the old configuration stays"
    );
    assert_eq!(
        pilot.running_pid("change"),
        change,
        "the old configuration stays"
    );
    let names: Vec<String> = pilot.status()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!names.contains(&"x".to_string()), "{names:?}");

    pilot.rewrite_config(&Pilot::config_text(pilot.port, "", &jobs("v2"), ""));
    assert_eq!(pilot.client_ok(&["-reload"]), "");
    pilot
        .scratch
        .wait_for_lines_unordered(&["keep", "change-v1", "change-v2"]);
    let changed = pilot.running_pid("change");
    assert_ne!(changed, change, "the changed job was restarted");
    wait_until("the old change process to go", || {
        !procfs::is_alive(change as i32)
    });
    assert_eq!(
        pilot.running_pid("keep"),
        keep,
        "the unchanged job kept running"
    );
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn signal_endpoint_signals_one_jobs_process_group() {
    let trapper = r#"{ name: "main", exec: ["sh", "-c",
      "trap 'echo usr1 >> log' USR1; echo ready >> log; while :; do sleep 1 & wait $!; done"] }"#;
    let pilot = Pilot::start(&format!("{trapper}, {SHOW}"), "");
    pilot.scratch.wait_for_lines(&["ready"]);
    let pid = pilot.running_pid("main");

    let reply = pilot.call("POST", "/v3/jobs/main/signal", r#"{"signal": "SIGUSR1"}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({ "signalled": true }));
    pilot.scratch.wait_for_lines(&["ready", "usr1"]);
    let reply = pilot.call("POST", "/v3/jobs/main/signal", r#"{"signal": "usr1"}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    pilot.scratch.wait_for_lines(&["ready", "usr1", "usr1"]);

    let refused = [
        ("ghost", r#"{"signal": "SIGHUP"}"#, 404),
        ("show", r#"{"signal": "SIGHUP"}"#, 409),
        ("main", r#"{"signal": "SIGNOPE"}"#, 422),
        ("main", r#"{"signal": 10}"#, 422),
        ("main", r#"{"sig": "SIGHUP"}"#, 422),
        ("main", "SIGUSR1", 422),
    ];
    for (job, body, status) in refused {
        let reply = pilot.call("POST", &format!("/v3/jobs/{job}/signal"), body);
        assert_eq!(reply.status, status, "{job} {body}: {}", reply.body);
    }

    assert_eq!(pilot.client_ok(&["-signal", "main=USR1"]), "");
    pilot
        .scratch
        .wait_for_lines(&["ready", "usr1", "usr1", "usr1"]);
    assert_eq!(pilot.client_ok(&["--signal=main=SIGUSR1"]), "");
    pilot
        .scratch
        .wait_for_lines(&["ready", "usr1", "usr1", "usr1", "usr1"]);
    for bad in ["ghost=HUP", "main=NOPE", "main"] {
        let output = pilot.client(&["-signal", bad]);
        assert_eq!(output.status.code(), Some(1), "-signal {bad}");
        assert!(!stderr(&output).is_empty(), "-signal {bad} says why");
    }
    assert_eq!(pilot.running_pid("main"), pid, "the trapping job survived");
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn unknown_paths_wrong_methods_and_oversized_bodies_are_refused() {
    let pilot = Pilot::start(MAIN, "");
    let refused = [
        ("GET", "/", 404),
        ("GET", "/v3", 404),
        ("GET", "/v3/nope", 404),
        ("GET", "/v2/ping", 404),
        ("POST", "/v3/jobs/main", 404),
        ("POST", "/v3/jobs/main/kill", 404),
        ("POST", "/v3/maintenance", 404),
        ("POST", "/v3/maintenance/toggle", 404),
        ("POST", "/v3/ping", 405),
        ("GET", "/v3/env", 405),
        ("PUT", "/v3/environ", 405),
        ("GET", "/v3/metric", 405),
        ("GET", "/v3/reload", 405),
        ("POST", "/v3/status", 405),
        ("DELETE", "/v3/status", 405),
        ("GET", "/v3/maintenance/enable", 405),
        ("GET", "/v3/jobs/main/signal", 405),
    ];
    for (method, path, status) in refused {
        assert_eq!(
            pilot.call(method, path, "").status,
            status,
            "{method} {path}"
        );
    }

    let at_limit = format!("{{}}{}", " ".repeat(MAX_BODY - 2));
    assert_eq!(pilot.call("POST", "/v3/env", &at_limit).status, 200);
    let over_limit = format!("{at_limit} ");
    let reply = pilot.call("POST", "/v3/env", &over_limit);
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(pilot.call("GET", "/v3/ping", "").body, "ok");
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn a_garbage_or_silent_client_disturbs_nobody() {
    let pilot = Pilot::start(MAIN, "");
    let pid = pilot.running_pid("main");
    let _silent = connect(&pilot.socket);
    let mut half = connect(&pilot.socket);
    std::io::Write::write_all(
        &mut half,
        b"POST /v3/env HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
    )
    .unwrap();

    for garbage in [
        &b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /v3/ping HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
    ] {
        let answer = exchange(connect(&pilot.socket), garbage.to_vec());
        let reply = parse_reply(&answer);
        assert_eq!(reply.status, 400, "{garbage:?}");
    }

    // Two requests on one kept-alive connection, while the others hang.
    let pipelined = b"GET /v3/ping HTTP/1.1\r\nHost: x\r\n\r\n\
                      GET /v3/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = String::from_utf8(exchange(connect(&pilot.socket), pipelined.to_vec())).unwrap();
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    let reply = call(&pilot.socket, "GET", "/v3/ping", "");
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    assert_eq!(pilot.running_pid("main"), pid);
    assert_eq!(pilot.stop().code, 0);
}

// ---- client subcommands --------------------------------------------------------

#[test]
fn putenv_client_sets_and_clears_variables() {
    let pilot = Pilot::start(&format!("{MAIN}, {SHOW}"), "");
    assert_eq!(
        pilot.client_ok(&["-putenv", "FOO=bar", "-putenv", "BAZ=x=y"]),
        ""
    );
    assert_eq!(show_env(&pilot), "FOO=bar BAZ=x=y");
    assert_eq!(pilot.client_ok(&["--putenv", "FOO"]), "");
    assert_eq!(show_env(&pilot), "FOO=unset BAZ=x=y");
    assert_eq!(pilot.client_ok(&["-putenv=BAZ="]), "");
    assert_eq!(show_env(&pilot), "FOO=unset BAZ=unset");

    let refused = pilot.client(&["-putenv", "FOO=again", "-putenv", "1BAD=x"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("1BAD"), "{}", stderr(&refused));
    assert_eq!(show_env(&pilot), "FOO=unset BAZ=unset");
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn status_client_prints_every_job_as_a_table_or_json() {
    let pilot = Pilot::start(&format!("{MAIN}, {SHOW}"), "");
    let pid = pilot.running_pid("main");
    let status = pilot.status();
    for flags in [&["--status"][..], &["-status"]] {
        let table = pilot.client_ok(flags);
        for job in status["jobs"].as_array().unwrap() {
            let name = job["name"].as_str().unwrap();
            let row = table
                .lines()
                .find(|line| line.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("no row for {name} in\n{table}"));
            let columns: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(columns[1], job["state"], "{row}");
        }
        let main_row = table
            .lines()
            .find(|line| line.starts_with("main "))
            .unwrap();
        assert!(main_row.contains(&pid.to_string()), "{main_row}");
        assert!(table.contains("maintenance: false"), "{table}");
    }
    for flags in [&["--status", "--json"][..], &["-status", "-json"]] {
        let json: serde_json::Value = serde_json::from_str(&pilot.client_ok(flags)).unwrap();
        assert_eq!(json, status);
    }
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn client_commands_find_the_socket_through_config_or_containerpilot() {
    let pilot = Pilot::start(MAIN, "");
    let config = pilot.config.as_str();
    let dir = pilot.scratch.dir();
    let with_equals = format!("-config={config}");
    let gnu_equals = format!("--config={config}");
    let spellings: [&[&str]; 6] = [
        &["-config", config, "-ping"],
        &["--config", config, "--ping"],
        &[&with_equals, "-ping"],
        &[&gnu_equals, "-ping=true"],
        &["-ping", "-config", config],
        &["--ping", "--config", config],
    ];
    for args in spellings {
        let output = client(dir, args, &[]);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert_eq!(stdout(&output), "ok\n", "{args:?}");
    }
    let url = format!("file://{config}");
    for value in [config, url.as_str()] {
        let output = client(dir, &["-ping"], &[("CONTAINERPILOT", value)]);
        assert!(
            output.status.success(),
            "CONTAINERPILOT={value}: {}",
            stderr(&output)
        );
    }

    let maintenance: [(&[&str], bool); 4] = [
        (&["-maintenance", "enable"], true),
        (&["-maintenance=enable"], true),
        (&["--maintenance", "disable"], false),
        (&["--maintenance=disable"], false),
    ];
    for (args, expected) in maintenance {
        assert_eq!(pilot.client_ok(args), "");
        assert_eq!(pilot.status()["maintenance"], expected, "{args:?}");
    }
    let bogus = pilot.client(&["-maintenance", "sideways"]);
    assert_eq!(bogus.status.code(), Some(2), "{}", stderr(&bogus));
    assert_eq!(pilot.client_ok(&["-reload"]), "");
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn client_commands_without_a_running_autopilot_fail_clearly() {
    let scratch = Scratch::new();
    let config = scratch.config(&format!("{{ jobs: [ {MAIN} ] }}"));
    let socket = scratch.path("control.sock").display().to_string();
    let commands: [&[&str]; 8] = [
        &["-ping"],
        &["-reload"],
        &["-maintenance", "enable"],
        &["-putenv", "A=1"],
        &["-putmetric", "m=1"],
        &["--status"],
        &["--status", "--json"],
        &["-signal", "main=HUP"],
    ];
    for command in commands {
        let mut args = vec!["-config", config.as_str()];
        args.extend_from_slice(command);
        let output = client(scratch.dir(), &args, &[]);
        assert_eq!(output.status.code(), Some(1), "{command:?}");
        let error = stderr(&output);
        assert!(
            error.contains("cannot reach") && error.contains(&socket),
            "{command:?}: {error}"
        );
        assert_eq!(stdout(&output), "", "{command:?}");
    }

    scratch.write(
        "config.json5",
        "{\n  jobs: [\n    { name: \"a\" exec: \"true\" },\n  ]\n}",
    );
    let output = client(scratch.dir(), &["-config", &config, "-ping"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("config.json5:3:"),
        "an unreadable configuration is named: {}",
        stderr(&output)
    );
}

// ---- the socket file ----------------------------------------------------------

#[test]
fn socket_file_is_private_replaces_a_stale_one_and_goes_at_exit() {
    let scratch = Scratch::new();
    let stale = scratch.path("control.sock");
    drop(UnixListener::bind(&stale).expect("a stale socket"));
    assert!(UnixStream::connect(&stale).is_err(), "nobody serves it");
    let pilot = Pilot::start_in(scratch, |port| Pilot::config_text(port, "", MAIN, ""));
    assert_eq!(pilot.call("GET", "/v3/ping", "").body, "ok");
    let metadata = std::fs::metadata(&pilot.socket).unwrap();
    assert!(metadata.file_type().is_socket());
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    assert_eq!(pilot.stop().code, 0, "stop() checks the file is gone");
}

#[test]
fn a_live_socket_of_another_autopilot_is_not_taken_over() {
    let first = Pilot::start(MAIN, "");
    let scratch = Scratch::new();
    scratch.write(
        "second.json5",
        &format!(
            r#"{{ control: {{ socket: {:?} }}, jobs: [ {{ name: "x", exec: ["sh", "-c", "echo ran >> log"] }} ] }}"#,
            first.socket
        ),
    );
    let second = Autopilot::new(Mode::Subreaper, ["-config", "second.json5"])
        .current_dir(scratch.dir())
        .run();
    assert_eq!(second.code, 2, "{}", second.stderr_text());
    assert!(
        second
            .stderr_text()
            .contains("another process is serving it"),
        "{}",
        second.stderr_text()
    );
    assert_eq!(scratch.lines(), Vec::<String>::new(), "nothing ran");
    assert_eq!(first.call("GET", "/v3/ping", "").body, "ok");
    assert_eq!(first.stop().code, 0);
}

#[test]
fn an_explicit_socket_path_that_cannot_be_used_refuses_to_start() {
    let scratch = Scratch::new();
    scratch.write("precious.txt", "keep me");
    let missing = format!(
        "its directory {} does not exist",
        scratch.path("missing").display()
    );
    let cases = [
        ("missing/control.sock", missing.as_str()),
        ("precious.txt", "not a socket"),
    ];
    for (path, reason) in cases {
        let socket = scratch.path(path);
        scratch.write(
            "config.json5",
            &format!(
                r#"{{ control: {{ socket: {socket:?} }}, jobs: [ {{ name: "x", exec: ["sh", "-c", "echo ran >> log"] }} ] }}"#
            ),
        );
        let finished = Autopilot::new(Mode::Subreaper, ["-config", "config.json5"])
            .current_dir(scratch.dir())
            .run();
        assert_eq!(finished.code, 2, "{path}");
        let error = finished.stderr_text();
        assert!(
            error.contains(&socket.display().to_string()) && error.contains(reason),
            "{path}: {error}"
        );
        assert_eq!(scratch.lines(), Vec::<String>::new(), "{path}: nothing ran");
    }
    assert_eq!(
        scratch.read("precious.txt"),
        "keep me",
        "a file that is not a socket stays"
    );
}

#[test]
fn an_unwritable_default_socket_path_means_a_warning_and_no_control_plane() {
    // Private mount namespaces: one where /var/run is a read-only tmpfs, as
    // in a container with a read-only root filesystem; one where /var is
    // empty, as in a `scratch` image, so /var/run does not exist.
    let cases = [
        (
            r#"mount -t tmpfs -o ro tmpfs "$(readlink -f /var/run)" && exec "$@""#,
            "control socket /var/run/containerpilot.socket unavailable (Read-only file system",
        ),
        (
            r#"mount -t tmpfs tmpfs /var && exec "$@""#,
            "control socket /var/run/containerpilot.socket unavailable (its directory /var/run does not exist): running without it",
        ),
    ];
    for (setup, warning) in cases {
        let scratch = Scratch::new();
        scratch.write(
            "config.json5",
            r#"{ jobs: [ { name: "x", exec: ["sh", "-c", "echo ran >> log"] } ] }"#,
        );
        let output = Command::new("timeout")
            .args(["30", "unshare", "--mount", "--", "sh", "-c", setup, "sh"])
            .arg(common::binary())
            .args(["-config", "config.json5"])
            .current_dir(scratch.dir())
            .env_remove("CONTAINERPILOT")
            .output()
            .expect("run autopilot in a mount namespace");
        let printed = format!("{}{}", stdout(&output), stderr(&output));
        assert_eq!(output.status.code(), Some(0), "{printed}");
        assert!(printed.contains(warning), "{printed}");
        assert_eq!(
            scratch.lines(),
            ["ran"],
            "the jobs ran without the control plane"
        );
    }
}

// ---- SIGUSR1 ------------------------------------------------------------------

#[test]
fn sigusr1_reopens_the_log_file_after_rotation() {
    let scratch = Scratch::new();
    let log_file = scratch.path("autopilot.log");
    let rotated = scratch.path("autopilot.log.1");
    let config = scratch.config(&format!(
        r#"{{
          logging: {{ output: {log_file:?} }},
          jobs: [
            {{ name: "main", exec: ["sh", "-c", "echo ready >> log; exec sleep 100"] }},
            {{ name: "before", exec: ["echo", "before-rotation"], when: {{ source: "SIGHUP" }} }},
            {{ name: "after", exec: ["echo", "after-rotation"], when: {{ source: "SIGUSR2" }} }},
          ]
        }}"#
    ));
    let running = Autopilot::new(Mode::Subreaper, ["-config", &config])
        .current_dir(scratch.dir())
        .start();
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    // Jobs start once autopilot handles signals.
    scratch.wait_for_lines(&["ready"]);
    running.signal(Signal::SIGHUP);
    wait_until("before-rotation in the log", || {
        read(&log_file).contains("before-rotation")
    });

    std::fs::rename(&log_file, &rotated).unwrap();
    running.signal(Signal::SIGUSR1);
    wait_until("the log file to be opened again", || log_file.exists());
    running.signal(Signal::SIGUSR2);
    wait_until("after-rotation in the new log", || {
        read(&log_file).contains("after-rotation")
    });
    running.signal(Signal::SIGTERM);
    let finished = running.finish();
    assert_eq!(finished.code, 0, "{}", finished.stderr_text());

    let old = read(&rotated);
    let new = read(&log_file);
    assert!(
        old.contains("before-rotation") && !old.contains("after-rotation"),
        "{old}"
    );
    assert!(!new.contains("before-rotation"), "{new}");
    assert!(
        new.contains("SIGTERM"),
        "later lines go to the new file: {new}"
    );
    assert_eq!(finished.stdout_text(), "", "nothing is logged to stdout");
}
