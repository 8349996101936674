//! The agent write endpoints over real HTTP: registration, deregistration, TTL checks,
//! critical-service reaping and maintenance, checked through the read endpoints.

mod common;

use common::{register_passing, start, ttl_service, Client, DEADLINE};
use consul_double::Status;
use serde_json::json;

#[test]
fn registered_ttl_service_appears_with_consuls_check_naming() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-host1", "web");

    let health = client.get("/v1/health/service/web").json();
    let entry = &health[0];
    assert_eq!(entry["Service"]["ID"], "web-host1");
    assert_eq!(entry["Service"]["Service"], "web");
    assert_eq!(entry["Service"]["Address"], "10.0.0.5");
    assert_eq!(entry["Service"]["Port"], 8080);
    assert_eq!(entry["Node"]["Node"], "consul-double");
    assert_eq!(entry["Node"]["Address"], "127.0.0.1");
    assert_eq!(entry["Node"]["Datacenter"], "dc1");
    let check_ids: Vec<&str> = entry["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| check["CheckID"].as_str().unwrap())
        .collect();
    assert_eq!(check_ids, ["serfHealth", "service:web-host1"]);
    let check = &entry["Checks"][1];
    assert_eq!(check["Name"], "Service 'web' check");
    assert_eq!(check["Status"], "passing");
    assert_eq!(check["Notes"], "TTL for app");
    assert_eq!(check["ServiceID"], "web-host1");
    assert_eq!(check["Type"], "ttl");
}

#[test]
fn ttl_check_starts_critical_unless_a_status_is_given() {
    let consul = start();
    let client = Client::new(&consul);
    let mut body = ttl_service("api-1", "api", "30s", "passing");
    body["Check"].as_object_mut().unwrap().remove("Status");
    assert_eq!(client.put("/v1/agent/service/register", &body).status, 200);

    assert_eq!(
        client.get("/v1/health/service/api").instance_ids(),
        ["api-1"]
    );
    assert!(client
        .get("/v1/health/service/api?passing=1")
        .instance_ids()
        .is_empty());
    assert_eq!(
        consul.state().check("service:api-1").unwrap().status,
        Status::Critical
    );

    assert_eq!(
        client
            .put_empty("/v1/agent/check/pass/service:api-1")
            .status,
        200
    );
    assert_eq!(
        client
            .get("/v1/health/service/api?passing=true")
            .instance_ids(),
        ["api-1"]
    );
}

#[test]
fn passing_filter_drops_instances_with_any_non_passing_check() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "db-1", "db");
    register_passing(&client, "db-2", "db");
    register_passing(&client, "db-3", "db");
    client.put_empty("/v1/agent/check/warn/service:db-2?note=slow");
    client.put_empty("/v1/agent/check/fail/service:db-3");

    assert_eq!(client.get("/v1/health/service/db").instance_ids().len(), 3);
    assert_eq!(
        client.get("/v1/health/service/db?passing").instance_ids(),
        ["db-1"]
    );
    assert_eq!(
        client
            .get("/v1/health/service/db?passing=false")
            .instance_ids()
            .len(),
        3
    );
    let catalog = client.get("/v1/catalog/service/db?passing").json();
    assert_eq!(
        catalog.as_array().unwrap().len(),
        3,
        "the catalog ignores ?passing"
    );
    let bad = client.get("/v1/health/service/db?passing=maybe");
    bad.assert_text(400, "Invalid value for ?passing");
    assert_eq!(consul.state().check("service:db-2").unwrap().output, "slow");
}

#[test]
fn check_update_sets_status_and_output_and_validates_the_status() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "app-1", "app");

    let answer = client.put(
        "/v1/agent/check/update/service:app-1",
        &json!({"Status": "warning", "Output": "disk 91%"}),
    );
    assert_eq!(answer.status, 200);
    let check = consul.state().check("service:app-1").cloned().unwrap();
    assert_eq!(
        (check.status, check.output.as_str()),
        (Status::Warning, "disk 91%")
    );

    let bad = client.put(
        "/v1/agent/check/update/service:app-1",
        &json!({"Status": "ok"}),
    );
    bad.assert_text(400, "Invalid check status: 'ok'");
}

#[test]
fn unknown_check_answers_404_as_recent_agents_do() {
    let consul = start();
    let client = Client::new(&consul);
    for path in [
        "/v1/agent/check/pass/service:ghost",
        "/v1/agent/check/fail/service:ghost",
    ] {
        let answer = client.put_empty(path);
        assert_eq!(answer.status, 404);
        assert_eq!(
            answer.body,
            r#"Unknown check ID "service:ghost". Ensure that the check ID is passed, not the check name."#
        );
    }
    let update = client.put(
        "/v1/agent/check/update/service:ghost",
        &json!({"Status": "passing"}),
    );
    assert_eq!(update.status, 404);
}

#[test]
fn a_check_without_ttl_cannot_be_updated() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "app-1", "app");
    client.put_empty("/v1/agent/service/maintenance/app-1?enable=true");

    let answer = client.put_empty("/v1/agent/check/pass/_service_maintenance:app-1");
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.body,
        r#"CheckID "_service_maintenance:app-1" does not have associated TTL"#
    );
}

#[test]
fn ttl_expiry_turns_the_check_critical_until_the_next_update() {
    let consul = start();
    let client = Client::new(&consul);
    let answer = client.put(
        "/v1/agent/service/register",
        &ttl_service("job-1", "job", "2s", "passing"),
    );
    assert_eq!(answer.status, 200);

    let expired = consul
        .wait_for(DEADLINE, |s| {
            s.check("service:job-1").unwrap().status == Status::Critical
        })
        .unwrap();
    assert_eq!(
        expired.check("service:job-1").unwrap().output,
        "TTL expired"
    );
    assert!(client
        .get("/v1/health/service/job?passing")
        .instance_ids()
        .is_empty());

    client.put_empty("/v1/agent/check/pass/service:job-1?note=back");
    assert_eq!(
        client.get("/v1/health/service/job?passing").instance_ids(),
        ["job-1"]
    );
    let expired_again = consul
        .wait_for(DEADLINE, |s| {
            s.check("service:job-1").unwrap().status == Status::Critical
        })
        .unwrap();
    assert_eq!(
        expired_again.check("service:job-1").unwrap().output,
        "TTL expired (last output before timeout follows): back"
    );
}

#[test]
fn service_critical_longer_than_deregister_critical_service_after_is_reaped() {
    let consul = start();
    let client = Client::new(&consul);
    let mut body = ttl_service("cron-1", "cron", "200ms", "passing");
    body["Check"]["DeregisterCriticalServiceAfter"] = json!("300ms");
    assert_eq!(client.put("/v1/agent/service/register", &body).status, 200);
    register_passing(&client, "keep-1", "keep");

    consul
        .wait_for(DEADLINE, |s| s.service("cron-1").is_none())
        .expect("the critical service is reaped");
    let state = consul.state();
    assert!(state.check("service:cron-1").is_none());
    assert!(
        state.service("keep-1").is_some(),
        "services without the setting stay"
    );
    assert_eq!(
        client
            .put_empty("/v1/agent/check/pass/service:cron-1")
            .status,
        404
    );
}

#[test]
fn reregistering_keeps_check_status_and_replaces_the_service() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");
    client.put_empty("/v1/agent/check/warn/service:web-1?note=degraded");

    let mut body = ttl_service("web-1", "web", "30s", "critical");
    body["Port"] = json!(9090);
    body["Tags"] = json!(["v2"]);
    assert_eq!(client.put("/v1/agent/service/register", &body).status, 200);

    let state = consul.state();
    let service = state.service("web-1").unwrap();
    assert_eq!(
        (service.port, service.tags.clone()),
        (9090, vec!["v2".to_string()])
    );
    let check = state.check("service:web-1").unwrap();
    assert_eq!(
        (check.status, check.output.as_str()),
        (Status::Warning, "degraded")
    );
    assert_eq!(state.services.len(), 1);
}

#[test]
fn identical_reregistration_does_not_move_the_index() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");
    let before = client.get("/v1/health/service/web").index.unwrap();
    register_passing(&client, "web-1", "web");
    client.put_empty("/v1/agent/check/pass/service:web-1");
    client.put_empty("/v1/agent/check/pass/service:web-1");
    let after_heartbeats = client.get("/v1/health/service/web").index.unwrap();
    assert_eq!(
        before, after_heartbeats,
        "same status and output is not a change"
    );

    client.put_empty("/v1/agent/check/warn/service:web-1");
    assert!(client.get("/v1/health/service/web").index.unwrap() > before);
}

#[test]
fn multiple_checks_are_numbered_and_replace_existing_checks_drops_the_rest() {
    let consul = start();
    let client = Client::new(&consul);
    let body = json!({
        "ID": "svc-1", "Name": "svc",
        "Checks": [{"TTL": "30s", "Status": "passing"}, {"TTL": "30s", "Status": "passing"}],
    });
    assert_eq!(client.put("/v1/agent/service/register", &body).status, 200);
    let ids: Vec<String> = consul.state().checks.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, ["service:svc-1:1", "service:svc-1:2"]);

    let single = json!({"ID": "svc-1", "Name": "svc", "Check": {"CheckID": "own", "TTL": "30s"}});
    client.put("/v1/agent/service/register", &single);
    assert_eq!(
        consul.state().checks.len(),
        3,
        "without the flag, old checks stay"
    );
    client.put(
        "/v1/agent/service/register?replace-existing-checks",
        &single,
    );
    let ids: Vec<String> = consul.state().checks.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, ["own"]);
}

#[test]
fn deregister_removes_the_service_and_its_checks() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");
    register_passing(&client, "web-2", "web");

    assert_eq!(
        client
            .put_empty("/v1/agent/service/deregister/web-1")
            .status,
        200
    );
    assert_eq!(
        client.get("/v1/health/service/web").instance_ids(),
        ["web-2"]
    );
    assert!(consul.state().check("service:web-1").is_none());

    let again = client.put_empty("/v1/agent/service/deregister/web-1");
    assert_eq!(again.status, 404);
    assert_eq!(
        again.body,
        r#"Unknown service ID "web-1". Ensure that the service ID is passed, not the service name."#
    );
}

#[test]
fn maintenance_adds_and_removes_a_critical_check() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");

    let enable =
        client.put_empty("/v1/agent/service/maintenance/web-1?enable=true&reason=upgrading");
    assert_eq!(enable.status, 200);
    assert!(client
        .get("/v1/health/service/web?passing")
        .instance_ids()
        .is_empty());
    let state = consul.state();
    let check = state.check("_service_maintenance:web-1").unwrap();
    assert_eq!(check.status, Status::Critical);
    assert_eq!(check.name, "Service Maintenance Mode");
    assert_eq!(check.notes, "upgrading");

    client.put_empty("/v1/agent/service/maintenance/web-1?enable=false");
    assert_eq!(
        client.get("/v1/health/service/web?passing").instance_ids(),
        ["web-1"]
    );

    let missing = client.put_empty("/v1/agent/service/maintenance/web-1");
    missing.assert_text(400, "Missing value for enable");
    let unknown = client.put_empty("/v1/agent/service/maintenance/nope?enable=true");
    assert_eq!(unknown.status, 404);
}

#[test]
fn registration_is_validated_as_consul_validates_it() {
    let consul = start();
    let client = Client::new(&consul);
    let cases = [
        (json!({"ID": "x"}), "Missing service name"),
        (
            json!({"Name": "x", "Address": "0.0.0.0"}),
            "Invalid service address",
        ),
        (
            json!({"Name": "x", "Check": {"TTL": "10s", "Status": "up"}}),
            "Status for checks must 'passing', 'warning', 'critical'",
        ),
    ];
    for (body, message) in cases {
        let answer = client.put("/v1/agent/service/register", &body);
        answer.assert_text(400, message);
    }
    assert!(consul.state().services.is_empty());
}

#[test]
fn agent_and_catalog_views_list_what_was_registered() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");

    let services = client.get("/v1/agent/services").json();
    assert_eq!(services["web-1"]["Service"], "web");
    assert_eq!(services["web-1"]["Port"], 8080);
    let checks = client.get("/v1/agent/checks").json();
    assert_eq!(checks["service:web-1"]["Status"], "passing");
    let catalog = client.get("/v1/catalog/service/web");
    assert!(catalog.index.is_some());
    let catalog = catalog.json();
    assert_eq!(catalog[0]["ServiceID"], "web-1");
    assert_eq!(catalog[0]["ServiceAddress"], "10.0.0.5");
    assert_eq!(catalog[0]["Node"], "consul-double");
    assert_eq!(client.get("/v1/status/leader").json(), "127.0.0.1:8300");
}

#[test]
fn wrong_method_and_unknown_path_answer_like_consul() {
    let consul = start();
    let client = Client::new(&consul);
    let get_pass = client.get("/v1/agent/check/pass/service:x");
    get_pass.assert_text(405, "method GET not allowed");
    assert_eq!(client.get("/v1/kv/anything").status, 404);
}

#[tokio::test]
async fn async_double_runs_on_the_callers_runtime() {
    let consul = consul_double::AsyncConsulDouble::start(consul_double::Config::default())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let register = http
        .put(format!("{}/v1/agent/service/register", consul.url()))
        .json(&ttl_service("web-1", "web", "30s", "passing"))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 200);
    let state = consul
        .wait_for_async(DEADLINE, |s| s.passing_instances("web").len() == 1)
        .await
        .unwrap();
    assert_eq!(state.service("web-1").unwrap().address, "10.0.0.5");
}
