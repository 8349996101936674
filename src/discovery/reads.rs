//! **\[beyond\]** The catalog and KV reads behind render templates: one [`Dependency`]
//! (a service query, the service list, a KV key or prefix, the datacenters) read as a
//! blocking query, decoded into the template's [`Fetched`] data.
//!
//! Consul answers all of them (`/v1/health/service`, `/v1/catalog/services`, `/v1/kv`,
//! `/v1/catalog/datacenters`); etcd answers service queries only (its registrations carry
//! no health status other than present, nor a datacenter). A KV watch can reuse
//! [`Discovery::read`] with a [`Dependency::Key`] or [`Dependency::Prefix`].

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::outage::CallKind;
use super::{Backend, ConsulBackend, Discovery, DiscoveryError, EtcdBackend};
use crate::config::model::WatchConfig;
use crate::config::template::{
    CatalogService, Dependency, Fetched, KeyPair, ServiceInstance, ServiceQuery,
};

/// One answer: the data, and the index to block on next (0: the endpoint does not
/// block, so poll it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub fetched: Fetched,
    pub index: u64,
}

impl Discovery {
    /// Reads `dependency`; with `index > 0`, first waits (at most `wait`) until it
    /// changes past `index`.
    pub async fn read(
        &self,
        dependency: &Dependency,
        index: u64,
        wait: Duration,
    ) -> Result<Read, DiscoveryError> {
        self.observe(CallKind::Query, async {
            match &self.backend {
                Backend::Consul(consul) => consul_read(consul, dependency, index, wait).await,
                Backend::Etcd(etcd) => etcd_read(etcd, dependency, index, wait).await,
            }
        })
        .await
    }
}

async fn consul_read(
    consul: &ConsulBackend,
    dependency: &Dependency,
    index: u64,
    wait: Duration,
) -> Result<Read, DiscoveryError> {
    let (operation, segments, params) = consul_request(dependency);
    // Consul's datacenter list does not block (and sends no index): poll it.
    let index = match dependency {
        Dependency::Datacenters => 0,
        _ => index,
    };
    let (body, index) = consul
        .read(operation, &segments, &params, index, wait)
        .await?;
    let fetched =
        decode_answer(dependency, body).map_err(|error| DiscoveryError::InvalidResponse {
            backend: "consul",
            operation,
            reason: error.to_string(),
        })?;
    Ok(Read { fetched, index })
}

type Request<'d> = (&'static str, Vec<&'d str>, Vec<(&'static str, &'d str)>);

/// The operation's name (for errors), path and parameters that read `dependency`.
fn consul_request(dependency: &Dependency) -> Request<'_> {
    match dependency {
        Dependency::Service(query) => (
            "service query",
            vec!["v1", "health", "service", &query.name],
            service_params(query),
        ),
        Dependency::Services { dc } => (
            "services query",
            vec!["v1", "catalog", "services"],
            dc.as_deref().map(|dc| ("dc", dc)).into_iter().collect(),
        ),
        Dependency::Key(key) => ("KV read", kv_segments(key), Vec::new()),
        Dependency::Prefix(prefix) => ("KV list", kv_segments(prefix), vec![("recurse", "")]),
        Dependency::Datacenters => (
            "datacenters query",
            vec!["v1", "catalog", "datacenters"],
            Vec::new(),
        ),
    }
}

fn decode_answer(
    dependency: &Dependency,
    body: Option<Value>,
) -> Result<Fetched, serde_json::Error> {
    Ok(match dependency {
        Dependency::Service(_) => {
            let entries: Vec<HealthEntry> = decode(body)?;
            Fetched::Instances(
                entries
                    .into_iter()
                    .map(HealthEntry::into_instance)
                    .collect(),
            )
        }
        Dependency::Services { .. } => {
            let services: BTreeMap<String, Option<Vec<String>>> = decode(body)?;
            Fetched::Services(
                services
                    .into_iter()
                    .map(|(name, tags)| CatalogService {
                        name,
                        tags: tags.unwrap_or_default(),
                    })
                    .collect(),
            )
        }
        Dependency::Key(_) => {
            let pairs: Vec<KvEntry> = decode(body)?;
            Fetched::Key(
                pairs
                    .into_iter()
                    .next()
                    .map(|entry| entry.into_pair().value),
            )
        }
        Dependency::Prefix(_) => {
            let pairs: Vec<KvEntry> = decode(body)?;
            Fetched::Pairs(pairs.into_iter().map(KvEntry::into_pair).collect())
        }
        Dependency::Datacenters => Fetched::Datacenters(decode(body)?),
    })
}

/// A missing body (404) decodes as an empty list.
fn decode<T: serde::de::DeserializeOwned + Default>(
    body: Option<Value>,
) -> Result<T, serde_json::Error> {
    match body {
        None | Some(Value::Null) => Ok(T::default()),
        Some(body) => serde_json::from_value(body),
    }
}

/// A KV path as URL segments (`a/b/` keeps its trailing slash).
fn kv_segments(path: &str) -> Vec<&str> {
    ["v1", "kv"].into_iter().chain(path.split('/')).collect()
}

/// consul-template asks Consul to filter by health only for `passing` alone; other
/// filters are applied to the instances' aggregated status.
fn service_params(query: &ServiceQuery) -> Vec<(&'static str, &str)> {
    let mut params = Vec::new();
    if query.passing_only() {
        params.push(("passing", "1"));
    }
    let optional = [
        ("tag", &query.tag),
        ("dc", &query.dc),
        ("near", &query.near),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            params.push((name, value.as_str()));
        }
    }
    params
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    node: NodeEntry,
    service: ServiceEntry,
    #[serde(default)]
    checks: Vec<CheckEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeEntry {
    #[serde(default)]
    node: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    datacenter: String,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceEntry {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    address: String,
    port: u16,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct CheckEntry {
    #[serde(rename = "CheckID", default)]
    id: String,
    #[serde(rename = "Status", default)]
    status: String,
}

impl HealthEntry {
    fn into_instance(self) -> ServiceInstance {
        let status = aggregated_status(&self.checks);
        let address = if self.service.address.is_empty() {
            self.node.address.clone()
        } else {
            self.service.address
        };
        ServiceInstance {
            node: self.node.node,
            node_address: self.node.address,
            node_datacenter: self.node.datacenter,
            node_meta: self.node.meta.unwrap_or_default(),
            service_meta: self.service.meta.unwrap_or_default(),
            address,
            id: self.service.id,
            name: self.service.service,
            tags: self.service.tags.unwrap_or_default(),
            status,
            port: self.service.port,
        }
    }
}

/// Consul's `HealthChecks.AggregatedStatus`: maintenance, then critical, then warning,
/// then passing.
fn aggregated_status(checks: &[CheckEntry]) -> String {
    let maintenance = checks
        .iter()
        .any(|c| c.id == "_node_maintenance" || c.id.starts_with("_service_maintenance:"));
    let has = |status: &str| checks.iter().any(|c| c.status == status);
    let status = if maintenance {
        "maintenance"
    } else if has("critical") {
        "critical"
    } else if has("warning") {
        "warning"
    } else {
        "passing"
    };
    status.to_string()
}

#[derive(Deserialize)]
struct KvEntry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value", default)]
    value: Option<String>,
}

impl KvEntry {
    /// Consul sends values base64-encoded; a key stored without a value has `null`.
    fn into_pair(self) -> KeyPair {
        let bytes = self
            .value
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .unwrap_or_default();
        KeyPair {
            key: self.key,
            value: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

/// etcd holds registrations only: service queries read them as a watch does.
async fn etcd_read(
    etcd: &EtcdBackend,
    dependency: &Dependency,
    index: u64,
    wait: Duration,
) -> Result<Read, DiscoveryError> {
    let Dependency::Service(query) = dependency else {
        return Err(DiscoveryError::Settings {
            setting: "etcd",
            reason: format!("{dependency} cannot be read from etcd: only `service` works there"),
        });
    };
    let watch = WatchConfig {
        name: query.name.clone(),
        interval: wait,
        tag: query.tag.clone(),
        dc: query.dc.clone(),
    };
    let healthy = etcd.healthy_instances(&watch, index).await?;
    let instances = healthy
        .instances
        .into_iter()
        .map(|instance| ServiceInstance {
            address: instance.address,
            id: instance.id,
            name: query.name.clone(),
            status: "passing".to_string(),
            port: instance.port,
            ..ServiceInstance::default()
        })
        .collect();
    Ok(Read {
        fetched: Fetched::Instances(instances),
        index: healthy.index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(list: &[(&str, &str)]) -> Vec<CheckEntry> {
        list.iter()
            .map(|(id, status)| CheckEntry {
                id: id.to_string(),
                status: status.to_string(),
            })
            .collect()
    }

    #[test]
    fn the_worst_check_decides_an_instances_status() {
        assert_eq!(aggregated_status(&[]), "passing");
        let mixed = checks(&[("serfHealth", "passing"), ("service:a", "warning")]);
        assert_eq!(aggregated_status(&mixed), "warning");
        let bad = checks(&[("service:a", "critical"), ("b", "warning")]);
        assert_eq!(aggregated_status(&bad), "critical");
        let maint = checks(&[("_service_maintenance:a", "critical"), ("b", "passing")]);
        assert_eq!(aggregated_status(&maint), "maintenance");
    }

    #[test]
    fn kv_values_arrive_base64_encoded() {
        let entry: KvEntry = serde_json::from_str(r#"{"Key":"a/b","Value":"aGk="}"#).unwrap();
        assert_eq!(entry.into_pair().value, "hi");
        let empty: KvEntry = serde_json::from_str(r#"{"Key":"a/","Value":null}"#).unwrap();
        assert_eq!(empty.into_pair().value, "");
        assert_eq!(kv_segments("a/b/"), ["v1", "kv", "a", "b", ""]);
    }
}
