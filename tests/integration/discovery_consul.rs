//! The Consul backend against the Consul double (its journal of requests, its injected
//! faults): request shapes (docs/design.md, "Discovery"), the re-register-and-retry rule, the
//! token's secrecy, health query parsing and blocking indexes, maintenance and outage logging,
//! `CONSUL_HTTP_AUTH` (the double behind a Basic-auth proxy) and the TLS settings (the double
//! serving HTTPS).

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopilot::testing::config::model::{CheckStatus, TlsConfig, WatchConfig};
use autopilot::testing::discovery::consul::{BasicAuth, Secret};
use autopilot::testing::discovery::watch::WatchState;
use autopilot::testing::discovery::{
    ConsulSettings, Discovery, DiscoveryError, Instance, ServiceRegistration, Transport,
    MAX_CHECK_OUTPUT,
};
use autopilot::testing::events::EventCode;
use consul_double::rustls;
use consul_double::{
    Config as DoubleConfig, ConsulDouble, Fault, FaultRule, Outcome, RecordedRequest, Restart,
    TokenSource,
};
use serde_json::{json, Value};

const TOKEN: &str = "acl-7f3e-very-secret";

fn service(name: &str, initial_status: Option<CheckStatus>) -> ServiceRegistration {
    ServiceRegistration {
        id: format!("{name}-host1"),
        name: name.to_string(),
        tags: vec!["web".to_string(), "v2".to_string()],
        port: 8080,
        address: "10.0.0.5".parse().unwrap(),
        ttl: Duration::from_secs(10),
        initial_status,
        enable_tag_override: true,
        deregister_critical_service_after: Some(Duration::from_secs(90)),
    }
}

fn watch(name: &str) -> WatchConfig {
    WatchConfig {
        name: name.to_string(),
        interval: Duration::from_secs(5),
        tag: Some("blue".to_string()),
        dc: Some("dc2".to_string()),
    }
}

/// A Consul double with ACLs on, whose one (management) token is [`TOKEN`].
fn double() -> ConsulDouble {
    ConsulDouble::start(DoubleConfig {
        acl_token: Some(TOKEN.to_string()),
        ..DoubleConfig::default()
    })
    .unwrap()
}

fn settings_for(consul: &ConsulDouble) -> ConsulSettings {
    let mut settings = ConsulSettings::resolve(None, |_| None).unwrap();
    settings.address = consul.addr().to_string();
    settings.token = Some(Secret::new(TOKEN));
    settings
}

fn discovery_for(consul: &ConsulDouble) -> Discovery {
    Discovery::consul(settings_for(consul)).unwrap()
}

/// Method, path and query of a journal entry, as sent.
fn line(request: &RecordedRequest) -> String {
    match request.query.as_str() {
        "" => format!("{} {}", request.method, request.path),
        query => format!("{} {}?{query}", request.method, request.path),
    }
}

fn lines(consul: &ConsulDouble) -> Vec<String> {
    consul.requests().iter().map(line).collect()
}

/// Whether the request carried [`TOKEN`] in `X-Consul-Token` (the journal keeps how a token
/// was sent and whether it was the double's, never the token).
fn sent_the_token(request: &RecordedRequest) -> bool {
    request.token == TokenSource::Header && request.token_accepted
}

/// Runs `action` against a double, after registering `known` on it; returns the requests
/// `action` made.
async fn requests_of<F, Fut>(known: &[ServiceRegistration], action: F) -> Vec<RecordedRequest>
where
    F: FnOnce(Discovery) -> Fut,
    Fut: Future<Output = Result<(), DiscoveryError>>,
{
    let consul = double();
    let discovery = discovery_for(&consul);
    for service in known {
        discovery.register(service).await.unwrap();
    }
    consul.clear_requests();
    action(discovery).await.unwrap();
    consul.requests()
}

#[tokio::test]
async fn register_sends_the_spec_body_with_the_token_and_json_content_type() {
    let app = service("app", Some(CheckStatus::Warning));
    let requests = requests_of(&[], |d| async move { d.register(&app).await }).await;
    let request = &requests[0];
    assert_eq!(line(request), "PUT /v1/agent/service/register");
    assert!(sent_the_token(request), "{request:?}");
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        request.json().unwrap(),
        json!({
            "ID": "app-host1",
            "Name": "app",
            "Tags": ["web", "v2"],
            "Port": 8080,
            "Address": "10.0.0.5",
            "EnableTagOverride": true,
            "Check": {
                "TTL": "10s",
                "Status": "warning",
                "Notes": "TTL for app set by autopilot",
                "DeregisterCriticalServiceAfter": "90s",
            },
        })
    );
}

#[tokio::test]
async fn register_without_initial_status_is_passing_and_omits_optional_fields() {
    let mut plain = service("db", None);
    plain.deregister_critical_service_after = None;
    let requests = requests_of(&[], |d| async move { d.register(&plain).await }).await;
    assert_eq!(
        requests[0].json().unwrap()["Check"],
        json!({"TTL": "10s", "Status": "passing", "Notes": "TTL for db set by autopilot"})
    );
}

#[tokio::test]
async fn heartbeat_updates_the_ttl_check_with_its_output() {
    let app = service("app", None);
    let known = [app.clone()];
    let requests = requests_of(&known, |d| async move { d.pass(&app, "all good").await }).await;
    let request = &requests[0];
    assert_eq!(
        line(request),
        "PUT /v1/agent/check/update/service:app-host1"
    );
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(request.outcome, Outcome::Answered(200));
    assert_eq!(
        request.json().unwrap(),
        json!({"Status": "passing", "Output": "all good"})
    );
}

#[tokio::test]
async fn heartbeat_re_registers_and_retries_once_when_the_agent_forgot_the_check() {
    // 404 "Unknown check ID" from current agents, 500 "does not have associated TTL" from
    // older ones: the double answers both for a check it does not know.
    for (code, legacy) in [(404, false), (500, true)] {
        let consul = double();
        if legacy {
            consul.set_fault(FaultRule::on_path("/v1/agent/check/", Fault::LegacyAgent).times(1));
        }
        discovery_for(&consul)
            .pass(&service("app", None), "fine")
            .await
            .unwrap();
        assert_eq!(
            lines(&consul),
            [
                "PUT /v1/agent/check/update/service:app-host1",
                "PUT /v1/agent/service/register",
                "PUT /v1/agent/check/update/service:app-host1",
            ],
            "after a {code}"
        );
        let requests = consul.requests();
        assert_eq!(requests[0].outcome, Outcome::Answered(code));
        assert_eq!(requests[2].outcome, Outcome::Answered(200));
        assert_eq!(requests[2].json().unwrap()["Output"], "fine");
    }
}

#[tokio::test]
async fn heartbeat_retries_only_once() {
    let consul = double();
    consul.set_fault(FaultRule::on_path(
        "/v1/agent/check/update/",
        Fault::Status {
            code: 404,
            body: "unknown check".to_string(),
        },
    ));
    let error = discovery_for(&consul)
        .pass(&service("app", None), "")
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::Rejected { status: 404, .. }),
        "{error}"
    );
    assert_eq!(consul.requests().len(), 3);
}

#[tokio::test]
async fn failing_check_goes_critical_at_once_with_the_tail_of_its_output() {
    let app = service("app", None);
    let output = format!(
        "{}{}",
        "early noise ".repeat(100),
        "E".repeat(MAX_CHECK_OUTPUT)
    );
    let known = [app.clone()];
    let requests = requests_of(
        &known,
        |d| async move { d.mark_critical(&app, &output).await },
    )
    .await;
    assert_eq!(
        line(&requests[0]),
        "PUT /v1/agent/check/update/service:app-host1"
    );
    assert_eq!(
        requests[0].json().unwrap(),
        json!({"Status": "critical", "Output": "E".repeat(MAX_CHECK_OUTPUT)})
    );
}

#[tokio::test]
async fn deregister_and_maintenance() {
    let with_status = service("app", Some(CheckStatus::Passing));
    let without = service("worker", None);
    let both = [with_status.clone(), without];
    let app = [with_status.clone()];
    let requests = requests_of(&app, |d| async move { d.deregister(&with_status).await }).await;
    assert_eq!(
        requests.iter().map(line).collect::<Vec<_>>(),
        ["PUT /v1/agent/service/deregister/app-host1"]
    );
    assert_eq!(requests[0].outcome, Outcome::Answered(200));
    let known = both.clone();
    let requests = requests_of(&known, |d| async move {
        d.enter_maintenance(&both).await?;
        d.exit_maintenance(&both).await
    })
    .await;
    let lines: Vec<String> = requests.iter().map(line).collect();
    // The maintenance calls run concurrently: compare without order.
    let mut maintenance = lines[0..2].to_vec();
    maintenance.sort();
    assert_eq!(
        maintenance,
        [
            "PUT /v1/agent/service/deregister/app-host1",
            "PUT /v1/agent/service/deregister/worker-host1",
        ]
    );
    // Only the service with an initial status comes back at once.
    assert_eq!(lines[2..], ["PUT /v1/agent/service/register"]);
    assert_eq!(requests[2].json().unwrap()["ID"], "app-host1");
}

/// Registers a service straight through the agent API, as another client would (without an
/// address, unlike autopilot).
async fn register_directly(consul: &ConsulDouble, registration: Value) {
    reqwest::Client::new()
        .put(format!("{}/v1/agent/service/register", consul.url()))
        .header("X-Consul-Token", TOKEN)
        .json(&registration)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

#[tokio::test]
async fn health_query_parameters_index_and_node_address_fallback() {
    let consul = ConsulDouble::start(DoubleConfig {
        acl_token: Some(TOKEN.to_string()),
        node_address: "10.0.0.9".to_string(),
        datacenter: "dc2".to_string(),
        ..DoubleConfig::default()
    })
    .unwrap();
    register_directly(
        &consul,
        json!({"ID": "db-a", "Name": "db", "Tags": ["blue"], "Port": 5432}),
    )
    .await;
    register_directly(
        &consul,
        json!({"ID": "db-b", "Name": "db", "Tags": ["blue"], "Address": "10.1.1.1", "Port": 5433}),
    )
    .await;
    consul.clear_requests();
    let discovery = discovery_for(&consul);
    let first = discovery.healthy_instances(&watch("db"), 0).await.unwrap();
    assert!(first.index > 0);
    assert_eq!(
        first.instances,
        [
            Instance {
                id: "db-a".to_string(),
                address: "10.0.0.9".to_string(),
                port: 5432
            },
            Instance {
                id: "db-b".to_string(),
                address: "10.1.1.1".to_string(),
                port: 5433
            },
        ]
    );
    // The next query blocks on the index until "db" changes: an instance without the tag.
    let change = async {
        consul
            .wait_for_request_async(Duration::from_secs(10), |r| r.blocked)
            .await
            .unwrap();
        register_directly(
            &consul,
            json!({"ID": "db-c", "Name": "db", "Tags": ["green"], "Port": 5434}),
        )
        .await;
    };
    let db = watch("db");
    let (second, ()) = tokio::join!(discovery.healthy_instances(&db, first.index), change);
    let second = second.unwrap();
    assert!(second.index > first.index);
    assert_eq!(second.instances, first.instances);
    let requests = consul.requests();
    assert_eq!(
        line(&requests[0]),
        "GET /v1/health/service/db?passing=1&tag=blue&dc=dc2"
    );
    assert_eq!(
        line(&requests[1]),
        format!(
            "GET /v1/health/service/db?passing=1&tag=blue&dc=dc2&index={}&wait=5s",
            first.index
        )
    );
    assert!(requests[1].blocked);
    assert!(sent_the_token(&requests[0]), "{:?}", requests[0]);
}

#[tokio::test]
async fn watch_restarts_without_blocking_when_the_index_goes_backwards() {
    let consul = ConsulDouble::start(DoubleConfig {
        acl_token: Some(TOKEN.to_string()),
        datacenter: "dc2".to_string(),
        ..DoubleConfig::default()
    })
    .unwrap();
    // "db" comes and goes, so its index is past the node's own.
    let app = service("db", None);
    let discovery = discovery_for(&consul);
    discovery.register(&app).await.unwrap();
    discovery.deregister(&app).await.unwrap();
    consul.clear_requests();
    let mut db = watch("db");
    // The blocking query below waits out its whole `wait`: keep it short.
    db.interval = Duration::from_secs(1);
    let mut state = WatchState::new();
    let mut events = Vec::new();
    let mut indexes = Vec::new();
    for query in 0..3 {
        if query == 1 {
            // A dev agent restarting: its index starts over, below the one the watch holds.
            consul.restart_agent(Restart::ResetIndex);
        }
        // A fresh client each time: the restart closed the pooled connection.
        let result = discovery_for(&consul)
            .healthy_instances(&db, state.index())
            .await
            .unwrap();
        indexes.push(result.index);
        events.extend(state.update(result));
    }
    assert!(indexes[1] < indexes[0], "{indexes:?}");
    let requests = consul.requests();
    assert!(requests[0].query_values("index").is_empty(), "{requests:?}");
    assert_eq!(
        requests[1].query,
        format!("passing=1&tag=blue&dc=dc2&index={}&wait=1s", indexes[0])
    );
    assert!(requests[1].blocked);
    assert!(
        requests[2].query_values("index").is_empty(),
        "reset to 0: {}",
        requests[2].query
    );
    assert_eq!(state.index(), indexes[2]);
    assert_eq!(
        events,
        [EventCode::Unhealthy],
        "absent at start, then nothing new"
    );
}

#[tokio::test]
async fn basic_auth_from_consul_http_auth() {
    // The double behind a proxy that wants alice's Basic credentials.
    let consul = ConsulDouble::start(DoubleConfig {
        acl_token: Some(TOKEN.to_string()),
        http_auth: Some("alice:pw".to_string()),
        ..DoubleConfig::default()
    })
    .unwrap();
    let app = service("app", None);
    let error = discovery_for(&consul).register(&app).await.unwrap_err();
    assert!(
        matches!(error, DiscoveryError::Rejected { status: 401, .. }),
        "without credentials: {error}"
    );
    let mut settings = settings_for(&consul);
    settings.basic_auth = Some(BasicAuth {
        user: "alice".to_string(),
        password: Some(Secret::new("pw")),
    });
    Discovery::consul(settings)
        .unwrap()
        .register(&app)
        .await
        .unwrap();
    let requests = consul.requests();
    assert_eq!(requests[1].outcome, Outcome::Answered(200));
    assert!(sent_the_token(&requests[1]), "{:?}", requests[1]);
}

/// Collects what tracing writes on the current thread (the tests run on current-thread
/// runtimes, so the backend's logs come from the test's own thread).
///
/// One global TRACE subscriber for the whole binary, whose writer routes to the capturing
/// thread: a per-thread `set_default` subscriber would race with tracing's global callsite
/// interest cache when tests run in parallel, and lose events.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<CapturedLogs>> = const { std::cell::RefCell::new(None) };
}

/// The writer of the global subscriber: appends to this thread's capture, if any.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(logs) = capture.borrow().as_ref() {
                logs.0.lock().unwrap().extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn install() -> CapturedLogs {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(|| ThreadWriter)
                .init();
        });
        let logs = CapturedLogs::default();
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(logs.clone()));
        logs
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn the_token_never_appears_in_debug_output_or_logs() {
    let logs = CapturedLogs::install();
    // The agent rejects every call, so every error path logs.
    let consul = double();
    consul.set_fault(FaultRule::everywhere(Fault::Status {
        code: 403,
        body: "ACL not found".to_string(),
    }));
    let discovery = discovery_for(&consul);
    let app = service("app", None);
    assert!(discovery.pass(&app, "out").await.is_err());
    assert!(discovery.register(&app).await.is_err());
    let error = discovery
        .healthy_instances(&watch("db"), 0)
        .await
        .unwrap_err();
    let requests = consul.requests();
    assert!(requests.iter().all(sent_the_token), "{requests:?}");
    let logged = logs.text();
    assert!(
        logged.contains("ACL not found"),
        "the failures were logged: {logged}"
    );
    for shown in [
        logged,
        format!("{discovery:?}"),
        format!("{:?}", settings_for(&consul)),
        format!("{error} {error:?}"),
    ] {
        assert!(!shown.contains(TOKEN), "token leaked into: {shown}");
    }
}

#[tokio::test]
async fn an_outage_is_warned_about_once_and_its_end_is_logged() {
    let logs = CapturedLogs::install();
    let consul = double();
    consul.set_fault(
        FaultRule::everywhere(Fault::Status {
            code: 503,
            body: "no leader".to_string(),
        })
        .times(3),
    );
    let discovery = discovery_for(&consul);
    let app = service("app", Some(CheckStatus::Passing));
    for _ in 0..3 {
        assert!(discovery.register(&app).await.is_err());
    }
    discovery.register(&app).await.unwrap();
    discovery.register(&app).await.unwrap();
    let logged = logs.text();
    let warnings: Vec<&str> = logged.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), 1, "{logged}");
    assert!(warnings[0].contains("no leader"), "{logged}");
    let recoveries: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("catalog reachable again after 3 failed call(s)"))
        .collect();
    assert_eq!(recoveries.len(), 1, "{logged}");
}

/// What autopilot logged at its default level (INFO), as (level, message), without
/// times and targets.
fn logged_lines(logs: &CapturedLogs) -> Vec<(String, String)> {
    logs.text()
        .lines()
        .filter_map(|line| {
            let (prefix, message) = line.split_once(": ")?;
            let mut prefix = prefix.split_whitespace().skip(1);
            let (level, target) = (prefix.next()?, prefix.next()?);
            let shown = ["INFO", "WARN", "ERROR"].contains(&level);
            (shown && target.starts_with("autopilot"))
                .then(|| (level.to_string(), message.to_string()))
        })
        .collect()
}

/// A register call to the agent at `address` (`scheme://host:port` or `host:port`),
/// which must fail: its error and what was logged.
async fn register_at(address: &str) -> (DiscoveryError, Vec<(String, String)>) {
    let logs = CapturedLogs::install();
    let mut settings = ConsulSettings::resolve(None, |name| {
        (name == "CONSUL_HTTP_ADDR").then(|| address.to_string())
    })
    .unwrap();
    settings.token = Some(Secret::new(TOKEN));
    let error = Discovery::consul(settings)
        .unwrap()
        .register(&service("app", None))
        .await
        .unwrap_err();
    (error, logged_lines(&logs))
}

/// The one line an outage starts with, for `cause`.
fn outage_line(cause: &str) -> Vec<(String, String)> {
    vec![(
        "WARN".to_string(),
        format!(
            "catalog call failed: {cause}; retrying in the background \
             (further failures are logged at debug level until it recovers)"
        ),
    )]
}

/// A register call at `address` fails, and the one line logged is the outage's, naming
/// `peer` and the cause: `expected` gives its text when the cause is the one expected.
async fn assert_unreachable(
    address: &str,
    peer: &str,
    expected: impl Fn(&Transport) -> Option<String>,
) {
    let (error, logged) = register_at(address).await;
    let DiscoveryError::Unreachable { cause, .. } = &error else {
        panic!("{error:?}");
    };
    let cause = expected(cause).unwrap_or_else(|| panic!("unexpected cause: {cause:?}"));
    assert_eq!(
        logged,
        outage_line(&format!(
            "consul at {peer} is unreachable during register: {cause}"
        ))
    );
}

#[tokio::test]
async fn a_refused_connection_says_so() {
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    assert_unreachable(&address, &address, |cause| {
        (*cause == Transport::Refused)
            .then(|| "connection refused (is the agent running, on this port?)".to_string())
    })
    .await;
}

#[tokio::test]
async fn an_unresolvable_name_says_so() {
    let address = "consul.invalid:8500";
    assert_unreachable(address, address, |cause| match cause {
        Transport::NameNotResolved(detail) => {
            Some(format!("cannot resolve the host name: {detail}"))
        }
        _ => None,
    })
    .await;
}

#[tokio::test]
async fn tls_to_a_plain_http_agent_says_so() {
    let consul = double();
    let peer = consul.addr().to_string();
    assert_unreachable(&format!("https://{peer}"), &peer, |cause| match cause {
        Transport::Tls(detail) => Some(format!(
            "TLS handshake failed: {detail} (an agent speaking plain HTTP? then use http://)"
        )),
        _ => None,
    })
    .await;
}

/// A token the agent does not know: a configuration error at ERROR, naming
/// the setting and never the token, repeated at most once a minute, and no
/// outage.
#[tokio::test]
async fn a_403_is_a_configuration_error_not_an_outage() {
    let logs = CapturedLogs::install();
    let consul = double();
    let mut settings = settings_for(&consul);
    settings.token = Some(Secret::new("not-the-token"));
    let discovery = Discovery::consul(settings).unwrap();
    let app = service("app", None);
    for _ in 0..3 {
        let error = discovery.register(&app).await.unwrap_err();
        assert!(
            matches!(error, DiscoveryError::Forbidden { .. }),
            "{error:?}"
        );
    }
    assert_eq!(
        logged_lines(&logs),
        [(
            "ERROR".to_string(),
            "consul denied register (403 ACL not found): the ACL token in `consul.token` \
             (or CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE) is missing, unknown or lacks \
             the permission"
                .to_string()
        )]
    );
    assert!(!logs.text().contains("not-the-token"));
}

#[tokio::test]
async fn an_unreachable_agent_is_an_error_not_a_hang_or_panic() {
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut settings = ConsulSettings::resolve(None, |_| None).unwrap();
    settings.address = address.to_string();
    let error = Discovery::consul(settings)
        .unwrap()
        .register(&service("app", None))
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::Unreachable { .. }),
        "{error}"
    );
}

/// A CA, a server certificate valid only for `server.dc1.consul` and a client certificate,
/// written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    server: (rcgen::Certificate, rcgen::KeyPair),
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf = |name: &str, usage| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
            params.extended_key_usages = vec![usage];
            (params.signed_by(&key, &ca, &ca_key).unwrap(), key)
        };
        let server = leaf("server.dc1.consul", ExtendedKeyUsagePurpose::ServerAuth);
        let (client, client_key) = leaf("autopilot", ExtendedKeyUsagePurpose::ClientAuth);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cas")).unwrap();
        for (file, pem) in [
            ("ca.pem", ca.pem()),
            ("cas/ca.pem", ca.pem()),
            ("client.pem", client.pem()),
            ("client-key.pem", client_key.serialize_pem()),
        ] {
            std::fs::write(dir.path().join(file), pem).unwrap();
        }
        Pki { dir, ca, server }
    }

    fn path(&self, file: &str) -> Option<std::path::PathBuf> {
        Some(self.dir.path().join(file))
    }

    /// A server that presents its certificate and requires a client certificate of the CA.
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .unwrap();
        let (cert, key) = &self.server;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(clients)
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        Arc::new(config)
    }

    /// Verified TLS with this PKI's CA file, client certificate and server name.
    fn tls(&self) -> TlsConfig {
        TlsConfig {
            cafile: self.path("ca.pem"),
            capath: None,
            clientcert: self.path("client.pem"),
            clientkey: self.path("client-key.pem"),
            servername: Some("server.dc1.consul".to_string()),
            verify: true,
        }
    }
}

#[tokio::test]
async fn tls_is_verified_unless_turned_off() {
    let pki = Pki::new();
    let consul = ConsulDouble::start(DoubleConfig {
        acl_token: Some(TOKEN.to_string()),
        tls: Some(pki.server_config()),
        ..DoubleConfig::default()
    })
    .unwrap();
    let register = |tls: TlsConfig| {
        let mut settings = settings_for(&consul);
        settings.scheme = "https".to_string();
        settings.tls = tls;
        async move {
            Discovery::consul(settings)
                .unwrap()
                .register(&service("app", None))
                .await
        }
    };
    let accepted = [
        ("CA file, client certificate, server name", pki.tls()),
        (
            "CA directory instead of a CA file",
            TlsConfig {
                cafile: None,
                capath: pki.path("cas"),
                ..pki.tls()
            },
        ),
        (
            "verification off: unknown CA and wrong name are accepted",
            TlsConfig {
                cafile: None,
                servername: None,
                verify: false,
                ..pki.tls()
            },
        ),
    ];
    let refused = [
        (
            "the bundled web roots do not know the CA",
            TlsConfig {
                cafile: None,
                ..pki.tls()
            },
        ),
        (
            "without the server name, 127.0.0.1 is not in the certificate",
            TlsConfig {
                servername: None,
                ..pki.tls()
            },
        ),
        (
            "the agent requires a client certificate",
            TlsConfig {
                clientcert: None,
                clientkey: None,
                ..pki.tls()
            },
        ),
    ];
    for (case, tls) in accepted {
        let before = consul.requests().len();
        register(tls)
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(consul.requests().len(), before + 1, "{case}");
    }
    let served = consul.requests().len();
    for (case, tls) in refused {
        let error = register(tls).await.expect_err(case);
        assert!(
            matches!(error, DiscoveryError::Unreachable { .. }),
            "{case}: {error}"
        );
    }
    assert_eq!(
        consul.requests().len(),
        served,
        "no refused call reached HTTP"
    );
}
