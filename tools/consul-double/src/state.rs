//! The public, cloneable view of what the double's agent holds: services, checks and the
//! raft-like index. Tests read it through `Control::state()` and `/_double/state`.
//!
//! Owns only plain data and lookups; every mutation lives in `agent`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use crate::duration::format_go_duration;

/// A health status as Consul spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passing,
    Warning,
    Critical,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = ();

    /// Exact, case-sensitive match, as Consul's `ValidStatus` does.
    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "passing" => Ok(Status::Passing),
            "warning" => Ok(Status::Warning),
            "critical" => Ok(Status::Critical),
            _ => Err(()),
        }
    }
}

/// A service instance registered with the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub enable_tag_override: bool,
}

impl Service {
    /// Whether the instance carries every tag, compared case-insensitively as Consul's
    /// catalog tag filter does.
    pub fn has_all_tags(&self, wanted: &[String]) -> bool {
        wanted
            .iter()
            .all(|tag| self.tags.iter().any(|own| own.eq_ignore_ascii_case(tag)))
    }
}

/// A health check held by the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: String,
    pub name: String,
    pub status: Status,
    pub notes: String,
    pub output: String,
    /// Empty for a node-level check.
    pub service_id: String,
    pub service_name: String,
    /// Consul's check `Type`: `"ttl"` for TTL checks, `"maintenance"` for the maintenance
    /// check, or the kind of a check the double stores without running (`"http"`, ...).
    pub kind: String,
    #[serde(serialize_with = "serialize_optional_duration")]
    pub ttl: Option<Duration>,
    #[serde(serialize_with = "serialize_optional_duration")]
    pub deregister_critical_service_after: Option<Duration>,
}

/// Everything the agent holds at one moment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct State {
    /// The raft-like index: bumped on every change to services or checks.
    pub index: u64,
    pub services: Vec<Service>,
    pub checks: Vec<Check>,
}

impl State {
    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|service| service.id == id)
    }

    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.id == id)
    }

    /// The checks attached to one service instance.
    pub fn checks_of(&self, service_id: &str) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|check| check.service_id == service_id)
            .collect()
    }

    /// The instances of a service name whose checks all pass: what
    /// `GET /v1/health/service/<name>?passing=1` returns.
    pub fn passing_instances(&self, name: &str) -> Vec<&Service> {
        self.services
            .iter()
            .filter(|service| service.name == name)
            .filter(|service| {
                self.checks_of(&service.id)
                    .iter()
                    .all(|check| check.status == Status::Passing)
            })
            .collect()
    }
}

fn serialize_optional_duration<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_str(&format_go_duration(*duration)),
        None => serializer.serialize_none(),
    }
}
