//! The etcd side of leader locks: a lease per contender (`/v3/lease/grant`, kept alive with
//! `/v3/lease/keepalive`) and a transaction that puts the key under that lease only if the
//! key does not exist (`/v3/kv/txn`, compare `create_revision == 0`).
//!
//! Owns only the request and answer shapes; when to call is `discovery::lock`'s. The key is
//! used as written in the configuration (not under the service prefix). Its holder is the
//! lease it is attached to; revoking the lease (on release, or its expiry) deletes the key,
//! which is what wakes the other contenders' watches. etcd has no lock-delay.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::{call, encode, int64, ttl_seconds, EtcdBackend, LeaseGrant, ResponseHeader, BASE64};
use crate::discovery::lock::{KeyOwner, LockSpec, OWNER_WAIT};
use crate::discovery::DiscoveryError;

#[derive(Deserialize)]
struct TxnResponse {
    #[serde(default)]
    succeeded: bool,
}

#[derive(Deserialize)]
struct OwnerRange {
    header: ResponseHeader,
    #[serde(default)]
    kvs: Vec<LeasedValue>,
}

#[derive(Deserialize)]
struct LeasedValue {
    #[serde(default, deserialize_with = "int64")]
    lease: i64,
    /// Base64.
    #[serde(default)]
    value: String,
}

impl EtcdBackend {
    /// A lease of the lock's TTL (whole seconds, rounded up).
    pub(in crate::discovery) async fn grant_lock_lease(
        &self,
        spec: &LockSpec,
    ) -> Result<String, DiscoveryError> {
        let body = json!({ "TTL": ttl_seconds(spec.ttl) });
        let grant: LeaseGrant = self
            .post_json(call("lock lease grant"), "/v3/lease/grant", &body)
            .await?;
        Ok(grant.id.to_string())
    }

    /// Whether the lease is still alive after a keepalive.
    pub(in crate::discovery) async fn renew_lock_lease(
        &self,
        lease: &str,
    ) -> Result<bool, DiscoveryError> {
        Ok(self.keep_alive(parse_lease(lease)?).await? > 0)
    }

    pub(in crate::discovery) async fn revoke_lock_lease(
        &self,
        lease: &str,
    ) -> Result<(), DiscoveryError> {
        self.revoke(parse_lease(lease)?).await
    }

    /// Puts the holder's value under the lease if the key does not exist: whether it did.
    pub(in crate::discovery) async fn create_if_absent(
        &self,
        spec: &LockSpec,
        lease: &str,
    ) -> Result<bool, DiscoveryError> {
        let key = encode(&spec.key);
        let body = json!({
            "compare": [{"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": "0"}],
            "success": [{"request_put": {"key": key, "value": encode(&spec.value), "lease": lease}}],
        });
        let answer: TxnResponse = self
            .post_json(call("lock acquire"), "/v3/kv/txn", &body)
            .await?;
        Ok(answer.succeeded)
    }

    /// The lease holding `key` (none when the key is absent); with `index > 0`, first
    /// waits for a change to the key after that revision.
    pub(in crate::discovery) async fn key_owner(
        &self,
        key: &str,
        index: u64,
    ) -> Result<KeyOwner, DiscoveryError> {
        if index > 0 {
            let range = json!({ "key": encode(key) });
            self.watch_range(call("lock watch"), range, index, OWNER_WAIT)
                .await?;
        }
        let range: OwnerRange = self
            .post_json(
                call("lock watch"),
                "/v3/kv/range",
                &json!({ "key": encode(key) }),
            )
            .await?;
        let held = range.kvs.first().filter(|kv| kv.lease != 0);
        Ok(KeyOwner {
            holder: held.map(|kv| kv.lease.to_string()),
            value: held
                .and_then(|kv| BASE64.decode(&kv.value).ok())
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            index: range.header.revision,
        })
    }
}

fn parse_lease(lease: &str) -> Result<i64, DiscoveryError> {
    lease
        .parse()
        .map_err(|_| call("lock lease").invalid(format!("not a lease ID: {lease:?}")))
}
