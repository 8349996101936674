//! Injected faults and agent restarts, through the Rust API and the `/_double/` HTTP surface.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{register_passing, start, Client, DEADLINE};
use consul_double::{Fault, FaultRule, Outcome, Restart};
use serde_json::json;

#[test]
fn status_fault_answers_every_request_until_cleared() {
    let consul = start();
    let client = Client::new(&consul);
    consul.set_fault(FaultRule::everywhere(Fault::unavailable()));

    let answer = client.get("/v1/health/service/web");
    answer.assert_text(503, "Service Unavailable");
    assert_eq!(
        client.get("/_double/state").status,
        200,
        "the control surface is never faulted"
    );

    consul.clear_faults();
    assert_eq!(client.get("/v1/health/service/web").status, 200);
}

#[test]
fn fault_limited_to_a_path_and_a_number_of_requests() {
    let consul = start();
    let client = Client::new(&consul);
    consul.set_fault(FaultRule::on_path("/v1/agent/check/", Fault::no_leader()).times(2));
    register_passing(&client, "web-1", "web");

    let first = client.put_empty("/v1/agent/check/pass/service:web-1");
    first.assert_text(500, "No cluster leader");
    assert_eq!(
        client
            .put_empty("/v1/agent/check/pass/service:web-1")
            .status,
        500
    );
    assert_eq!(
        client
            .put_empty("/v1/agent/check/pass/service:web-1")
            .status,
        200
    );
    assert!(consul.faults().is_empty(), "the rule is spent");
}

#[test]
fn a_chain_of_faults_set_at_once_applies_link_by_link() {
    let consul = start();
    let client = Client::new(&consul);
    consul.set_faults([
        FaultRule::everywhere(Fault::unavailable()).times(1),
        FaultRule::everywhere(Fault::no_leader()).times(1),
    ]);
    assert_eq!(client.get("/v1/status/leader").status, 503);
    assert_eq!(client.get("/v1/status/leader").status, 500);
    assert_eq!(client.get("/v1/status/leader").status, 200);
    assert!(consul.faults().is_empty(), "both links are spent");
}

#[test]
fn hang_holds_requests_until_the_faults_are_cleared() {
    let consul = start();
    consul.set_fault(FaultRule::on_path("/v1/health/", Fault::Hang));
    let impatient = Client::with_timeout(&consul, Duration::from_millis(300));
    let error = impatient.try_get("/v1/health/service/web").unwrap_err();
    assert!(error.is_timeout(), "{error}");

    let (sender, answer) = mpsc::channel();
    let patient = Client::new(&consul);
    thread::spawn(move || {
        let _ = sender.send(patient.get("/v1/health/service/web"));
    });
    consul
        .wait_for_request(DEADLINE, |r| r.seq == 1 && r.outcome == Outcome::InFlight)
        .unwrap();
    assert!(answer.try_recv().is_err(), "held while the fault is set");
    consul.clear_faults();
    assert_eq!(answer.recv_timeout(DEADLINE).unwrap().status, 200);
}

#[test]
fn delay_answers_after_the_clients_timeout() {
    let consul = start();
    consul.set_fault(FaultRule::everywhere(Fault::Delay {
        delay: Duration::from_secs(30),
    }));
    let client = Client::with_timeout(&consul, Duration::from_millis(300));
    let error = client.try_get("/v1/status/leader").unwrap_err();
    assert!(error.is_timeout(), "{error}");
}

#[test]
fn reset_closes_the_connection_without_an_answer() {
    let consul = start();
    let client = Client::new(&consul);
    consul.set_fault(FaultRule::on_path("/v1/agent/service/register", Fault::Reset).times(1));

    let error = client
        .try_put("/v1/agent/service/register", &json!({"Name": "web"}))
        .unwrap_err();
    assert!(!error.is_timeout() && error.is_request(), "{error}");
    let recorded = consul
        .wait_for_request(DEADLINE, |r| r.outcome == Outcome::Dropped)
        .unwrap();
    assert_eq!(recorded.path, "/v1/agent/service/register");
    assert!(consul.state().services.is_empty());
    register_passing(&client, "web-1", "web");
}

#[test]
fn legacy_agent_answers_500_for_unknown_checks() {
    let consul = start();
    let client = Client::new(&consul);
    consul.set_fault(FaultRule::everywhere(Fault::LegacyAgent));

    let answer = client.put_empty("/v1/agent/check/pass/service:web-1");
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.body,
        r#"CheckID "service:web-1" does not have associated TTL"#
    );
    assert_eq!(
        client
            .put_empty("/v1/agent/service/deregister/web-1")
            .status,
        200
    );

    consul.clear_faults();
    assert_eq!(
        client
            .put_empty("/v1/agent/check/pass/service:web-1")
            .status,
        404
    );
}

#[test]
fn restart_forgets_services_and_keeps_or_resets_the_index() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");
    register_passing(&client, "db-1", "db");
    let before = client.get("/v1/health/service/web").index.unwrap();

    consul.restart_agent(Restart::KeepIndex);
    assert!(consul.state().services.is_empty());
    // The restart closed the client's keep-alive connection: start afresh.
    let client = Client::new(&consul);
    assert_eq!(
        client
            .put_empty("/v1/agent/check/pass/service:web-1")
            .status,
        404
    );
    let after = client.get("/v1/health/service/web");
    assert!(after.instance_ids().is_empty());
    assert!(after.index.unwrap() > before, "the departure is a change");

    register_passing(&client, "web-1", "web");
    let before_reset = client.get("/v1/health/service/web").index.unwrap();
    consul.restart_agent(Restart::ResetIndex);
    let client = Client::new(&consul);
    assert!(client.get("/v1/health/service/web").index.unwrap() < before_reset);
    assert_eq!(consul.state().index, 1);
}

#[test]
fn restart_drops_in_flight_blocking_queries() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");
    let index = client.get("/v1/health/service/web").index.unwrap();

    let (sender, answer) = mpsc::channel();
    let blocked = Client::new(&consul);
    let path = format!("/v1/health/service/web?index={index}&wait=5m");
    thread::spawn(move || {
        let _ = sender.send(blocked.try_get(&path).map(|a| a.status));
    });
    consul.wait_for_request(DEADLINE, |r| r.blocked).unwrap();
    consul.restart_agent(Restart::KeepIndex);

    let outcome = answer.recv_timeout(DEADLINE).unwrap();
    assert!(
        outcome.is_err(),
        "the connection closes without an answer: {outcome:?}"
    );
    consul
        .wait_for_request(DEADLINE, |r| r.blocked && r.outcome == Outcome::Dropped)
        .unwrap();
}

#[test]
fn faults_and_restarts_over_the_http_control_surface() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");

    let rule = json!({"fault": {"kind": "status", "code": 503, "body": "down"},
                      "path_prefix": "/v1/health/"});
    assert_eq!(client.put("/_double/faults", &rule).status, 200);
    assert_eq!(
        client.get("/_double/faults").json()[0]["fault"]["code"],
        503
    );
    assert_eq!(client.get("/v1/health/service/web").status, 503);
    assert_eq!(client.delete("/_double/faults").status, 200);
    assert_eq!(client.get("/v1/health/service/web").status, 200);

    let state = client.get("/_double/state").json();
    assert_eq!(state["services"][0]["id"], "web-1");
    assert_eq!(state["checks"][0]["ttl"], "30s");
    assert_eq!(
        client
            .put("/_double/restart?reset_index=true", &json!({}))
            .status,
        200
    );
    assert_eq!(client.get("/_double/state").json()["index"], 1);

    let log = client.get("/_double/requests").json();
    assert!(log
        .as_array()
        .unwrap()
        .iter()
        .all(|r| !r["path"].as_str().unwrap().starts_with("/_double/")));
    assert_eq!(client.delete("/_double/requests").status, 200);
    assert!(consul.requests().is_empty());
}
