//! autopilot's part in a shell's job control.
//!
//! Run from an interactive shell (not as PID 1), autopilot is the shell's
//! job: the shell gives the terminal to autopilot's process group, stops it
//! on Ctrl-Z and continues it on `fg` or `bg`. The APP runs in a process
//! group of its own, so this module bridges the two, as dumb-init does:
//!
//! - the APP's group gets the terminal only when autopilot's group has it
//!   (started with `&`, autopilot leaves the terminal to the shell);
//! - Ctrl-Z stops the APP's group, not autopilot's: when a child autopilot
//!   started is stopped by a terminal stop signal (SIGTSTP, SIGTTIN,
//!   SIGTTOU), autopilot stops itself, so that the shell sees its job
//!   stopped and takes the terminal back;
//! - continued in the foreground (`fg`), autopilot gives the terminal back
//!   to the APP's group before the SIGCONT is forwarded to it.
//!
//! As PID 1 there is no shell above autopilot and the kernel does not let it
//! be stopped: the APP is stopped alone, as with tini.
//!
//! This module owns the terminal's foreground group and autopilot's own
//! stop; it must not forward signals (the supervisor does) nor wait for
//! processes (the reaper does).

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{raise, Signal};
use nix::unistd::{getpgrp, isatty, tcgetpgrp, tcsetpgrp, Pid};

/// The process group autopilot gave the terminal to (0: none).
static TERMINAL_GROUP: AtomicI32 = AtomicI32::new(0);

/// autopilot ignores SIGTTIN and SIGTTOU, as tini does: once the APP's group
/// owns the terminal, autopilot is in the background, and logging to the
/// terminal (with `stty tostop`) or handing the terminal over again must
/// not stop it.
pub(crate) fn ignore_terminal_stops() {
    for signal in [libc::SIGTTIN, libc::SIGTTOU] {
        // SAFETY: setting a disposition to SIG_IGN installs no handler code.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}

/// Is stdin a terminal whose foreground process group is autopilot's? Only
/// then may autopilot hand the terminal to the APP.
pub(crate) fn terminal_is_ours() -> bool {
    let stdin = std::io::stdin();
    isatty(libc::STDIN_FILENO).unwrap_or(false)
        && tcgetpgrp(&stdin).is_ok_and(|group| group == getpgrp())
}

/// Remembers that `group` was given the terminal (so that `fg` gives it back).
pub(crate) fn gave_terminal_to(group: Pid) {
    TERMINAL_GROUP.store(group.as_raw(), Ordering::Relaxed);
}

/// After SIGCONT: a shell's `fg` gave the terminal to autopilot's group;
/// the APP's group gets it back. After `bg` the shell keeps the terminal.
pub(crate) fn on_continued() {
    let group = TERMINAL_GROUP.load(Ordering::Relaxed);
    if group != 0 && terminal_is_ours() {
        // The APP may have exited meanwhile; then there is nobody to give it to.
        let _ = tcsetpgrp(std::io::stdin(), Pid::from_raw(group));
    }
}

/// After reaping: when a child was stopped by a terminal stop signal,
/// autopilot stops too (not as PID 1), so that the shell that started it
/// sees the job stopped.
pub(crate) fn on_children_stopped(stopped_by: &[Signal]) {
    let by_terminal = stopped_by
        .iter()
        .any(|signal| matches!(signal, Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU));
    if by_terminal && std::process::id() != 1 {
        tracing::debug!("a child was stopped by the terminal: stopping autopilot too");
        if let Err(error) = raise(Signal::SIGSTOP) {
            tracing::warn!("cannot stop autopilot with the APP: {error}");
        }
    }
}
