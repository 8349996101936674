//! The job output relay with real child processes: every line arrives, in
//! order, whatever the process writes and whenever it writes it.
use crate::support;

use std::process::{Child, Command, Stdio};

use autopilot::testing::config::model::{LogFormat, LogLevel};
use autopilot::testing::logging::{
    OutputLabel, OutputRelay, OutputStream, OutputTail, MAX_LINE_BYTES, TAIL_BYTES,
};
use serde_json::Value;
use support::{default_message, wait_until, CapturedLog};
use tracing::Level;

/// Runs `script` with `sh -c`, its stdout (and stderr, if `pipe_stderr`) piped.
fn spawn_shell(script: &str, args: &[&str], pipe_stderr: bool) -> Child {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .stdout(Stdio::piped());
    if pipe_stderr {
        command.stderr(Stdio::piped());
    }
    command.spawn().unwrap()
}

/// The relay of `child`'s stdout as job `app`, shown at INFO.
fn stdout_relay(child: &Child) -> OutputRelay {
    let label = OutputLabel::job("app").with_pid(child.id() as i32);
    OutputRelay::new(label, OutputStream::Stdout, Level::INFO)
}

/// The line of job `app`'s output a `default`-format log line shows.
fn output_line(line: &str, pid: u32) -> String {
    let prefix = format!("app [{pid}] ");
    let message = default_message(line);
    message
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{message:?} does not start with {prefix:?}"))
        .to_owned()
}

/// Relays the stdout of `script` as job `app`; returns the lines logged (in
/// `default` format).
async fn relayed_messages(script: &str) -> Vec<String> {
    let log = CapturedLog::start(LogLevel::Info, LogFormat::Default);
    let mut child = spawn_shell(script, &[], false);
    stdout_relay(&child)
        .run(child.stdout.take().unwrap())
        .await
        .unwrap();
    assert!(child.wait().unwrap().success());
    log.lines()
        .iter()
        .map(|line| output_line(line, child.id()))
        .collect()
}

/// Runs `script`, relaying its stdout and stderr concurrently until both
/// reach end of file.
async fn relay_both_streams(script: &str, stdout: OutputRelay, stderr: OutputRelay) {
    let mut child = spawn_shell(script, &[], true);
    let (stdout, stderr) = tokio::join!(
        stdout.run(child.stdout.take().unwrap()),
        stderr.run(child.stderr.take().unwrap())
    );
    stdout.unwrap();
    stderr.unwrap();
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn a_hundred_thousand_lines_arrive_in_order() {
    let messages = relayed_messages("seq 1 100000").await;
    let expected: Vec<String> = (1..=100_000).map(|n| n.to_string()).collect();
    assert!(
        messages == expected,
        "{} lines, first {:?}",
        messages.len(),
        messages.first()
    );
}

#[tokio::test]
async fn a_last_line_without_newline_is_logged() {
    let messages = relayed_messages("printf 'first\\n\\nlast'").await;
    assert_eq!(messages, ["first", "", "last"]);
}

#[tokio::test]
async fn a_long_line_is_logged_in_pieces() {
    let script = "head -c 204800 /dev/zero | tr '\\0' x; echo; echo after";
    let messages = relayed_messages(script).await;
    let sizes: Vec<usize> = messages.iter().map(String::len).collect();
    assert_eq!(
        sizes,
        [MAX_LINE_BYTES, MAX_LINE_BYTES, MAX_LINE_BYTES, 8192, 5]
    );
    assert!(messages[..4]
        .iter()
        .all(|piece| piece.bytes().all(|byte| byte == b'x')));
    assert_eq!(messages[4], "after");
}

#[tokio::test]
async fn invalid_utf8_is_logged_lossily() {
    let messages = relayed_messages("printf 'bad \\377\\376 bytes\\nok\\n'").await;
    assert_eq!(messages, ["bad \u{fffd}\u{fffd} bytes", "ok"]);
}

#[tokio::test]
async fn output_written_after_the_process_exited_is_logged() {
    let log = CapturedLog::start(LogLevel::Info, LogFormat::Default);
    let flag = log.dir.path().join("go");
    // The grandchild inherits stdout and writes once the flag file exists
    // (giving up after 10 s so a failing test leaves nothing behind).
    let script =
        "(i=0; while [ ! -e \"$1\" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; \
                  echo late) & echo early";
    let mut child = spawn_shell(script, &[flag.to_str().unwrap()], false);
    let relay = tokio::spawn(stdout_relay(&child).run(child.stdout.take().unwrap()));
    assert!(child.wait().unwrap().success());
    wait_until("`early` is logged", || log.lines().len() == 1).await;
    assert!(
        !relay.is_finished(),
        "the relay stopped while a grandchild held the pipe"
    );

    std::fs::write(&flag, "").unwrap();
    relay.await.unwrap().unwrap();
    let messages: Vec<String> = log
        .lines()
        .iter()
        .map(|line| output_line(line, child.id()))
        .collect();
    assert_eq!(messages, ["early", "late"]);
}

#[tokio::test]
async fn job_output_carries_its_label_pid_stream_and_level() {
    let log = CapturedLog::start(LogLevel::Debug, LogFormat::Json);
    let label = OutputLabel::job("web").with_pid(4242);
    let stdout = OutputRelay::new(label.clone(), OutputStream::Stdout, Level::INFO);
    let stderr = OutputRelay::new(label, OutputStream::Stderr, Level::DEBUG);
    relay_both_streams("echo to-stdout; echo to-stderr >&2", stdout, stderr).await;

    let mut lines: Vec<Value> = log
        .lines()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    lines.sort_by_key(|line| line["msg"].to_string());
    for line in &mut lines {
        let time = line.as_object_mut().unwrap().remove("time").unwrap();
        let time = time.as_str().unwrap();
        humantime::parse_rfc3339(time).unwrap();
        assert!(time.contains('.'), "no sub-second digits in {time}");
    }
    assert_eq!(
        lines,
        [
            serde_json::json!({"level": "debug", "msg": "to-stderr", "job": "web", "pid": 4242, "stream": "stderr"}),
            serde_json::json!({"level": "info", "msg": "to-stdout", "job": "web", "pid": 4242, "stream": "stdout"}),
        ]
    );
}

/// Job output is the application's, not autopilot's diagnostics: no level
/// hides it.
#[tokio::test]
async fn job_output_is_logged_at_every_level() {
    for (level, format) in [
        (LogLevel::Warn, LogFormat::Default),
        (LogLevel::Error, LogFormat::Text),
        (LogLevel::Panic, LogFormat::Json),
    ] {
        let log = CapturedLog::start(level, format);
        let label = OutputLabel::job("web").with_pid(7);
        let stdout = OutputRelay::new(label.clone(), OutputStream::Stdout, Level::INFO);
        let stderr = OutputRelay::new(label, OutputStream::Stderr, Level::DEBUG);
        relay_both_streams("echo out; echo err >&2", stdout, stderr).await;
        tracing::info!(target: "autopilot::test", "autopilot's own INFO line");
        let lines = log.lines();
        assert_eq!(lines.len(), 2, "{level:?} {format:?}: {lines:?}");
        for text in ["out", "err"] {
            assert_eq!(
                lines.iter().filter(|line| line.contains(text)).count(),
                1,
                "{level:?} {format:?}: {lines:?}"
            );
        }
    }
}

#[tokio::test]
async fn check_output_of_both_streams_is_labelled_and_kept() {
    let log = CapturedLog::start(LogLevel::Info, LogFormat::Text);
    let tail = OutputTail::new();
    let label = OutputLabel::check("web").with_pid(31);
    let stdout =
        OutputRelay::new(label.clone(), OutputStream::Stdout, Level::INFO).with_tail(tail.clone());
    let stderr = OutputRelay::new(label, OutputStream::Stderr, Level::INFO).with_tail(tail.clone());
    relay_both_streams("echo checking; echo 'no answer' >&2", stdout, stderr).await;

    let mut lines: Vec<String> = log
        .lines()
        .iter()
        .map(|line| line.split_once(" level=").unwrap().1.to_owned())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "info msg=\"no answer\" check=check.web pid=31",
            "info msg=checking check=check.web pid=31"
        ]
    );
    // The two pipes are read concurrently: either may come first.
    let text = tail.text();
    assert!(
        text == "checking\nno answer\n" || text == "no answer\nchecking\n",
        "{text:?}"
    );
}

#[tokio::test]
async fn the_tail_keeps_the_end_of_long_output() {
    let _log = CapturedLog::start(LogLevel::Info, LogFormat::Default);
    // 100 lines of 51 bytes: more than the tail keeps.
    let script = "i=0; while [ $i -lt 100 ]; do printf '%050d\\n' $i; i=$((i+1)); done";
    let mut child = spawn_shell(script, &[], false);
    let tail = OutputTail::new();
    let relay = OutputRelay::new(OutputLabel::check("web"), OutputStream::Stdout, Level::INFO)
        .with_tail(tail.clone());
    relay.run(child.stdout.take().unwrap()).await.unwrap();
    assert!(child.wait().unwrap().success());

    let output: String = (0..100).map(|i| format!("{i:050}\n")).collect();
    assert_eq!(tail.text(), output[output.len() - TAIL_BYTES..]);
}
