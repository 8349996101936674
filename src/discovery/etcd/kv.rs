//! The etcd side of KV watches: `/v3/kv/range` of the key (or the prefix), and `/v3/watch`
//! on it to wait for the next change.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::{call, encode, prefix_end, EtcdBackend, ResponseHeader};
use crate::discovery::kv::{KvSnapshot, KV_WAIT};
use crate::discovery::DiscoveryError;

#[derive(Deserialize)]
struct Range {
    header: ResponseHeader,
    #[serde(default)]
    kvs: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    /// Base64, as the value.
    key: String,
    #[serde(default)]
    value: String,
}

impl EtcdBackend {
    pub(in crate::discovery) async fn kv_snapshot(
        &self,
        key: &str,
        prefix: bool,
        index: u64,
    ) -> Result<KvSnapshot, DiscoveryError> {
        let range = if prefix {
            json!({ "key": encode(key), "range_end": encode(&prefix_end(key)) })
        } else {
            json!({ "key": encode(key) })
        };
        if index > 0 {
            self.watch_range(call("kv watch"), range.clone(), index, KV_WAIT)
                .await?;
        }
        let answer: Range = self
            .post_json(call("kv watch"), "/v3/kv/range", &range)
            .await?;
        let decode = |text: String| BASE64.decode(text).map_err(|e| call("kv watch").invalid(e));
        let entries = answer
            .kvs
            .into_iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(&decode(kv.key)?).into_owned();
                Ok((key, decode(kv.value)?))
            })
            .collect::<Result<_, DiscoveryError>>()?;
        Ok(KvSnapshot {
            index: answer.header.revision,
            entries,
        })
    }
}
