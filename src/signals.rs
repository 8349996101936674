//! POSIX signals as a stream.
//!
//! A single task listens for every signal autopilot cares about. SIGCHLD is
//! handled right there (it drives the [`Reaper`]); every other signal is passed
//! on, in arrival order, to the supervisor through a channel. This module owns
//! signal *reception* only; what a signal means is decided by the supervisor.

use futures_util::StreamExt;
use nix::sys::signal::Signal;
use signal_hook::consts::signal::*;
use signal_hook_tokio::Signals;
use tokio::sync::mpsc;

use crate::reaper::Reaper;

/// Signals passed to the supervisor. SIGCHLD is consumed by the reaper.
pub const HANDLED: [i32; 10] = [
    SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGWINCH, SIGTTIN, SIGTTOU, SIGCONT,
];

/// Starts listening. Must be called from inside the Tokio runtime, before any
/// child is spawned, so that no SIGCHLD is missed. Returns the stream of
/// non-SIGCHLD signals.
pub fn listen(reaper: Reaper) -> std::io::Result<mpsc::UnboundedReceiver<Signal>> {
    let mut signals = Signals::new(HANDLED.iter().copied().chain([SIGCHLD]))?;
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
