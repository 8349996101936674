//! The HTTP/1.1 server: accepts connections, records each request, applies faults, and hands
//! the rest to `api` (or `introspect` for `/_double/`).
//!
//! Owns connections and their fate: closing them on an agent restart, on a `Reset` fault
//! (with a TCP reset, via `SO_LINGER` 0) and at shutdown. Built on hyper directly rather
//! than a framework because faults act on the connection, below where routers reach.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_rustls::TlsAcceptor;

use crate::acl::PresentedToken;
use crate::api::{self, ApiRequest};
use crate::control::{Control, Shared};
use crate::faults::Fault;
use crate::introspect;
use crate::journal::{redact_header, redact_query, Outcome, RecordedRequest};
use crate::reply::Reply;
use crate::timers;

/// Serves until `shutdown` turns true or its sender goes away.
pub(crate) async fn run(listener: TcpListener, control: Control, shutdown: watch::Receiver<bool>) {
    tracing::info!(addr = %control.addr(), "consul double listening");
    tokio::join!(
        accept_loop(listener, control.clone(), shutdown.clone()),
        timers::run(control.shared().clone(), shutdown),
    );
}

async fn accept_loop(listener: TcpListener, control: Control, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(serve_connection(stream, control.clone(), shutdown.clone()));
                }
                Err(error) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// What a request handler can tell its connection.
#[derive(Default)]
struct ConnectionControl {
    reset: AtomicBool,
    close: Notify,
}

impl ConnectionControl {
    fn reset_now(&self) {
        self.reset.store(true, Ordering::SeqCst);
        self.close.notify_one();
    }
}

async fn serve_connection(stream: TcpStream, control: Control, shutdown: watch::Receiver<bool>) {
    let connection = Arc::new(ConnectionControl::default());
    let stream = ResettableStream {
        inner: stream,
        connection: connection.clone(),
    };
    match control.shared().config.tls.clone() {
        None => serve_http(stream, connection, control, shutdown).await,
        Some(tls) => {
            // A failed handshake ends the connection before any request.
            if let Ok(stream) = TlsAcceptor::from(tls).accept(stream).await {
                serve_http(stream, connection, control, shutdown).await;
            }
        }
    }
}

async fn serve_http(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    connection: Arc<ConnectionControl>,
    control: Control,
    mut shutdown: watch::Receiver<bool>,
) {
    let io = TokioIo::new(stream);
    let mut restarts = control.shared().subscribe_restarts();
    let service = service_fn({
        let connection = connection.clone();
        move |request| {
            let control = control.clone();
            let connection = connection.clone();
            async move { Ok::<_, Infallible>(handle(&control, &connection, request).await) }
        }
    });
    let serving = http1::Builder::new().serve_connection(io, service);
    tokio::select! {
        _ = serving => {}
        _ = connection.close.notified() => {}
        _ = restarts.changed() => {}
        _ = shutdown.changed() => {}
    }
}

async fn handle(
    control: &Control,
    connection: &ConnectionControl,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let path = percent_decode_str(parts.uri.path())
        .decode_utf8_lossy()
        .into_owned();
    let query = parts.uri.query().unwrap_or_default();
    if path.starts_with(introspect::PREFIX) {
        return introspect::handle(control, &parts.method, &path, query, &body).into_response();
    }
    let shared = control.shared();
    let generation = shared.restart_generation();
    let token = PresentedToken::find(&parts.headers, query);
    let recorded = record(shared, &parts, &path, query, &body, &token);
    let summary = match recorded.query.as_str() {
        "" => format!("{} {}", recorded.method, recorded.path),
        query => format!("{} {}?{query}", recorded.method, recorded.path),
    };
    let seq = shared.write(|inner| inner.journal.record(recorded));
    let pending = PendingAnswer {
        shared: shared.clone(),
        seq,
        summary,
        answered: false,
    };
    if !passes_http_auth(shared.config.http_auth.as_deref(), &parts) {
        return pending.answer(Reply::unauthorized());
    }
    let legacy = match apply_fault(shared, &path, connection).await {
        FaultEffect::Answer(reply) => return pending.answer(reply),
        FaultEffect::Proceed { legacy } => legacy,
    };
    let request = ApiRequest {
        seq,
        method: parts.method,
        path,
        params: form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        body,
        token,
        legacy,
    };
    let reply = api::handle(shared, request).await;
    if shared.restart_generation() != generation {
        // The agent restarted while this request was in flight: its connection is closing.
        return std::future::pending().await;
    }
    pending.answer(reply)
}

fn record(
    shared: &Shared,
    parts: &Parts,
    path: &str,
    query: &str,
    body: &[u8],
    token: &PresentedToken,
) -> RecordedRequest {
    let text =
        |value: &hyper::header::HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
    RecordedRequest {
        seq: 0,
        at: SystemTime::now(),
        elapsed: shared.started.elapsed(),
        method: parts.method.to_string(),
        path: path.to_string(),
        query: redact_query(query),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.to_string(), redact_header(name.as_str(), &text(value))))
            .collect(),
        content_type: parts.headers.get(CONTENT_TYPE).map(text),
        body: String::from_utf8_lossy(body).into_owned(),
        token: token.source,
        token_accepted: token.is(shared.config.acl_token.as_deref()),
        blocked: false,
        outcome: Outcome::InFlight,
    }
}

/// Whether the request carries the Basic credentials `required` (`user:password`), when the
/// double stands behind a proxy that requires them.
fn passes_http_auth(required: Option<&str>, parts: &Parts) -> bool {
    use base64::Engine as _;
    let Some(required) = required else {
        return true;
    };
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .is_some_and(|credentials| credentials == required.as_bytes())
}

enum FaultEffect {
    Answer(Reply),
    Proceed { legacy: bool },
}

/// Applies the fault rule matching the request, if any.
async fn apply_fault(shared: &Shared, path: &str, connection: &ConnectionControl) -> FaultEffect {
    let (fault, epoch) = shared.write(|inner| (inner.faults.take(path), inner.faults.epoch()));
    match fault {
        None => FaultEffect::Proceed { legacy: false },
        Some(Fault::LegacyAgent) => FaultEffect::Proceed { legacy: true },
        Some(Fault::Status { code, body }) => FaultEffect::Answer(Reply::text(code, body)),
        Some(Fault::Delay { delay }) => {
            tokio::time::sleep(delay).await;
            FaultEffect::Proceed { legacy: false }
        }
        Some(Fault::Hang) => {
            wait_for_faults_cleared(shared, epoch).await;
            FaultEffect::Proceed { legacy: false }
        }
        Some(Fault::Reset) => {
            connection.reset_now();
            std::future::pending().await
        }
    }
}

async fn wait_for_faults_cleared(shared: &Shared, epoch: u64) {
    let mut changes = shared.subscribe();
    while shared.read(|inner| inner.faults.epoch()) == epoch {
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Records how a request ended: answered, or dropped with its connection.
struct PendingAnswer {
    shared: Arc<Shared>,
    seq: u64,
    summary: String,
    answered: bool,
}

impl PendingAnswer {
    fn answer(mut self, reply: Reply) -> Response<Full<Bytes>> {
        self.answered = true;
        let status = reply.status;
        tracing::info!(status, "{}", self.summary);
        self.shared.write(|inner| {
            inner
                .journal
                .update(self.seq, |entry| entry.outcome = Outcome::Answered(status))
        });
        reply.into_response()
    }
}

impl Drop for PendingAnswer {
    fn drop(&mut self) {
        if !self.answered {
            tracing::info!("{} dropped without an answer", self.summary);
            self.shared.write(|inner| {
                inner
                    .journal
                    .update(self.seq, |entry| entry.outcome = Outcome::Dropped)
            });
        }
    }
}

/// A TCP stream that closes with a reset instead of a FIN when its connection asked for it.
struct ResettableStream {
    inner: TcpStream,
    connection: Arc<ConnectionControl>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.connection.reset.load(Ordering::SeqCst) {
            // Best effort: without it the peer sees a FIN, which also ends the exchange.
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
