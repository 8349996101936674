//! Logging: autopilot's own log lines and the relay of job output into them.
//!
//! Owns the global `tracing` subscriber (level filter, the three line formats
//! of docs/design.md, "Logging", the output stream or file and its reopening on SIGUSR1) and the
//! relay that turns a child's stdout/stderr pipe into log lines (docs/design.md,
//! "PID 1 duties"). It does not decide *when* to reopen or reconfigure (the signal
//! and config code call [`LogHandle`]), never spawns or waits for processes,
//! and never touches fds 1 and 2 other than by writing log lines to them.
//!
//! # Lifecycle
//!
//! autopilot logs before it has read its config (config errors must be
//! reported), so [`init`] is called first with [`LoggingConfig::default`] and
//! the returned [`LogHandle`] is then [`reconfigure`](LogHandle::reconfigure)d
//! with the loaded `logging` section.
//!
//! # Levels
//!
//! `tracing` knows TRACE..ERROR only. `FATAL` and `PANIC` (logrus levels that
//! ContainerPilot accepted) filter like `ERROR`: only errors are shown.
//! Filtering happens before any formatting: a disabled event costs one
//! comparison against `tracing`'s cached maximum level, its fields are never
//! evaluated. The level applies to autopilot's own lines only: relayed job
//! output is the application's, and is logged at every level (`relay.rs`).
//!
//! # Formats
//!
//! `default`: `<RFC3339 time> <message>`, job output as
//! `<time> <job> [<pid>] <line>` (ContainerPilot 3.8's layout); `text`: logfmt
//! `time=… level=… msg=… job=… pid=…`; `json`: one object per line. The exact
//! layouts, quoting and level names are documented in `logging/format.rs`.
mod format;
mod relay;
mod sink;
mod subscriber;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use tracing::Dispatch;

use crate::config::model::LoggingConfig;
use format::SharedFormat;
use sink::SharedSink;
use subscriber::{LogSubscriber, SharedLevel};

pub use relay::{OutputLabel, OutputRelay, OutputStream, OutputTail, MAX_LINE_BYTES, TAIL_BYTES};

/// Errors of the logging module.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot open log file {}: {source}", path.display())]
    OpenFile { path: PathBuf, source: io::Error },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
    #[error("the logger this handle controlled no longer exists")]
    LoggerGone,
    #[error("cannot read job output: {0}")]
    ReadOutput(#[source] io::Error),
}

/// Controls a logger built by [`init`] or [`build_dispatch`]: change its
/// configuration or reopen its file. Cheap to clone; usable from any thread
/// or task.
#[derive(Clone)]
pub struct LogHandle {
    level: Weak<SharedLevel>,
    format: SharedFormat,
    sink: SharedSink,
}

impl LogHandle {
    /// Applies a new logging configuration. The new output is opened first:
    /// if that fails, nothing changes and the error is returned.
    pub fn reconfigure(&self, config: &LoggingConfig) -> Result<(), LoggingError> {
        let level = self.level.upgrade().ok_or(LoggingError::LoggerGone)?;
        self.sink.replace(&config.output)?;
        self.format.set(config.format);
        level.set(config.level);
        Ok(())
    }

    /// Reopens the log file at its configured path (logrotate's `postrotate`
    /// sends SIGUSR1 after renaming it). Lines are written whole to either the
    /// old or the new file, none is lost. A no-op for stdout and stderr.
    pub fn reopen(&self) -> Result<(), LoggingError> {
        self.sink.reopen()
    }
}

/// Builds a logger for `config` and installs it as the process-wide
/// `tracing` subscriber. Fails if one is already installed.
pub fn init(config: &LoggingConfig) -> Result<LogHandle, LoggingError> {
    let (dispatch, handle) = build_dispatch(config)?;
    tracing::dispatcher::set_global_default(dispatch)
        .map_err(|_| LoggingError::AlreadyInstalled)?;
    Ok(handle)
}

/// Builds a logger for `config` without installing it; [`init`] installs it
/// globally, tests install it for one thread with
/// `tracing::dispatcher::set_default`.
pub fn build_dispatch(config: &LoggingConfig) -> Result<(Dispatch, LogHandle), LoggingError> {
    let subscriber = LogSubscriber {
        level: Arc::new(SharedLevel::new(config.level)),
        format: SharedFormat::new(config.format),
        sink: SharedSink::open(&config.output)?,
    };
    let handle = LogHandle {
        level: Arc::downgrade(&subscriber.level),
        format: subscriber.format.clone(),
        sink: subscriber.sink.clone(),
    };
    Ok((Dispatch::new(subscriber), handle))
}
