//! Events: the vocabulary jobs and watches use to talk to each other.
//!
//! An event is a code plus the name of its source (a job, `watch.<name>`, a
//! signal name, or [`crate::config::model::GLOBAL_SOURCE`]). This module owns
//! the event vocabulary; it must not know about processes or the catalog.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

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
    /// A signal event (`SIGHUP`, `SIGUSR2`); its source is the signal's name.
    Signal,
}

impl EventCode {
    /// Every code a user may name in `when.once` / `when.each`.
    pub const NAMED: [EventCode; 11] = [
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
pub const SIGNAL_EVENT_SOURCES: [&str; 2] = ["SIGHUP", "SIGUSR2"];

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
}
