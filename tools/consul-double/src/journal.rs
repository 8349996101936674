//! The log of every request the double received on the Consul API (not `/_double/`), for
//! tests to assert on.
//!
//! Owns recording and redaction. A token is never stored: `X-Consul-Token` and
//! `Authorization` header values and the `token` query parameter are replaced by
//! `<redacted>`, and only how the token was presented (and whether it was the accepted one)
//! is kept.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// What replaces a token wherever it appeared.
pub const REDACTED: &str = "<redacted>";
/// The oldest entries are dropped past this many, so a long demo run stays bounded.
const CAPACITY: usize = 10_000;

/// How the request presented an ACL token, in Consul's order of precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// No token: the request ran as the anonymous token.
    None,
    /// `?token=`.
    QueryParameter,
    /// `X-Consul-Token`.
    Header,
    /// `Authorization: Bearer`.
    Bearer,
}

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "status")]
pub enum Outcome {
    /// Not answered yet (being handled, blocking, delayed or hung).
    InFlight,
    /// Answered with this HTTP status.
    Answered(u16),
    /// The connection was closed without an answer (reset fault or agent restart).
    Dropped,
}

/// One request, as received.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    /// Position in the log, from 0, never reused (also across `clear_requests`).
    pub seq: u64,
    pub at: SystemTime,
    /// Time since the double started.
    pub elapsed: Duration,
    pub method: String,
    /// The decoded path, e.g. `/v1/agent/check/pass/service:web-1`.
    pub path: String,
    /// The raw query string with any `token` value redacted.
    pub query: String,
    /// Header names in lower case, token-bearing values redacted.
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    pub token: TokenSource,
    /// Whether the presented token was the one the double accepts (false when ACLs are
    /// off or no token was sent).
    pub token_accepted: bool,
    /// Whether the request waited as a blocking query.
    pub blocked: bool,
    pub outcome: Outcome,
}

impl RecordedRequest {
    /// The values of a query parameter, decoded.
    pub fn query_values(&self, name: &str) -> Vec<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .collect()
    }

    /// The body decoded as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

#[derive(Default)]
pub(crate) struct Journal {
    entries: VecDeque<RecordedRequest>,
    next_seq: u64,
}

impl Journal {
    /// Appends a request and returns its sequence number.
    pub fn record(&mut self, mut request: RecordedRequest) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        request.seq = seq;
        if self.entries.len() == CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(request);
        seq
    }

    pub fn update(&mut self, seq: u64, change: impl FnOnce(&mut RecordedRequest)) {
        let Some(first) = self.entries.front().map(|entry| entry.seq) else {
            return;
        };
        let Some(position) = seq.checked_sub(first) else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(position as usize) {
            change(entry);
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = &RecordedRequest> {
        self.entries.iter()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The query string with every `token` value replaced.
pub(crate) fn redact_query(query: &str) -> String {
    if !form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "token") {
        return query.to_string();
    }
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = if key == "token" {
            REDACTED.into()
        } else {
            value
        };
        serializer.append_pair(&key, &value);
    }
    serializer.finish()
}

/// Header value as recorded: token-bearing headers redacted.
pub(crate) fn redact_header(name: &str, value: &str) -> String {
    if name.eq_ignore_ascii_case("x-consul-token") || name.eq_ignore_ascii_case("authorization") {
        REDACTED.to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_from_query_and_headers() {
        let query = redact_query("passing=1&token=s3cr3t&tag=a");
        assert!(!query.contains("s3cr3t"));
        assert!(query.contains("passing=1") && query.contains("tag=a"));
        assert_eq!(redact_query("index=3"), "index=3");
        assert_eq!(redact_header("X-Consul-Token", "s3cr3t"), REDACTED);
        assert_eq!(redact_header("Authorization", "Bearer s3cr3t"), REDACTED);
        assert_eq!(
            redact_header("content-type", "application/json"),
            "application/json"
        );
    }
}
