//! Sessions and KV locks over real HTTP: session create/renew/destroy/info/list, `?acquire`,
//! `?release` and `?cas` writes, invalidation by TTL, by a critical or deregistered check and
//! by destruction (with its lock-delay), blocking reads that wake on a release, and faults on
//! renewals.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{register_passing, start, start_with, Client, DEADLINE};
use consul_double::{Config, Control, Fault, FaultRule};
use serde_json::{json, Value};

const KEY: &str = "/v1/kv/service/db/primary";

fn create_session(client: &Client, body: Value) -> String {
    let answer = client.put("/v1/session/create", &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["ID"].as_str().unwrap().to_string()
}

fn acquire(client: &Client, session: &str) -> bool {
    let answer = client.put(&format!("{KEY}?acquire={session}"), &json!("me"));
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json().as_bool().unwrap()
}

/// A double whose sessions may have TTLs under Consul's 10 s floor.
fn start_short_ttls() -> consul_double::ConsulDouble {
    start_with(Config {
        session_ttl_min: Duration::ZERO,
        ..Config::default()
    })
}

/// Polls `probe` until it holds, failing the test at the deadline.
fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !probe() {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sessions_are_created_read_renewed_and_destroyed_in_consuls_shapes() {
    let consul = start();
    let client = Client::new(&consul);
    let id = create_session(
        &client,
        json!({"Name": "primary", "TTL": "15s", "LockDelay": "1s", "Behavior": "delete"}),
    );
    let info = client.get(&format!("/v1/session/info/{id}"));
    assert!(info.index.is_some());
    let session = &info.json()[0];
    assert_eq!(session["ID"], id.as_str());
    assert_eq!(session["Name"], "primary");
    assert_eq!(session["Node"], "consul-double");
    assert_eq!(session["TTL"], "15s");
    assert_eq!(session["Behavior"], "delete");
    assert_eq!(session["LockDelay"], 1_000_000_000u64);
    assert_eq!(session["NodeChecks"], json!(["serfHealth"]));
    assert_eq!(
        client
            .get("/v1/session/list")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        client.get("/v1/session/node/consul-double").json()[0]["ID"],
        id.as_str()
    );

    let renewed = client.put_empty(&format!("/v1/session/renew/{id}"));
    assert_eq!(
        (renewed.status, renewed.json()[0]["ID"].clone()),
        (200, json!(id))
    );

    assert_eq!(
        client
            .put_empty(&format!("/v1/session/destroy/{id}"))
            .json(),
        json!(true)
    );
    assert_eq!(
        client.get(&format!("/v1/session/info/{id}")).json(),
        json!([])
    );
    client
        .put_empty(&format!("/v1/session/renew/{id}"))
        .assert_text(404, &format!("Session id '{id}' not found"));
}

#[test]
fn session_creation_is_refused_as_consul_refuses_it() {
    let consul = start();
    let client = Client::new(&consul);
    client
        .put("/v1/session/create", &json!({"TTL": "5s"}))
        .assert_text(
            400,
            "Invalid Session TTL '5s', must be between [10s=24h0m0s]",
        );
    client
        .put("/v1/session/create", &json!({"Behavior": "keep"}))
        .assert_text(400, "Invalid Behavior setting 'keep'");
    client
        .put(
            "/v1/session/create",
            &json!({"ServiceChecks": [{"ID": "service:nope"}]}),
        )
        .assert_text(500, "Missing check 'service:nope' registration");
    let critical = json!({"ID": "db-1", "Name": "db", "Port": 5432,
                          "Check": {"TTL": "30s", "Status": "critical"}});
    assert_eq!(
        client.put("/v1/agent/service/register", &critical).status,
        200
    );
    client
        .put(
            "/v1/session/create",
            &json!({"ServiceChecks": [{"ID": "service:db-1"}]}),
        )
        .assert_text(500, "Check 'service:db-1' is in critical state");
}

#[test]
fn one_session_holds_a_key_until_it_releases_it() {
    let consul = start();
    let client = Client::new(&consul);
    let first = create_session(&client, json!({"TTL": "15s"}));
    let second = create_session(&client, json!({"TTL": "15s"}));

    assert!(acquire(&client, &first));
    assert!(acquire(&client, &first), "the holder may acquire again");
    assert!(!acquire(&client, &second));
    let entry = &client.get(KEY).json()[0];
    assert_eq!(
        (entry["Session"].clone(), entry["LockIndex"].clone()),
        (json!(first), json!(1))
    );
    assert_eq!(
        consul.lock_holder("service/db/primary"),
        Some(first.clone())
    );

    let release = |session: &str| {
        let answer = client.put(&format!("{KEY}?release={session}"), &json!("me"));
        answer.json().as_bool().unwrap()
    };
    assert!(!release(&second), "only the holder releases");
    assert!(release(&first));
    assert!(client.get(KEY).json()[0].get("Session").is_none());
    assert!(acquire(&client, &second), "a released key is free at once");
    assert_eq!(client.get(KEY).json()[0]["LockIndex"], 2);

    client
        .put(&format!("{KEY}?acquire=no-such-session"), &json!("x"))
        .assert_text(500, "invalid session \"no-such-session\"");
}

#[test]
fn cas_writes_and_deletes_only_at_the_expected_index() {
    let consul = start();
    let client = Client::new(&consul);
    let path = "/v1/kv/app/config";
    assert_eq!(
        client.put(&format!("{path}?cas=0"), &json!(1)).json(),
        json!(true)
    );
    assert_eq!(
        client.put(&format!("{path}?cas=0"), &json!(2)).json(),
        json!(false)
    );
    let index = client.get(path).json()[0]["ModifyIndex"].as_u64().unwrap();
    assert_eq!(
        client
            .put(&format!("{path}?cas={}", index + 7), &json!(3))
            .json(),
        json!(false)
    );
    assert_eq!(
        client.put(&format!("{path}?cas={index}"), &json!(3)).json(),
        json!(true)
    );
    let index = client.get(path).json()[0]["ModifyIndex"].as_u64().unwrap();
    assert_eq!(
        client.delete(&format!("{path}?cas={}", index - 1)).json(),
        json!(false)
    );
    assert_eq!(
        client.delete(&format!("{path}?cas={index}")).json(),
        json!(true)
    );
    assert_eq!(client.get(path).status, 404);
}

#[test]
fn a_destroyed_sessions_key_is_released_and_held_back_for_the_lock_delay() {
    let consul = start();
    let client = Client::new(&consul);
    let holder = create_session(&client, json!({"LockDelay": "1s"}));
    let waiter = create_session(&client, json!({}));
    assert!(acquire(&client, &holder));

    client.put_empty(&format!("/v1/session/destroy/{holder}"));
    let destroyed = Instant::now();
    assert!(
        client.get(KEY).json()[0].get("Session").is_none(),
        "released"
    );
    assert!(!acquire(&client, &waiter), "held back by the lock-delay");
    eventually("acquired after the lock-delay", || {
        acquire(&client, &waiter)
    });
    let waited = destroyed.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "acquired after only {waited:?}"
    );
}

#[test]
fn a_session_that_is_not_renewed_expires_after_twice_its_ttl() {
    let consul = start_short_ttls();
    let client = Client::new(&consul);
    let session = create_session(&client, json!({"TTL": "300ms", "LockDelay": 0}));
    let created = Instant::now();
    assert!(acquire(&client, &session));
    // Renewals keep it alive past its TTL.
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(150));
        assert_eq!(
            client
                .put_empty(&format!("/v1/session/renew/{session}"))
                .status,
            200
        );
    }
    assert_eq!(
        consul.lock_holder("service/db/primary"),
        Some(session.clone())
    );
    let last_renewal = Instant::now();
    eventually("the lock freed by expiry", || {
        consul.lock_holder("service/db/primary").is_none()
    });
    let lived = last_renewal.elapsed();
    assert!(
        lived >= Duration::from_millis(550),
        "expired {lived:?} after its last renewal"
    );
    assert!(created.elapsed() > Duration::from_millis(600));
    assert_eq!(
        client.get(&format!("/v1/session/info/{session}")).json(),
        json!([])
    );
}

#[test]
fn a_critical_or_deregistered_check_invalidates_its_sessions() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "db-1", "db");
    let linked = json!({"ServiceChecks": [{"ID": "service:db-1"}], "Behavior": "delete",
                        "LockDelay": 0});
    let session = create_session(&client, linked.clone());
    assert!(acquire(&client, &session));
    assert_eq!(
        client.put_empty("/v1/agent/check/warn/service:db-1").status,
        200
    );
    assert_eq!(
        consul.lock_holder("service/db/primary"),
        Some(session.clone()),
        "warning keeps it"
    );

    assert_eq!(
        client.put_empty("/v1/agent/check/fail/service:db-1").status,
        200
    );
    assert_eq!(
        client.get(KEY).status,
        404,
        "Behavior delete removes the key"
    );
    assert_eq!(
        client.get(&format!("/v1/session/info/{session}")).json(),
        json!([])
    );

    assert_eq!(
        client.put_empty("/v1/agent/check/pass/service:db-1").status,
        200
    );
    let session = create_session(&client, linked);
    assert!(acquire(&client, &session));
    assert_eq!(
        client.put_empty("/v1/agent/service/deregister/db-1").status,
        200
    );
    assert_eq!(client.get(KEY).status, 404);
}

#[test]
fn a_blocking_read_of_a_held_key_wakes_when_it_is_released() {
    let consul = start();
    let client = Client::new(&consul);
    let session = create_session(&client, json!({}));
    assert!(acquire(&client, &session));
    let index = client.get(KEY).index.unwrap();
    let reader = {
        let consul: Control = (*consul).clone();
        thread::spawn(move || {
            let answer = Client::new(&consul).get(&format!("{KEY}?index={index}&wait=30s"));
            (Instant::now(), answer)
        })
    };
    consul
        .wait_for_request(DEADLINE, |r| {
            r.path == "/v1/kv/service/db/primary" && r.blocked
        })
        .unwrap();
    let released = Instant::now();
    client.put(&format!("{KEY}?release={session}"), &json!(""));
    let (woke, answer) = reader.join().unwrap();
    assert!(answer.index.unwrap() > index);
    assert!(answer.json()[0].get("Session").is_none());
    assert!(woke.duration_since(released) < Duration::from_secs(1));
}

#[test]
fn renewals_can_be_failed_and_hung_while_the_ttl_runs() {
    let consul = start_short_ttls();
    let client = Client::with_timeout(&consul, Duration::from_millis(500));
    let session = create_session(&client, json!({"TTL": "200ms", "LockDelay": 0}));
    assert!(acquire(&client, &session));
    let renew = format!("/v1/session/renew/{session}");
    consul.set_fault(FaultRule::on_path("/v1/session/renew/", Fault::unavailable()).times(1));
    assert_eq!(client.put_empty(&renew).status, 503);
    consul.set_fault(FaultRule::on_path("/v1/session/renew/", Fault::Hang));
    assert!(
        client.try_put(&renew, &json!(null)).is_err(),
        "a hung agent never answers"
    );
    eventually("the session expired meanwhile", || {
        consul.lock_holder("service/db/primary").is_none()
    });
    consul.clear_faults();
    client
        .put_empty(&renew)
        .assert_text(404, &format!("Session id '{session}' not found"));
}
