//! The etcd backend: etcd v3 through its JSON gateway (docs/design.md, "Discovery") **\[beyond\]**.
//!
//! Owns the key layout and the lease of every service it registered. Each healthy instance
//! is the key `<prefix>/<service>/<ID>` holding `{"ID","Name","Address","Port","Tags"}`,
//! attached to a lease of the check's TTL. It must not know about jobs or events.
//!
//! Choices where Consul has a concept etcd lacks:
//! - Status: the catalog holds only passing instances. Registering with an initial status
//!   of `warning` or `critical` puts nothing (the first passing check does).
//! - Heartbeat: a lease keepalive; if the lease is gone (expired, revoked, etcd restored),
//!   a new lease is granted and the key put again. Check output is not stored.
//! - A failing check revokes the lease at once (the key disappears), as Consul's check goes
//!   critical at once; a job that simply stops heartbeating loses its key when the lease
//!   lapses.
//! - Watches: a query with an index opens `/v3/watch` on the service's prefix from the next
//!   revision and returns at the first change or when the wait ends, then reads the prefix
//!   with `/v3/kv/range`; the index is etcd's revision. `dc` has no meaning and is ignored.
//!
//! Paths are the `/v3/` gateway of etcd 3.4 and later (Debian's `etcd-server` is 3.4);
//! etcd 3.3 served `/v3beta/` and is not supported. With several endpoints, a request that
//! cannot reach one tries the next; the last one that answered is tried first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

use super::http::{blocking_timeout, build_client, Call, REQUEST_TIMEOUT};
use super::{DiscoveryError, HealthyInstances, Instance, ServiceRegistration};
use crate::config::model::{CheckStatus, EtcdConfig, WatchConfig};
use crate::http_client::{Client, Response};

mod kv;
mod lock;

const BACKEND: &str = "etcd";
/// The HTTP status the gateway gives gRPC's NotFound (a lease that no longer exists).
const NOT_FOUND: u16 = 404;

/// A client of an etcd cluster.
#[derive(Debug)]
pub(crate) struct EtcdBackend {
    client: Client,
    endpoints: Vec<String>,
    /// The endpoint that answered last.
    preferred: AtomicUsize,
    prefix: String,
    /// The lease of each service this process put, by service ID.
    leases: Mutex<HashMap<String, i64>>,
}

/// The value stored under each instance's key.
#[derive(Debug, Serialize, Deserialize)]
struct StoredInstance {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Address")]
    address: String,
    #[serde(rename = "Port")]
    port: u16,
    #[serde(rename = "Tags", default)]
    tags: Vec<String>,
}

impl EtcdBackend {
    pub(crate) fn new(config: &EtcdConfig) -> Result<EtcdBackend, DiscoveryError> {
        if config.endpoints.is_empty() {
            return Err(DiscoveryError::Settings {
                setting: "etcd.endpoints",
                reason: "at least one endpoint is needed".to_string(),
            });
        }
        Ok(EtcdBackend {
            client: build_client(Client::builder(), BACKEND)?,
            endpoints: config.endpoints.iter().map(|e| endpoint_url(e)).collect(),
            preferred: AtomicUsize::new(0),
            prefix: config.prefix.trim_end_matches('/').to_string(),
            leases: Mutex::new(HashMap::new()),
        })
    }

    /// Puts the instance under a fresh lease when it registers as passing; otherwise
    /// removes any earlier instance of it.
    pub(crate) async fn register(
        &self,
        service: &ServiceRegistration,
    ) -> Result<(), DiscoveryError> {
        match service.registration_status() {
            CheckStatus::Passing => self.publish(service).await,
            CheckStatus::Warning | CheckStatus::Critical => self.withdraw(service).await,
        }
    }

    /// Keeps the lease alive; puts the instance again under a new lease if it is gone.
    pub(crate) async fn pass(&self, service: &ServiceRegistration) -> Result<(), DiscoveryError> {
        if let Some(lease) = self.lease_of(service) {
            if self.keep_alive(lease).await? > 0 {
                return Ok(());
            }
            tracing::debug!(service = %service.id, "etcd lease expired; registering again");
        }
        self.publish(service).await
    }

    /// Revokes the instance's lease and deletes its key: it disappears at once.
    pub(crate) async fn withdraw(
        &self,
        service: &ServiceRegistration,
    ) -> Result<(), DiscoveryError> {
        let lease = self.lock_leases().remove(&service.id);
        if let Some(lease) = lease {
            self.revoke(lease).await?;
        }
        let key = self.key(service);
        self.post(
            call("deregister"),
            "/v3/kv/deleterange",
            &json!({ "key": encode(&key) }),
        )
        .await
        .map(drop)
    }

    /// The instances under `<prefix>/<name>/` carrying the watch's tag (if any). With
    /// `index > 0`, first waits until something under the prefix changes after revision
    /// `index`, at most the watch's interval.
    pub(crate) async fn healthy_instances(
        &self,
        watch: &WatchConfig,
        index: u64,
    ) -> Result<HealthyInstances, DiscoveryError> {
        let prefix = format!("{}/{}/", self.prefix, watch.name);
        if index > 0 {
            self.wait_for_change(&prefix, index, watch.interval).await?;
        }
        let body = json!({ "key": encode(&prefix), "range_end": encode(&prefix_end(&prefix)) });
        let range: RangeResponse = self
            .post_json(call("health query"), "/v3/kv/range", &body)
            .await?;
        let instances = range
            .kvs
            .iter()
            .filter_map(|kv| decode_instance(&kv.value))
            .filter(|stored| {
                watch
                    .tag
                    .as_ref()
                    .is_none_or(|tag| stored.tags.contains(tag))
            })
            .map(|stored| Instance {
                id: stored.id,
                address: stored.address,
                port: stored.port,
            })
            .collect();
        Ok(HealthyInstances {
            instances,
            index: range.header.revision,
        })
    }

    async fn publish(&self, service: &ServiceRegistration) -> Result<(), DiscoveryError> {
        let grant: LeaseGrant = self
            .post_json(
                call("lease grant"),
                "/v3/lease/grant",
                &json!({ "TTL": ttl_seconds(service.ttl) }),
            )
            .await?;
        let value = StoredInstance {
            id: service.id.clone(),
            name: service.name.clone(),
            address: service.address.to_string(),
            port: service.port,
            tags: service.tags.clone(),
        };
        let value = serde_json::to_string(&value).expect("plain data serializes");
        let body = json!({
            "key": encode(&self.key(service)),
            "value": encode(&value),
            "lease": grant.id.to_string(),
        });
        self.post(call("register"), "/v3/kv/put", &body).await?;
        self.lock_leases().insert(service.id.clone(), grant.id);
        Ok(())
    }

    /// The lease's remaining TTL in seconds; 0 when the lease no longer exists.
    async fn keep_alive(&self, lease: i64) -> Result<i64, DiscoveryError> {
        let body = json!({ "ID": lease.to_string() });
        let answer: StreamMessage<LeaseKeepAlive> = self
            .post_json(call("lease keepalive"), "/v3/lease/keepalive", &body)
            .await?;
        Ok(answer.result.map_or(0, |result| result.ttl))
    }

    /// Revokes `lease`; one that no longer exists is already what we want.
    async fn revoke(&self, lease: i64) -> Result<(), DiscoveryError> {
        let body = json!({ "ID": lease.to_string() });
        match self
            .post(call("lease revoke"), "/v3/lease/revoke", &body)
            .await
        {
            Err(DiscoveryError::Rejected {
                status: NOT_FOUND, ..
            }) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Returns when a key under `prefix` changes after revision `index`, when the watch
    /// ends, or after `wait` (not an error: the caller reads the prefix either way).
    async fn wait_for_change(
        &self,
        prefix: &str,
        index: u64,
        wait: Duration,
    ) -> Result<(), DiscoveryError> {
        let range = json!({ "key": encode(prefix), "range_end": encode(&prefix_end(prefix)) });
        self.watch_range(call("watch"), range, index, wait).await
    }

    /// Returns when a key of `range` (`{"key"[, "range_end"]}`) changes after revision
    /// `index`, when the watch ends, or after `wait`.
    async fn watch_range(
        &self,
        call: Call,
        mut range: Value,
        index: u64,
        wait: Duration,
    ) -> Result<(), DiscoveryError> {
        range["start_revision"] = json!((index + 1).to_string());
        let body = json!({ "create_request": range });
        let watching = async {
            let response = self
                .send(call, "/v3/watch", &body, blocking_timeout(wait))
                .await?;
            read_until_event(call, response).await
        };
        tokio::time::timeout(wait, watching).await.unwrap_or(Ok(()))
    }

    async fn post(&self, call: Call, path: &str, body: &Value) -> Result<Response, DiscoveryError> {
        self.send(call, path, body, REQUEST_TIMEOUT).await
    }

    async fn post_json<T: DeserializeOwned>(
        &self,
        call: Call,
        path: &str,
        body: &Value,
    ) -> Result<T, DiscoveryError> {
        let response = self.post(call, path, body).await?;
        call.decode(response).await
    }

    /// POSTs to the preferred endpoint, then to the others while they are unreachable.
    async fn send(
        &self,
        call: Call,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Response, DiscoveryError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_error = None;
        for offset in 0..self.endpoints.len() {
            let at = (first + offset) % self.endpoints.len();
            let url = format!("{}{path}", self.endpoints[at]);
            let request = self.client.post(url).json(body).timeout(timeout);
            match call.send(request).await {
                Err(error @ DiscoveryError::Unreachable { .. }) => last_error = Some(error),
                answered => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return answered;
                }
            }
        }
        Err(last_error.expect("there is at least one endpoint"))
    }

    fn key(&self, service: &ServiceRegistration) -> String {
        format!("{}/{}/{}", self.prefix, service.name, service.id)
    }

    fn lease_of(&self, service: &ServiceRegistration) -> Option<i64> {
        self.lock_leases().get(&service.id).copied()
    }

    fn lock_leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An endpoint as a base URL: `etcd:2379` means `http://etcd:2379`; no trailing slash.
fn endpoint_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

fn call(operation: &'static str) -> Call {
    Call {
        backend: BACKEND,
        operation,
    }
}

/// Reads the watch stream (one JSON message per line) until a message that carries events,
/// cancels the watch or reports an error, or until the stream ends.
async fn read_until_event(call: Call, mut response: Response) -> Result<(), DiscoveryError> {
    let mut pending = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| call.unreachable(e))? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let message: StreamMessage<WatchResult> =
                serde_json::from_slice(&line).map_err(|e| call.invalid(e))?;
            if message.error.is_some() {
                return Err(call.invalid(format!("watch failed: {:?}", message.error)));
            }
            if message
                .result
                .is_some_and(|r| r.canceled || !r.events.is_empty())
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Lease TTLs are whole seconds: round up, at least 1.
fn ttl_seconds(ttl: Duration) -> u64 {
    let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    seconds.max(1)
}

fn encode(text: &str) -> String {
    BASE64.encode(text)
}

/// A stored value that is not one of ours is skipped: the prefix is shared territory.
fn decode_instance(value: &str) -> Option<StoredInstance> {
    let bytes = BASE64.decode(value).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The end of the key range holding every key that starts with `prefix`: the prefix with
/// its last byte incremented (etcd's own rule).
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            break;
        }
    }
    // Our prefixes are UTF-8 ending in '/', so the increment stays ASCII.
    String::from_utf8_lossy(&end).into_owned()
}

/// The gateway encodes int64 as JSON strings and leaves out zero values. Hand-written
/// because it is one small function (serde_with would be a whole crate for it).
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Text(String),
        Number(i64),
    }
    match Int64::deserialize(deserializer)? {
        Int64::Text(text) => text.parse().map_err(serde::de::Error::custom),
        Int64::Number(number) => Ok(number),
    }
}

fn revision<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = int64(deserializer)?;
    u64::try_from(value).map_err(serde::de::Error::custom)
}

#[derive(Deserialize)]
struct LeaseGrant {
    #[serde(rename = "ID", deserialize_with = "int64")]
    id: i64,
}

#[derive(Deserialize)]
struct LeaseKeepAlive {
    #[serde(rename = "TTL", default, deserialize_with = "int64")]
    ttl: i64,
}

#[derive(Deserialize)]
struct ResponseHeader {
    #[serde(default, deserialize_with = "revision")]
    revision: u64,
}

#[derive(Deserialize)]
struct RangeResponse {
    header: ResponseHeader,
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(default)]
    value: String,
}

/// One message of a gateway stream: `{"result": ...}` or `{"error": ...}`.
#[derive(Deserialize)]
struct StreamMessage<T> {
    result: Option<T>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WatchResult {
    #[serde(default)]
    canceled: bool,
    #[serde(default)]
    events: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_http() {
        assert_eq!(endpoint_url("etcd:2379"), "http://etcd:2379");
        assert_eq!(endpoint_url("https://etcd:2379/"), "https://etcd:2379");
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/containerpilot/app/"), "/containerpilot/app0");
    }

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(Duration::from_secs(10)), 10);
        assert_eq!(ttl_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_seconds(Duration::from_millis(1)), 1);
    }

    #[test]
    fn gateway_numbers_arrive_as_strings_or_numbers() {
        let grant: LeaseGrant = serde_json::from_str(r#"{"ID":"7587862072907213059"}"#).unwrap();
        assert_eq!(grant.id, 7587862072907213059);
        let alive: StreamMessage<LeaseKeepAlive> =
            serde_json::from_str(r#"{"result":{"ID":"1","TTL":5}}"#).unwrap();
        assert_eq!(alive.result.unwrap().ttl, 5);
        let gone: StreamMessage<LeaseKeepAlive> =
            serde_json::from_str(r#"{"result":{"ID":"1"}}"#).unwrap();
        assert_eq!(gone.result.unwrap().ttl, 0);
    }

    #[test]
    fn foreign_values_are_skipped() {
        assert!(decode_instance(&encode("not json")).is_none());
        assert!(decode_instance("%%% not base64").is_none());
        let ours = decode_instance(&encode(
            r#"{"ID":"a-h","Name":"a","Address":"10.0.0.1","Port":80,"Tags":["x"]}"#,
        ))
        .unwrap();
        assert_eq!((ours.id.as_str(), ours.port), ("a-h", 80));
    }
}
