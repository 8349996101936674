//! The Consul side of leader locks: sessions (`/v1/session/...`) and KV lock writes
//! (`/v1/kv/<key>?acquire=|?release=`), following Consul's HTTP API.
//!
//! Owns only the request and answer shapes; when to call is `discovery::lock`'s. Sessions
//! use `Behavior: release`: when one dies, the key stays with its last value (who held it
//! last) and only loses its holder, and its lock-delay applies.

use serde::Deserialize;
use serde_json::json;

use super::{call, ConsulBackend};
use crate::discovery::http::REQUEST_TIMEOUT;
use crate::discovery::lock::{KeyOwner, LockSpec};
use crate::discovery::{go_duration, DiscoveryError};

/// Consul's answer to a renewal of a session it no longer has.
const NOT_FOUND: u16 = 404;

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "ID")]
    id: String,
}

impl ConsulBackend {
    /// `PUT /v1/session/create` with the lock's TTL, lock-delay and checks.
    pub(in crate::discovery) async fn open_session(
        &self,
        spec: &LockSpec,
    ) -> Result<String, DiscoveryError> {
        let checks: Vec<_> = spec.checks.iter().map(|id| json!({ "ID": id })).collect();
        let body = json!({
            "Name": format!("autopilot lock {}", spec.name),
            "TTL": go_duration(spec.ttl),
            "LockDelay": go_duration(spec.lock_delay),
            "Behavior": "release",
            // The node's serfHealth check too, as Consul's default: a dead node loses it.
            "NodeChecks": ["serfHealth"],
            "ServiceChecks": checks,
        });
        let call = call("session create");
        let request = self.put(&["v1", "session", "create"]).json(&body);
        let created: Created = call.decode(call.send(request).await?).await?;
        Ok(created.id)
    }

    /// `PUT /v1/session/renew/<id>`: whether the session still exists.
    pub(in crate::discovery) async fn renew_session(
        &self,
        session: &str,
    ) -> Result<bool, DiscoveryError> {
        let request = self.put(&["v1", "session", "renew", session]);
        match call("session renew").send(request).await {
            Ok(_) => Ok(true),
            Err(DiscoveryError::Rejected {
                status: NOT_FOUND, ..
            }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// `PUT /v1/session/destroy/<id>`.
    pub(in crate::discovery) async fn destroy_session(
        &self,
        session: &str,
    ) -> Result<(), DiscoveryError> {
        let request = self.put(&["v1", "session", "destroy", session]);
        call("session destroy").send(request).await.map(drop)
    }

    /// `PUT /v1/kv/<key>?acquire=<session>` with the holder's value: whether it got it.
    pub(in crate::discovery) async fn acquire(
        &self,
        spec: &LockSpec,
        session: &str,
    ) -> Result<bool, DiscoveryError> {
        self.lock_write(spec, "acquire", session).await
    }

    /// `PUT /v1/kv/<key>?release=<session>`, then destroys the session.
    pub(in crate::discovery) async fn release(
        &self,
        spec: &LockSpec,
        session: &str,
    ) -> Result<(), DiscoveryError> {
        self.lock_write(spec, "release", session).await?;
        self.destroy_session(session).await
    }

    /// `GET /v1/kv/<key>[?index=&wait=]`: the key's holding session (none when the key is
    /// absent or free) and what it wrote.
    pub(in crate::discovery) async fn key_owner(
        &self,
        key: &str,
        index: u64,
    ) -> Result<KeyOwner, DiscoveryError> {
        let (index, entries) = self.kv_get("lock watch", key, false, index).await?;
        let entry = entries.into_iter().next();
        let value = entry
            .as_ref()
            .and_then(|e| e.value.as_deref())
            .map(decode_value);
        Ok(KeyOwner {
            holder: entry.and_then(|entry| entry.session),
            value,
            index,
        })
    }

    async fn lock_write(
        &self,
        spec: &LockSpec,
        verb: &'static str,
        session: &str,
    ) -> Result<bool, DiscoveryError> {
        let call = call(if verb == "acquire" {
            "lock acquire"
        } else {
            "lock release"
        });
        let mut url = self.url(&kv_path(&spec.key));
        url.query_pairs_mut().append_pair(verb, session);
        let request = self
            .client
            .put(url)
            .timeout(REQUEST_TIMEOUT)
            .body(spec.value.clone());
        call.decode(call.send(request).await?).await
    }
}

/// A KV value as text (Consul sends it in base64); one that is not base64 is shown as is.
fn decode_value(value: &str) -> String {
    use base64::Engine as _;
    match base64::engine::general_purpose::STANDARD.decode(value) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => value.to_string(),
    }
}

/// `/v1/kv/<key>` as URL segments (each one percent-encoded by `url`).
pub(super) fn kv_path(key: &str) -> Vec<&str> {
    ["v1", "kv"]
        .into_iter()
        .chain(key.trim_start_matches('/').split('/'))
        .collect()
}
