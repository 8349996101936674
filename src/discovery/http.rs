//! HTTP plumbing shared by the backends: timeouts, and turning HTTP outcomes into
//! [`DiscoveryError`]s. Knows nothing about either catalog's API.

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
        Err(DiscoveryError::Rejected {
            backend: self.backend,
            operation: self.operation,
            status,
            body: truncate(body.trim(), MAX_ERROR_BODY).to_string(),
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

    pub(super) fn unreachable(self, source: http_client::Error) -> DiscoveryError {
        DiscoveryError::Unreachable {
            backend: self.backend,
            operation: self.operation,
            source,
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

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
