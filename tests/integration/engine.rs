//! The jobs engine, end to end: real autopilot processes running real jobs
//! from 3.x and 2.x configurations, observed through what the jobs write to a
//! log file and through autopilot's exit code.
//!
//! Each job appends a marker line to `log` in the test's own directory, so the
//! order of lines is the order in which things happened.

use crate::common;

use common::{Autopilot, Mode, Scratch};
use nix::sys::signal::Signal;

/// `docker stop` sends SIGKILL this long after SIGTERM.
const DOCKER_STOP_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts autopilot (as a child subreaper) in the scratch directory.
fn start(scratch: &Scratch, args: &[&str]) -> common::Running {
    Autopilot::new(Mode::Subreaper, args)
        .current_dir(scratch.dir())
        .start()
}

/// Starts autopilot, waits until `log` reads `ready`, sends SIGTERM, and
/// returns autopilot's exit code.
fn stop_once_ready(scratch: &Scratch, args: &[&str], ready: &[&str]) -> i32 {
    let autopilot = start(scratch, args);
    scratch.wait_for_lines(ready);
    autopilot.signal(Signal::SIGTERM);
    autopilot.finish().code
}

/// Waits until the job's state (from `--status --json` over the control
/// socket) is anything but running.
fn wait_until_not_running(config: &str, job: &str) {
    common::wait_until(&format!("{job} not to be running"), || {
        let output = std::process::Command::new(common::binary())
            .args(["--status", "--json", "-config", config])
            .output()
            .expect("run autopilot --status");
        let Ok(status) = serde_json::from_slice::<serde_json::Value>(&output.stdout) else {
            return false;
        };
        status["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|j| j["name"] == job && j["state"] != "running")
    });
}

/// A job's exec that appends `marker` to the log and exits 0.
fn mark(marker: &str) -> String {
    format!(r#"["sh", "-c", "echo {marker} >> log"]"#)
}

#[test]
fn chain_of_jobs_runs_in_dependency_order() {
    // A waits for B to be healthy; B waits for C to exit successfully.
    let scratch = Scratch::new();
    let config = scratch.config(&format!(
        r#"{{
          jobs: [
            {{ name: "a", exec: {a}, when: {{ source: "b", once: "healthy" }} }},
            {{ name: "b", exec: ["sh", "-c", "echo b >> log; exec sleep 100"],
               when: {{ source: "c", once: "exitSuccess" }},
               health: {{ exec: "true", interval: 1, ttl: 5 }} }},
            {{ name: "c", exec: {c} }},
          ]
        }}"#,
        a = mark("a"),
        c = mark("c"),
    ));
    assert_eq!(
        stop_once_ready(&scratch, &["-config", &config], &["c", "b", "a"]),
        0
    );
    assert_eq!(scratch.lines(), ["c", "b", "a"]);
}

#[test]
fn interval_job_runs_restarts_plus_one_times_then_autopilot_exits() {
    let scratch = Scratch::new();
    let config = scratch.config(&format!(
        r#"{{ jobs: [ {{ name: "tick", exec: {tick}, when: {{ interval: "100ms" }}, restarts: 2 }} ] }}"#,
        tick = mark("tick"),
    ));
    let autopilot = start(&scratch, &["-config", &config]);
    assert_eq!(autopilot.finish().code, 0, "every job completed: exit 0");
    assert_eq!(scratch.lines(), ["tick", "tick", "tick"]);
}

#[test]
fn once_job_restarts_as_often_as_allowed() {
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{ jobs: [ { name: "flaky", exec: ["sh", "-c", "echo run >> log; exit 1"], restarts: 2 } ] }"#,
    );
    let autopilot = start(&scratch, &["-config", &config]);
    assert_eq!(autopilot.finish().code, 0);
    assert_eq!(scratch.lines(), ["run", "run", "run"]);
}

#[test]
fn signal_event_runs_an_each_job_every_time() {
    let scratch = Scratch::new();
    let config = scratch.config(&format!(
        r#"{{
          jobs: [
            {{ name: "main", exec: ["sh", "-c", "echo ready >> log; exec sleep 100"] }},
            {{ name: "onhup", exec: {hup}, when: {{ source: "SIGHUP" }} }},
          ]
        }}"#,
        hup = mark("hup"),
    ));
    let autopilot = start(&scratch, &["-config", &config]);
    scratch.wait_for_lines(&["ready"]);
    for round in 1..=3 {
        // An `each` job ignores its event while its previous run is still
        // going (ContainerPilot's rule): signal only once that run exited.
        wait_until_not_running(&config, "onhup");
        autopilot.signal(Signal::SIGHUP);
        let expected: Vec<&str> = std::iter::once("ready")
            .chain(std::iter::repeat_n("hup", round))
            .collect();
        scratch.wait_for_lines(&expected);
    }
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 0);
    assert_eq!(scratch.lines(), ["ready", "hup", "hup", "hup"]);
}

#[test]
fn when_timeout_gives_up_without_running() {
    let scratch = Scratch::new();
    let config = scratch.config(&format!(
        r#"{{
          jobs: [
            {{ name: "never", exec: {never},
               when: {{ source: "ghost", once: "healthy", timeout: "200ms" }} }},
            {{ name: "after", exec: {after}, when: {{ source: "never", once: "stopped" }} }},
          ]
        }}"#,
        never = mark("never"),
        after = mark("gave-up"),
    ));
    let autopilot = start(&scratch, &["-config", &config]);
    assert_eq!(autopilot.finish().code, 0);
    assert_eq!(scratch.lines(), ["gave-up"]);
}

#[test]
fn job_killed_by_its_timeout_publishes_exit_failed() {
    let scratch = Scratch::new();
    let config = scratch.config(&format!(
        r#"{{
          jobs: [
            {{ name: "slow", exec: ["sh", "-c", "echo started >> log; exec sleep 100"], timeout: "300ms" }},
            {{ name: "onfail", exec: {failed}, when: {{ source: "slow", once: "exitFailed" }} }},
          ]
        }}"#,
        failed = mark("failed"),
    ));
    let autopilot = start(&scratch, &["-config", &config]);
    assert_eq!(autopilot.finish().code, 0);
    assert_eq!(scratch.lines(), ["started", "failed"]);
}

/// A job `app` running the shell script `app`, a preStop hook running
/// `prestop`, and a postStop hook that logs `poststop`.
fn app_with_stop_hooks(app: &str, prestop: &str) -> String {
    format!(
        r#"{{
          jobs: [
            {{ name: "app", exec: ["sh", "-c", "{app}"] }},
            {{ name: "preStop", exec: ["sh", "-c", "{prestop}"],
               when: {{ source: "app", once: "stopping" }} }},
            {{ name: "postStop", exec: {poststop}, when: {{ source: "app", once: "stopped" }} }},
          ]
        }}"#,
        poststop = mark("poststop"),
    )
}

#[test]
fn prestop_finishes_before_the_job_is_signalled_and_poststop_runs_after() {
    let scratch = Scratch::new();
    let config = scratch.config(&app_with_stop_hooks(
        "trap 'echo app-term >> log; exit 0' TERM; echo ready >> log; sleep 100 & wait",
        "sleep 0.3; echo prestop >> log",
    ));
    assert_eq!(
        stop_once_ready(&scratch, &["-config", &config], &["ready"]),
        0
    );
    assert_eq!(
        scratch.lines(),
        ["ready", "prestop", "app-term", "poststop"]
    );
}

#[test]
fn job_ignoring_its_stop_signal_is_killed_after_kill_timeout() {
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{
          jobs: [
            { name: "stubborn", killTimeout: "300ms",
              exec: ["sh", "-c", "trap '' TERM; echo $$ > pid; echo ready >> log; while :; do sleep 0.1; done"] },
          ]
        }"#,
    );
    let autopilot = start(&scratch, &["-config", &config]);
    scratch.wait_for_lines(&["ready"]);
    let pid = scratch.read("pid");
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 0);
    assert!(
        !common::procfs::is_alive(pid.trim().parse().unwrap()),
        "the job's process is gone"
    );
}

#[test]
fn stop_signal_is_configurable() {
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{
          jobs: [
            { name: "nginxish", stopSignal: "SIGQUIT",
              exec: ["sh", "-c", "trap 'echo quit >> log; exit 0' QUIT; trap 'echo term >> log; exit 0' TERM; echo ready >> log; sleep 100 & wait"] },
          ]
        }"#,
    );
    assert_eq!(
        stop_once_ready(&scratch, &["-config", &config], &["ready"]),
        0
    );
    assert_eq!(scratch.lines(), ["ready", "quit"]);
}

#[test]
fn primary_job_exit_code_becomes_autopilots() {
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{
          jobs: [
            { name: "main", primary: true, exec: ["sh", "-c", "echo main >> log; exit 3"] },
            { name: "sidecar", exec: ["sleep", "100"] },
          ]
        }"#,
    );
    let autopilot = start(&scratch, &["-config", &config]);
    assert_eq!(autopilot.finish().code, 3);
}

/// A job `svc` running `exec` (JSON) with the `health` fields given, and
/// jobs that log its `healthy` and `unhealthy` events.
fn health_events(exec: &str, health: &str) -> String {
    format!(
        r#"{{
          jobs: [
            {{ name: "svc", exec: {exec}, health: {{ {health} }} }},
            {{ name: "onhealthy", exec: {h}, when: {{ source: "svc", each: "healthy" }} }},
            {{ name: "onunhealthy", exec: {u}, when: {{ source: "svc", each: "unhealthy" }} }},
          ]
        }}"#,
        h = mark("healthy"),
        u = mark("unhealthy"),
    )
}

#[test]
fn health_transitions_publish_healthy_and_unhealthy_once_each() {
    let scratch = Scratch::new();
    let config = scratch.config(&health_events(
        r#"["sleep", "100"]"#,
        r#"exec: ["test", "-e", "up"], interval: 1, ttl: 5, startPeriod: 0"#,
    ));
    let autopilot = start(&scratch, &["-config", &config]);
    scratch.wait_for_lines(&["unhealthy"]);
    scratch.write("up", "");
    scratch.wait_for_lines(&["unhealthy", "healthy"]);
    std::fs::remove_file(scratch.path("up")).unwrap();
    scratch.wait_for_lines(&["unhealthy", "healthy", "unhealthy"]);
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 0);
    assert_eq!(scratch.lines(), ["unhealthy", "healthy", "unhealthy"]);
}

/// An APP that binds its port 2 s after it starts: its first checks fail,
/// inside the start period (the `ttl` by default), so a healthy start
/// publishes `healthy` and never `unhealthy` (an `each: unhealthy` alert
/// stays quiet).
#[test]
fn a_healthy_start_whose_app_binds_late_publishes_no_unhealthy() {
    common::require_program("python3", "python3");
    let scratch = Scratch::new();
    let port = common::free_port();
    let config = scratch.config(&health_events(
        &format!(r#"["sh", "-c", "sleep 2; exec python3 -m http.server --bind 127.0.0.1 {port}"]"#),
        &format!(r#"tcp: "127.0.0.1:{port}", interval: 1, ttl: 10"#),
    ));
    let autopilot = start(&scratch, &["-config", &config]);
    common::wait_until("a health event", || !scratch.lines().is_empty());
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 0);
    assert_eq!(scratch.lines(), ["healthy"]);
}

#[test]
fn health_check_that_hangs_is_killed_at_its_timeout() {
    let scratch = Scratch::new();
    let config = scratch.config(&format!(
        r#"{{
          jobs: [
            {{ name: "svc", exec: ["sleep", "100"],
               health: {{ exec: ["sh", "-c", "echo $$ >> checkpids; exec sleep 100"], interval: 1, ttl: 5, timeout: "200ms" }} }},
            {{ name: "onunhealthy", exec: {u}, when: {{ source: "svc", once: "unhealthy" }} }},
          ]
        }}"#,
        u = mark("unhealthy"),
    ));
    let autopilot = start(&scratch, &["-config", &config]);
    scratch.wait_for_lines(&["unhealthy"]);
    let first_check: i32 = scratch
        .read("checkpids")
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    common::wait_until("the hung check to be killed", || {
        !common::procfs::is_alive(first_check)
    });
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 0);
}

#[test]
fn children_see_autopilot_and_job_variables() {
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{
          jobs: [
            { name: "test-pid", exec: ["sh", "-c", "echo $$ > pid; exec sleep 100"],
              health: { exec: "true", interval: 1, ttl: 5 } },
            { name: "show", when: { source: "test-pid", once: "healthy" },
              exec: ["sh", "-c", "echo \"$CONTAINERPILOT_PID $CONTAINERPILOT_TEST_PID_PID\" > env.txt"] },
          ]
        }"#,
    );
    let autopilot = start(&scratch, &["-config", &config]);
    common::wait_until("the job's pid and the variables", || {
        scratch.read("env.txt").ends_with('\n') && scratch.read("pid").ends_with('\n')
    });
    let job_pid = scratch.read("pid");
    assert_eq!(
        scratch.read("env.txt"),
        format!("{} {}", autopilot.autopilot_pid(), job_pid)
    );
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 0);
}

#[test]
fn v2_prestart_failure_ends_the_run_with_its_code_and_the_app_never_starts() {
    let scratch = Scratch::new();
    let config = scratch.config(r#"{ "preStart": "sh -c 'echo prestart >> log; exit 4'" }"#);
    let autopilot = start(
        &scratch,
        &["-config", &config, "sh", "-c", "echo app >> log"],
    );
    assert_eq!(autopilot.finish().code, 4);
    assert_eq!(scratch.lines(), ["prestart"]);
}

#[test]
fn v2_hooks_run_around_the_app_and_post_stop_failure_wins() {
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{
          "preStart": "sh -c 'echo prestart >> log'",
          "preStop": "sh -c 'echo prestop >> log'",
          "postStop": "sh -c 'echo poststop >> log; exit 5'",
          "stopTimeout": 2
        }"#,
    );
    let autopilot = start(
        &scratch,
        &[
            "-config",
            &config,
            "sh",
            "-c",
            "trap 'echo app-term >> log; exit 42' TERM; echo app >> log; sleep 100 & wait",
        ],
    );
    scratch.wait_for_lines(&["prestart", "app"]);
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(
        autopilot.finish().code,
        5,
        "postStop's failure replaces the APP's 42"
    );
    assert_eq!(
        scratch.lines(),
        ["prestart", "app", "prestop", "app-term", "poststop"]
    );
}

#[test]
fn v2_app_exit_code_passes_through_after_post_stop() {
    let scratch = Scratch::new();
    let config = scratch.config(r#"{ "postStop": "sh -c 'echo poststop >> log'" }"#);
    let autopilot = start(
        &scratch,
        &["-config", &config, "sh", "-c", "echo app >> log; exit 7"],
    );
    assert_eq!(autopilot.finish().code, 7);
    assert_eq!(scratch.lines(), ["app", "poststop"]);
}

#[test]
fn shutdown_with_hooks_and_a_slow_app_fits_in_dockers_window() {
    // Docker sends SIGKILL 10 s after SIGTERM: everything must be done by then.
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{
          "preStop": "sh -c 'sleep 1; echo prestop >> log'",
          "postStop": "sh -c 'echo poststop >> log'"
        }"#,
    );
    let autopilot = start(
        &scratch,
        &[
            "-config",
            &config,
            "sh",
            "-c",
            "trap 'sleep 2; echo app-term >> log; exit 0' TERM; echo app >> log; sleep 100 & wait",
        ],
    );
    scratch.wait_for_lines(&["app"]);
    let stop_requested = std::time::Instant::now();
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 0);
    let took = stop_requested.elapsed();
    assert!(took < DOCKER_STOP_WINDOW, "shutdown took {took:?}");
    assert_eq!(scratch.lines(), ["app", "prestop", "app-term", "poststop"]);
}

/// The stop budget (docs/signals-and-exit-codes.md): with the default
/// `stopTimeout` and `killTimeout`, a preStop that hangs and a job that
/// ignores SIGTERM still let postStop start well inside Docker's window.
#[test]
fn poststop_starts_inside_dockers_window_with_the_default_budget() {
    let scratch = Scratch::new();
    let config = scratch.config(&app_with_stop_hooks(
        "trap '' TERM; echo app >> log; while :; do sleep 0.1; done",
        "echo prestop >> log; exec sleep 100",
    ));
    let autopilot = start(&scratch, &["-config", &config]);
    scratch.wait_for_lines(&["app"]);
    let asked = std::time::Instant::now();
    autopilot.signal(Signal::SIGTERM);
    scratch.wait_for_lines(&["app", "prestop", "poststop"]);
    let poststop_after = asked.elapsed();
    assert_eq!(autopilot.finish().code, 0);
    let exited_after = asked.elapsed();
    println!(
        "SIGTERM → postStop started: {poststop_after:.2?}; autopilot exited: {exited_after:.2?}"
    );
    // 8 s by the budget, with room for a busy machine.
    assert!(
        poststop_after < DOCKER_STOP_WINDOW - std::time::Duration::from_secs(1),
        "postStop started {poststop_after:?} after SIGTERM"
    );
    assert!(
        exited_after < DOCKER_STOP_WINDOW,
        "exited {exited_after:?} after SIGTERM"
    );
}

#[test]
fn v2_sighup_reloads_changed_jobs_and_keeps_the_app() {
    let scratch = Scratch::new();
    let write_config = |marker: &str| {
        scratch.write(
            "cp.json",
            &format!(
                r#"{{ "coprocesses": [ {{ "name": "co", "command": ["sh", "-c", "echo {marker} >> log; exec sleep 100"] }} ] }}"#
            ),
        )
    };
    write_config("co-v1");
    let config = scratch.path("cp.json").display().to_string();
    let autopilot = start(
        &scratch,
        &[
            "-config",
            &config,
            "sh",
            "-c",
            "echo app >> log; exec sleep 100",
        ],
    );
    scratch.wait_for_lines_unordered(&["app", "co-v1"]);
    write_config("co-v2");
    autopilot.signal(Signal::SIGHUP);
    scratch.wait_for_lines_unordered(&["app", "co-v1", "co-v2"]);
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(
        autopilot.finish().code,
        143,
        "the APP was killed by SIGTERM"
    );
    assert_eq!(
        scratch.lines().iter().filter(|l| *l == "app").count(),
        1,
        "the APP kept running across the reload"
    );
}

#[test]
fn app_arguments_are_templates_rendered_with_job_ips() {
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{
          "services": [ { "name": "web", "port": 80, "health": "true", "poll": 1, "ttl": 5,
                          "interfaces": ["static:192.0.2.7"] } ]
        }"#,
    );
    let finished = Autopilot::new(
        Mode::Subreaper,
        [
            "-config",
            &config,
            "sh",
            "-c",
            "echo '{{ .GREETING }} {{ .CONTAINERPILOT_WEB_IP }}{{ .UNSET }}' >> log",
        ],
    )
    .env("GREETING", "hello")
    .current_dir(scratch.dir())
    .run();
    assert_eq!(finished.code, 0, "{}", finished.stderr_text());
    assert_eq!(scratch.lines(), ["hello 192.0.2.7"]);
}

#[test]
fn jobs_see_the_apps_pid_under_both_names() {
    // `peek` runs every 50 ms until the APP's pid is in its environment.
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{ jobs: [ { name: "peek", when: { interval: "50ms" },
            exec: ["sh", "-c", "[ -n \"$CONTAINERPILOT_APP_PID\" ] && echo \"$CONTAINERPILOT_APP_PID $CONTAINERPILOT_SH_PID\" > pids.tmp && mv pids.tmp pids"] } ] }"#,
    );
    let autopilot = start(
        &scratch,
        &[
            "-config",
            &config,
            "sh",
            "-c",
            "echo $$ > ready; exec sleep 100",
        ],
    );
    common::wait_until("peek to see the APP's pid", || {
        !scratch.read("pids").is_empty()
    });
    let app = scratch.read("ready");
    assert_eq!(scratch.read("pids"), format!("{} {}", app.trim(), app));
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 143);
}

#[test]
fn stop_hooks_run_in_order() {
    // The scenario of ContainerPilot 3.8's own SIGTERM test: app, then
    // preStop on app's stopping, then postStop on app's stopped.
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/v3/stop-hooks.json5"
    );
    let mut autopilot = Autopilot::new(Mode::Subreaper, ["-config", config]).start();
    while !autopilot.next_line().contains("job=app") {}
    autopilot.signal(Signal::SIGTERM);
    let finished = autopilot.finish();
    assert_eq!(finished.code, 0);
    let log = finished.stdout_text();
    let position = |text: &str| {
        log.find(text)
            .unwrap_or_else(|| panic!("{text:?} not logged:\n{log}"))
    };
    assert!(position("preStop fired on app stopping") < position("postStop fired on app stopped"));
}
