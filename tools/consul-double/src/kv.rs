//! The KV store (`/v1/kv/<key>`), as Consul's state store keeps it: entries with their
//! create and modify indexes, taken from the same raft-like index as the catalog.
//!
//! Owns the entries and what a read answers (the entries, the keys, or nothing, and the
//! index a blocking query waits on), and the lock side of an entry: which session holds it,
//! its `LockIndex`, and the lock-delay that keeps it from being re-acquired after its
//! session was invalidated. Routing and parameters belong to `api`, sessions to `session`.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::{json, Value};

struct Entry {
    value: Vec<u8>,
    flags: u64,
    create_index: u64,
    modify_index: u64,
    /// How many times a session acquired the key.
    lock_index: u64,
    /// The session holding the key's lock.
    session: Option<String>,
}

/// A conditional write: `?cas=`, `?acquire=`, `?release=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition<'a> {
    /// A plain write.
    None,
    /// Only if the key's `ModifyIndex` is this (0: only if the key does not exist).
    Cas(u64),
    /// Take the key's lock for this session (or keep it, updating the value).
    Acquire(&'a str),
    /// Give up the key's lock if this session holds it.
    Release(&'a str),
}

/// What an invalidated session does to the keys it holds (its `Behavior`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnInvalidation {
    Release,
    Delete,
}

#[derive(Default)]
pub(crate) struct Kv {
    entries: BTreeMap<String, Entry>,
    /// Keys that may not be acquired before the instant: the lock-delay of an invalidated
    /// session.
    lock_delays: HashMap<String, Instant>,
    /// The index of the last write or delete: what a read of an absent key reports
    /// (Consul's `kvs` table index, so any write wakes a blocking read of an absent key).
    table_index: u64,
}

/// What a KV GET asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum KvRead<'a> {
    /// One key.
    Key,
    /// `?recurse`: every entry under the prefix.
    Recurse,
    /// `?keys[&separator=S]`: the key names under the prefix, folded at the separator.
    Keys(Option<&'a str>),
}

impl Kv {
    /// `PUT /v1/kv/<key>[?flags=N]` at raft index `index`.
    pub fn put(&mut self, key: &str, value: Vec<u8>, flags: u64, index: u64) {
        let previous = self.entries.get(key);
        let create_index = previous.map_or(index, |e| e.create_index);
        let (lock_index, session) =
            previous.map_or((0, None), |e| (e.lock_index, e.session.clone()));
        self.entries.insert(
            key.to_string(),
            Entry {
                value,
                flags,
                create_index,
                modify_index: index,
                lock_index,
                session,
            },
        );
        self.table_index = index;
    }

    /// A write under `condition` (Consul's `KVSCAS`, `KVSLock`, `KVSUnlock`); whether it
    /// happened. The caller has checked that an acquiring session exists.
    pub fn put_if(
        &mut self,
        key: &str,
        value: Vec<u8>,
        flags: u64,
        condition: Condition<'_>,
        index: u64,
        now: Instant,
    ) -> bool {
        let current = self.entries.get(key);
        let allowed = match condition {
            Condition::None => true,
            Condition::Cas(0) => current.is_none(),
            Condition::Cas(expected) => current.is_some_and(|e| e.modify_index == expected),
            Condition::Acquire(session) => {
                let delayed = self.lock_delays.get(key).is_some_and(|until| *until > now);
                let held_by_other =
                    current.is_some_and(|e| e.session.as_deref().is_some_and(|s| s != session));
                !delayed && !held_by_other
            }
            Condition::Release(session) => {
                current.is_some_and(|e| e.session.as_deref() == Some(session))
            }
        };
        if !allowed {
            return false;
        }
        self.put(key, value, flags, index);
        let entry = self.entries.get_mut(key).expect("just written");
        match condition {
            Condition::Acquire(session) if entry.session.as_deref() != Some(session) => {
                entry.lock_index += 1;
                entry.session = Some(session.to_string());
            }
            Condition::Release(_) => entry.session = None,
            _ => {}
        }
        true
    }

    /// `DELETE ?cas=N`: deletes the key only if its `ModifyIndex` is N; whether it did.
    pub fn delete_if(&mut self, key: &str, condition: Condition<'_>, index: u64) -> bool {
        let matches = match condition {
            Condition::Cas(expected) => self
                .entries
                .get(key)
                .is_some_and(|entry| entry.modify_index == expected),
            _ => false,
        };
        if matches {
            self.delete(key, false, index);
        }
        matches
    }

    /// The keys `session` holds.
    pub fn held_by(&self, session: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, entry)| entry.session.as_deref() == Some(session))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// What Consul does to the keys of an invalidated session: release or delete each, and
    /// keep it from being acquired again until `delay_until`.
    pub fn invalidate(
        &mut self,
        session: &str,
        behavior: OnInvalidation,
        index: u64,
        delay_until: Instant,
    ) {
        for key in self.held_by(session) {
            match behavior {
                OnInvalidation::Release => {
                    let entry = self.entries.get_mut(&key).expect("held key");
                    entry.session = None;
                    entry.modify_index = index;
                }
                OnInvalidation::Delete => {
                    self.entries.remove(&key);
                }
            }
            self.lock_delays.insert(key, delay_until);
        }
        self.table_index = index;
    }

    /// The session holding `key`'s lock, if any.
    pub fn holder(&self, key: &str) -> Option<String> {
        self.entries
            .get(key)
            .and_then(|entry| entry.session.clone())
    }

    /// `DELETE /v1/kv/<key>[?recurse]` at raft index `index`.
    pub fn delete(&mut self, key: &str, recurse: bool, index: u64) {
        self.entries
            .retain(|name, _| !(name == key || (recurse && name.starts_with(key))));
        self.table_index = index;
    }

    /// The answer to a GET (`None`: Consul's 404) and its index: the highest modify
    /// index among the entries read, or the table's when there are none.
    pub fn read(&self, key: &str, read: KvRead<'_>) -> (u64, Option<Value>) {
        let selected: Vec<(&String, &Entry)> = match read {
            KvRead::Key => self.entries.get_key_value(key).into_iter().collect(),
            KvRead::Recurse | KvRead::Keys(_) => self
                .entries
                .range(key.to_string()..)
                .take_while(|(name, _)| name.starts_with(key))
                .collect(),
        };
        let index = selected
            .iter()
            .map(|(_, entry)| entry.modify_index)
            .max()
            // Consul never reports index 0 (it would mean "do not block").
            .unwrap_or(self.table_index.max(1));
        if selected.is_empty() {
            return (index, None);
        }
        let body = match read {
            KvRead::Keys(separator) => {
                let mut names: Vec<String> = selected
                    .iter()
                    .map(|(name, _)| fold(name, key, separator))
                    .collect();
                names.dedup();
                json!(names)
            }
            _ => selected
                .iter()
                .map(|(name, entry)| entry_json(name, entry))
                .collect(),
        };
        (index, Some(body))
    }

    /// `?raw`: the value of one key as it was stored.
    pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.entries.get(key).map(|entry| entry.value.clone())
    }
}

/// A key name under `?keys&separator=S`: cut after the first separator past the prefix.
fn fold(name: &str, prefix: &str, separator: Option<&str>) -> String {
    let Some(separator) = separator.filter(|s| !s.is_empty()) else {
        return name.to_string();
    };
    match name[prefix.len()..].find(separator) {
        Some(at) => name[..prefix.len() + at + separator.len()].to_string(),
        None => name.to_string(),
    }
}

fn entry_json(name: &str, entry: &Entry) -> Value {
    use base64::Engine as _;
    let value = if entry.value.is_empty() {
        Value::Null
    } else {
        Value::String(base64::engine::general_purpose::STANDARD.encode(&entry.value))
    };
    let mut body = json!({
        "LockIndex": entry.lock_index,
        "Key": name,
        "Flags": entry.flags,
        "Value": value,
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
    });
    // Consul omits `Session` when no session holds the key.
    if let Some(session) = &entry.session {
        body["Session"] = json!(session);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Kv {
        let mut kv = Kv::default();
        kv.put("app/a", b"1".to_vec(), 0, 10);
        kv.put("app/sub/b", b"2".to_vec(), 7, 11);
        kv.put("apple", b"".to_vec(), 0, 12);
        kv
    }

    #[test]
    fn reads_follow_consuls_shapes_and_indexes() {
        let kv = store();
        let (index, body) = kv.read("app/a", KvRead::Key);
        assert_eq!(index, 10);
        assert_eq!(body.unwrap()[0]["Value"], "MQ==");
        assert_eq!(kv.read("nope", KvRead::Key), (12, None));
        let (index, body) = kv.read("app/", KvRead::Recurse);
        assert_eq!((index, body.unwrap().as_array().unwrap().len()), (11, 2));
        assert_eq!(
            kv.read("app", KvRead::Keys(None)).1.unwrap(),
            json!(["app/a", "app/sub/b", "apple"])
        );
        assert_eq!(
            kv.read("app/", KvRead::Keys(Some("/"))).1.unwrap(),
            json!(["app/a", "app/sub/"])
        );
        assert_eq!(
            kv.read("apple", KvRead::Key).1.unwrap()[0]["Value"],
            Value::Null
        );
    }

    #[test]
    fn writes_keep_the_create_index_and_deletes_move_the_table_index() {
        let mut kv = store();
        kv.put("app/a", b"3".to_vec(), 0, 20);
        let body = kv.read("app/a", KvRead::Key).1.unwrap();
        assert_eq!(
            (
                body[0]["CreateIndex"].clone(),
                body[0]["ModifyIndex"].clone()
            ),
            (json!(10), json!(20))
        );
        kv.delete("app/", true, 21);
        assert_eq!(kv.read("app/", KvRead::Recurse), (21, None));
        assert!(
            kv.read("apple", KvRead::Key).1.is_some(),
            "only the prefix goes"
        );
    }
}
