//! Job output as autopilot logs it (docs/configuration.md, "3.x reference",
//! `logging`), seen from outside: autopilot runs as PID 1 with
//! `logging.level: "WARN"`, a job and its health check write to stdout and
//! stderr, and every line autopilot prints is checked whole, in each format.
//! The job name and pid lead each line in `default`, as in ContainerPilot 3.8;
//! no level hides job output.

use crate::common;

use common::{Autopilot, Mode, Scratch};
use serde_json::{json, Value};

/// The job writes two lines to stdout (one needs quoting in `text`, the
/// other escaping), one to stderr, then waits until its health check has run
/// once, so that both are logged before it exits and autopilot with it.
fn config(scratch: &Scratch, format: &str) -> String {
    let checked = scratch.path("checked").display().to_string();
    scratch.config(&format!(
        r#"{{
  logging: {{ level: "WARN", format: "{format}" }},
  jobs: [{{
    name: "web",
    primary: true,
    exec: ["sh", "-c", "echo pid $$; echo 'say \"hi\"'; echo oops >&2; i=0; while [ ! -e {checked} ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done"],
    health: {{ exec: ["sh", "-c", "echo checked; touch {checked}"], interval: 1, ttl: 5 }}
  }}]
}}"#
    ))
}

/// Runs the job in `format`; returns autopilot's stdout lines.
fn logged_lines(format: &str) -> Vec<String> {
    let scratch = Scratch::new();
    let config = config(&scratch, format);
    let finished = Autopilot::new(Mode::Pid1, ["-config", &config]).run();
    assert_eq!(finished.code, 0, "stderr: {}", finished.stderr_text());
    finished.stdout_text().lines().map(str::to_owned).collect()
}

/// The job's pid, as its first line says (`pid <n>`, in the message).
fn job_pid(lines: &[String]) -> u32 {
    lines
        .iter()
        .find_map(|line| {
            line.split("pid ")
                .nth(1)?
                .split(['"', ' '])
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no `pid <n>` line in {lines:?}"))
}

/// Checks that `time` is an RFC 3339 time with sub-second digits.
fn assert_precise_time(time: &str) {
    humantime::parse_rfc3339(time).unwrap_or_else(|error| panic!("{time:?}: {error}"));
    assert!(time.contains('.'), "no sub-second digits in {time:?}");
}

#[test]
fn default_format_leads_job_output_with_job_and_pid() {
    let lines = logged_lines("default");
    let pid = job_pid(&lines);
    let bodies: Vec<&str> = lines
        .iter()
        .map(|line| {
            let (time, body) = line.split_once(' ').unwrap();
            assert_precise_time(time);
            body
        })
        .collect();
    let (checks, job): (Vec<&str>, Vec<&str>) = bodies
        .iter()
        .partition(|body| body.starts_with("check.web "));
    let mut job = job;
    job.sort();
    assert_eq!(
        job,
        [
            format!("web [{pid}] oops"),
            format!("web [{pid}] pid {pid}"),
            format!("web [{pid}] say \"hi\""),
        ],
        "{lines:?}"
    );
    assert!(!checks.is_empty(), "no check line in {lines:?}");
    for check in checks {
        let (check_pid, message) = check
            .strip_prefix("check.web ")
            .and_then(|rest| rest.split_once(' '))
            .unwrap();
        let check_pid = check_pid
            .strip_prefix('[')
            .and_then(|pid| pid.strip_suffix(']'));
        assert!(
            check_pid.is_some_and(|pid| pid.parse::<u32>().is_ok()),
            "{check:?}"
        );
        assert_eq!(message, "checked", "{check:?}");
    }
}

#[test]
fn text_format_has_job_and_pid_fields() {
    let lines = logged_lines("text");
    let pid = job_pid(&lines);
    let (checks, job): (Vec<String>, Vec<String>) =
        lines.into_iter().partition(|line| line.contains("check"));
    let rest = |line: &String| {
        let (time, rest) = line
            .strip_prefix("time=\"")
            .and_then(|rest| rest.split_once("\" "))
            .unwrap_or_else(|| panic!("no time in {line:?}"));
        humantime::parse_rfc3339(time).unwrap();
        rest.to_owned()
    };
    let stdout: Vec<String> = job
        .iter()
        .map(rest)
        .filter(|l| !l.contains("oops"))
        .collect();
    assert_eq!(
        stdout,
        [
            format!("level=info msg=\"pid {pid}\" job=web pid={pid}"),
            format!("level=info msg=\"say \\\"hi\\\"\" job=web pid={pid}"),
        ],
        "{job:?}"
    );
    let stderr: Vec<String> = job
        .iter()
        .map(rest)
        .filter(|l| l.contains("oops"))
        .collect();
    assert_eq!(stderr, [format!("level=info msg=oops job=web pid={pid}")]);
    assert!(!checks.is_empty(), "no check line");
    for check in &checks {
        let rest = rest(check);
        let check_pid = rest
            .strip_prefix("level=info msg=checked check=check.web pid=")
            .unwrap_or_else(|| panic!("{check:?}"));
        assert!(check_pid.parse::<u32>().is_ok(), "{check:?}");
    }
}

#[test]
fn json_format_has_job_pid_and_stream() {
    let lines = logged_lines("json");
    let pid = job_pid(&lines);
    let (checks, objects): (Vec<Value>, Vec<Value>) = lines
        .iter()
        .map(|line| {
            let mut object: Value = serde_json::from_str(line).unwrap();
            let time = object.as_object_mut().unwrap().remove("time").unwrap();
            assert_precise_time(time.as_str().unwrap());
            object
        })
        .partition(|object| object.get("check").is_some());
    let line = |msg: &str, stream: &str| json!({"level": "info", "msg": msg, "job": "web", "pid": pid, "stream": stream});
    let stdout: Vec<&Value> = objects.iter().filter(|o| o["stream"] == "stdout").collect();
    assert_eq!(
        stdout,
        [
            &line(&format!("pid {pid}"), "stdout"),
            &line("say \"hi\"", "stdout")
        ]
    );
    let stderr: Vec<&Value> = objects.iter().filter(|o| o["stream"] == "stderr").collect();
    assert_eq!(stderr, [&line("oops", "stderr")]);
    assert!(!checks.is_empty(), "no check line in {lines:?}");
    for check in checks {
        assert!(check["pid"].is_u64(), "{check}");
        let expected = json!({"level": "info", "msg": "checked", "check": "check.web", "pid": check["pid"], "stream": "stdout"});
        assert_eq!(check, expected);
    }
}
