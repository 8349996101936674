//! ACL enforcement and what the request log keeps of tokens, over real HTTP.

mod common;

use common::{register_passing, start, start_with, ttl_service, Client};
use consul_double::{Config, TokenSource};

const TOKEN: &str = "b1gs3cr3t-t0ken";

fn start_with_acl() -> consul_double::ConsulDouble {
    start_with(Config {
        acl_token: Some(TOKEN.into()),
        ..Config::default()
    })
}

#[test]
fn writes_without_a_token_are_denied_to_the_anonymous_token() {
    let consul = start_with_acl();
    let anonymous = Client::new(&consul);
    let answer = anonymous.put(
        "/v1/agent/service/register",
        &ttl_service("web-1", "web", "30s", "passing"),
    );
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.body,
        "Permission denied: anonymous token lacks permission 'service:write' on \"web\". \
         The anonymous token is used implicitly when a request does not specify a token."
    );
    assert!(consul.state().services.is_empty());

    register_passing(&Client::new(&consul).token(TOKEN), "web-1", "web");
    assert_eq!(
        anonymous
            .put_empty("/v1/agent/check/pass/service:web-1")
            .status,
        403
    );
    assert_eq!(
        anonymous
            .put_empty("/v1/agent/service/deregister/web-1")
            .status,
        403
    );
    assert_eq!(
        anonymous
            .put_empty("/v1/agent/check/pass/service:other")
            .status,
        404,
        "an unknown check is not found before permissions are checked"
    );
}

#[test]
fn a_token_other_than_the_accepted_one_is_not_found() {
    let consul = start_with_acl();
    let wrong = Client::new(&consul).token("not-it");
    for answer in [
        wrong.get("/v1/health/service/web"),
        wrong.put(
            "/v1/agent/service/register",
            &ttl_service("w", "w", "30s", "passing"),
        ),
    ] {
        answer.assert_text(403, "ACL not found");
    }
}

#[test]
fn reads_without_a_token_are_filtered_to_nothing() {
    let consul = start_with_acl();
    register_passing(&Client::new(&consul).token(TOKEN), "web-1", "web");
    let anonymous = Client::new(&consul);

    let health = anonymous.get("/v1/health/service/web");
    assert_eq!(health.status, 200);
    assert!(health.instance_ids().is_empty());
    assert_eq!(
        anonymous.get("/v1/agent/services").json(),
        serde_json::json!({})
    );
    assert_eq!(
        Client::new(&consul)
            .token(TOKEN)
            .get("/v1/health/service/web")
            .instance_ids(),
        ["web-1"]
    );
    assert_eq!(
        anonymous.get("/v1/status/leader").status,
        200,
        "status needs no token"
    );
}

#[test]
fn the_token_is_accepted_from_query_header_and_bearer() {
    let consul = start_with_acl();
    let client = Client::new(&consul);
    let query = client.get(&format!("/v1/health/service/web?token={TOKEN}"));
    assert_eq!(query.status, 200);

    let http = reqwest::blocking::Client::new();
    let bearer = http
        .get(format!("{}/v1/agent/services", consul.url()))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(bearer.status(), 200);
    register_passing(&client.token(TOKEN), "web-1", "web");

    let sources: Vec<(TokenSource, bool)> = consul
        .requests()
        .iter()
        .map(|r| (r.token, r.token_accepted))
        .collect();
    assert_eq!(
        sources,
        [
            (TokenSource::QueryParameter, true),
            (TokenSource::Bearer, true),
            (TokenSource::Header, true),
        ]
    );
}

#[test]
fn the_request_log_never_holds_the_token() {
    let consul = start_with_acl();
    let client = Client::new(&consul).token(TOKEN);
    register_passing(&client, "web-1", "web");
    client.get(&format!("/v1/health/service/web?passing=1&token={TOKEN}"));

    let log = serde_json::to_string(&consul.requests()).unwrap();
    assert!(!log.contains(TOKEN), "{log}");
    let over_http = Client::new(&consul).get("/_double/requests").body;
    assert!(!over_http.contains(TOKEN));
    let query = &consul.requests()[1];
    assert_eq!(query.query_values("passing"), ["1"]);
    assert_eq!(query.query_values("token"), [consul_double::REDACTED]);
}

#[test]
fn the_log_records_the_content_type_and_body_of_writes() {
    let consul = start();
    let client = Client::new(&consul);
    register_passing(&client, "web-1", "web");
    client.put_empty("/v1/agent/check/pass/service:web-1");

    let requests = consul.requests();
    let register = &requests[0];
    assert_eq!(register.method, "PUT");
    assert_eq!(register.content_type.as_deref(), Some("application/json"));
    assert_eq!(register.json().unwrap()["Check"]["TTL"], "30s");
    assert_eq!(register.token, TokenSource::None);
    assert!(!register.token_accepted);
    let pass = &requests[1];
    assert_eq!(pass.path, "/v1/agent/check/pass/service:web-1");
    assert_eq!(pass.content_type, None);
    assert_eq!(pass.outcome, consul_double::Outcome::Answered(200));
}

#[test]
fn behind_a_basic_auth_proxy_only_requests_with_its_credentials_are_handled() {
    let consul = start_with(Config {
        http_auth: Some("alice:pw".into()),
        ..Config::default()
    });
    let url = format!("{}/v1/agent/services", consul.url());
    let client = reqwest::blocking::Client::new();
    let answers = [
        client.get(&url).send().unwrap(),
        client
            .get(&url)
            .basic_auth("alice", Some("wrong"))
            .send()
            .unwrap(),
        client
            .get(&url)
            .basic_auth("alice", Some("pw"))
            .send()
            .unwrap(),
    ];
    let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
    assert_eq!(statuses, [401, 401, 200]);
    assert_eq!(
        answers[0].headers()["www-authenticate"],
        "Basic realm=\"consul\""
    );
    let requests = consul.requests();
    assert_eq!(requests.len(), 3, "every request is recorded");
    assert!(requests.iter().all(|r| r
        .headers
        .iter()
        .all(|(_, value)| !value.contains("YWxpY2U6cHc="))));
}
