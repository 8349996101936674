//! The Consul side of KV watches: `GET /v1/kv/<key>[?recurse][&index=&wait=]`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;

use super::lock::kv_path;
use super::{call, ConsulBackend};
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
        let decode = |value: Option<String>| {
            let value = value.unwrap_or_default();
            BASE64
                .decode(value)
                .map_err(|e| call("kv watch").invalid(e))
        };
        let entries = entries
            .into_iter()
            .map(|entry| Ok((entry.key, decode(entry.value)?)))
            .collect::<Result<_, DiscoveryError>>()?;
        Ok(KvSnapshot { index, entries })
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
        let params: &[(&str, &str)] = if prefix { &[("recurse", "")] } else { &[] };
        let (body, index) = self
            .read(operation, &kv_path(key), params, index, KV_WAIT)
            .await?;
        let entries = match body {
            None => Vec::new(),
            Some(body) => serde_json::from_value(body).map_err(|e| call(operation).invalid(e))?,
        };
        Ok((index, entries))
    }
}
