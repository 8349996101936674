//! Reading the catalog's KV store for KV watches **\[beyond\]**: one key, or every key
//! under a prefix, with the index to block on for the next change (Consul's blocking
//! queries, etcd's watches). The backends' requests are in `consul::kv` and `etcd::kv`.

use std::time::Duration;

use super::outage::CallKind;
use super::{Backend, Discovery, DiscoveryError};

/// The longest one KV read blocks before answering unchanged.
pub(super) const KV_WAIT: Duration = Duration::from_secs(60);

/// The keys read and their values (decoded: the bytes stored), sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvSnapshot {
    pub index: u64,
    pub entries: Vec<(String, Vec<u8>)>,
}

impl Discovery {
    /// The value of `key` (with `prefix`, of every key under it). With `index > 0`, first
    /// waits until something there changes after that index, at most a minute.
    pub async fn kv_snapshot(
        &self,
        key: &str,
        prefix: bool,
        index: u64,
    ) -> Result<KvSnapshot, DiscoveryError> {
        self.observe(CallKind::Query, async {
            match &self.backend {
                Backend::Consul(consul) => consul.kv_snapshot(key, prefix, index).await,
                Backend::Etcd(etcd) => etcd.kv_snapshot(key, prefix, index).await,
            }
        })
        .await
    }
}
