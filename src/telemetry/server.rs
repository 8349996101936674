//! The `/metrics` HTTP endpoint Prometheus scrapes.
//!
//! `GET` (or `HEAD`) `/metrics` answers the exposition; other methods on
//! `/metrics` get 405, other paths 404. Connections are bounded in number,
//! a request's headers must arrive in time, and each connection serves one
//! request (no keep-alive), so idle or slow clients cannot hold every slot.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE as CONTENT_TYPE_HEADER};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::http_server::{self, Limits};

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

/// Serves `/metrics` on `listener` until the task is aborted. Binding the
/// address (telemetry interfaces and port) is the caller's job.
pub fn serve(listener: TcpListener, metrics: Metrics) -> JoinHandle<()> {
    let limits = Limits {
        max_connections: MAX_CONNECTIONS,
        header_timeout: HEADER_TIMEOUT,
        keep_alive: false,
    };
    http_server::serve(listener, limits, "telemetry", move |request| {
        let response = respond(&metrics, &request);
        async move { Ok::<_, Infallible>(response) }
    })
}

fn respond(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != METRICS_PATH {
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    match *request.method() {
        Method::GET | Method::HEAD => {
            let mut response = text(StatusCode::OK, metrics.encode());
            response
                .headers_mut()
                .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        _ => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
    }
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
