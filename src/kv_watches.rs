//! KV watches at run time **\[beyond\]**: one task per `watches[]` entry with `kv`,
//! publishing `changed` under `watch.<name>` each time the key's value (with `prefix`, any
//! value or the set of keys under it) differs from what the previous read saw, and
//! putting the values that are small enough in the environment of the jobs that start on
//! `watch.<name>` (`docs/configuration.md`, "KV values in the environment").
//!
//! Owns the loop and the values' variables; reading the KV store is
//! [`crate::discovery::kv`]'s, the table the jobs get [`crate::environment`]'s. The first
//! read sets the baseline and publishes nothing: a job that needs the values at startup
//! also runs on `startup`. While the catalog is unreachable it retries with back-off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::model::KvWatchConfig;
use crate::discovery::outage::Backoff;
use crate::discovery::Discovery;
use crate::environment::{self, shell_word, Environment};
use crate::events::{Bus, Event, EventCode};

/// A read that comes back this fast without news is not blocking (an old catalog, or a
/// proxy in between): the next one then waits a second, so a watch never spins.
const NOT_BLOCKING: Duration = Duration::from_millis(50);
const NOT_BLOCKING_PAUSE: Duration = Duration::from_secs(1);

/// The largest value put in the environment: far below Linux's 128 KiB for one
/// variable, so that a job's exec never fails for its environment's size.
const MAX_VALUE_BYTES: usize = 8 * 1024;
/// The most one watch puts in the environment, all values together (Linux allows about
/// 2 MiB of arguments and environment together).
const MAX_WATCH_BYTES: usize = 64 * 1024;

/// One KV watch's task: runs until the run generation that started it
/// cancels it (a reload that changes or removes the watch, or shutdown).
pub(crate) async fn run(
    config: KvWatchConfig,
    discovery: Arc<Discovery>,
    bus: Bus,
    env: Environment,
) {
    let source = config.source();
    let scope = env.scope(&source);
    let mut variables = Variables::default();
    let mut backoff = Backoff::default();
    let mut last = None;
    let mut index = 0;
    loop {
        let asked_at = Instant::now();
        let snapshot = match discovery
            .kv_snapshot(&config.key, config.prefix, index)
            .await
        {
            Ok(snapshot) => snapshot,
            Err(_) => {
                // `Discovery` logs the outage once; keep trying.
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        backoff.reset();
        // An index that went back (a restored or restarted catalog) starts over; one of
        // 0 (an empty KV store) is waited on as 1, as Consul's documentation advises, so
        // that the next read blocks.
        let answered = snapshot.index.max(1);
        index = if answered < index { 0 } else { answered };
        let changed = last.as_ref().is_some_and(|seen| *seen != snapshot.entries);
        // Set before `changed` is published: the job it starts sees these values.
        scope.set(variables.of(&config, &snapshot.entries));
        last = Some(snapshot.entries);
        if changed {
            tracing::debug!(watch = %config.name, key = %config.key, "KV value changed");
            bus.publish(Event::new(EventCode::Changed, &source));
        } else if asked_at.elapsed() < NOT_BLOCKING && index != 0 {
            tokio::time::sleep(NOT_BLOCKING_PAUSE).await;
        }
    }
}

/// Why a key's value is not in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Left {
    TooBig,
    WatchFull,
    NotText,
    SameName { first: String },
}

/// Turns a watch's entries into variables, warning once about each key left out.
#[derive(Default)]
struct Variables {
    /// The keys the last read left out, and why: warned about already.
    left: BTreeMap<String, Left>,
}

impl Variables {
    /// `CONTAINERPILOT_<WATCH>_KV` for the watched key (with `prefix`, for a key equal to
    /// the prefix) and `CONTAINERPILOT_<WATCH>_KV_<REST>` for a key under a prefix, `REST`
    /// being the rest of the key; each only for a value that is UTF-8 text without NUL,
    /// of at most [`MAX_VALUE_BYTES`], while the watch's values stay within
    /// [`MAX_WATCH_BYTES`] (in key order). KV values may be secrets: a warning names the
    /// key and the rule, never the value.
    fn of(&mut self, config: &KvWatchConfig, entries: &[(String, Vec<u8>)]) -> environment::Table {
        let mut table = environment::Table::new();
        let mut named: BTreeMap<String, &String> = BTreeMap::new();
        let mut left = BTreeMap::new();
        let mut total = 0;
        for (key, value) in entries {
            let rest = key.strip_prefix(config.key.as_str()).unwrap_or(key);
            let name = kv_variable(&config.name, rest);
            let text = std::str::from_utf8(value)
                .ok()
                .filter(|text| !text.contains('\0'));
            let why = match (text, named.get(&name)) {
                (_, Some(first)) => Left::SameName {
                    first: (*first).clone(),
                },
                (None, _) => Left::NotText,
                (Some(text), _) if text.len() > MAX_VALUE_BYTES => Left::TooBig,
                (Some(text), _) if total + text.len() > MAX_WATCH_BYTES => Left::WatchFull,
                (Some(text), _) => {
                    total += text.len();
                    table.insert(name.clone().into(), text.into());
                    named.insert(name, key);
                    continue;
                }
            };
            if self.left.get(key) != Some(&why) {
                warn_left_out(&config.name, key, &name, &why);
            }
            left.insert(key.clone(), why);
        }
        self.left = left;
        table
    }
}

fn warn_left_out(watch: &str, key: &str, variable: &str, why: &Left) {
    let why = match why {
        Left::TooBig => format!("its value is larger than {MAX_VALUE_BYTES} bytes"),
        Left::WatchFull => {
            format!("the watch's values would pass {MAX_WATCH_BYTES} bytes together")
        }
        Left::NotText => "its value is not UTF-8 text (or holds a NUL byte)".to_string(),
        Left::SameName { first } => format!("key {first:?} has the same variable name"),
    };
    tracing::warn!(
        watch,
        key,
        "KV value not put in the environment as {variable}: {why}"
    );
}

/// The variable of the key whose part after the watched key (or prefix) is `rest`.
fn kv_variable(watch: &str, rest: &str) -> String {
    let rest = shell_word(rest);
    match rest.trim_matches('_') {
        "" => environment::job_variable(watch, "KV"),
        rest => environment::job_variable(watch, &format!("KV_{rest}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(key: &str, prefix: bool) -> KvWatchConfig {
        KvWatchConfig {
            name: "app-cfg".into(),
            key: key.into(),
            prefix,
        }
    }

    fn entries(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        (pairs.iter())
            .map(|(key, value)| (key.to_string(), value.to_vec()))
            .collect()
    }

    fn names(table: &environment::Table) -> Vec<(String, String)> {
        (table.iter())
            .map(|(name, value)| {
                (
                    name.to_string_lossy().into(),
                    value.to_string_lossy().into(),
                )
            })
            .collect()
    }

    #[test]
    fn a_key_is_one_variable_and_a_prefix_one_per_key() {
        let mut variables = Variables::default();
        let one = variables.of(
            &watch("app/config", false),
            &entries(&[("app/config", b"v1")]),
        );
        assert_eq!(
            names(&one),
            [("CONTAINERPILOT_APP_CFG_KV".into(), "v1".into())]
        );
        let prefix = entries(&[
            ("app/", b""),
            ("app/db.host", b"10.0.0.5"),
            ("app/db/port", b"5432"),
        ]);
        let all = variables.of(&watch("app/", true), &prefix);
        assert_eq!(
            names(&all),
            [
                ("CONTAINERPILOT_APP_CFG_KV".into(), String::new()),
                (
                    "CONTAINERPILOT_APP_CFG_KV_DB_HOST".into(),
                    "10.0.0.5".into()
                ),
                ("CONTAINERPILOT_APP_CFG_KV_DB_PORT".into(), "5432".into()),
            ]
        );
        assert!(
            variables.of(&watch("app/config", false), &[]).is_empty(),
            "a deleted key"
        );
    }

    #[test]
    fn values_too_big_or_not_text_and_clashing_names_are_left_out() {
        let mut variables = Variables::default();
        let big = vec![b'x'; MAX_VALUE_BYTES + 1];
        let fits = vec![b'y'; MAX_VALUE_BYTES];
        let mut pairs: Vec<(&str, &[u8])> = vec![
            ("p/a-b", b"first"),
            ("p/a.b", b"second"),
            ("p/big", &big),
            ("p/binary", b"\xff\xfe"),
            ("p/nul", b"a\0b"),
        ];
        let full: Vec<String> = (0..MAX_WATCH_BYTES / MAX_VALUE_BYTES)
            .map(|n| format!("p/n{n}"))
            .collect();
        pairs.extend(full.iter().map(|key| (key.as_str(), fits.as_slice())));
        let table: BTreeMap<String, String> =
            names(&variables.of(&watch("p/", true), &entries(&pairs)))
                .into_iter()
                .collect();
        assert_eq!(table["CONTAINERPILOT_APP_CFG_KV_A_B"], "first");
        for name in ["BIG", "BINARY", "NUL"] {
            assert!(!table.contains_key(&format!("CONTAINERPILOT_APP_CFG_KV_{name}")));
        }
        // The values of the first keys fill the watch's budget: the last one is left out.
        let last = shell_word(&full[full.len() - 1][2..]);
        assert!(!table.contains_key(&format!("CONTAINERPILOT_APP_CFG_KV_{last}")));
        assert!(table.contains_key("CONTAINERPILOT_APP_CFG_KV_N0"));
        assert_eq!(
            variables
                .left
                .values()
                .filter(|why| **why == Left::WatchFull)
                .count(),
            1
        );
        assert_eq!(
            variables.left["p/a.b"],
            Left::SameName {
                first: "p/a-b".into()
            }
        );
    }
}
