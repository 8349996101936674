//! HTTP plumbing shared by the backends: timeouts, and turning HTTP outcomes into
//! [`DiscoveryError`]s: a transport failure is classified once, here
//! ([`Transport::of`]), and a 403 is a configuration error. Knows nothing about either
//! catalog's API.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::DiscoveryError;
use crate::http_client::{self, ClientBuilder, RequestBuilder, Response};

/// Time to establish a connection to the catalog.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole non-blocking request.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of an error body kept in [`DiscoveryError::Rejected`].
const MAX_ERROR_BODY: usize = 512;

/// The request timeout for a query that the server holds for up to `wait`: Consul adds up to
/// `wait / 16` of jitter, and the answer still has to travel.
pub(super) fn blocking_timeout(wait: Duration) -> Duration {
    wait + wait / 16 + REQUEST_TIMEOUT
}

/// A client with autopilot's connection timeout, built from `builder`.
pub(super) fn build_client(
    builder: ClientBuilder,
    backend: &'static str,
) -> Result<http_client::Client, DiscoveryError> {
    builder
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|error| DiscoveryError::Settings {
            setting: backend,
            reason: format!("cannot build the HTTP client: {error}"),
        })
}

/// One catalog operation, for error reporting.
#[derive(Debug, Clone, Copy)]
pub(super) struct Call {
    pub backend: &'static str,
    pub operation: &'static str,
}

impl Call {
    /// Sends the request; a transport failure is [`DiscoveryError::Unreachable`] and a
    /// non-2xx answer is [`DiscoveryError::Rejected`].
    pub(super) async fn send(self, request: RequestBuilder) -> Result<Response, DiscoveryError> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        self.accept(response).await
    }

    /// Like [`Call::send`], but a 404 is an answer (a KV key that does not exist, whose
    /// headers still carry the index to block on), not an error.
    pub(super) async fn send_or_absent(
        self,
        request: RequestBuilder,
    ) -> Result<Response, DiscoveryError> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        if response.status() == http::StatusCode::NOT_FOUND {
            return Ok(response);
        }
        self.accept(response).await
    }

    /// A 2xx answer, or [`DiscoveryError::Rejected`].
    async fn accept(self, response: Response) -> Result<Response, DiscoveryError> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let body = truncate(body.trim(), MAX_ERROR_BODY).to_string();
        if status == http::StatusCode::FORBIDDEN.as_u16() {
            return Err(DiscoveryError::Forbidden {
                backend: self.backend,
                operation: self.operation,
                setting: token_setting(self.backend),
                body,
            });
        }
        Err(DiscoveryError::Rejected {
            backend: self.backend,
            operation: self.operation,
            status,
            body,
        })
    }

    /// Reads the whole body of a successful answer and decodes its JSON.
    pub(super) async fn decode<T: DeserializeOwned>(
        self,
        response: Response,
    ) -> Result<T, DiscoveryError> {
        let body = response.bytes().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&body).map_err(|e| self.invalid(e))
    }

    pub(super) fn unreachable(self, error: http_client::Error) -> DiscoveryError {
        let peer = error.peer().unwrap_or_else(|| "?".to_string());
        DiscoveryError::Unreachable {
            backend: self.backend,
            operation: self.operation,
            peer,
            cause: Transport::of(&error),
        }
    }

    pub(super) fn invalid(self, reason: impl std::fmt::Display) -> DiscoveryError {
        DiscoveryError::InvalidResponse {
            backend: self.backend,
            operation: self.operation,
            reason: reason.to_string(),
        }
    }
}

/// Where a backend's credentials are set, for a 403's message.
fn token_setting(backend: &str) -> &'static str {
    match backend {
        "consul" => "`consul.token` (or CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE)",
        _ => "the catalog's settings",
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Transport {
    #[error("connection refused (is the agent running, on this port?)")]
    Refused,
    #[error("cannot resolve the host name: {0}")]
    NameNotResolved(String),
    #[error("TLS handshake failed: {0} (an agent speaking plain HTTP? then use http://)")]
    Tls(String),
    #[error("no answer in time")]
    TimedOut,
    #[error("{0}")]
    Other(String),
}

impl Transport {
    /// Classifies an HTTP client failure. The one place that knows how the HTTP client
    /// reports its failures: the cause is read from the error's sources. hyper-util reports
    /// a failed lookup as a connect error whose message is "dns error"; rustls reports a
    /// failed handshake as an I/O error of kind `InvalidData`.
    pub(super) fn of(error: &http_client::Error) -> Transport {
        if error.is_timeout() {
            return Transport::TimedOut;
        }
        let mut dns = false;
        // Not the error's own text: it holds the URL.
        let mut innermost = "the request failed".to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            dns |= cause.to_string() == "dns error";
            if let Some(transport) = cause.downcast_ref().and_then(Transport::of_io) {
                return transport;
            }
            innermost = cause.to_string();
            source = cause.source();
        }
        if dns {
            Transport::NameNotResolved(innermost)
        } else {
            Transport::Other(innermost)
        }
    }

    /// The cause an I/O error names, looking into the I/O errors it wraps (their `source`
    /// skips them).
    fn of_io(error: &std::io::Error) -> Option<Transport> {
        match error.kind() {
            std::io::ErrorKind::ConnectionRefused => Some(Transport::Refused),
            std::io::ErrorKind::TimedOut => Some(Transport::TimedOut),
            std::io::ErrorKind::InvalidData => Some(Transport::Tls(match error.get_ref() {
                Some(inner) => inner.to_string(),
                None => error.to_string(),
            })),
            _ => error
                .get_ref()
                .and_then(|inner| inner.downcast_ref())
                .and_then(Transport::of_io),
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
