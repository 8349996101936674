//! The Consul side of KV watches: `GET /v1/kv/<key>[?recurse][&index=&wait=]`.

use serde::Deserialize;

use super::lock::kv_path;
use super::{call, consul_index, ConsulBackend};
use crate::discovery::go_duration;
use crate::discovery::http::{blocking_timeout, REQUEST_TIMEOUT};
use crate::discovery::kv::{KvSnapshot, KV_WAIT};
use crate::discovery::DiscoveryError;

/// One entry of a KV read.
#[derive(Deserialize)]
pub(super) struct Entry {
    #[serde(rename = "Key")]
    pub key: String,
    /// Base64, null when empty.
    #[serde(rename = "Value", default)]
    pub value: Option<String>,
    /// The session holding the key's lock.
    #[serde(rename = "Session", default)]
    pub session: Option<String>,
}

impl ConsulBackend {
    pub(in crate::discovery) async fn kv_snapshot(
        &self,
        key: &str,
        prefix: bool,
        index: u64,
    ) -> Result<KvSnapshot, DiscoveryError> {
        let (index, entries) = self.kv_get("kv watch", key, prefix, index).await?;
        Ok(KvSnapshot {
            index,
            entries: entries
                .into_iter()
                .map(|entry| (entry.key, entry.value.unwrap_or_default()))
                .collect(),
        })
    }

    /// `GET /v1/kv/<key>[?recurse][&index=&wait=]`: the index and the entries (none for
    /// an absent key, which Consul answers with a 404 that still carries the index).
    pub(super) async fn kv_get(
        &self,
        operation: &'static str,
        key: &str,
        prefix: bool,
        index: u64,
    ) -> Result<(u64, Vec<Entry>), DiscoveryError> {
        let call = call(operation);
        let mut url = self.url(&kv_path(key));
        let timeout = {
            let mut query = url.query_pairs_mut();
            if prefix {
                query.append_pair("recurse", "");
            }
            if index > 0 {
                query
                    .append_pair("index", &index.to_string())
                    .append_pair("wait", &go_duration(KV_WAIT));
                blocking_timeout(KV_WAIT)
            } else {
                REQUEST_TIMEOUT
            }
        };
        let response = call
            .send_or_absent(self.client.get(url).timeout(timeout))
            .await?;
        let index = consul_index(response.headers());
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok((index, Vec::new()));
        }
        Ok((index, call.decode(response).await?))
    }
}
