//! Spawning processes and signalling their process groups.
//!
//! Every process autopilot starts gets a process group of its own, so that
//! stopping it also stops whatever it forked (no leaked grandchildren), and is
//! registered with the [`Reaper`] so that its exit status comes back here.
//! Every child starts with the signal dispositions and mask autopilot
//! inherited ([`crate::signals::inherited_for_child`]). Children start through
//! `posix_spawn` ([`posix_spawn`] says why not `fork`).
//! This module owns how a process is started and stopped; it must not decide
//! when (that is the supervisor's and the jobs' business) and it must never
//! call `wait` itself.

mod posix_spawn;

pub(crate) use posix_spawn::candidates as program_candidates;

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::process::{ChildStderr, ChildStdout};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::oneshot;

use crate::job_control;
use crate::reaper::{ExitStatus, Reaper};

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error("empty command")]
    Empty,
    #[error("{program}: not found")]
    NotFound { program: String },
    #[error("{program}: permission denied (not executable)")]
    NotExecutable { program: String },
    #[error("{program}: {source}")]
    Other { program: String, source: io::Error },
}

impl SpawnError {
    /// The exit code a shell uses for this failure: 127 not found, 126 not executable.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } | SpawnError::Empty => 127,
            SpawnError::NotExecutable { .. } | SpawnError::Other { .. } => 126,
        }
    }
}

/// What to run and how.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpawnSpec {
    /// Passed to execve byte for byte, as is `env`: neither needs to be UTF-8.
    pub argv: Vec<OsString>,
    /// The child's whole environment; `None` inherits autopilot's.
    pub env: Option<crate::environment::Table>,
    /// Give the child our stdin and make its group the terminal's foreground
    /// group when stdin is a terminal and autopilot's group had it (the APP,
    /// like tini does). Otherwise the child gets no stdin.
    pub foreground: bool,
    /// Capture stdout/stderr through pipes instead of inheriting them.
    pub piped_output: bool,
}

/// A running process that leads its own process group.
#[derive(Debug)]
pub(crate) struct Process {
    pid: Pid,
    exit: oneshot::Receiver<ExitStatus>,
    /// Set once the exit status has been received.
    status: Option<ExitStatus>,
    /// The child's stdout/stderr read ends when `piped_output` was asked for.
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

/// Starts `spec` as the leader of a new process group. Takes the spec by
/// value: its copy of the whole environment is freed as soon as the process
/// has started, not held by the caller while the process runs (the health
/// checks of many jobs run at once).
pub(crate) fn spawn(reaper: &Reaper, spec: SpawnSpec) -> Result<Process, SpawnError> {
    let program = spec.argv.first().ok_or(SpawnError::Empty)?;
    let failed = |source: io::Error| classify_spawn_error(program, source);
    let pipes = match spec.piped_output {
        true => Some((pipe().map_err(failed)?, pipe().map_err(failed)?)),
        false => None,
    };
    // Started in the background (`autopilot -- app &`), autopilot must leave
    // the terminal to the shell.
    let take_terminal = spec.foreground && job_control::terminal_is_ours();
    let launch = posix_spawn::Launch {
        argv: &spec.argv,
        env: spec.env.as_ref(),
        inherit_stdin: spec.foreground,
        take_terminal,
        output: pipes.as_ref().map(|(out, err)| (&out.1, &err.1)),
    };
    let (pid, exit) = reaper
        .spawn(|| posix_spawn::launch(&launch))
        .map_err(failed)?;
    if take_terminal {
        job_control::gave_terminal_to(pid);
    }
    // The write ends are the child's now; ours close here.
    let (stdout, stderr) = match pipes {
        Some(((out, _), (err, _))) => (Some(ChildStdout::from(out)), Some(ChildStderr::from(err))),
        None => (None, None),
    };
    Ok(Process {
        pid,
        exit,
        status: None,
        stdout,
        stderr,
    })
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

fn classify_spawn_error(program: &OsStr, source: io::Error) -> SpawnError {
    // Only for the message: the process was started with the exact bytes.
    let program = program.to_string_lossy().into_owned();
    match source.kind() {
        io::ErrorKind::NotFound => SpawnError::NotFound { program },
        io::ErrorKind::PermissionDenied => SpawnError::NotExecutable { program },
        _ if source.raw_os_error() == Some(libc::ENOEXEC) => SpawnError::NotExecutable { program },
        _ => SpawnError::Other { program, source },
    }
}

impl Process {
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends `signal` to the whole process group. A group that is already
    /// gone is not an error.
    pub(crate) fn signal_group(&self, signal: Signal) {
        signal_group(self.pid, signal);
    }

    /// Waits for the process (the group leader) to exit. Cancel-safe: calling
    /// it again after the status arrived returns the same status.
    pub(crate) async fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        // The sender is only dropped with the reaper itself, which lives as
        // long as the program; treat that impossible case as a kill.
        let status = (&mut self.exit)
            .await
            .unwrap_or(ExitStatus::Signal(Signal::SIGKILL as i32));
        self.status = Some(status);
        status
    }

    /// The exit status, if the process has already exited.
    pub(crate) fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.exit.try_recv().ok();
        }
        self.status
    }
}

impl Drop for Process {
    /// A process nobody waits for any more (its task was cancelled) must not
    /// outlive its owner: its group is killed.
    fn drop(&mut self) {
        if self.try_status().is_none() {
            self.signal_group(Signal::SIGKILL);
        }
    }
}

/// Sends `signal` to the process group led by `pgid`, ignoring a group that
/// no longer exists.
pub(crate) fn signal_group(pgid: Pid, signal: Signal) {
    signal_group_by_number(pgid, signal as i32);
}

/// [`signal_group`] for any signal number, real-time signals included
/// (which `Signal` cannot name).
pub(crate) fn signal_group_by_number(pgid: Pid, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group.
    if unsafe { libc::kill(-pgid.as_raw(), signal) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ESRCH) {
            let name = Signal::try_from(signal).map_or(signal.to_string(), |s| s.to_string());
            tracing::warn!("cannot send {name} to process group {pgid}: {error}");
        }
    }
}
