//! The logger as installed: formats of real `tracing` events, level
//! filtering, reconfiguration and reopening a renamed log file.
use crate::support;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use autopilot::testing::config::model::{LogFormat, LogLevel, LogOutput, LoggingConfig};
use autopilot::testing::logging::{self, LoggingError};
use serde_json::Value;
use support::{default_message, file_config, lines_of, CapturedLog};

fn log_sample_event() {
    tracing::info!(target: OURS, job = "web", attempt = 3, error = %"no such file", "job exited");
}

/// autopilot's own log target: the configured level applies to it (other
/// crates are capped at WARN).
const OURS: &str = "autopilot::test";

#[test]
fn default_format_shows_time_message_and_fields() {
    let log = CapturedLog::start(LogLevel::Info, LogFormat::Default);
    log_sample_event();
    let lines = log.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        default_message(&lines[0]),
        "job exited job=web attempt=3 error=\"no such file\""
    );
}

#[test]
fn text_format_is_logfmt() {
    let log = CapturedLog::start(LogLevel::Info, LogFormat::Text);
    log_sample_event();
    let lines = log.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let rest = lines[0].strip_prefix("time=\"").unwrap();
    let (time, rest) = rest.split_once('"').unwrap();
    humantime::parse_rfc3339(time).unwrap();
    assert_eq!(
        rest,
        " level=info msg=\"job exited\" job=web attempt=3 error=\"no such file\""
    );
}

#[test]
fn json_format_is_one_object_per_line() {
    let log = CapturedLog::start(LogLevel::Info, LogFormat::Json);
    log_sample_event();
    tracing::warn!(target: OURS, "second");
    let lines = log.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    humantime::parse_rfc3339(first["time"].as_str().unwrap()).unwrap();
    assert_eq!(first["level"], "info");
    assert_eq!(first["msg"], "job exited");
    assert_eq!(first["job"], "web");
    assert_eq!(first["attempt"], 3);
    assert_eq!(first["error"], "no such file");
    let second: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["level"], "warning");
    assert_eq!(second["msg"], "second");
}

fn log_one_per_level() {
    tracing::trace!(target: OURS, "trace");
    tracing::debug!(target: OURS, "debug");
    tracing::info!(target: OURS, "info");
    tracing::warn!(target: OURS, "warn");
    tracing::error!(target: OURS, "error");
}

fn messages_logged_at(level: LogLevel) -> Vec<String> {
    let log = CapturedLog::start(level, LogFormat::Default);
    log_one_per_level();
    log.lines()
        .iter()
        .map(|line| default_message(line).to_owned())
        .collect()
}

#[test]
fn levels_filter_what_is_logged() {
    assert_eq!(
        messages_logged_at(LogLevel::Debug),
        ["debug", "info", "warn", "error"]
    );
    assert_eq!(
        messages_logged_at(LogLevel::Info),
        ["info", "warn", "error"]
    );
    assert_eq!(messages_logged_at(LogLevel::Warn), ["warn", "error"]);
    assert_eq!(messages_logged_at(LogLevel::Error), ["error"]);
    assert_eq!(messages_logged_at(LogLevel::Fatal), ["error"]);
    assert_eq!(messages_logged_at(LogLevel::Panic), ["error"]);
}

/// Counts how often it is formatted.
struct CountedDisplay<'a>(&'a AtomicUsize);

impl fmt::Display for CountedDisplay<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fetch_add(1, Ordering::SeqCst);
        formatter.write_str("counted")
    }
}

#[test]
fn filtered_events_are_never_formatted() {
    let log = CapturedLog::start(LogLevel::Info, LogFormat::Text);
    let formatted = AtomicUsize::new(0);
    tracing::debug!(target: OURS, value = %CountedDisplay(&formatted), "hidden");
    assert_eq!(formatted.load(Ordering::SeqCst), 0);
    assert!(log.lines().is_empty());
    tracing::info!(target: OURS, value = %CountedDisplay(&formatted), "shown");
    assert_eq!(formatted.load(Ordering::SeqCst), 1);
    assert_eq!(log.lines().len(), 1);
}

#[test]
fn reconfigure_switches_level_format_and_output() {
    let log = CapturedLog::start(LogLevel::Info, LogFormat::Default);
    tracing::debug!(target: OURS, "hidden");
    tracing::info!(target: OURS, "before");
    let second_path = log.dir.path().join("second.log");
    log.handle
        .reconfigure(&file_config(&second_path, LogLevel::Debug, LogFormat::Json))
        .unwrap();
    tracing::debug!(target: OURS, "after");
    let first: Vec<String> = log
        .lines()
        .iter()
        .map(|l| default_message(l).to_owned())
        .collect();
    assert_eq!(first, ["before"]);
    let second = lines_of(&second_path);
    assert_eq!(second.len(), 1, "{second:?}");
    let after: Value = serde_json::from_str(&second[0]).unwrap();
    assert_eq!(
        (&after["level"], &after["msg"]),
        (&"debug".into(), &"after".into())
    );
}

#[test]
fn a_failed_reconfigure_changes_nothing() {
    let log = CapturedLog::start(LogLevel::Info, LogFormat::Default);
    let unreachable = log.dir.path().join("missing-dir/autopilot.log");
    let error = log
        .handle
        .reconfigure(&file_config(&unreachable, LogLevel::Debug, LogFormat::Json))
        .unwrap_err();
    assert!(matches!(error, LoggingError::OpenFile { ref path, .. } if *path == unreachable));
    tracing::debug!(target: OURS, "hidden");
    tracing::info!(target: OURS, "still here");
    let lines = log.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(default_message(&lines[0]), "still here");
}

#[test]
fn log_file_is_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("existing.log");
    std::fs::write(&path, "kept\n").unwrap();
    let (dispatch, _handle) =
        logging::build_dispatch(&file_config(&path, LogLevel::Info, LogFormat::Default)).unwrap();
    tracing::dispatcher::with_default(&dispatch, || tracing::info!(target: OURS, "appended"));
    let lines = lines_of(&path);
    assert_eq!(lines[0], "kept");
    assert_eq!(default_message(&lines[1]), "appended");
}

#[test]
fn reopen_after_rename_loses_no_line() {
    const BEFORE_ROTATION: usize = 10_000;
    const AFTER_ROTATION: usize = 2_000;
    let log = CapturedLog::start(LogLevel::Info, LogFormat::Default);
    let (halfway_sender, halfway) = mpsc::channel();
    let (rotated_sender, rotated) = mpsc::channel::<()>();
    let dispatch = log.dispatch.clone();
    let writer = std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            for number in 0..BEFORE_ROTATION {
                if number == BEFORE_ROTATION / 2 {
                    halfway_sender.send(()).unwrap();
                }
                tracing::info!(target: OURS, "{number}");
            }
            rotated.recv().unwrap();
            for number in BEFORE_ROTATION..BEFORE_ROTATION + AFTER_ROTATION {
                tracing::info!(target: OURS, "{number}");
            }
        });
    });
    halfway.recv().unwrap();
    let rotated_path = log.dir.path().join("autopilot.log.1");
    std::fs::rename(&log.path, &rotated_path).unwrap();
    log.handle.reopen().unwrap();
    rotated_sender.send(()).unwrap();
    writer.join().unwrap();

    let old = lines_of(&rotated_path);
    let new = log.lines();
    assert!(
        old.len() >= BEFORE_ROTATION / 2,
        "rotated file has {} lines",
        old.len()
    );
    assert!(
        new.len() >= AFTER_ROTATION,
        "new file has {} lines",
        new.len()
    );
    let numbers: Vec<usize> = old
        .iter()
        .chain(&new)
        .map(|line| default_message(line).parse().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (0..BEFORE_ROTATION + AFTER_ROTATION).collect::<Vec<_>>()
    );
}

#[test]
fn reopen_is_a_no_op_for_standard_streams() {
    for output in [LogOutput::Stdout, LogOutput::Stderr] {
        let config = LoggingConfig {
            output,
            ..LoggingConfig::default()
        };
        let (_dispatch, handle) = logging::build_dispatch(&config).unwrap();
        handle.reopen().unwrap();
    }
}

#[test]
fn a_handle_outliving_its_logger_reports_it() {
    let (dispatch, handle) = logging::build_dispatch(&LoggingConfig::default()).unwrap();
    drop(dispatch);
    assert!(matches!(
        handle.reconfigure(&LoggingConfig::default()),
        Err(LoggingError::LoggerGone)
    ));
}
