//! POSIX signals as a stream, and the signal state the APP inherits.
//!
//! A single task receives every catchable signal except the few an init keeps
//! for itself (`tests::KEPT`). SIGCHLD is handled right there (it drives the
//! [`Reaper`] and [`job_control`]); every other signal is passed on, in arrival
//! order, to the supervisor through a channel. A signal autopilot inherited
//! as ignored stays ignored (`nohup`, a script's background job), as with
//! tini: autopilot neither acts on it nor forwards it, and the APP inherits
//! the ignore.
//!
//! This module also records, before the Rust runtime starts, the signal
//! dispositions and mask autopilot inherited, and puts them back in every
//! child's start ([`inherited_for_child`]). It owns signal *reception*
//! and that inherited state only; what a signal means is decided by the
//! supervisor.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures_util::StreamExt;
use libc::{
    SIGALRM, SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGIO, SIGKILL, SIGPIPE, SIGPROF, SIGPWR, SIGQUIT,
    SIGSTKFLT, SIGSTOP, SIGTERM, SIGTSTP, SIGURG, SIGUSR1, SIGUSR2, SIGVTALRM, SIGWINCH, SIGXCPU,
    SIGXFSZ,
};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook_tokio::SignalsInfo;
use tokio::sync::mpsc;

use crate::job_control;
use crate::reaper::Reaper;

/// The standard signals autopilot receives and passes to the supervisor:
/// every catchable one except `tests::KEPT` (as tini and dumb-init do). The
/// real-time signals are received too ([`real_time`]).
pub(crate) const RECEIVED: [i32; 19] = [
    SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT, SIGCONT,
    SIGTSTP, SIGURG, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR,
];

/// The highest standard (non-real-time) signal number on Linux.
const LAST_STANDARD_SIGNAL: i32 = 31;

/// The highest signal number on Linux.
const LAST_SIGNAL: i32 = 64;

/// The real-time signals applications may use (the C library keeps the
/// first few for itself).
fn real_time() -> std::ops::RangeInclusive<i32> {
    libc::SIGRTMIN()..=libc::SIGRTMAX()
}

/// A signal for the supervisor. Real-time signals have no meaning for
/// autopilot and are only ever forwarded (the `Signal` type cannot name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    Standard(Signal),
    RealTime(i32),
}

/// Bit `n - 1` set: signal `n` was ignored when autopilot started.
static INHERITED_IGNORED: AtomicU64 = AtomicU64::new(0);
/// Bit `n - 1` set: signal `n` was blocked when autopilot started.
static INHERITED_BLOCKED: AtomicU64 = AtomicU64::new(0);
static INHERITED_RECORDED: AtomicBool = AtomicBool::new(false);

/// Records the signal dispositions and mask autopilot inherited. The binary
/// calls it from `.init_array`, before the Rust runtime starts, because the
/// runtime ignores SIGPIPE first thing: read later, an inherited default
/// SIGPIPE would look ignored. Only makes async-signal-safe system calls and
/// touches no allocator.
pub extern "C" fn record_inherited() {
    let mut ignored = 0u64;
    for signal in 1..=LAST_SIGNAL {
        // SAFETY: a query (null new action) into a zeroed sigaction we own.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        let queried = unsafe { libc::sigaction(signal, std::ptr::null(), &mut action) };
        if queried == 0 && action.sa_sigaction == libc::SIG_IGN {
            ignored |= bit(signal);
        }
    }
    let mut blocked = 0u64;
    // SAFETY: a query (null new set) into a zeroed sigset_t we own.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) } == 0 {
        for signal in 1..=LAST_SIGNAL {
            if unsafe { libc::sigismember(&mask, signal) } == 1 {
                blocked |= bit(signal);
            }
        }
    }
    INHERITED_IGNORED.store(ignored, Ordering::Relaxed);
    INHERITED_BLOCKED.store(blocked, Ordering::Relaxed);
    INHERITED_RECORDED.store(true, Ordering::Release);
}

fn bit(signal: i32) -> u64 {
    1 << (signal - 1)
}

/// Was `signal` ignored when autopilot started?
pub(crate) fn inherited_ignored(signal: i32) -> bool {
    INHERITED_IGNORED.load(Ordering::Relaxed) & bit(signal) != 0
}

/// For a child's start (`POSIX_SPAWN_SETSIGDEF` and `POSIX_SPAWN_SETSIGMASK`):
/// the standard signals to reset to their default action and the signal
/// mask, so the APP starts as it would have without autopilot (tini does
/// the same). Handlers autopilot installed are reset anyway; what matters
/// is the ignores autopilot added (SIGPIPE by the Rust runtime,
/// SIGTTIN/SIGTTOU by [`listen`]) and the mask the runtime cleared. A
/// signal autopilot inherited as ignored is left out of the first set and
/// stays ignored through exec.
pub(crate) fn inherited_for_child() -> (libc::sigset_t, libc::sigset_t) {
    let ignored = INHERITED_IGNORED.load(Ordering::Relaxed);
    let blocked = INHERITED_BLOCKED.load(Ordering::Relaxed);
    let defaults =
        signal_set((1..=LAST_STANDARD_SIGNAL).filter(|signal| {
            *signal != SIGKILL && *signal != SIGSTOP && ignored & bit(*signal) == 0
        }));
    let mask = signal_set((1..=LAST_SIGNAL).filter(|signal| blocked & bit(*signal) != 0));
    (defaults, mask)
}

/// A `sigset_t` of the given signals (glibc refuses its own internal
/// real-time signals, which no child can have inherited blocked anyway).
fn signal_set(signals: impl Iterator<Item = i32>) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset fill a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Holds back the received signals until [`listen`] is ready for them.
/// Called first thing, so that a SIGTERM arriving while autopilot is still
/// starting is delivered later instead of killing it (when it is not PID 1,
/// the default action would). Spawned processes get the inherited mask back
/// ([`inherited_for_child`]).
pub(crate) fn hold() -> nix::Result<()> {
    if !INHERITED_RECORDED.load(Ordering::Acquire) {
        // Not started through the binary (which records it before the
        // runtime): the best we can still see.
        record_inherited();
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&received_set()), None)
}

/// Undoes [`hold`] (for commands that do not supervise anything, and once
/// [`listen`] is ready). autopilot itself receives these signals even when
/// they were blocked when it started, as tini does; only its children get
/// the inherited mask back.
pub(crate) fn release() -> nix::Result<()> {
    sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&received_set()), None)
}

fn received_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in RECEIVED.iter().filter_map(|n| Signal::try_from(*n).ok()) {
        set.add(signal);
    }
    set
}

/// Starts listening. Must be called from inside the Tokio runtime, before any
/// child is spawned, so that no SIGCHLD is missed. Returns the stream of
/// non-SIGCHLD signals; signals held back by [`hold`] arrive on it now.
pub(crate) fn listen(reaper: Reaper) -> std::io::Result<mpsc::UnboundedReceiver<Received>> {
    let wanted = RECEIVED
        .iter()
        .copied()
        .chain(real_time())
        .filter(|signal| !inherited_ignored(*signal));
    let mut signals = Stream(SignalsInfo::<WithOrigin>::new(wanted.chain([SIGCHLD]))?);
    job_control::ignore_terminal_stops();
    release()?;
    let (sender, receiver) = mpsc::unbounded_channel();
    // Children that ended before the handler was installed are reaped too.
    reaper.reap();
    let own_pid = std::process::id() as i32;
    tokio::spawn(async move {
        while let Some(origin) = signals.0.next().await {
            if origin.signal == SIGCHLD {
                job_control::on_children_stopped(&reaper.reap());
                continue;
            }
            // A signal the kernel raised for autopilot's own action (SIGPIPE
            // on a write to a closed pipe, SIGXFSZ) names autopilot as its
            // sender: it is not meant for the APP.
            if origin.process.is_some_and(|sender| sender.pid == own_pid) {
                continue;
            }
            let received = match Signal::try_from(origin.signal) {
                Ok(signal) => Received::Standard(signal),
                Err(_) => Received::RealTime(origin.signal),
            };
            if received == Received::Standard(Signal::SIGCONT) {
                job_control::on_continued();
            }
            if sender.send(received).is_err() {
                break;
            }
        }
    });
    Ok(receiver)
}

/// The signal stream. Dropped (at exit), it closes the pipe signal-hook's
/// handlers write to, and a signal arriving after that would make the
/// handler's write raise SIGPIPE, whose handler writes again, forever: so
/// SIGPIPE is ignored again first.
struct Stream(SignalsInfo<WithOrigin>);

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: setting a disposition to SIG_IGN installs no handler code.
        unsafe { libc::signal(SIGPIPE, libc::SIG_IGN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGSYS, SIGTRAP, SIGTTIN, SIGTTOU};

    /// The signals an init keeps for itself, tini's list: the faults its own code
    /// raises keep their default action (a crash must not be "forwarded");
    /// SIGTTIN/SIGTTOU are ignored, so that autopilot never stops on terminal
    /// access after handing the terminal to the APP; SIGCHLD drives the reaper;
    /// SIGKILL and SIGSTOP cannot be caught.
    const KEPT: [i32; 12] = [
        SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS, SIGTTIN, SIGTTOU, SIGCHLD,
        SIGKILL, SIGSTOP,
    ];

    #[test]
    fn every_standard_signal_is_either_received_or_kept() {
        let mut all: Vec<i32> = RECEIVED.iter().chain(&KEPT).copied().collect();
        all.sort();
        assert_eq!(all, (1..=LAST_STANDARD_SIGNAL).collect::<Vec<_>>());
    }
}
