//! Where log lines go: stdout, stderr or an append-mode file that can be
//! reopened (logrotate) or replaced (reconfiguration) while other threads log.
//!
//! Every line is written with the sink's lock held and without buffering, so
//! a line lands whole in exactly one place and nothing waits in a buffer when
//! the file is swapped or the process exits.
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::LoggingError;
use crate::config::model::LogOutput;

/// One open output.
enum Sink {
    Stdout,
    Stderr,
    File { path: PathBuf, file: File },
}

impl Sink {
    fn open(output: &LogOutput) -> Result<Sink, LoggingError> {
        Ok(match output {
            LogOutput::Stdout => Sink::Stdout,
            LogOutput::Stderr => Sink::Stderr,
            LogOutput::File(path) => Sink::File {
                path: path.clone(),
                file: open_for_append(path)?,
            },
        })
    }

    fn file_path(&self) -> Option<&Path> {
        match self {
            Sink::File { path, .. } => Some(path),
            Sink::Stdout | Sink::Stderr => None,
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout => io::stdout().write(buf),
            Sink::Stderr => io::stderr().write(buf),
            Sink::File { file, .. } => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => io::stdout().flush(),
            Sink::Stderr => io::stderr().flush(),
            Sink::File { file, .. } => file.flush(),
        }
    }
}

fn open_for_append(path: &Path) -> Result<File, LoggingError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|source| LoggingError::OpenFile {
            path: path.to_owned(),
            source,
        })
}

/// The logger's output, shared between the subscriber and the
/// [`LogHandle`](super::LogHandle).
#[derive(Clone)]
pub(super) struct SharedSink(Arc<Mutex<Sink>>);

impl SharedSink {
    pub(super) fn open(output: &LogOutput) -> Result<SharedSink, LoggingError> {
        Ok(SharedSink(Arc::new(Mutex::new(Sink::open(output)?))))
    }

    /// Switches to `output`; the new output is opened before the old one is
    /// let go, so a failure leaves the old one in place.
    pub(super) fn replace(&self, output: &LogOutput) -> Result<(), LoggingError> {
        let new_sink = Sink::open(output)?;
        *self.lock() = new_sink;
        Ok(())
    }

    /// Reopens the file output at its path; a no-op for stdout and stderr.
    /// The file is opened before the lock is taken, and swapped in only if
    /// the output was not reconfigured meanwhile.
    pub(super) fn reopen(&self) -> Result<(), LoggingError> {
        let Some(path) = self.lock().file_path().map(Path::to_owned) else {
            return Ok(());
        };
        let file = open_for_append(&path)?;
        let mut sink = self.lock();
        if sink.file_path() == Some(path.as_path()) {
            *sink = Sink::File { path, file };
        }
        Ok(())
    }

    /// Writes one formatted event (a line, or a batch of job output lines)
    /// whole. A failed write is dropped: a PID 1 must not die, nor log about
    /// it, because its output went away.
    pub(super) fn write_all(&self, bytes: &[u8]) {
        let _ = self.lock().write_all(bytes);
    }

    fn lock(&self) -> MutexGuard<'_, Sink> {
        // A panic while writing cannot leave a `Sink` inconsistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
