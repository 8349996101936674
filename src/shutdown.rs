//! How a stop travels: the one way the run's shutdown reaches every job.
//!
//! The supervisor owns the [`Shutdown`] and is the only one to move it
//! forward; every job follows it through a [`Stop`]. A stop goes through
//! [`Stage`]s in one order — running, stopping (the graceful shutdown has
//! begun: regular jobs stop, hooks wait for their trigger), drained (every
//! regular job is done: hooks still waiting give up), hurried (a second
//! SIGTERM: skip every remaining wait) — and never back. Each stage is a
//! cancellation token, each the child of the next stage's, so a later stage
//! implies the earlier ones; the signal the APP gets in place of its stop
//! signal travels with the first. Beginning the stop also publishes
//! ContainerPilot's `shutdown` event, once, for the jobs that hook it in
//! `when`: the event is for those hooks, the token for every job's stop.
//!
//! This module owns that mechanism; what a job does at each stage belongs to
//! [`crate::jobs`], when the stop begins to [`crate::supervisor`].

use std::sync::{Arc, OnceLock};

use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;

use crate::config::model::GLOBAL_SOURCE;
use crate::events::{Bus, Event, EventCode};

/// Where the run's stop is, in the order it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    Running,
    /// The graceful shutdown has begun.
    Stopping,
    /// Every job that is not a stop hook is done.
    Drained,
    /// A second SIGTERM/SIGINT: skip every remaining wait.
    Hurried,
}

/// A job's view of the run's stop; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    hurried: CancellationToken,
    drained: CancellationToken,
    stopping: CancellationToken,
    /// The signal the APP gets in place of its `stopSignal` (wrap mode:
    /// the signal that asked autopilot to stop); set before `stopping`.
    app_signal: Arc<OnceLock<Signal>>,
}

impl Stop {
    fn new() -> Stop {
        let hurried = CancellationToken::new();
        let drained = hurried.child_token();
        let stopping = drained.child_token();
        Stop {
            hurried,
            drained,
            stopping,
            app_signal: Arc::default(),
        }
    }

    pub(crate) fn stage(&self) -> Stage {
        if self.hurried.is_cancelled() {
            Stage::Hurried
        } else if self.drained.is_cancelled() {
            Stage::Drained
        } else if self.stopping.is_cancelled() {
            Stage::Stopping
        } else {
            Stage::Running
        }
    }

    /// Resolves with the stage the stop is in once it is past `seen`; never
    /// once it is hurried.
    pub(crate) async fn past(&self, seen: Stage) -> Stage {
        match seen {
            Stage::Running => self.stopping.cancelled().await,
            Stage::Stopping => self.drained.cancelled().await,
            Stage::Drained => self.hurried.cancelled().await,
            Stage::Hurried => std::future::pending().await,
        }
        self.stage()
    }

    /// Resolves when a second SIGTERM asks to skip the remaining waits.
    pub(crate) async fn hurried(&self) {
        self.hurried.cancelled().await
    }

    /// The signal the APP gets in place of its own stop signal, if any.
    pub(crate) fn app_signal(&self) -> Option<Signal> {
        self.app_signal.get().copied()
    }
}

/// The run's stop, as its one owner (the supervisor) moves it.
#[derive(Clone)]
pub(crate) struct Shutdown {
    stop: Stop,
    bus: Bus,
}

impl Shutdown {
    pub(crate) fn new(bus: Bus) -> Shutdown {
        Shutdown {
            stop: Stop::new(),
            bus,
        }
    }

    /// What jobs follow.
    pub(crate) fn follower(&self) -> Stop {
        self.stop.clone()
    }

    pub(crate) fn stage(&self) -> Stage {
        self.stop.stage()
    }

    /// Begins the graceful shutdown (once): jobs stop, the APP with
    /// `app_signal` when given, and `shutdown` is published.
    pub(crate) fn begin(&self, app_signal: Option<Signal>) {
        if self.stage() > Stage::Running {
            return;
        }
        if let Some(signal) = app_signal {
            let _ = self.stop.app_signal.set(signal);
        }
        self.stop.stopping.cancel();
        self.bus
            .publish(Event::new(EventCode::Shutdown, GLOBAL_SOURCE));
    }

    /// Every regular job is done: hooks still waiting give up. Nothing
    /// before the stop has begun (the supervisor asks again when it has).
    pub(crate) fn drain(&self) {
        if self.stage() > Stage::Running {
            self.stop.drained.cancel();
        }
    }

    /// Skips every remaining wait, beginning the stop if it has not begun.
    pub(crate) fn hurry(&self) {
        self.begin(None);
        self.stop.hurried.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stop_goes_forward_once_and_publishes_shutdown_once() {
        let bus = Bus::default();
        let mut events = bus.subscribe();
        let shutdown = Shutdown::new(bus);
        let stop = shutdown.follower();
        assert_eq!(stop.stage(), Stage::Running);
        shutdown.begin(Some(Signal::SIGINT));
        assert_eq!(stop.past(Stage::Running).await, Stage::Stopping);
        assert_eq!(stop.app_signal(), Some(Signal::SIGINT));
        shutdown.hurry();
        assert_eq!(stop.past(Stage::Stopping).await, Stage::Hurried);
        shutdown.begin(Some(Signal::SIGTERM));
        shutdown.drain();
        assert_eq!(stop.stage(), Stage::Hurried, "never back");
        assert_eq!(stop.app_signal(), Some(Signal::SIGINT), "set once");
        stop.hurried().await;
        assert!(events
            .try_recv()
            .unwrap()
            .is(EventCode::Shutdown, GLOBAL_SOURCE));
        assert!(events.try_recv().is_err(), "published once");
    }

    #[tokio::test(start_paused = true)]
    async fn draining_waits_for_the_stop_and_hurrying_begins_it() {
        let bus = Bus::default();
        let mut events = bus.subscribe();
        let shutdown = Shutdown::new(bus);
        shutdown.drain();
        assert_eq!(shutdown.stage(), Stage::Running);
        shutdown.hurry();
        assert_eq!(
            shutdown.follower().past(Stage::Running).await,
            Stage::Hurried
        );
        assert!(events
            .try_recv()
            .unwrap()
            .is(EventCode::Shutdown, GLOBAL_SOURCE));
    }
}
