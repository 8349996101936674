//! Shared by the logging integration tests: a logger writing to a temporary
//! file, installed as the current thread's `tracing` dispatcher.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use autopilot::testing::config::model::{LogFormat, LogLevel, LogOutput, LoggingConfig};
use autopilot::testing::logging::{self, LogHandle};
use tempfile::TempDir;
use tracing::dispatcher::DefaultGuard;
use tracing::Dispatch;

pub struct CapturedLog {
    pub dir: TempDir,
    pub path: PathBuf,
    pub handle: LogHandle,
    pub dispatch: Dispatch,
    _guard: DefaultGuard,
}

impl CapturedLog {
    /// A logger at `level` in `format`, writing to `<tempdir>/autopilot.log`,
    /// active on the calling thread until dropped.
    pub fn start(level: LogLevel, format: LogFormat) -> CapturedLog {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("autopilot.log");
        let (dispatch, handle) =
            logging::build_dispatch(&file_config(&path, level, format)).unwrap();
        let guard = tracing::dispatcher::set_default(&dispatch);
        CapturedLog {
            dir,
            path,
            handle,
            dispatch,
            _guard: guard,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        lines_of(&self.path)
    }
}

pub fn file_config(path: &Path, level: LogLevel, format: LogFormat) -> LoggingConfig {
    LoggingConfig {
        level,
        format,
        output: LogOutput::File(path.to_owned()),
    }
}

/// The lines of a log file (none if it does not exist).
pub fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The message of a `default`-format line: what follows the timestamp,
/// which must be an RFC3339 time.
pub fn default_message(line: &str) -> &str {
    let (time, message) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("no time in {line:?}"));
    humantime::parse_rfc3339(time).unwrap_or_else(|error| panic!("{time:?}: {error}"));
    message
}

/// Polls `condition` until it holds; panics after 10 s.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
