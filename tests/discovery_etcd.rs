//! The etcd backend against a real etcd server (Debian's `etcd-server`, 3.4), started by
//! each test on free loopback ports with a temporary data directory and killed at the end.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use autopilot::config::model::{CheckStatus, EtcdConfig, WatchConfig};
use autopilot::discovery::{Discovery, HealthyInstances, Instance, ServiceRegistration};
use common::etcd::{Etcd, PREFIX};
use common::{free_port, DEADLINE};
use serde_json::json;

fn service(name: &str, host: &str, ttl_secs: u64) -> ServiceRegistration {
    ServiceRegistration {
        id: format!("{name}-{host}"),
        name: name.to_string(),
        tags: vec!["blue".to_string()],
        port: 8080,
        address: "10.0.0.5".parse().unwrap(),
        ttl: Duration::from_secs(ttl_secs),
        initial_status: None,
        enable_tag_override: false,
        deregister_critical_service_after: None,
    }
}

fn watch(name: &str, interval: Duration) -> WatchConfig {
    WatchConfig {
        name: name.to_string(),
        interval,
        tag: None,
        dc: None,
    }
}

fn ids(result: &HealthyInstances) -> Vec<&str> {
    result.instances.iter().map(|i| i.id.as_str()).collect()
}

async fn instances(discovery: &Discovery, name: &str) -> HealthyInstances {
    discovery
        .healthy_instances(&watch(name, Duration::from_secs(1)), 0)
        .await
        .unwrap()
}

/// Polls the (non-blocking) health query until `done` holds or the deadline passes.
async fn wait_for(discovery: &Discovery, name: &str, done: impl Fn(&HealthyInstances) -> bool) {
    let started = Instant::now();
    loop {
        let result = instances(discovery, name).await;
        if done(&result) {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "still {result:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn register_puts_a_leased_key_that_the_health_query_finds() {
    let etcd = Etcd::start().await;
    // An unreachable first endpoint: the backend moves on to the live one.
    let discovery = Discovery::etcd(&EtcdConfig {
        endpoints: vec![
            format!("http://127.0.0.1:{}", free_port()),
            etcd.endpoint.clone(),
        ],
        prefix: format!("{PREFIX}/"),
    })
    .unwrap();
    let app = service("app", "host1", 10);
    discovery.register(&app).await.unwrap();

    let stored = etcd
        .get("/containerpilot/app/app-host1")
        .await
        .expect("the key exists");
    let value = etcd
        .get_json("/containerpilot/app/app-host1")
        .await
        .unwrap();
    assert_eq!(
        value,
        json!({"ID": "app-host1", "Name": "app", "Address": "10.0.0.5", "Port": 8080, "Tags": ["blue"]})
    );
    assert!(
        stored["lease"].as_str().is_some(),
        "attached to a lease: {stored}"
    );

    let result = instances(&discovery, "app").await;
    assert_eq!(
        result.instances,
        [Instance {
            id: "app-host1".to_string(),
            address: "10.0.0.5".to_string(),
            port: 8080
        }]
    );
    assert!(result.index > 0);
    assert!(instances(&discovery, "other").await.instances.is_empty());
}

#[tokio::test]
async fn the_health_query_filters_by_tag() {
    let etcd = Etcd::start().await;
    let discovery = etcd.discovery();
    let blue = service("api", "host1", 10);
    let green = ServiceRegistration {
        tags: vec!["green".to_string()],
        ..service("api", "host2", 10)
    };
    discovery.register(&blue).await.unwrap();
    discovery.register(&green).await.unwrap();
    let mut tagged = watch("api", Duration::from_secs(1));
    tagged.tag = Some("green".to_string());
    let result = discovery.healthy_instances(&tagged, 0).await.unwrap();
    assert_eq!(ids(&result), ["api-host2"]);
    assert_eq!(
        ids(&instances(&discovery, "api").await),
        ["api-host1", "api-host2"]
    );
}

#[tokio::test]
async fn heartbeats_keep_the_lease_and_its_lapse_removes_the_instance() {
    let etcd = Etcd::start().await;
    let discovery = etcd.discovery();
    // etcd raises TTLs below its minimum (about 2 s with default settings) to that minimum.
    let app = service("app", "host1", 1);
    discovery.register(&app).await.unwrap();
    let ttl = Duration::from_secs(2);
    let heartbeating = Instant::now();
    while heartbeating.elapsed() < 3 * ttl {
        discovery.pass(&app, "ok").await.unwrap();
        assert_eq!(ids(&instances(&discovery, "app").await), ["app-host1"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Unhealthy without a critical mark: no more heartbeats, the lease lapses.
    wait_for(&discovery, "app", |r| r.instances.is_empty()).await;
    assert!(etcd.get("/containerpilot/app/app-host1").await.is_none());
    // The next passing check registers it again under a new lease.
    discovery.pass(&app, "ok").await.unwrap();
    assert_eq!(ids(&instances(&discovery, "app").await), ["app-host1"]);
}

#[tokio::test]
async fn critical_and_deregister_remove_the_instance_at_once() {
    let etcd = Etcd::start().await;
    let discovery = etcd.discovery();
    let app = service("app", "host1", 60);
    let db = service("db", "host1", 60);
    discovery.register(&app).await.unwrap();
    discovery.register(&db).await.unwrap();
    let lease = etcd.get("/containerpilot/app/app-host1").await.unwrap()["lease"].clone();

    discovery
        .mark_critical(&app, "connection refused")
        .await
        .unwrap();
    assert!(instances(&discovery, "app").await.instances.is_empty());
    let alive = etcd
        .gateway("/v3/lease/timetolive", json!({ "ID": lease }))
        .await;
    assert_eq!(alive["TTL"], "-1", "the lease was revoked: {alive}");

    discovery.deregister(&db).await.unwrap();
    assert!(instances(&discovery, "db").await.instances.is_empty());
    // Deregistering what is already gone is fine.
    discovery.deregister(&db).await.unwrap();
}

#[tokio::test]
async fn a_non_passing_initial_status_waits_for_the_first_passing_check() {
    let etcd = Etcd::start().await;
    let discovery = etcd.discovery();
    let app = ServiceRegistration {
        initial_status: Some(CheckStatus::Critical),
        ..service("app", "host1", 60)
    };
    discovery.register(&app).await.unwrap();
    assert!(instances(&discovery, "app").await.instances.is_empty());
    discovery.pass(&app, "up").await.unwrap();
    assert_eq!(ids(&instances(&discovery, "app").await), ["app-host1"]);
}

#[tokio::test]
async fn a_blocking_query_wakes_up_on_a_change() {
    let etcd = Etcd::start().await;
    let discovery = Arc::new(etcd.discovery());
    let first = instances(&discovery, "app").await;
    assert!(first.instances.is_empty());

    // Nothing changes: the query waits out its interval and answers the same.
    let quiet = discovery
        .healthy_instances(&watch("app", Duration::from_millis(300)), first.index)
        .await
        .unwrap();
    assert_eq!(quiet, first);

    // A change wakes a query that would otherwise block for ten minutes.
    let blocking = {
        let discovery = Arc::clone(&discovery);
        tokio::spawn(async move {
            discovery
                .healthy_instances(&watch("app", Duration::from_secs(600)), first.index)
                .await
        })
    };
    discovery
        .register(&service("app", "host1", 60))
        .await
        .unwrap();
    let woken = tokio::time::timeout(DEADLINE, blocking)
        .await
        .expect("the blocking query woke up on the change")
        .unwrap()
        .unwrap();
    assert_eq!(ids(&woken), ["app-host1"]);
    assert!(woken.index > first.index);
}

#[tokio::test]
async fn render_templates_read_services_from_etcd_and_nothing_else() {
    use autopilot::config::template::{Dependency, Fetched, ServiceQuery};
    let etcd = Etcd::start().await;
    let discovery = etcd.discovery();
    discovery
        .register(&service("web", "host1", 30))
        .await
        .unwrap();
    let query = |text: &str| Dependency::Service(ServiceQuery::parse(text).unwrap());
    let wait = Duration::from_secs(1);
    let read = discovery.read(&query("blue.web"), 0, wait).await.unwrap();
    let Fetched::Instances(found) = read.fetched else {
        panic!("{read:?}")
    };
    let found: Vec<_> = found
        .iter()
        .map(|i| (i.id.as_str(), i.address.as_str(), i.port, i.status.as_str()))
        .collect();
    assert_eq!(found, [("web-host1", "10.0.0.5", 8080, "passing")]);
    assert!(read.index > 0, "a revision to block on");
    let other_tag = discovery.read(&query("green.web"), 0, wait).await.unwrap();
    assert_eq!(other_tag.fetched, Fetched::Instances(Vec::new()));
    let key = discovery
        .read(&Dependency::Key("app/x".into()), 0, wait)
        .await
        .unwrap_err();
    assert!(
        key.to_string().contains("only `service` works there"),
        "{key}"
    );
}
