//! The JSON bodies of the read endpoints, in the shapes Consul 1.x answers with
//! (`/v1/health/service`, `/v1/catalog/service`, `/v1/catalog/services`, `/v1/agent/services`,
//! `/v1/agent/checks`).
//!
//! Owns presentation only: it reads the agent and never changes it. Fields a client of this
//! subset never sets (Connect, Proxy, Weights) are rendered with Consul's defaults so that
//! clients decoding the full shape see what they would see from Consul.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use crate::agent::{Agent, CheckEntry, Instance, Node, ServiceEntry, NODE_INDEX};
use crate::state::Service;

/// The node's ID: Consul generates a UUID per node; the double has one node.
const NODE_ID: &str = "c0a5d0b1-e000-4000-8000-000000000001";

/// `GET /v1/health/service/<name>`: one entry per instance, node check first.
pub(crate) fn health_service(agent: &Agent, instances: &[Instance]) -> Value {
    let node = agent.node();
    instances
        .iter()
        .map(|instance| {
            let mut checks = vec![serf_health_check(node)];
            checks.extend(
                instance
                    .checks
                    .iter()
                    .map(|check| check_json(node, check, &instance.service.service.tags)),
            );
            json!({
                "Node": node_json(node),
                "Service": health_service_json(instance.service),
                "Checks": checks,
            })
        })
        .collect()
}

/// `GET /v1/catalog/service/<name>`: the flattened node+service shape.
pub(crate) fn catalog_service(agent: &Agent, instances: &[Instance]) -> Value {
    let node = agent.node();
    instances
        .iter()
        .map(|instance| {
            let entry = instance.service;
            let service = &entry.service;
            let mut object = json!({
                "ID": NODE_ID,
                "Node": node.name,
                "Address": node.address,
                "Datacenter": node.datacenter,
                "TaggedAddresses": node_tagged_addresses(node),
                "NodeMeta": node_meta(),
                "ServiceKind": "",
                "ServiceID": service.id,
                "ServiceName": service.name,
                "ServiceTags": service.tags,
                "ServiceAddress": service.address,
                "ServiceWeights": default_weights(),
                "ServiceMeta": service.meta,
                "ServicePort": service.port,
                "ServiceEnableTagOverride": service.enable_tag_override,
                "ServiceProxy": empty_proxy(),
                "ServiceConnect": {},
                "CreateIndex": entry.create_index,
                "ModifyIndex": entry.modify_index,
            });
            insert_service_tagged_addresses(&mut object, "ServiceTaggedAddresses", service);
            object
        })
        .collect()
}

/// `GET /v1/catalog/services`: each service name with the union of its instances' tags.
pub(crate) fn catalog_services<'a>(services: impl Iterator<Item = &'a ServiceEntry>) -> Value {
    let mut tags: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for entry in services {
        let names = tags.entry(&entry.service.name).or_default();
        names.extend(entry.service.tags.iter().map(String::as_str));
        names.sort_unstable();
        names.dedup();
    }
    json!(tags)
}

/// `GET /v1/agent/services`: a map from service ID to the agent's view of the service.
pub(crate) fn agent_services<'a>(
    agent: &Agent,
    services: impl Iterator<Item = &'a ServiceEntry>,
) -> Value {
    let datacenter = &agent.node().datacenter;
    let map: Map<String, Value> = services
        .map(|entry| {
            let mut object = service_json(&entry.service);
            object["Datacenter"] = json!(datacenter);
            (entry.service.id.clone(), object)
        })
        .collect();
    Value::Object(map)
}

/// `GET /v1/agent/checks`: a map from check ID to the check.
pub(crate) fn agent_checks<'a>(
    agent: &Agent,
    checks: impl Iterator<Item = &'a CheckEntry>,
) -> Value {
    let node = agent.node();
    let map: Map<String, Value> = checks
        .map(|entry| {
            let tags = agent
                .service(&entry.check.service_id)
                .map(|service| service.tags.clone())
                .unwrap_or_default();
            (entry.check.id.clone(), check_json(node, entry, &tags))
        })
        .collect();
    Value::Object(map)
}

fn node_json(node: &Node) -> Value {
    json!({
        "ID": NODE_ID,
        "Node": node.name,
        "Address": node.address,
        "Datacenter": node.datacenter,
        "TaggedAddresses": node_tagged_addresses(node),
        "Meta": node_meta(),
        "CreateIndex": NODE_INDEX,
        "ModifyIndex": NODE_INDEX,
    })
}

fn node_tagged_addresses(node: &Node) -> Value {
    json!({
        "lan": node.address,
        "lan_ipv4": node.address,
        "wan": node.address,
        "wan_ipv4": node.address,
    })
}

fn node_meta() -> Value {
    json!({ "consul-network-segment": "" })
}

fn health_service_json(entry: &ServiceEntry) -> Value {
    let mut object = service_json(&entry.service);
    object["Proxy"] = empty_proxy();
    object["Connect"] = json!({});
    object["PeerName"] = json!("");
    object["CreateIndex"] = json!(entry.create_index);
    object["ModifyIndex"] = json!(entry.modify_index);
    object
}

/// The fields the agent's and the health endpoint's service objects share.
fn service_json(service: &Service) -> Value {
    let mut object = json!({
        "ID": service.id,
        "Service": service.name,
        "Tags": service.tags,
        "Address": service.address,
        "Meta": service.meta,
        "Port": service.port,
        "Weights": default_weights(),
        "EnableTagOverride": service.enable_tag_override,
    });
    insert_service_tagged_addresses(&mut object, "TaggedAddresses", service);
    object
}

/// Consul adds `lan_ipv4`/`wan_ipv4` (or the IPv6 pair) when the service address is an IP,
/// and leaves the field out otherwise.
fn insert_service_tagged_addresses(object: &mut Value, field: &str, service: &Service) {
    let Ok(ip) = service.address.parse::<IpAddr>() else {
        return;
    };
    let (lan, wan) = if ip.is_ipv4() {
        ("lan_ipv4", "wan_ipv4")
    } else {
        ("lan_ipv6", "wan_ipv6")
    };
    let address = json!({ "Address": service.address, "Port": service.port });
    object[field] = json!({ lan: address.clone(), wan: address });
}

fn default_weights() -> Value {
    json!({ "Passing": 1, "Warning": 1 })
}

fn empty_proxy() -> Value {
    json!({ "Mode": "", "MeshGateway": {}, "Expose": {} })
}

/// The node's Serf health check, which Consul lists with every instance on the node.
fn serf_health_check(node: &Node) -> Value {
    json!({
        "Node": node.name,
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": "passing",
        "Notes": "",
        "Output": "Agent alive and reachable",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": NODE_INDEX,
        "ModifyIndex": NODE_INDEX,
    })
}

fn check_json(node: &Node, entry: &CheckEntry, service_tags: &[String]) -> Value {
    let check = &entry.check;
    json!({
        "Node": node.name,
        "CheckID": check.id,
        "Name": check.name,
        "Status": check.status.as_str(),
        "Notes": check.notes,
        "Output": check.output,
        "ServiceID": check.service_id,
        "ServiceName": check.service_name,
        "ServiceTags": service_tags,
        "Type": check.kind,
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
    })
}
