//! The KV store (`/v1/kv/<key>`), as Consul's state store keeps it: entries with their
//! create and modify indexes, taken from the same raft-like index as the catalog.
//!
//! Owns the entries and what a read answers (the entries, the keys, or nothing, and the
//! index a blocking query waits on); routing and parameters belong to `api`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

struct Entry {
    value: Vec<u8>,
    flags: u64,
    create_index: u64,
    modify_index: u64,
}

#[derive(Default)]
pub(crate) struct Kv {
    entries: BTreeMap<String, Entry>,
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
        let create_index = self.entries.get(key).map_or(index, |e| e.create_index);
        self.entries.insert(
            key.to_string(),
            Entry {
                value,
                flags,
                create_index,
                modify_index: index,
            },
        );
        self.table_index = index;
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
    json!({
        "LockIndex": 0,
        "Key": name,
        "Flags": entry.flags,
        "Value": value,
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
    })
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
