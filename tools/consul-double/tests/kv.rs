//! The KV store and the catalog listings over real HTTP: `GET /v1/kv` with `?recurse`,
//! `?keys`, `?raw` and blocking queries, `PUT` and `DELETE`, `/v1/catalog/services` and
//! `/v1/catalog/datacenters`, in the shapes Consul answers with.

mod common;

use common::{blocking_query, register_passing, start, Client, DEADLINE};
use serde_json::json;

fn put(client: &Client, key: &str, value: &str) {
    let answer = client.put_raw(&format!("/v1/kv/{key}"), value);
    assert_eq!((answer.status, answer.body.as_str()), (200, "true"));
}

#[test]
fn a_key_reads_back_base64_encoded_with_its_indexes() {
    let consul = start();
    let client = Client::new(&consul);
    put(&client, "app/name", "demo");
    let answer = client.get("/v1/kv/app/name");
    assert_eq!(answer.status, 200);
    let entry = &answer.json()[0];
    assert_eq!(entry["Key"], "app/name");
    assert_eq!(entry["Value"], "ZGVtbw==");
    assert_eq!(entry["Flags"], 0);
    assert_eq!(entry["CreateIndex"], entry["ModifyIndex"]);
    assert_eq!(answer.index, entry["ModifyIndex"].as_u64());
    assert_eq!(client.get("/v1/kv/app/name?raw").body, "demo");
}

#[test]
fn an_absent_key_is_a_404_with_an_index() {
    let consul = start();
    let client = Client::new(&consul);
    let answer = client.get("/v1/kv/nothing");
    assert_eq!((answer.status, answer.body.as_str()), (404, ""));
    assert!(answer.index.is_some());
}

#[test]
fn recurse_and_keys_list_a_prefix() {
    let consul = start();
    let client = Client::new(&consul);
    for (key, value) in [("svc/a", "1"), ("svc/b/c", "2"), ("svcx", "3")] {
        put(&client, key, value);
    }
    let keys: Vec<_> = client
        .get("/v1/kv/svc/?recurse")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["svc/a", "svc/b/c"]);
    assert_eq!(
        client.get("/v1/kv/svc?keys").json(),
        json!(["svc/a", "svc/b/c", "svcx"])
    );
    assert_eq!(
        client.get("/v1/kv/svc/?keys&separator=/").json(),
        json!(["svc/a", "svc/b/"])
    );
    assert_eq!(client.get("/v1/kv/none/?recurse").status, 404);
    client.delete("/v1/kv/svc/?recurse");
    assert_eq!(client.get("/v1/kv/svc?keys").json(), json!(["svcx"]));
}

#[test]
fn a_blocking_read_of_an_absent_key_returns_when_it_is_written() {
    let consul = start();
    let client = Client::new(&consul);
    let index = client.get("/v1/kv/flag").index.unwrap();
    let answer = blocking_query(&consul, "/v1/kv/flag", index, "wait=5m");
    put(&client, "flag", "on");
    let answer = answer
        .recv_timeout(DEADLINE)
        .expect("answered after the write");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()[0]["Value"], "b24=");
    assert!(answer.index.unwrap() > index);
}

#[test]
fn catalog_services_lists_names_with_their_tags_and_blocks() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "db-1", "db");
    let body = json!({"ID": "web-1", "Name": "web", "Tags": ["b", "a"], "Port": 80});
    assert_eq!(client.put("/v1/agent/service/register", &body).status, 200);
    let answer = client.get("/v1/catalog/services");
    assert_eq!(answer.json(), json!({"db": [], "web": ["a", "b"]}));
    let waiting = blocking_query(
        &consul,
        "/v1/catalog/services",
        answer.index.unwrap(),
        "wait=5m",
    );
    register_passing(&client, "cache-1", "cache");
    let changed = waiting
        .recv_timeout(DEADLINE)
        .expect("answered after the change");
    assert!(changed.json().get("cache").is_some());
    let other = client.get("/v1/catalog/services?dc=elsewhere");
    other.assert_text(500, "No path to datacenter");
}

#[test]
fn catalog_datacenters_is_the_agents_own() {
    let consul = start();
    let client = Client::new(&consul);
    assert_eq!(client.get("/v1/catalog/datacenters").json(), json!(["dc1"]));
}
