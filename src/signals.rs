//! POSIX signals as a stream.
//!
//! A single task listens for every signal autopilot cares about. SIGCHLD is
//! handled right there (it drives the [`Reaper`]); every other signal is passed
//! on, in arrival order, to the supervisor through a channel. This module owns
//! signal *reception* only; what a signal means is decided by the supervisor.

use futures_util::StreamExt;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use signal_hook::consts::signal::*;
use signal_hook_tokio::Signals;
use tokio::sync::mpsc;

use crate::reaper::Reaper;

/// Signals passed to the supervisor. SIGCHLD is consumed by the reaper.
pub const HANDLED: [i32; 10] = [
    SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGWINCH, SIGTTIN, SIGTTOU, SIGCONT,
];

/// Holds back the handled signals until [`listen`] is ready for them. Called
/// first thing, so that a SIGTERM arriving while autopilot is still starting
/// is delivered later instead of killing it (when it is not PID 1, the
/// default action would). Spawned processes do not inherit the mask: the
/// standard library resets it in every child.
pub fn hold() -> nix::Result<()> {
    mask(SigmaskHow::SIG_BLOCK)
}

/// Undoes [`hold`] (for commands that do not supervise anything).
pub fn release() -> nix::Result<()> {
    mask(SigmaskHow::SIG_UNBLOCK)
}

fn mask(how: SigmaskHow) -> nix::Result<()> {
    let mut set = SigSet::empty();
    for number in HANDLED {
        if let Ok(signal) = Signal::try_from(number) {
            set.add(signal);
        }
    }
    sigprocmask(how, Some(&set), None)
}

/// Starts listening. Must be called from inside the Tokio runtime, before any
/// child is spawned, so that no SIGCHLD is missed. Returns the stream of
/// non-SIGCHLD signals; signals held back by [`hold`] arrive on it now.
pub fn listen(reaper: Reaper) -> std::io::Result<mpsc::UnboundedReceiver<Signal>> {
    let mut signals = Signals::new(HANDLED.iter().copied().chain([SIGCHLD]))?;
    release()?;
    let (sender, receiver) = mpsc::unbounded_channel();
    // Children that ended before the handler was installed are reaped too.
    reaper.reap();
    tokio::spawn(async move {
        while let Some(number) = signals.next().await {
            if number == SIGCHLD {
                reaper.reap();
                continue;
            }
            let Ok(signal) = Signal::try_from(number) else {
                continue;
            };
            if sender.send(signal).is_err() {
                break;
            }
        }
    });
    Ok(receiver)
}
