//! Serving HTTP/1.1 with hyper, bounded: at most N connections at once (more
//! wait to be accepted), and a request's headers must arrive in time. Used by
//! the control socket (unix) and the `/metrics` endpoint (TCP). This module
//! owns the accept loop and the serving of one connection; routing belongs to
//! its callers.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::tasks::Tasks;

/// How a server protects itself from slow or too many clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub keep_alive: bool,
}

/// A listening socket: TCP or unix.
pub(crate) trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<Self::Stream> {
        tokio::net::TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept(&self) -> io::Result<Self::Stream> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

/// Serves `handler` on `listener`, in `tasks`, until the returned token
/// is cancelled: the listener is closed then, while the connections it
/// accepted run on (an answer being written is delivered) until they end
/// or the run's tasks are. `name` labels log lines.
pub(crate) fn serve<L, H, F>(
    listener: L,
    limits: Limits,
    name: &'static str,
    handler: H,
    tasks: &Tasks,
) -> CancellationToken
where
    L: Listener,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = tasks.clone();
    tasks.spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!("{name}: accept failed: {error}");
                    continue;
                }
            };
            let handler = handler.clone();
            connections.spawn(async move {
                serve_connection(stream, limits, name, handler).await;
                drop(permit);
            });
        }
    })
}

/// Serves `handler` on one connection (any byte stream) until the client
/// closes it or breaks the limits. A client that shuts down its sending side
/// once the request is out (`nc -N`, `socat`) still gets its answer: without
/// half-close support hyper would drop a request whose handler is not done
/// when the end of the stream is read.
pub(crate) async fn serve_connection<S, H, F>(
    stream: S,
    limits: Limits,
    name: &'static str,
    handler: H,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request<Incoming>) -> F,
    F: Future<Output = Result<Response<Full<Bytes>>, Infallible>>,
{
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(limits.keep_alive)
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service_fn(handler))
        .await;
    if let Err(error) = served {
        tracing::debug!("{name}: connection ended: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{UnixListener, UnixStream};
    use tokio::sync::oneshot;

    const LIMITS: Limits = Limits {
        max_connections: 4,
        header_timeout: Duration::from_secs(5),
        keep_alive: false,
    };

    /// Closing a server stops its accepting at once while the answer it is
    /// preparing still reaches its client (a reload closing the control
    /// socket it was asked through); the run's exit ends what is left.
    #[tokio::test]
    async fn a_closed_server_accepts_no_more_and_still_answers_what_it_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let tasks = Tasks::default();
        let (asked, question) = oneshot::channel::<()>();
        let (answer, answered) = oneshot::channel::<()>();
        let pending = Arc::new(std::sync::Mutex::new(Some((asked, answered))));
        let handler = move |_| {
            let pending = pending.lock().unwrap().take();
            async move {
                if let Some((asked, answered)) = pending {
                    let _ = asked.send(());
                    let _ = answered.await;
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("answer"))))
            }
        };
        let close = serve(
            UnixListener::bind(&path).unwrap(),
            LIMITS,
            "test",
            handler,
            &tasks,
        );
        let mut client = UnixStream::connect(&path).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        question.await.unwrap();
        close.cancel();
        let closed = async {
            while UnixStream::connect(&path).await.is_ok() {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("the listener closes");
        answer.send(()).unwrap();
        let mut reply = String::new();
        client.read_to_string(&mut reply).await.unwrap();
        assert!(reply.ends_with("answer"), "{reply}");
        tasks.shut_down().await;
    }
}
