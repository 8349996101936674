//! The telemetry HTTP endpoint: `/metrics`, which Prometheus scrapes, and
//! `/status`, ContainerPilot's JSON summary of jobs, services and watches.
//!
//! `GET` (or `HEAD`) `/metrics` answers the exposition; `GET /status` the
//! document a [`StatusQuery`] produces (as ContainerPilot, only GET: even
//! HEAD gets 405); other methods get 405, other paths 404. Connections are bounded in number,
//! a request's headers must arrive in time, and each connection serves one
//! request (no keep-alive), so idle or slow clients cannot hold every slot.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE as CONTENT_TYPE_HEADER};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http_server::{self, Limits};
use crate::tasks::Tasks;

use super::Metrics;

/// The content type of the exposition: Prometheus text format 0.0.4, as
/// client_golang served it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// At most this many connections are served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 16;
/// A request's headers must arrive within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The path Prometheus scrapes.
const METRICS_PATH: &str = "/metrics";
/// ContainerPilot's status document.
const STATUS_PATH: &str = "/status";

/// Produces the `/status` document on demand; `None` when autopilot is no
/// longer there to answer (it is exiting). The supervisor builds it: this
/// module does not know jobs.
pub type StatusQuery =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<serde_json::Value>> + Send>> + Send + Sync>;

/// Serves `/metrics` and `/status` on `listener` until the task is aborted.
/// Binding the address (telemetry interfaces and port) is the caller's job.
pub fn serve(
    listener: TcpListener,
    metrics: Metrics,
    status: StatusQuery,
    tasks: &Tasks,
) -> CancellationToken {
    let limits = Limits {
        max_connections: MAX_CONNECTIONS,
        header_timeout: HEADER_TIMEOUT,
        keep_alive: false,
    };
    http_server::serve(
        listener,
        limits,
        "telemetry",
        move |request| {
            let (metrics, status) = (metrics.clone(), status.clone());
            async move { Ok::<_, Infallible>(respond(&metrics, &status, &request).await) }
        },
        tasks,
    )
}

async fn respond(
    metrics: &Metrics,
    status: &StatusQuery,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let method = request.method();
    match request.uri().path() {
        METRICS_PATH if method == Method::GET || method == Method::HEAD => {
            with_type(text(StatusCode::OK, metrics.encode()), CONTENT_TYPE)
        }
        METRICS_PATH => not_allowed("GET, HEAD"),
        STATUS_PATH if method == Method::GET => match status().await {
            Some(document) => with_type(
                text(StatusCode::OK, format!("{document}\n")),
                "application/json",
            ),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "autopilot is exiting\n"),
        },
        STATUS_PATH => not_allowed("GET"),
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

fn with_type(
    mut response: Response<Full<Bytes>>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(content_type));
    response
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE_HEADER,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
