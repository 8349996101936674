//! `logging::init` installs the process-wide logger, once; it starts with
//! defaults and is reconfigured when the config is known. One test: the
//! global subscriber can be set only once per process.
// Shares the logging tests' helpers; this one test uses only some of them.
#[allow(dead_code)]
#[path = "logging/support.rs"]
mod support;

use autopilot::testing::config::model::{LogFormat, LogLevel, LoggingConfig};
use autopilot::testing::logging::{self, LoggingError};
use serde_json::Value;
use support::{default_message, file_config, lines_of};

#[test]
fn init_installs_the_global_logger_once() {
    let handle = logging::init(&LoggingConfig::default()).unwrap();
    assert!(matches!(
        logging::init(&LoggingConfig::default()),
        Err(LoggingError::AlreadyInstalled)
    ));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("autopilot.log");
    handle
        .reconfigure(&file_config(&path, LogLevel::Warn, LogFormat::Default))
        .unwrap();
    let from_another_thread = std::thread::spawn(|| {
        tracing::info!(target: "autopilot::test", "hidden");
        tracing::warn!("from a thread");
    });
    from_another_thread.join().unwrap();
    handle
        .reconfigure(&file_config(&path, LogLevel::Debug, LogFormat::Json))
        .unwrap();
    // Only autopilot's own targets log below WARN.
    tracing::debug!(target: "autopilot::test", job = "web", "now shown");
    tracing::debug!("a library's debug line stays hidden");

    let lines = lines_of(&path);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(default_message(&lines[0]), "from a thread");
    let json: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(json["msg"], "now shown");
    assert_eq!(json["job"], "web");
}
