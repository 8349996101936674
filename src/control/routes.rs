//! The control plane's routes: method + path → handler → status and body.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Response, StatusCode};
use nix::sys::signal::Signal;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use super::{Api, Request, SignalOutcome, BODY_TIMEOUT, MAX_BODY};

type Reply = Response<Full<Bytes>>;

/// One request in, one response out; never an error at the HTTP layer.
pub(super) async fn handle(
    api: Api,
    request: hyper::Request<Incoming>,
) -> Result<Reply, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let body = match read_body(request.into_body()).await {
        Ok(body) => body,
        Err(reply) => return Ok(reply),
    };
    let reply = route(&api, &method, &path, &body).await;
    tracing::debug!("control: {method} {path} → {}", reply.status());
    if let Some(metrics) = &*api.metrics.borrow() {
        metrics.control_request(reply.status().as_u16(), counted_path(&path));
    }
    Ok(reply)
}

/// The path label for the request counter: known routes only, so that the
/// label set cannot grow without bound.
fn counted_path(path: &str) -> &str {
    match path {
        "/v3/ping"
        | "/v3/env"
        | "/v3/environ"
        | "/v3/metric"
        | "/v3/reload"
        | "/v3/status"
        | "/v3/maintenance/enable"
        | "/v3/maintenance/disable" => path,
        _ if path.starts_with("/v3/jobs/") && path.ends_with("/signal") => "/v3/jobs/signal",
        _ => "other",
    }
}

async fn route(api: &Api, method: &Method, path: &str, body: &[u8]) -> Reply {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["v3", "ping"]) => text(StatusCode::OK, "ok"),
        (&Method::POST, ["v3", "env" | "environ"]) => put_env(api, body),
        (&Method::POST, ["v3", "metric"]) => put_metrics(api, body),
        (&Method::POST, ["v3", "reload"]) => reload(api).await,
        (&Method::POST, ["v3", "maintenance", switch @ ("enable" | "disable")]) => {
            maintenance(api, *switch == "enable").await
        }
        (&Method::GET, ["v3", "status"]) => status(api).await,
        (&Method::POST, ["v3", "jobs", job, "signal"]) => signal_job(api, job, body).await,
        (_, ["v3", "ping" | "env" | "environ" | "metric" | "reload" | "status"])
        | (_, ["v3", "maintenance", "enable" | "disable"])
        | (_, ["v3", "jobs", _, "signal"]) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, Reply> {
    let limited = Limited::new(body, MAX_BODY);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {MAX_BODY} bytes"),
        )),
        Ok(Err(error)) => Err(text(StatusCode::BAD_REQUEST, &error.to_string())),
        Err(_) => Err(text(StatusCode::REQUEST_TIMEOUT, "request body timed out")),
    }
}

/// `POST /v3/env`: `{"NAME": "value"}`; `""` or `null` unsets. Everything is
/// checked before anything is applied, so a bad body changes nothing.
fn put_env(api: &Api, body: &[u8]) -> Reply {
    let updates = match json_object(body).and_then(|object| env_updates(&object)) {
        Ok(updates) => updates,
        Err(message) => return text(StatusCode::UNPROCESSABLE_ENTITY, &message),
    };
    for (name, value) in updates {
        api.env.set(&name, value.as_deref());
    }
    text(StatusCode::OK, "")
}

fn env_updates(object: &Map<String, Value>) -> Result<Vec<(String, Option<String>)>, String> {
    object
        .iter()
        .map(|(name, value)| {
            if !is_env_name(name) {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            match value {
                Value::Null => Ok((name.clone(), None)),
                Value::String(s) if s.is_empty() => Ok((name.clone(), None)),
                Value::String(s) => Ok((name.clone(), Some(s.clone()))),
                other => Err(format!(
                    "{name}: value must be a string or null, not {other}"
                )),
            }
        })
        .collect()
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `POST /v3/metric`: `{"name": number}`. Every value is checked before any
/// is recorded.
fn put_metrics(api: &Api, body: &[u8]) -> Reply {
    let values = json_object(body).and_then(|object| {
        object
            .iter()
            .map(|(name, value)| match value.as_f64() {
                Some(number) => Ok((name.clone(), number)),
                None => Err(format!("{name}: value must be a number, not {value}")),
            })
            .collect::<Result<Vec<_>, _>>()
    });
    let values = match values {
        Ok(values) => values,
        Err(message) => return text(StatusCode::UNPROCESSABLE_ENTITY, &message),
    };
    let Some(metrics) = api.metrics.borrow().clone() else {
        return text(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no telemetry is configured: there are no metrics",
        );
    };
    let invalid = values
        .iter()
        .find_map(|(name, value)| metrics.check(name, *value).err());
    if let Some(error) = invalid {
        return text(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string());
    }
    for (name, value) in values {
        if let Err(error) = metrics.record(&name, value) {
            return text(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string());
        }
    }
    text(StatusCode::OK, "")
}

async fn reload(api: &Api) -> Reply {
    match ask(api, Request::Reload).await {
        Some(Ok(())) => text(StatusCode::OK, ""),
        Some(Err(message)) => text(StatusCode::BAD_REQUEST, &message),
        None => unavailable(),
    }
}

async fn maintenance(api: &Api, enable: bool) -> Reply {
    match ask(api, |reply| Request::Maintenance(enable, reply)).await {
        Some(updated) => json_reply(StatusCode::OK, &json!({ "updated": updated })),
        None => unavailable(),
    }
}

async fn status(api: &Api) -> Reply {
    match ask(api, Request::Status).await {
        Some(status) => json_reply(StatusCode::OK, &status),
        None => unavailable(),
    }
}

/// `POST /v3/jobs/<name>/signal` with `{"signal": "SIGHUP"}` [beyond].
async fn signal_job(api: &Api, job: &str, body: &[u8]) -> Reply {
    let signal = json_object(body).and_then(|object| match object.get("signal") {
        Some(Value::String(name)) => parse_signal(name),
        _ => Err("body must be {\"signal\": \"<NAME>\"}".to_string()),
    });
    let signal = match signal {
        Ok(signal) => signal,
        Err(message) => return text(StatusCode::UNPROCESSABLE_ENTITY, &message),
    };
    let job = job.to_string();
    let outcome = ask(api, |reply| Request::SignalJob { job, signal, reply }).await;
    match outcome {
        Some(SignalOutcome::Signalled) => json_reply(StatusCode::OK, &json!({ "signalled": true })),
        Some(SignalOutcome::NoSuchJob) => text(StatusCode::NOT_FOUND, "no such job"),
        Some(SignalOutcome::NotRunning) => text(StatusCode::CONFLICT, "job has no running process"),
        None => unavailable(),
    }
}

/// `SIGHUP`, `HUP` or a number, as a configuration names signals.
pub(super) fn parse_signal(name: &str) -> Result<Signal, String> {
    crate::config::jobs::parse_signal(name.trim()).ok_or_else(|| format!("unknown signal {name:?}"))
}

/// Sends a request to the supervisor and waits for its answer; `None` when
/// the supervisor is gone (shutting down).
async fn ask<T>(api: &Api, request: impl FnOnce(oneshot::Sender<T>) -> Request) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    api.requests.send(request(reply)).ok()?;
    answer.await.ok()
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("body must be a JSON object".to_string()),
        Err(error) => Err(format!("body is not valid JSON: {error}")),
    }
}

fn unavailable() -> Reply {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "autopilot is shutting down",
    )
}

fn text(status: StatusCode, body: &str) -> Reply {
    reply(status, "text/plain; charset=utf-8", body.to_string())
}

fn json_reply(status: StatusCode, value: &Value) -> Reply {
    reply(status, "application/json", value.to_string())
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert!(is_env_name("FOO_1"));
        assert!(is_env_name("_x"));
        assert!(!is_env_name("1FOO"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
    }

    #[test]
    fn env_updates_check_every_value_first() {
        let object = json_object(br#"{"A": "1", "B": "", "C": null}"#).unwrap();
        assert_eq!(
            env_updates(&object).unwrap(),
            [
                ("A".to_string(), Some("1".to_string())),
                ("B".to_string(), None),
                ("C".to_string(), None)
            ]
        );
        let bad = json_object(br#"{"A": "1", "B": 2}"#).unwrap();
        assert!(env_updates(&bad).is_err());
        assert!(json_object(b"[1]").is_err());
        assert!(json_object(b"garbage").is_err());
    }

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("SIGHUP"), Ok(Signal::SIGHUP));
        assert_eq!(parse_signal("hup"), Ok(Signal::SIGHUP));
        assert_eq!(parse_signal("15"), Ok(Signal::SIGTERM));
        assert!(parse_signal("SIGNOPE").is_err());
    }
}
