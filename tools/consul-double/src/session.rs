//! Sessions (`/v1/session/...`), as Consul's servers keep them: creation with its checks,
//! TTL and lock-delay, renewal, destruction, and invalidation, which releases (or deletes)
//! the KV keys the session holds and starts their lock-delay.
//!
//! Owns the session table and the rules for when a session dies: destroyed, its TTL missed
//! (Consul lets a session live up to twice its TTL past its last renewal), or one of its
//! checks critical or gone. It does not route requests (`api`) or schedule timers (`timers`),
//! and touches the KV store only through `Kv::invalidate`.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::agent::Agent;
use crate::control::Inner;
use crate::duration::{format_go_duration, parse_go_duration};
use crate::error::ApiError;
use crate::kv::OnInvalidation;
use crate::state::Status;

/// Consul's `sessionTTLMultiplier`: the servers invalidate a session only after twice its
/// TTL without a renewal, so a client must treat its session as gone after one TTL.
pub(crate) const TTL_MULTIPLIER: u32 = 2;
/// Consul's longest session TTL.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Consul's default lock-delay.
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);
/// Consul's longest lock-delay.
const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// Consul reads a numeric `LockDelay` below this as seconds, above it as nanoseconds.
const LOCK_DELAY_SECONDS_THRESHOLD: f64 = 1000.0;
/// The node health check every Consul agent has; the double treats it as always passing.
const SERF_HEALTH: &str = "serfHealth";

pub(crate) struct Session {
    id: String,
    name: String,
    node: String,
    lock_delay: Duration,
    behavior: OnInvalidation,
    /// As it was given, echoed back as Consul does.
    ttl_text: String,
    ttl: Option<Duration>,
    node_checks: Vec<String>,
    service_checks: Vec<String>,
    create_index: u64,
    modify_index: u64,
    /// When the servers give up on it: `TTL_MULTIPLIER` × TTL after the last renewal.
    expires: Option<Instant>,
}

/// The body of `PUT /v1/session/create`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateRequest {
    #[serde(alias = "name")]
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Node", alias = "node")]
    node: String,
    #[serde(rename = "LockDelay", alias = "lockdelay")]
    lock_delay: Option<Value>,
    #[serde(rename = "Behavior", alias = "behavior")]
    behavior: String,
    #[serde(rename = "TTL", alias = "ttl")]
    ttl: String,
    #[serde(rename = "Checks", alias = "checks")]
    checks: Option<Vec<String>>,
    #[serde(rename = "NodeChecks", alias = "nodechecks")]
    node_checks: Option<Vec<String>>,
    #[serde(rename = "ServiceChecks", alias = "servicechecks")]
    service_checks: Option<Vec<ServiceCheck>>,
}

#[derive(Deserialize)]
struct ServiceCheck {
    #[serde(rename = "ID", alias = "id")]
    id: String,
}

#[derive(Default)]
pub(crate) struct Sessions {
    by_id: BTreeMap<String, Session>,
    /// The index of the last change to the table: what a read of no sessions reports.
    table_index: u64,
}

impl Sessions {
    /// `PUT /v1/session/create`: validates the request as Consul's endpoint and state store
    /// do, and returns the new session's ID.
    pub fn create(
        &mut self,
        agent: &mut Agent,
        body: &[u8],
        ttl_min: Duration,
        now: Instant,
    ) -> Result<String, ApiError> {
        let request: CreateRequest = if body.is_empty() {
            CreateRequest::default()
        } else {
            serde_json::from_slice(body)
                .map_err(|error| ApiError::BadRequest(format!("Request decode failed: {error}")))?
        };
        let behavior = match request.behavior.as_str() {
            "" | "release" => OnInvalidation::Release,
            "delete" => OnInvalidation::Delete,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid Behavior setting '{other}'"
                )))
            }
        };
        let ttl = parse_ttl(&request.ttl, ttl_min)?;
        let lock_delay = parse_lock_delay(request.lock_delay.as_ref())?;
        let node = if request.node.is_empty() {
            agent.node().name.clone()
        } else {
            request.node
        };
        if node != agent.node().name {
            return Err(ApiError::Internal("Missing node registration".into()));
        }
        let (node_checks, service_checks) = match (request.checks, request.node_checks) {
            (None, None) if request.service_checks.is_none() => {
                (vec![SERF_HEALTH.to_string()], Vec::new())
            }
            (checks, node_checks) => (
                checks.into_iter().chain(node_checks).flatten().collect(),
                request
                    .service_checks
                    .into_iter()
                    .flatten()
                    .map(|check| check.id)
                    .collect(),
            ),
        };
        for check in node_checks.iter().chain(&service_checks) {
            match check_status(agent, check) {
                None => {
                    return Err(ApiError::Internal(format!(
                        "Missing check '{check}' registration"
                    )))
                }
                Some(Status::Critical) => {
                    return Err(ApiError::Internal(format!(
                        "Check '{check}' is in critical state"
                    )))
                }
                Some(_) => {}
            }
        }
        let index = agent.next_index();
        let id = new_session_id();
        self.by_id.insert(
            id.clone(),
            Session {
                id: id.clone(),
                name: request.name,
                node,
                lock_delay,
                behavior,
                ttl_text: request.ttl,
                ttl,
                node_checks,
                service_checks,
                create_index: index,
                modify_index: index,
                expires: ttl.map(|ttl| now + ttl * TTL_MULTIPLIER),
            },
        );
        self.table_index = index;
        Ok(id)
    }

    /// `PUT /v1/session/renew/<id>`: restarts the TTL; the session as JSON, or `None` when
    /// there is no such session (any more).
    pub fn renew(&mut self, id: &str, now: Instant) -> Option<Value> {
        let session = self.by_id.get_mut(id)?;
        session.expires = session.ttl.map(|ttl| now + ttl * TTL_MULTIPLIER);
        Some(session.to_json())
    }

    pub fn exists(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// `GET /v1/session/info/<id>` (`Some(id)`) or `/v1/session/list` (`None`), with the
    /// index a blocking query waits on.
    pub fn read(&self, id: Option<&str>) -> (u64, Value) {
        let selected: Vec<&Session> = match id {
            Some(id) => self.by_id.get(id).into_iter().collect(),
            None => self.by_id.values().collect(),
        };
        let index = selected
            .iter()
            .map(|session| session.modify_index)
            .max()
            .unwrap_or(self.table_index);
        (index, selected.iter().map(|s| s.to_json()).collect())
    }

    /// The sessions whose TTL ran out by `now`.
    pub fn expired(&self, now: Instant) -> Vec<String> {
        self.by_id
            .values()
            .filter(|session| session.expires.is_some_and(|at| at <= now))
            .map(|session| session.id.clone())
            .collect()
    }

    /// When the next session expires, if any has a TTL.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_id.values().filter_map(|s| s.expires).min()
    }

    /// The sessions one of whose checks is critical or no longer registered.
    pub fn unhealthy(&self, agent: &Agent) -> Vec<String> {
        self.by_id
            .values()
            .filter(|session| {
                session
                    .node_checks
                    .iter()
                    .chain(&session.service_checks)
                    .any(|check| {
                        !matches!(
                            check_status(agent, check),
                            Some(Status::Passing | Status::Warning)
                        )
                    })
            })
            .map(|session| session.id.clone())
            .collect()
    }
}

impl Session {
    fn to_json(&self) -> Value {
        let service_checks: Option<Vec<Value>> = (!self.service_checks.is_empty()).then(|| {
            self.service_checks
                .iter()
                .map(|id| json!({"ID": id, "Namespace": ""}))
                .collect()
        });
        json!({
            "ID": self.id,
            "Name": self.name,
            "Node": self.node,
            "LockDelay": self.lock_delay.as_nanos() as u64,
            "Behavior": match self.behavior {
                OnInvalidation::Release => "release",
                OnInvalidation::Delete => "delete",
            },
            "TTL": self.ttl_text,
            "NodeChecks": self.node_checks,
            "ServiceChecks": service_checks,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        })
    }
}

/// Invalidates the sessions `ids` (destroyed, expired or unhealthy): each goes, and its keys
/// are released or deleted and kept from re-acquisition for its lock-delay. Returns whether
/// any session went.
pub(crate) fn invalidate(inner: &mut Inner, ids: &[String], now: Instant) -> bool {
    let mut changed = false;
    for id in ids {
        let Some(session) = inner.sessions.by_id.remove(id) else {
            continue;
        };
        let index = inner.agent.next_index();
        inner
            .kv
            .invalidate(id, session.behavior, index, now + session.lock_delay);
        inner.sessions.table_index = index;
        tracing::info!(session = %id, "session invalidated");
        changed = true;
    }
    changed
}

/// Invalidates every session with a critical or missing check: run after each change to
/// the agent, as Consul's state store does on every check update and deregistration.
pub(crate) fn invalidate_unhealthy(inner: &mut Inner, now: Instant) -> bool {
    let unhealthy = inner.sessions.unhealthy(&inner.agent);
    invalidate(inner, &unhealthy, now)
}

fn check_status(agent: &Agent, id: &str) -> Option<Status> {
    if id == SERF_HEALTH {
        return Some(Status::Passing);
    }
    agent.check(id).map(|check| check.status)
}

/// Consul's TTL rule: empty or zero for none, else between the minimum and 24 h.
fn parse_ttl(text: &str, min: Duration) -> Result<Option<Duration>, ApiError> {
    if text.is_empty() {
        return Ok(None);
    }
    let ttl = parse_go_duration(text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "Request decode failed: time: invalid duration \"{text}\""
        ))
    })?;
    if ttl.is_zero() {
        return Ok(None);
    }
    if ttl < min || ttl > MAX_TTL {
        return Err(ApiError::BadRequest(format!(
            "Invalid Session TTL '{text}', must be between [{}={}]",
            format_go_duration(min),
            format_go_duration(MAX_TTL)
        )));
    }
    Ok(Some(ttl))
}

/// `LockDelay`: a Go duration string, or a number (seconds below 1000, else nanoseconds,
/// Consul's `FixupLockDelay`); at most 60 s.
fn parse_lock_delay(value: Option<&Value>) -> Result<Duration, ApiError> {
    let invalid = |shown: &dyn std::fmt::Display| {
        ApiError::BadRequest(format!("Request decode failed: invalid LockDelay {shown}"))
    };
    let delay = match value {
        None | Some(Value::Null) => DEFAULT_LOCK_DELAY,
        Some(Value::String(text)) => parse_go_duration(text).ok_or_else(|| invalid(text))?,
        Some(Value::Number(number)) => {
            let number = number
                .as_f64()
                .filter(|n| *n >= 0.0)
                .ok_or_else(|| invalid(number))?;
            if number < LOCK_DELAY_SECONDS_THRESHOLD {
                Duration::from_secs_f64(number)
            } else {
                Duration::from_nanos(number as u64)
            }
        }
        Some(other) => return Err(invalid(other)),
    };
    Ok(delay.min(MAX_LOCK_DELAY))
}

/// A random version-4 UUID, as Consul's session IDs are. Drawn from the standard library's
/// per-process random hash keys: the double needs unpredictable, unique IDs, not a CSPRNG.
fn new_session_id() -> String {
    let random = || {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(Instant::now().elapsed().as_nanos());
        hasher.finish()
    };
    let (high, low) = (random(), random());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        0x8000 | (low >> 48) & 0x3fff,
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_and_lock_delay_follow_consuls_rules() {
        let min = Duration::from_secs(10);
        assert_eq!(parse_ttl("", min).unwrap(), None);
        assert_eq!(
            parse_ttl("15s", min).unwrap(),
            Some(Duration::from_secs(15))
        );
        let error = parse_ttl("5s", min).unwrap_err().to_string();
        assert_eq!(
            error,
            "Invalid Session TTL '5s', must be between [10s=24h0m0s]"
        );
        assert_eq!(parse_lock_delay(None).unwrap(), DEFAULT_LOCK_DELAY);
        assert_eq!(
            parse_lock_delay(Some(&json!("1s"))).unwrap(),
            Duration::from_secs(1)
        );
        assert_eq!(
            parse_lock_delay(Some(&json!(2))).unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(
            parse_lock_delay(Some(&json!(3_000_000_000u64))).unwrap(),
            Duration::from_secs(3)
        );
        assert_eq!(
            parse_lock_delay(Some(&json!("10m"))).unwrap(),
            MAX_LOCK_DELAY
        );
    }

    #[test]
    fn session_ids_look_like_uuids_and_differ() {
        let (a, b) = (new_session_id(), new_session_id());
        assert_ne!(a, b);
        let lengths: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12], "{a}");
        assert_eq!(&a[14..15], "4");
    }
}
