//! The `control_request` fuzz driver: raw bytes, as one client connection to
//! the control socket, through the same request handling the socket uses
//! (`autopilot::testing::control::serve_connection`: hyper's HTTP/1.1 parser, the body
//! limits, the routes and their JSON bodies), over an in-memory stream. A
//! stand-in supervisor answers what the routes ask of it.
//!
//! The connection must end once the client's bytes are used up (the stream is
//! closed after them, so no timeout is ever needed), nothing may panic, and
//! what comes back must be HTTP/1.x responses, none of them a server error.
//! Shared by the cargo-fuzz target and the corpus replay test
//! (`tests/integration/fuzz_corpus.rs`), which includes this file with `#[path]`.

use std::time::Duration;

use autopilot::testing::config::model::{MetricConfig, MetricKind};
use autopilot::testing::control::{self, Api, Request, SignalOutcome};
use autopilot::testing::environment::Environment;
use autopilot::testing::telemetry::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Far more than serving any input from memory takes; reaching it means the
/// server waits for something that will never come.
const LIMIT: Duration = Duration::from_secs(3);

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
}

/// Sends `data` as a client would, then closes; checks what comes back.
pub fn run(data: &[u8]) {
    let response = RUNTIME.with(|runtime| runtime.block_on(exchange(data)));
    check(&response);
}

async fn exchange(data: &[u8]) -> Vec<u8> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (requests, supervisor) = mpsc::unbounded_channel();
    let api = Api {
        env: Environment::from_process(),
        requests,
        metrics: tokio::sync::watch::channel(Some(metrics())).1,
    };
    let (mut from_server, mut to_server) = tokio::io::split(client);
    let send = async {
        // The server may close first (a bad request): the rest is not read.
        let _ = to_server.write_all(data).await;
        let _ = to_server.shutdown().await;
    };
    let mut response = Vec::new();
    let receive = from_server.read_to_end(&mut response);
    // One task for all, so that a panic anywhere reaches the fuzzer.
    let everything = async {
        tokio::join!(
            control::serve_connection(server, api),
            answer(supervisor),
            send,
            receive
        )
    };
    tokio::time::timeout(LIMIT, everything)
        .await
        .expect("the connection ends once the client's bytes are used up")
        .3
        .expect("reading the responses");
    response
}

/// The routes' counterpart: answers every request until the server is gone.
async fn answer(mut requests: mpsc::UnboundedReceiver<Request>) {
    while let Some(request) = requests.recv().await {
        match request {
            Request::Reload(reply) => {
                let _ = reply.send(Ok(()));
            }
            Request::Maintenance(enable, reply) => {
                let _ = reply.send(enable);
            }
            Request::Status(reply) => {
                let _ = reply.send(serde_json::json!({ "jobs": [] }));
            }
            Request::SignalJob { job, reply, .. } => {
                let outcome = if job == "app" {
                    SignalOutcome::Signalled
                } else {
                    SignalOutcome::NoSuchJob
                };
                let _ = reply.send(outcome);
            }
        }
    }
}

fn metrics() -> Metrics {
    let metric = |name: &str, kind| MetricConfig {
        full_name: name.to_string(),
        help: "fuzzing".to_string(),
        kind,
    };
    Metrics::new(&[
        metric("jobs_done", MetricKind::Counter),
        metric("queue_depth", MetricKind::Gauge),
        metric("latency_seconds", MetricKind::Histogram),
    ])
    .expect("valid metrics")
}

/// Nothing, or HTTP/1.x responses, the first not a server error.
fn check(response: &[u8]) {
    if response.is_empty() {
        return;
    }
    let status = response
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| response.strip_prefix(b"HTTP/1.0 "))
        .unwrap_or_else(|| {
            panic!(
                "not an HTTP/1.x response: {:?}",
                String::from_utf8_lossy(response)
            )
        });
    assert!(
        !status.starts_with(b"5"),
        "server error: {:?}",
        String::from_utf8_lossy(response)
    );
}
