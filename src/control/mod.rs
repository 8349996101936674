//! The control plane: HTTP/1.1 over a unix socket (docs/control-plane.md).
//!
//! Jobs and operators talk back to the supervisor here: `-putenv`,
//! `-putmetric`, `-reload`, `-maintenance`, `--status`, `-signal`. The server
//! answers `ping` and `env` itself and passes everything that changes the
//! run to the supervisor as a [`Request`] with a reply channel. Requests are
//! bounded in size and time, and connections in number, so a client that
//! sends garbage or hangs disturbs nothing else. This module owns the socket
//! and the HTTP protocol; it must not change jobs itself.

pub(crate) mod client;
mod routes;

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::stat::{umask, Mode};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::model::ControlConfig;
use crate::environment::Environment;
use crate::http_server::{self, Limits};
use crate::tasks::Tasks;
use crate::telemetry::Metrics;

/// At most this many connections are served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 64;
/// A request's headers must arrive within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A request's body must arrive within this time.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request body accepted.
const MAX_BODY: usize = 1 << 20;

/// What the control plane asks of the supervisor.
#[derive(Debug)]
pub enum Request {
    /// Re-read the configuration; the reply carries the error if it is invalid.
    Reload(oneshot::Sender<Result<(), String>>),
    /// Enter (true) or leave maintenance; the reply says whether it changed.
    Maintenance(bool, oneshot::Sender<bool>),
    /// A snapshot of jobs, watches and maintenance.
    Status(oneshot::Sender<serde_json::Value>),
    /// Signal one job's process group.
    SignalJob {
        job: String,
        signal: Signal,
        reply: oneshot::Sender<SignalOutcome>,
    },
}

/// The answer to [`Request::SignalJob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SignalOutcome {
    Signalled,
    NoSuchJob,
    NotRunning,
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("control socket {path}: {source}")]
pub(crate) struct ControlError {
    path: PathBuf,
    source: io::Error,
}

/// The socket file; removed when dropped (at exit).
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the control socket (mode 0600), replacing a stale socket file (one
/// nobody serves; anything else at the path is left alone). When the
/// default path cannot be created (read-only root, not root), logs one
/// warning and returns `None`; a path the user named must work.
pub(crate) fn bind(
    config: &ControlConfig,
) -> Result<Option<(UnixListener, SocketFile)>, ControlError> {
    match bind_at(&config.socket) {
        Ok(bound) => Ok(Some(bound)),
        Err(source) if !config.explicit => {
            tracing::warn!(
                "control socket {} unavailable ({source}): running without it",
                config.socket.display()
            );
            Ok(None)
        }
        Err(source) => Err(ControlError {
            path: config.socket.clone(),
            source,
        }),
    }
}

fn bind_at(path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process is serving it",
        ));
    }
    match std::fs::symlink_metadata(path) {
        // Only a socket is stale: a regular file (a typo in the path) is not ours to delete.
        Ok(existing) if !existing.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            ))
        }
        Ok(_) => {
            std::fs::remove_file(path)?;
            tracing::debug!("replaced stale control socket {}", path.display());
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    // The socket is created 0600 (umask) rather than chmod-ed afterwards, so
    // there is no moment when others could connect.
    let previous = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(previous);
    let listener = bound.map_err(|error| name_missing_directory(path, error))?;
    let file = SocketFile {
        path: path.to_path_buf(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, file))
}

/// `bind` says only "No such file or directory" when the socket's
/// directory is missing: name the directory.
fn name_missing_directory(path: &Path, error: io::Error) -> io::Error {
    match path.parent() {
        Some(directory) if error.kind() == io::ErrorKind::NotFound && !directory.exists() => {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("its directory {} does not exist", directory.display()),
            )
        }
        _ => error,
    }
}

/// What the request handlers need.
#[derive(Clone)]
pub struct Api {
    pub env: Environment,
    pub requests: mpsc::UnboundedSender<Request>,
    /// The telemetry registry, when telemetry is configured (a reload may
    /// replace it).
    pub metrics: tokio::sync::watch::Receiver<Option<Metrics>>,
}

const LIMITS: Limits = Limits {
    max_connections: MAX_CONNECTIONS,
    header_timeout: HEADER_TIMEOUT,
    keep_alive: true,
};

/// Labels the server's log lines.
const NAME: &str = "control socket";

/// Serves the control API on `listener`, in `tasks`, until the returned
/// token is cancelled.
pub(crate) fn serve(listener: UnixListener, api: Api, tasks: &Tasks) -> CancellationToken {
    http_server::serve(
        listener,
        LIMITS,
        NAME,
        move |request| routes::handle(api.clone(), request),
        tasks,
    )
}

/// Serves the control API on one connection, as the socket serves each
/// client: the whole request handling, from raw bytes to responses, without a
/// socket (the fuzz target drives it over an in-memory stream).
pub async fn serve_connection(stream: impl AsyncRead + AsyncWrite + Unpin, api: Api) {
    http_server::serve_connection(stream, LIMITS, NAME, move |request| {
        routes::handle(api.clone(), request)
    })
    .await
}
