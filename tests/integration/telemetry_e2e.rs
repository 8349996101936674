//! Telemetry end to end (docs/telemetry.md): the real autopilot binary
//! records what the control plane and 2.x sensors send into its metrics, and
//! `/metrics`, scraped over real TCP on the loopback interface, shows them
//! with autopilot's own event and request counters.

use crate::common;
use crate::control_support;

use common::{wait_until, Autopilot, Mode, Scratch};
use control_support::{free_port, scrape, scrape_text, stderr, Pilot};
use nix::sys::signal::Signal;

const MAIN: &str = r#"{ name: "main", exec: ["sleep", "100"] }"#;

/// One metric of each kind, the counter with a namespace and subsystem.
const METRICS: &str = r#"
  { namespace: "app", subsystem: "q", name: "jobs_done", help: "jobs done", type: "counter" },
  { name: "depth", help: "queue depth", type: "gauge" },
  { name: "latency", help: "request latency", type: "histogram" },
  { name: "sizes", help: "request sizes", type: "summary" }"#;

fn requests(code: u16, path: &str) -> String {
    format!(r#"containerpilot_control_http_requests{{code="{code}",path="{path}"}}"#)
}

fn events(code: &str, source: &str) -> String {
    format!(r#"containerpilot_events{{code="{code}",source="{source}"}}"#)
}

#[test]
fn putmetric_twice_shows_the_sum_on_metrics() {
    let pilot = Pilot::start(
        MAIN,
        r#"{ name: "my_counter", help: "a counter", type: "counter" },
           { name: "my_gauge", help: "a gauge", type: "gauge" }"#,
    );
    assert_eq!(pilot.client_ok(&["-putmetric", "my_counter=2"]), "");
    let via_env = control_support::client(
        pilot.scratch.dir(),
        &["-putmetric", "my_counter=2"],
        &[("CONTAINERPILOT", &pilot.config)],
    );
    assert!(via_env.status.success(), "{}", stderr(&via_env));

    let scrape_text = scrape_text(pilot.port);
    let lines: Vec<&str> = scrape_text.lines().collect();
    assert!(lines.contains(&"my_counter 4"), "{scrape_text}");
    assert!(
        lines.contains(&"# TYPE my_counter counter"),
        "{scrape_text}"
    );
    assert!(
        lines.contains(&"# HELP my_counter a counter"),
        "{scrape_text}"
    );

    assert_eq!(
        pilot.client_ok(&["-putmetric", "my_counter=0.5", "--putmetric=my_gauge=-3"]),
        ""
    );
    let metrics = pilot.metrics();
    assert_eq!(metrics["my_counter"], 4.5);
    assert_eq!(metrics["my_gauge"], -3.0);
    for bad in ["nope=1", "my_counter=abc", "my_counter=-1", "my_counter"] {
        let output = pilot.client(&["-putmetric", bad]);
        assert_eq!(output.status.code(), Some(1), "-putmetric {bad}");
        assert!(!stderr(&output).is_empty(), "-putmetric {bad} says why");
    }
    assert_eq!(
        pilot.metrics()["my_counter"],
        4.5,
        "refused values change nothing"
    );
    assert_eq!(pilot.metrics()[&requests(200, "/v3/metric")], 3.0);
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn metric_endpoint_records_each_kind_and_applies_nothing_on_error() {
    let pilot = Pilot::start(MAIN, METRICS);
    let accepted = [
        r#"{"app_q_jobs_done": 2}"#,
        r#"{"app_q_jobs_done": 3, "depth": 7}"#,
        r#"{"depth": -1.5}"#,
        r#"{"latency": 0.3, "sizes": 4}"#,
        // ContainerPilot's spelling of a metric configured with only a name.
        r#"{"__sizes": 6}"#,
    ];
    for body in accepted {
        let reply = pilot.call("POST", "/v3/metric", body);
        assert_eq!(reply.status, 200, "{body}: {}", reply.body);
    }
    // Each refused body starts with a good value that must not be recorded.
    let refused = [
        r#"{"app_q_jobs_done": 1, "nope": 1}"#,
        r#"{"app_q_jobs_done": 1, "depth": "7"}"#,
        r#"{"app_q_jobs_done": 1, "depth": null}"#,
        r#"{"app_q_jobs_done": 1, "latency": [1]}"#,
        r#"{"depth": 100, "app_q_jobs_done": -1}"#,
        r#"{"depth": 100"#,
        r#"[1]"#,
    ];
    for body in refused {
        let reply = pilot.call("POST", "/v3/metric", body);
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
    }

    let metrics = pilot.metrics();
    assert_eq!(metrics["app_q_jobs_done"], 5.0);
    assert_eq!(metrics["depth"], -1.5);
    assert_eq!(metrics["latency_count"], 1.0);
    assert_eq!(metrics["latency_sum"], 0.3);
    assert_eq!(metrics[r#"latency_bucket{le="0.25"}"#], 0.0);
    assert_eq!(metrics[r#"latency_bucket{le="0.5"}"#], 1.0);
    assert_eq!(metrics["sizes_count"], 2.0);
    assert_eq!(metrics["sizes_sum"], 10.0);
    assert_eq!(metrics[&requests(200, "/v3/metric")], accepted.len() as f64);
    assert_eq!(metrics[&requests(422, "/v3/metric")], refused.len() as f64);
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn internal_metrics_count_the_events_published_and_the_requests_served() {
    let jobs = r#"
      { name: "main", exec: ["sleep", "100"] },
      { name: "ok", exec: "true" },
      { name: "fails", exec: "false" },
      { name: "onhup", exec: "true", when: { source: "SIGHUP" } }"#;
    let pilot = Pilot::start(jobs, "");
    pilot.wait_for_metric(&events("exitSuccess", "ok"), 1.0);
    pilot.wait_for_metric(&events("exitFailed", "fails"), 1.0);
    for count in 1..=3 {
        pilot.running.signal(Signal::SIGHUP);
        // Signals of one kind do not queue: send the next once this one counted.
        pilot.wait_for_metric(&events("signal", "SIGHUP"), f64::from(count));
    }
    assert_eq!(pilot.call("POST", "/v3/maintenance/enable", "").status, 200);
    pilot.wait_for_metric(&events("enterMaintenance", "global"), 1.0);
    assert_eq!(pilot.call("GET", "/v3/nope", "").status, 404);
    assert_eq!(pilot.call("GET", "/v3/ping", "").status, 200);
    assert_eq!(pilot.call("GET", "/v3/ping", "").status, 200);

    let metrics = pilot.metrics();
    assert_eq!(metrics[&events("startup", "global")], 1.0);
    assert_eq!(metrics[&events("exitSuccess", "ok")], 1.0);
    assert_eq!(metrics[&events("exitFailed", "fails")], 1.0);
    assert_eq!(metrics[&events("signal", "SIGHUP")], 3.0);
    wait_until("onhup to finish its runs", || {
        pilot
            .metrics()
            .get(&events("exitSuccess", "onhup"))
            .copied()
            >= Some(1.0)
    });
    for never in [
        events("exitSuccess", "main"),
        events("exitMaintenance", "global"),
        events("shutdown", "global"),
    ] {
        assert!(!metrics.contains_key(&never), "{never} was never published");
    }
    assert_eq!(metrics[&requests(200, "/v3/maintenance/enable")], 1.0);
    assert_eq!(metrics[&requests(404, "other")], 1.0);
    assert_eq!(metrics[&requests(200, "/v3/ping")], 2.0);
    assert!(metrics["process_resident_memory_bytes"] > 0.0);
    assert_eq!(pilot.stop().code, 0);
}

#[test]
fn sensors_of_a_2x_configuration_record_their_output() {
    let scratch = Scratch::new();
    let port = free_port();
    scratch.write(
        "config.json",
        &format!(
            r#"{{ "telemetry": {{ "port": {port}, "interfaces": ["127.0.0.0/8"], "sensors": [
                {{ "name": "sensor_gauge", "help": "a gauge sensor", "type": "gauge", "poll": 1,
                   "check": ["sh", "-c", "echo ' 42.5 '"] }},
                {{ "namespace": "cp", "subsystem": "app", "name": "runs", "help": "a counter sensor",
                   "type": "counter", "poll": 1, "check": ["sh", "-c", "echo 2"] }}
            ] }} }}"#
        ),
    );
    let running = Autopilot::new(Mode::Subreaper, ["-config", "config.json", "sleep", "100"])
        .current_dir(scratch.dir())
        .start();
    wait_until("the sensors to report", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && {
            let metrics = scrape(port);
            metrics.get("sensor_gauge") == Some(&42.5)
                && metrics.get("cp_app_runs").is_some_and(|runs| *runs >= 2.0)
        }
    });
    let runs = scrape(port)["cp_app_runs"];
    assert_eq!(
        runs % 2.0,
        0.0,
        "each poll adds the sensor's output: {runs}"
    );
    running.signal(Signal::SIGTERM);
    let finished = running.finish();
    assert_eq!(
        finished.code,
        128 + 15,
        "the APP ended by SIGTERM: {}",
        finished.stderr_text()
    );
}
