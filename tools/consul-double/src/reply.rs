//! An HTTP answer before it becomes a hyper response: status, body, content type and the
//! `X-Consul-*` metadata headers.
//!
//! Owns response construction only.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::Response;
use serde::Serialize;

use crate::error::ApiError;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

pub(crate) struct Reply {
    pub status: u16,
    body: Bytes,
    content_type: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// 200 with no body, as Consul answers successful agent writes.
    pub fn empty() -> Self {
        Reply {
            status: 200,
            body: Bytes::new(),
            content_type: None,
            headers: Vec::new(),
        }
    }

    pub fn json(value: &impl Serialize) -> Self {
        Reply {
            status: 200,
            body: serde_json::to_vec(value).unwrap_or_default().into(),
            content_type: Some(JSON),
            headers: Vec::new(),
        }
    }

    /// 200 with raw bytes (`?raw` KV reads).
    pub fn bytes(body: Vec<u8>) -> Self {
        Reply {
            status: 200,
            body: Bytes::from(body),
            content_type: None,
            headers: Vec::new(),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            body: Bytes::from(body.into()),
            content_type: Some(TEXT),
            headers: Vec::new(),
        }
    }

    /// 401 with the challenge a proxy requiring Basic authentication sends.
    pub fn unauthorized() -> Self {
        let mut reply = Reply::text(401, "Unauthorized");
        reply
            .headers
            .push(("WWW-Authenticate", "Basic realm=\"consul\"".into()));
        reply
    }

    pub fn error(error: &ApiError) -> Self {
        Reply::text(error.status_code(), error.to_string())
    }

    /// Adds the query metadata Consul sends with every blocking-capable read.
    pub fn with_index(mut self, index: u64) -> Self {
        self.headers.push(("X-Consul-Index", index.to_string()));
        self.headers.push(("X-Consul-KnownLeader", "true".into()));
        self.headers.push(("X-Consul-LastContact", "0".into()));
        self
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut builder = Response::builder().status(self.status);
        if let Some(content_type) = self.content_type {
            builder = builder.header("Content-Type", content_type);
        }
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        builder.body(Full::new(self.body)).unwrap_or_else(|error| {
            // Only an injected status outside 100..=999 gets here.
            let mut response = Response::new(Full::new(Bytes::from(error.to_string())));
            *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            response
        })
    }
}
