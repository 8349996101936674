//! Events: the vocabulary jobs and watches use to talk to each other.
//!
//! An event is a code plus the name of its source (a job, `watch.<name>`, a
//! signal name, or [`crate::config::model::GLOBAL_SOURCE`]). The [`Bus`]
//! delivers every event to every subscriber in one global order. This module
//! owns the event vocabulary and its delivery; it must not know about
//! processes or the catalog.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

/// What happened. The names are ContainerPilot's, as users write them in `when`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EventCode {
    Startup,
    Shutdown,
    Healthy,
    Unhealthy,
    ExitSuccess,
    ExitFailed,
    Stopping,
    Stopped,
    Changed,
    EnterMaintenance,
    ExitMaintenance,
    /// A job's `when.timeout` expired before its event.
    TimerExpired,
    /// Accepted in `when` as ContainerPilot accepts it; never published
    /// (ContainerPilot's jobs never saw it on the bus either).
    Error,
    /// Accepted in `when` as ContainerPilot accepts it; never published
    /// (ContainerPilot sent it only to a job's own queue).
    Quit,
    /// **\[beyond\]** This instance holds the lock `lock.<name>` now.
    Acquired,
    /// **\[beyond\]** This instance held the lock `lock.<name>` and no longer does.
    Lost,
    /// A signal event (`SIGHUP`, `SIGUSR2`); its source is the signal's name.
    Signal,
}

impl EventCode {
    /// Every code a user may name in `when.once` / `when.each`: every name
    /// ContainerPilot 3 accepts there, and **\[beyond\]** the locks' events.
    pub const NAMED: [EventCode; 16] = [
        EventCode::Startup,
        EventCode::Shutdown,
        EventCode::Healthy,
        EventCode::Unhealthy,
        EventCode::ExitSuccess,
        EventCode::ExitFailed,
        EventCode::Stopping,
        EventCode::Stopped,
        EventCode::Changed,
        EventCode::EnterMaintenance,
        EventCode::ExitMaintenance,
        EventCode::TimerExpired,
        EventCode::Error,
        EventCode::Quit,
        EventCode::Acquired,
        EventCode::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventCode::Startup => "startup",
            EventCode::Shutdown => "shutdown",
            EventCode::Healthy => "healthy",
            EventCode::Unhealthy => "unhealthy",
            EventCode::ExitSuccess => "exitSuccess",
            EventCode::ExitFailed => "exitFailed",
            EventCode::Stopping => "stopping",
            EventCode::Stopped => "stopped",
            EventCode::Changed => "changed",
            EventCode::EnterMaintenance => "enterMaintenance",
            EventCode::ExitMaintenance => "exitMaintenance",
            EventCode::TimerExpired => "timerExpired",
            EventCode::Error => "error",
            EventCode::Quit => "quit",
            EventCode::Acquired => "acquired",
            EventCode::Lost => "lost",
            EventCode::Signal => "signal",
        }
    }
}

impl fmt::Display for EventCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a name that is not an event code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid event code")]
pub struct UnknownEventCode(pub String);

impl FromStr for EventCode {
    type Err = UnknownEventCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventCode::NAMED
            .into_iter()
            .find(|code| code.as_str() == s)
            .ok_or_else(|| UnknownEventCode(s.to_string()))
    }
}

/// The signals that become events (`when: {source: "SIGHUP"}`).
pub(crate) const SIGNAL_EVENT_SOURCES: [&str; 2] = ["SIGHUP", "SIGUSR2"];

/// One thing that happened, and who it happened to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Event {
    pub code: EventCode,
    pub source: Arc<str>,
}

impl Event {
    pub(crate) fn new(code: EventCode, source: &str) -> Event {
        Event {
            code,
            source: Arc::from(source),
        }
    }

    /// Does this event match a `when` of `code` from `source`?
    pub(crate) fn is(&self, code: EventCode, source: &str) -> bool {
        self.code == code && &*self.source == source
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.source, self.code)
    }
}

/// The ordered event bus.
///
/// Publishing holds one lock while the event is queued to every subscriber,
/// so all subscribers receive all events in the same order. Queues are
/// unbounded: a publisher never waits for a slow subscriber (no job blocks
/// another), and nothing is dropped, unlike a broadcast channel that lags.
#[derive(Clone, Default)]
pub(crate) struct Bus {
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Event>>>>,
}

impl Bus {
    /// A new receiver that sees every event published from now on.
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<Event> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.lock().push(sender);
        receiver
    }

    /// Delivers `event` to every live subscriber; subscribers that went away
    /// are forgotten.
    pub(crate) fn publish(&self, event: Event) {
        tracing::debug!("event: {event}");
        self.lock()
            .retain(|subscriber| subscriber.send(event.clone()).is_ok());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<Event>>> {
        // Every operation leaves the list consistent, so a poisoned lock is usable.
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for code in EventCode::NAMED {
            assert_eq!(code.as_str().parse::<EventCode>(), Ok(code));
        }
        assert!("bogus".parse::<EventCode>().is_err());
        assert!("signal".parse::<EventCode>().is_err());
    }

    #[test]
    fn every_subscriber_sees_every_event_in_the_same_order() {
        let bus = Bus::default();
        let mut first = bus.subscribe();
        let mut second = bus.subscribe();
        let events: Vec<Event> = (0..100)
            .map(|i| Event::new(EventCode::Changed, &format!("watch.s{i}")))
            .collect();
        std::thread::scope(|scope| {
            for chunk in events.chunks(25) {
                let bus = bus.clone();
                scope.spawn(move || chunk.iter().for_each(|e| bus.publish(e.clone())));
            }
        });
        let drain = |rx: &mut mpsc::UnboundedReceiver<Event>| {
            std::iter::from_fn(|| rx.try_recv().ok()).collect::<Vec<_>>()
        };
        let seen_first = drain(&mut first);
        assert_eq!(seen_first.len(), 100);
        assert_eq!(seen_first, drain(&mut second));
    }

    #[test]
    fn dropped_subscribers_are_forgotten() {
        let bus = Bus::default();
        drop(bus.subscribe());
        let mut live = bus.subscribe();
        bus.publish(Event::new(EventCode::Startup, "global"));
        assert_eq!(bus.subscribers.lock().unwrap().len(), 1);
        assert!(live.try_recv().unwrap().is(EventCode::Startup, "global"));
    }
}
