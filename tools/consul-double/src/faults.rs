//! Injected faults: what they are, which requests they hit, and for how many requests.
//!
//! Owns the rule list and the choice of the rule for a request. What a fault does to a
//! request or a connection is carried out by `server`. Requests under `/_double/` are never
//! faulted, so a test can always reach the control surface.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happens to a request a rule matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// Answer with this status and body instead of handling the request.
    Status { code: u16, body: String },
    /// Accept and do not answer until the faults are cleared (then answer normally).
    Hang,
    /// Answer normally, but only after this delay.
    Delay {
        #[serde(with = "millis")]
        delay: Duration,
    },
    /// Accept, then close the connection without answering (TCP reset).
    Reset,
    /// Behave like an agent from before Consul vetted updates against its local state:
    /// an update of an unknown check answers 500 `CheckID "<id>" does not have associated
    /// TTL`, deregistering an unknown service answers 200, and maintenance of an unknown
    /// service answers 404 `No service registered with ID "<id>"`.
    LegacyAgent,
}

impl Fault {
    /// 503 Service Unavailable, as a proxy in front of an unavailable agent answers.
    pub fn unavailable() -> Self {
        Fault::Status {
            code: 503,
            body: "Service Unavailable".into(),
        }
    }

    /// 500 `No cluster leader`, what Consul answers while the servers have no quorum.
    pub fn no_leader() -> Self {
        Fault::Status {
            code: 500,
            body: "No cluster leader".into(),
        }
    }
}

/// A fault, the requests it applies to, and how many times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    pub fault: Fault,
    /// Only requests whose path starts with this (e.g. `/v1/agent/check/`); all if `None`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Only the next this-many matching requests; then the rule is spent. Unlimited if `None`.
    #[serde(default)]
    pub times: Option<u32>,
}

impl FaultRule {
    /// The fault on every request.
    pub fn everywhere(fault: Fault) -> Self {
        FaultRule {
            fault,
            path_prefix: None,
            times: None,
        }
    }

    /// The fault on requests whose path starts with `prefix`.
    pub fn on_path(prefix: impl Into<String>, fault: Fault) -> Self {
        FaultRule {
            fault,
            path_prefix: Some(prefix.into()),
            times: None,
        }
    }

    /// Limits the rule to the next `times` matching requests.
    pub fn times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }

    fn matches(&self, path: &str) -> bool {
        self.path_prefix
            .as_deref()
            .map_or(true, |prefix| path.starts_with(prefix))
    }
}

/// The active rules, in the order they were set.
#[derive(Default)]
pub(crate) struct FaultSet {
    rules: Vec<FaultRule>,
    /// Moves whenever the rules are cleared: hung requests wait for it to move.
    epoch: u64,
}

impl FaultSet {
    /// Adds a rule; one already spent (`times: Some(0)`) is ignored.
    pub fn add(&mut self, rule: FaultRule) {
        if rule.times != Some(0) {
            self.rules.push(rule);
        }
    }

    pub fn clear(&mut self) {
        self.rules.clear();
        self.epoch += 1;
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.clone()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The fault for a request on `path`: the first matching rule, which is charged one use.
    pub fn take(&mut self, path: &str) -> Option<Fault> {
        let position = self.rules.iter().position(|rule| rule.matches(path))?;
        let rule = &mut self.rules[position];
        let fault = rule.fault.clone();
        if let Some(times) = rule.times.as_mut() {
            *times -= 1;
            if *times == 0 {
                self.rules.remove(position);
            }
        }
        Some(fault)
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_wins_and_is_spent_after_its_times() {
        let mut faults = FaultSet::default();
        faults.add(FaultRule::on_path("/v1/agent/check/", Fault::Reset).times(1));
        faults.add(FaultRule::everywhere(Fault::unavailable()));
        assert_eq!(faults.take("/v1/agent/check/pass/x"), Some(Fault::Reset));
        assert_eq!(
            faults.take("/v1/agent/check/pass/x"),
            Some(Fault::unavailable())
        );
        assert_eq!(faults.rules().len(), 1);
        faults.clear();
        assert_eq!(faults.take("/v1/status/leader"), None);
    }

    #[test]
    fn rules_round_trip_through_json() {
        let rule = FaultRule::on_path(
            "/v1/health/",
            Fault::Delay {
                delay: Duration::from_millis(1500),
            },
        );
        let text = serde_json::to_string(&rule).unwrap();
        assert!(text.contains(r#""kind":"delay","delay":1500"#), "{text}");
        assert_eq!(serde_json::from_str::<FaultRule>(&text).unwrap(), rule);
        let parsed: FaultRule = serde_json::from_str(r#"{"fault":{"kind":"reset"}}"#).unwrap();
        assert_eq!(parsed, FaultRule::everywhere(Fault::Reset));
    }
}
