//! The `locks` section **\[beyond\]**: leader locks held through the catalog (see
//! `docs/configuration.md`, "Locks").
//!
//! Owns the section's fields, defaults and rules; what a lock does at run time is
//! `discovery::lock`'s. It must not know other sections beyond the job names a lock may
//! link to and which catalog is configured.

use std::time::Duration;

use serde_json::Value;

use super::decode::{Object, Result};
use super::error::ConfigError;
use super::model::{JobConfig, LockConfig};

const LOCK_KEYS: [&str; 5] = ["name", "key", "ttl", "lockDelay", "job"];
/// The session (lease) TTL when none is given.
const DEFAULT_TTL: Duration = Duration::from_secs(15);
/// The lock-delay when none is given: short enough for a quick failover after a crash,
/// long enough for a holder to hear that its session was invalidated.
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(5);
/// Consul's session TTL bounds.
const CONSUL_TTL: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(86_400));
/// etcd grants leases of whole seconds and raises short ones to its own minimum (2 s).
const ETCD_MIN_TTL: Duration = Duration::from_secs(2);
/// Consul's longest lock-delay.
const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);

/// Which catalog holds the locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockCatalog {
    Consul,
    Etcd,
    None,
}

/// Reads `locks` (an array) from a 3.x document.
pub(crate) fn locks(
    entries: Vec<(String, &Value)>,
    jobs: &[JobConfig],
    catalog: LockCatalog,
) -> Result<Vec<LockConfig>> {
    let mut locks: Vec<LockConfig> = Vec::new();
    for (path, value) in entries {
        if catalog == LockCatalog::None {
            return Err(ConfigError::invalid(
                path,
                "a lock is held in the catalog: configure `consul` or `etcd`",
            ));
        }
        let lock = lock(&Object::new(value, &path, &LOCK_KEYS)?, jobs, catalog)?;
        if locks.iter().any(|other| other.name == lock.name) {
            return Err(ConfigError::invalid(
                path,
                format!("another lock is already named {:?}", lock.name),
            ));
        }
        locks.push(lock);
    }
    Ok(locks)
}

fn lock(object: &Object<'_>, jobs: &[JobConfig], catalog: LockCatalog) -> Result<LockConfig> {
    let required = |key| {
        object
            .non_empty_string(key)?
            .ok_or_else(|| ConfigError::invalid(object.at(key), "required"))
    };
    let name = required("name")?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::invalid(
            object.at("name"),
            format!(
                "{name:?}: use letters, digits, '-' or '_' (it names the event source lock.{name})"
            ),
        ));
    }
    let key = required("key")?;
    let ttl = object.duration("ttl")?.unwrap_or(DEFAULT_TTL);
    let (min, max) = match catalog {
        LockCatalog::Etcd => (ETCD_MIN_TTL, CONSUL_TTL.1),
        _ => CONSUL_TTL,
    };
    if ttl < min || ttl > max {
        return Err(ConfigError::invalid(
            object.at("ttl"),
            format!("must be between {min:?} and {max:?}, not {ttl:?}"),
        ));
    }
    let lock_delay = object.duration("lockDelay")?.unwrap_or(DEFAULT_LOCK_DELAY);
    if lock_delay > MAX_LOCK_DELAY {
        return Err(ConfigError::invalid(
            object.at("lockDelay"),
            format!("must be at most {MAX_LOCK_DELAY:?}, not {lock_delay:?}"),
        ));
    }
    let job = object.non_empty_string("job")?;
    if let Some(job) = &job {
        match jobs.iter().find(|candidate| &candidate.name == job) {
            None => {
                return Err(ConfigError::invalid(
                    object.at("job"),
                    format!("no job is named {job:?}"),
                ))
            }
            Some(found) if found.port.is_none() => {
                return Err(ConfigError::invalid(
                    object.at("job"),
                    format!("job {job:?} has no `port`: only a registered service has a check to tie the lock to"),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(LockConfig {
        name,
        key,
        ttl,
        lock_delay,
        job,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, Env, Origin};

    fn load(text: &str) -> Result<Vec<super::LockConfig>, String> {
        load_str(text, &Origin::Inline, None, &Env::new())
            .map(|loaded| loaded.config.locks)
            .map_err(|error| error.to_string())
    }

    const JOB: &str = r#"jobs: [{name: "db", exec: "db", port: 5432, health: {exec: "true", interval: 5, ttl: 10}}]"#;

    #[test]
    fn defaults_and_fields() {
        let locks = load(&format!(
            r#"{{consul: "c:8500", {JOB}, locks: [{{name: "primary", key: "service/db/primary", job: "db"}}]}}"#
        ))
        .unwrap();
        assert_eq!(locks[0].ttl, super::DEFAULT_TTL);
        assert_eq!(locks[0].lock_delay, super::DEFAULT_LOCK_DELAY);
        assert_eq!(locks[0].job.as_deref(), Some("db"));
        let locks = load(r#"{etcd: {endpoints: ["e:2379"]}, locks: [{name: "a", key: "k", ttl: "3s", lockDelay: 0}]}"#).unwrap();
        assert_eq!(locks[0].ttl, std::time::Duration::from_secs(3));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{locks: [{name: "a", key: "k"}]}"#,
                "locks[0]",
                "configure `consul` or `etcd`",
            ),
            (
                r#"{consul: "c", locks: [{key: "k"}]}"#,
                "locks[0].name",
                "required",
            ),
            (r#"{consul: "c", locks: [{name: "a"}]}"#, ".key", "required"),
            (
                r#"{consul: "c", locks: [{name: "a", key: "k", ttl: "5s"}]}"#,
                ".ttl",
                "between 10s",
            ),
            (
                r#"{consul: "c", locks: [{name: "a", key: "k", lockDelay: "2m"}]}"#,
                ".lockDelay",
                "at most 60s",
            ),
            (
                r#"{consul: "c", locks: [{name: "a", key: "k", job: "web"}]}"#,
                ".job",
                "no job is named \"web\"",
            ),
            (
                r#"{consul: "c", locks: [{name: "a b", key: "k"}]}"#,
                ".name",
                "lock.a b",
            ),
            (
                r#"{consul: "c", locks: [{name: "a", key: "k", tll: "15s"}]}"#,
                "tll",
                "",
            ),
            (
                r#"{consul: "c", locks: [{name: "a", key: "k"}, {name: "a", key: "j"}]}"#,
                "locks[1]",
                "already named \"a\"",
            ),
        ];
        for (text, field, reason) in cases {
            let error = load(text).unwrap_err();
            assert!(
                error.contains(field) && error.contains(reason),
                "{text}: {error}"
            );
        }
        let error = load(r#"{consul: "c", jobs: [{name: "w", exec: "w"}], locks: [{name: "a", key: "k", job: "w"}]}"#)
            .unwrap_err();
        assert!(
            error.contains(".job") && error.contains("has no `port`"),
            "{error}"
        );
    }
}
