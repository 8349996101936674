//! The reaper: the one component that calls `waitpid(-1)`.
//!
//! As PID 1 (or a child subreaper) autopilot inherits every orphan in the
//! container, and each must be reaped or it stays a zombie. Reaping with
//! `waitpid(-1)` would race with anything else that waits for a specific
//! child (an async runtime's per-child wait, for instance), so nothing else in
//! autopilot ever waits: processes are spawned through [`Reaper::spawn`], which
//! registers the child's pid, and the exit status is delivered on a oneshot
//! channel when the reaper collects it. Statuses of processes nobody
//! registered (orphans) are dropped.
//!
//! Stops of our children are reported too (for [`crate::job_control`]).
//!
//! This module owns the pid registry and `waitpid`; it must not send signals
//! or decide anything about what an exit means.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// It called `exit(code)`.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// The exit code a shell would report: the code, or 128 + the signal number.
    pub(crate) fn code(self) -> i32 {
        match self {
            ExitStatus::Code(code) => code,
            ExitStatus::Signal(signal) => 128 + signal,
        }
    }

    pub(crate) fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl std::fmt::Display for ExitStatus {
    /// Go's wording (`exit status 255`, `signal: killed`), which
    /// ContainerPilot's failure lines carried and users' log filters match.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ExitStatus::Code(code) => write!(f, "exit status {code}"),
            ExitStatus::Signal(number) => match Signal::try_from(number) {
                Ok(signal) => write!(f, "signal: {}", signal_description(signal)),
                Err(_) => write!(f, "signal: {number}"),
            },
        }
    }
}

/// How Go names a signal in an exit status (the C library's descriptions,
/// lower-cased); other signals by their name.
fn signal_description(signal: Signal) -> &'static str {
    match signal {
        Signal::SIGHUP => "hangup",
        Signal::SIGINT => "interrupt",
        Signal::SIGQUIT => "quit",
        Signal::SIGILL => "illegal instruction",
        Signal::SIGTRAP => "trace/breakpoint trap",
        Signal::SIGABRT => "aborted",
        Signal::SIGBUS => "bus error",
        Signal::SIGFPE => "floating point exception",
        Signal::SIGKILL => "killed",
        Signal::SIGUSR1 => "user defined signal 1",
        Signal::SIGSEGV => "segmentation fault",
        Signal::SIGUSR2 => "user defined signal 2",
        Signal::SIGPIPE => "broken pipe",
        Signal::SIGALRM => "alarm clock",
        Signal::SIGTERM => "terminated",
        other => other.as_str(),
    }
}

/// A handle to the reaper; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Reaper {
    /// Children we spawned and have not yet reaped, by pid. The lock is held
    /// both while spawning and while reaping, so a child that exits at once is
    /// never reaped before its pid is registered.
    waiting: Arc<Mutex<HashMap<Pid, oneshot::Sender<ExitStatus>>>>,
}

impl Reaper {
    /// Creates the reaper and, unless we are PID 1, makes this process a child
    /// subreaper so that orphans of our descendants are re-parented to us.
    pub(crate) fn install() -> io::Result<Reaper> {
        if std::process::id() != 1 {
            become_subreaper()?;
        }
        Ok(Reaper::default())
    }

    /// Starts a child with `start` (which returns its pid) and registers it.
    /// Its exit status arrives on the returned receiver once
    /// [`Reaper::reap`] collects it.
    pub(crate) fn spawn(
        &self,
        start: impl FnOnce() -> io::Result<Pid>,
    ) -> io::Result<(Pid, oneshot::Receiver<ExitStatus>)> {
        let mut waiting = self.lock();
        let pid = start()?;
        let (sender, receiver) = oneshot::channel();
        waiting.insert(pid, sender);
        Ok((pid, receiver))
    }

    /// Collects every child that has ended, without blocking. Called whenever
    /// SIGCHLD arrives (signals coalesce, so one call drains them all).
    /// Returns the signals that stopped children autopilot spawned (for job
    /// control; a stopped child is reported, not reaped).
    pub(crate) fn reap(&self) -> Vec<Signal> {
        let mut waiting = self.lock();
        let mut stopped_by = Vec::new();
        loop {
            let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED;
            let (pid, status) = match waitpid(None, Some(flags)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitStatus::Code(code)),
                Ok(WaitStatus::Signaled(pid, signal, _core)) => {
                    (pid, ExitStatus::Signal(signal as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return stopped_by,
                Ok(WaitStatus::Stopped(pid, signal)) => {
                    if waiting.contains_key(&pid) {
                        stopped_by.push(signal);
                    }
                    continue;
                }
                Err(Errno::EINTR) => continue,
                // Continued is not reported without WCONTINUED; ptrace events
                // go to the tracer.
                Ok(_) => continue,
                Err(error) => {
                    tracing::error!("waitpid failed: {error}");
                    return stopped_by;
                }
            };
            if let Some(sender) = waiting.remove(&pid) {
                // The receiver may be gone if nobody cares any more; that is fine.
                let _ = sender.send(status);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Pid, oneshot::Sender<ExitStatus>>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every operation is a single insert or remove), so poisoning is ignored.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes a plain integer argument.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_exit_codes() {
        assert_eq!(ExitStatus::Code(3).code(), 3);
        assert_eq!(ExitStatus::Signal(9).code(), 137);
        assert!(ExitStatus::Code(0).success());
        assert!(!ExitStatus::Signal(15).success());
    }

    #[test]
    fn statuses_read_as_go_wrote_them() {
        let shown = [
            ExitStatus::Code(255),
            ExitStatus::Signal(9),
            ExitStatus::Signal(15),
            ExitStatus::Signal(11),
            ExitStatus::Signal(libc::SIGXCPU),
        ]
        .map(|status| status.to_string());
        assert_eq!(
            shown,
            [
                "exit status 255",
                "signal: killed",
                "signal: terminated",
                "signal: segmentation fault",
                "signal: SIGXCPU",
            ]
        );
    }
}
