//! The `/metrics` and `/status` endpoints over a real TCP connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use autopilot::testing::config::model::{MetricConfig, MetricKind};
use autopilot::testing::tasks::Tasks;
use autopilot::testing::telemetry::{self, Metrics};
use reqwest::header::{ALLOW, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves `metrics` on a fresh loopback port and returns its address;
/// `/status` answers a fixed document.
async fn start(metrics: Metrics) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let status: telemetry::StatusQuery =
        Arc::new(|| Box::pin(async { Some(serde_json::json!({"Version": "test"})) }));
    // The server runs until the test's runtime ends.
    telemetry::serve(listener, metrics, status, &Tasks::default());
    address
}

#[tokio::test]
async fn status_answers_get_with_json_and_refuses_other_methods() {
    let address = start(Metrics::new(&[]).unwrap()).await;
    let url = format!("http://{address}/status");
    let response = request(Method::GET, url.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let document: serde_json::Value = response.json().await.unwrap();
    assert_eq!(document, serde_json::json!({"Version": "test"}));
    for method in [Method::POST, Method::HEAD, Method::PUT] {
        let response = request(method.clone(), url.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(response.headers()[ALLOW], "GET", "{method}");
    }
}

fn counter(name: &str) -> MetricConfig {
    MetricConfig {
        full_name: name.to_string(),
        help: "help text".to_string(),
        kind: MetricKind::Counter,
    }
}

async fn request(method: Method, url: String) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, url)
        .send()
        .await
        .expect("the server answers")
}

#[tokio::test]
async fn scrape_shows_recorded_metrics_in_the_prometheus_text_format() {
    let metrics = Metrics::new(&[counter("my_counter")]).unwrap();
    metrics.record("my_counter", 2.0).unwrap();
    metrics.record("my_counter", 2.0).unwrap();
    metrics.event("startup", "global");
    let address = start(metrics).await;

    let response = request(Method::GET, format!("http://{address}/metrics")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert!(lines.contains(&"# TYPE my_counter counter"), "{body}");
    assert!(lines.contains(&"my_counter 4"), "{body}");
    assert!(
        lines.contains(&r#"containerpilot_events{code="startup",source="global"} 1"#),
        "{body}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("process_resident_memory_bytes ")),
        "{body}"
    );
}

#[tokio::test]
async fn head_answers_without_a_body() {
    let address = start(Metrics::new(&[]).unwrap()).await;
    let response = request(Method::HEAD, format!("http://{address}/metrics")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], telemetry::CONTENT_TYPE);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn other_paths_are_not_found_and_other_methods_not_allowed() {
    let address = start(Metrics::new(&[]).unwrap()).await;
    for path in ["/", "/metrics/", "/metricsx", "/v3/ping"] {
        let response = request(Method::GET, format!("http://{address}{path}")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let response = request(method.clone(), format!("http://{address}/metrics")).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(response.headers()[ALLOW], "GET, HEAD");
    }
}

/// Connects, sends `preamble` and waits for the server to hang up; returns
/// what it answered.
async fn answer_to_stalled_request(address: SocketAddr, preamble: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(preamble).await.unwrap();
    let mut answer = Vec::new();
    // Ends in EOF or a reset: either way the server hung up.
    let _closed = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes a connection whose headers never arrive");
    answer
}

#[tokio::test]
async fn clients_that_never_finish_their_headers_are_disconnected() {
    let address = start(Metrics::new(&[]).unwrap()).await;
    let (silent, partial) = tokio::join!(
        answer_to_stalled_request(address, b""),
        answer_to_stalled_request(address, b"GET /metrics HTTP/1.1\r\n"),
    );
    for answer in [silent, partial] {
        assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    }
}
