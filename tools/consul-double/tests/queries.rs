//! Health queries over real HTTP: tag and datacenter filters, `X-Consul-Index`, and
//! blocking queries (`index` + `wait`).

mod common;

use common::{blocking_query, register_passing, start, Client, DEADLINE};
use serde_json::json;

fn register_tagged(client: &Client, id: &str, tags: &[&str]) {
    let body = json!({"ID": id, "Name": "web", "Tags": tags, "Port": 80,
                      "Check": {"TTL": "30s", "Status": "passing"}});
    assert_eq!(client.put("/v1/agent/service/register", &body).status, 200);
}

#[test]
fn tag_filter_keeps_instances_with_every_tag_case_insensitively() {
    let consul = start();
    let client = Client::new(&consul);
    register_tagged(&client, "web-a", &["primary", "v1"]);
    register_tagged(&client, "web-b", &["primary"]);
    register_tagged(&client, "web-c", &[]);

    assert_eq!(
        client
            .get("/v1/health/service/web?tag=primary")
            .instance_ids(),
        ["web-a", "web-b"]
    );
    assert_eq!(
        client
            .get("/v1/health/service/web?tag=primary&tag=v1")
            .instance_ids(),
        ["web-a"]
    );
    assert_eq!(
        client
            .get("/v1/health/service/web?tag=PRIMARY&passing=1")
            .instance_ids()
            .len(),
        2
    );
    assert!(client
        .get("/v1/health/service/web?tag=v2")
        .instance_ids()
        .is_empty());
    assert_eq!(
        client
            .get("/v1/catalog/service/web?tag=v1")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn datacenter_other_than_the_agents_has_no_path() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");

    assert_eq!(
        client.get("/v1/health/service/web?dc=dc1").instance_ids(),
        ["web-1"]
    );
    let other = client.get("/v1/health/service/web?dc=eu-west");
    other.assert_text(500, "No path to datacenter");
}

#[test]
fn unknown_service_is_an_empty_list_with_an_index() {
    let consul = start();
    let client = Client::new(&consul);
    let answer = client.get("/v1/health/service/nothing");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), json!([]));
    assert!(answer.index.unwrap() >= 1, "Consul never reports index 0");
}

#[test]
fn index_moves_for_the_name_changed_and_not_for_others() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");
    let web_index = client.get("/v1/health/service/web").index.unwrap();

    register_passing(&client, "db-1", "db");
    assert_eq!(
        client.get("/v1/health/service/web").index.unwrap(),
        web_index
    );
    client.put_empty("/v1/agent/check/fail/service:web-1");
    assert!(client.get("/v1/health/service/web").index.unwrap() > web_index);
}

#[test]
fn blocking_query_returns_as_soon_as_the_service_changes() {
    let consul = start();
    let client = Client::new(&consul);
    let first = client.get("/v1/health/service/web?passing=1");
    assert!(first.instance_ids().is_empty());
    let index = first.index.unwrap();

    let answer = blocking_query(
        &consul,
        "/v1/health/service/web",
        index,
        "passing=1&wait=5m",
    );
    assert!(
        answer.try_recv().is_err(),
        "still blocked before any change"
    );
    register_passing(&client, "web-1", "web");

    let changed = answer
        .recv_timeout(DEADLINE)
        .expect("answered after the change");
    assert_eq!(changed.status, 200);
    assert_eq!(changed.instance_ids(), ["web-1"]);
    assert!(changed.index.unwrap() > index);
}

#[test]
fn blocking_query_answers_with_the_same_index_when_the_wait_ends() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");
    let index = client.get("/v1/health/service/web").index.unwrap();

    let answer = blocking_query(&consul, "/v1/health/service/web", index, "wait=1s");
    let unchanged = answer
        .recv_timeout(DEADLINE)
        .expect("answered when the wait ended");
    assert_eq!(unchanged.status, 200);
    assert_eq!(unchanged.index, Some(index));
    assert_eq!(unchanged.instance_ids(), ["web-1"]);
}

#[test]
fn query_for_an_index_already_passed_answers_at_once() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");
    let index = client.get("/v1/health/service/web").index.unwrap();
    let answer = client.get(&format!(
        "/v1/health/service/web?index={}&wait=10m",
        index - 1
    ));
    assert_eq!(answer.index, Some(index));
    let recorded = consul.requests().into_iter().last().unwrap();
    assert!(!recorded.blocked);
}

#[test]
fn bad_blocking_parameters_are_rejected() {
    let consul = start();
    let client = Client::new(&consul);
    let wait = client.get("/v1/health/service/web?index=1&wait=soon");
    wait.assert_text(400, "Invalid wait time");
    let index = client.get("/v1/health/service/web?index=-3");
    index.assert_text(400, "Invalid index");
}
