//! Failures are visible at the default log level, once, with their cause
//! (docs/troubleshooting.md, "Failure lines"): real autopilot processes, real
//! jobs that fail, and what autopilot logs about them, line by line. Lines
//! ContainerPilot had keep its wording (`ff exited with error: exit status
//! 255`) so that log filters written for it keep working.

use crate::common;

use common::{Autopilot, Mode, Scratch};
use nix::sys::signal::Signal;
use serde_json::Value;

/// autopilot's own log lines (json format) as (level, message), without the
/// jobs' relayed output.
fn log_lines(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("job").is_none() && line.get("check").is_none())
        .map(|line| {
            let text = |key: &str| line[key].as_str().unwrap_or_default().to_string();
            (text("level"), text("msg"))
        })
        .collect()
}

/// The lines about `subject` (a job name or `check.<job>`).
fn about(lines: &[(String, String)], subject: &str) -> Vec<(String, String)> {
    let prefixes = [format!("{subject} "), format!("unable to start {subject}:")];
    lines
        .iter()
        .filter(|(_, message)| prefixes.iter().any(|p| message.starts_with(p.as_str())))
        .cloned()
        .collect()
}

fn line(level: &str, message: &str) -> (String, String) {
    (level.to_string(), message.to_string())
}

#[test]
fn job_and_check_failures_are_logged_once_each_with_their_cause() {
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{
          logging: { format: "json" },
          jobs: [
            { name: "ff", exec: ["sh", "-c", "exit 255"] },
            { name: "flaky", exec: ["sh", "-c", "exit 3"], restarts: 1 },
            { name: "slow", exec: ["sleep", "100"], timeout: "300ms" },
            { name: "missing", exec: ["sleep", "100"],
              health: { exec: "/nonexistent/check", interval: 1, ttl: 5, startPeriod: 0 } },
            { name: "hung", exec: ["sleep", "100"],
              health: { exec: ["sleep", "100"], interval: 1, ttl: 5, timeout: "300ms", startPeriod: 0 } },
            { name: "failing", exec: ["sleep", "100"],
              health: { exec: ["sh", "-c", "echo check >> checks; exit 1"], interval: 1, ttl: 5, startPeriod: 0 } },
            { name: "stubborn", killTimeout: "300ms",
              exec: ["sh", "-c", "trap '' TERM; echo stubborn >> log; while :; do sleep 0.1; done"] },
            { name: "termfail",
              exec: ["sh", "-c", "trap 'exit 1' TERM; echo termfail >> log; while :; do sleep 0.1; done"] },
            { name: "jvm",
              exec: ["sh", "-c", "trap 'exit 143' TERM; echo jvm >> log; while :; do sleep 0.1; done"] },
          ]
        }"#,
    );
    let autopilot = Autopilot::new(Mode::Pid1, ["-config", &config])
        .current_dir(scratch.dir())
        .start();
    scratch.wait_for_lines_unordered(&["stubborn", "termfail", "jvm"]);
    // Three failures of the same check: one line, the rest wait for the summary.
    common::wait_until("the failing check to run three times", || {
        scratch.read("checks").lines().count() >= 3
    });
    autopilot.signal(Signal::SIGTERM);
    let finished = autopilot.finish();
    let stdout = finished.stdout_text();
    let lines = log_lines(&stdout);
    let expected = [
        (
            "ff",
            vec![line("error", "ff exited with error: exit status 255")],
        ),
        (
            "flaky",
            vec![
                line("error", "flaky exited with error: exit status 3"),
                line("info", "flaky restarting after failure (restart 1 of 1)"),
                line("error", "flaky exited with error: exit status 3"),
            ],
        ),
        (
            "slow",
            vec![
                line(
                    "warning",
                    "slow timeout after 300ms: killing its process group",
                ),
                line("error", "slow exited with error: signal: killed"),
            ],
        ),
        (
            "check.missing",
            vec![line(
                "error",
                "unable to start check.missing: /nonexistent/check: not found",
            )],
        ),
        (
            "check.hung",
            vec![line("error", "check.hung timeout after 300ms: killed")],
        ),
        (
            "check.failing",
            vec![line(
                "error",
                "check.failing exited with error: exit status 1",
            )],
        ),
        (
            "stubborn",
            vec![line(
                "warning",
                "stubborn did not exit within 300ms of SIGTERM: killing it with SIGKILL",
            )],
        ),
        // Stopped: a failure only if it does not end as its stop asked.
        (
            "termfail",
            vec![line("error", "termfail exited with error: exit status 1")],
        ),
        ("jvm", vec![]),
        ("missing", vec![]),
    ];
    for (subject, lines_about) in expected {
        assert_eq!(
            about(&lines, subject),
            lines_about,
            "{subject}; stdout:\n{stdout}"
        );
    }
}

/// Wrap mode (tini's) logs only at WARN: the kill after the kill timeout is
/// the one line, on stderr; the APP's own exit is its exit code.
#[test]
fn the_kill_after_the_kill_timeout_in_wrap_mode_is_the_one_line() {
    let mut autopilot = Autopilot::new(
        Mode::Pid1,
        [
            "-kill-timeout",
            "300ms",
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    )
    .start();
    autopilot.expect_line("ready");
    autopilot.signal(Signal::SIGTERM);
    let finished = autopilot.finish();
    assert_eq!(finished.code, 137);
    let stderr = finished.stderr_text();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr:\n{stderr}");
    assert!(
        lines[0].contains(" sh did not exit within 300ms of SIGTERM: killing it with SIGKILL"),
        "stderr:\n{stderr}"
    );
}
