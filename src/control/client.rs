//! The client side of the control plane: `-ping`, `-reload`, `-maintenance`,
//! `-putenv`, `-putmetric`, `--status`, `-signal`, run from inside the
//! container (usually by a job) against the supervisor's socket.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value};
use tokio::net::UnixStream;

/// Why a control command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error("cannot reach the control socket {path}: {source} (is autopilot running with this -config?)")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: {message}")]
    Protocol { path: PathBuf, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("autopilot answered {status}: {body}")]
    Refused { status: StatusCode, body: String },
}

/// One control command, as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Ping,
    Reload,
    Maintenance(bool),
    PutEnv(Vec<String>),
    PutMetric(Vec<String>),
    Status { json: bool },
    Signal(String),
}

/// Runs `command` against the socket at `socket`; returns the exit code
/// (0 done, 1 failed), having printed what there is to print.
pub(crate) fn run(command: Command, socket: &Path) -> i32 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build();
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(execute(command, socket)),
        Err(error) => Err(ClientError::Usage(error.to_string())),
    };
    match outcome {
        Ok(output) => {
            if !output.is_empty() {
                crate::say!("{output}");
            }
            0
        }
        Err(error) => {
            crate::complain!("autopilot: {error}");
            1
        }
    }
}

/// Performs `command`; returns what to print on success.
pub(crate) async fn execute(command: Command, socket: &Path) -> Result<String, ClientError> {
    match command {
        // ContainerPilot printed `ok`; scripts wait for that word.
        Command::Ping => call(socket, Method::GET, "/v3/ping", None)
            .await
            .map(|_| "ok".to_string()),
        Command::Reload => call(socket, Method::POST, "/v3/reload", None)
            .await
            .map(|_| String::new()),
        Command::Maintenance(enable) => {
            let path = if enable {
                "/v3/maintenance/enable"
            } else {
                "/v3/maintenance/disable"
            };
            call(socket, Method::POST, path, None)
                .await
                .map(|_| String::new())
        }
        Command::PutEnv(pairs) => {
            let body = env_body(&pairs)?;
            call(socket, Method::POST, "/v3/env", Some(body))
                .await
                .map(|_| String::new())
        }
        Command::PutMetric(pairs) => {
            let body = metric_body(&pairs)?;
            call(socket, Method::POST, "/v3/metric", Some(body))
                .await
                .map(|_| String::new())
        }
        Command::Status { json } => {
            let body = call(socket, Method::GET, "/v3/status", None).await?;
            if json {
                return Ok(body);
            }
            let status: Value =
                serde_json::from_str(&body).map_err(|error| ClientError::Protocol {
                    path: socket.to_path_buf(),
                    message: format!("bad status answer: {error}"),
                })?;
            Ok(status_table(&status))
        }
        Command::Signal(spec) => {
            let (job, signal) = spec.split_once('=').ok_or_else(|| {
                ClientError::Usage(format!("-signal wants JOB=SIGNAL, got {spec:?}"))
            })?;
            let body = serde_json::json!({ "signal": signal });
            let path = format!("/v3/jobs/{job}/signal");
            call(socket, Method::POST, &path, Some(body))
                .await
                .map(|_| String::new())
        }
    }
}

/// `K=V` pairs → `{"K": "V"}`; a bare `K` (or `K=`) clears K.
fn env_body(pairs: &[String]) -> Result<Value, ClientError> {
    let object: Map<String, Value> = pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (name.to_string(), Value::String(value.to_string())),
            None => (pair.clone(), Value::Null),
        })
        .collect();
    Ok(Value::Object(object))
}

/// `K=V` pairs → `{"K": V}` with V a number.
fn metric_body(pairs: &[String]) -> Result<Value, ClientError> {
    let object = pairs
        .iter()
        .map(|pair| {
            let (name, value) = pair.split_once('=').ok_or_else(|| {
                ClientError::Usage(format!("-putmetric wants NAME=VALUE, got {pair:?}"))
            })?;
            let number: f64 = value.trim().parse().map_err(|_| {
                ClientError::Usage(format!("-putmetric {name}: {value:?} is not a number"))
            })?;
            let number = serde_json::Number::from_f64(number).ok_or_else(|| {
                ClientError::Usage(format!("-putmetric {name}: {value:?} is not finite"))
            })?;
            Ok((name.to_string(), Value::Number(number)))
        })
        .collect::<Result<Map<String, Value>, ClientError>>()?;
    Ok(Value::Object(object))
}

/// The human table for `--status`.
fn status_table(status: &Value) -> String {
    let field = |value: &Value, key: &str| match &value[key] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut lines = vec![format!(
        "{:<24} {:<12} {:>8} {:>8}  {}",
        "JOB", "STATE", "PID", "RESTARTS", "HEALTH"
    )];
    for job in status["jobs"].as_array().into_iter().flatten() {
        lines.push(format!(
            "{:<24} {:<12} {:>8} {:>8}  {}",
            field(job, "name"),
            field(job, "state"),
            field(job, "pid"),
            field(job, "restarts"),
            field(job, "health")
        ));
    }
    let watches = status["watches"].as_array().into_iter().flatten();
    for (i, watch) in watches.enumerate() {
        if i == 0 {
            lines.push(String::new());
            lines.push(format!("{:<24} {:>9}", "WATCH", "INSTANCES"));
        }
        lines.push(format!(
            "{:<24} {:>9}",
            field(watch, "name"),
            field(watch, "instances")
        ));
    }
    let locks = status["locks"].as_object().into_iter().flatten();
    for (i, (name, lock)) in locks.enumerate() {
        if i == 0 {
            lines.push(String::new());
            lines.push(format!(
                "{:<24} {:<8} {}",
                "LOCK", "HOLDING", "SINCE / HOLDER"
            ));
        }
        let (holding, detail) = match (lock["holding"] == true, &lock["holder"]) {
            (true, _) => ("yes", field(lock, "since")),
            (false, Value::Null) => ("no", "-".to_string()),
            (false, holder) if holder["ID"].is_string() => ("no", field(holder, "ID")),
            (false, holder) => ("no", holder.to_string()),
        };
        lines.push(format!("{name:<24} {holding:<8} {detail}"));
    }
    lines.push(String::new());
    lines.push(format!("maintenance: {}", field(status, "maintenance")));
    lines.push(format!(
        "configuration in force since: {}",
        field(&status["generation"], "startedAt")
    ));
    lines.join("\n")
}

/// One HTTP/1.1 request over the unix socket; the body on 2xx, else an error.
pub(crate) async fn call(
    socket: &Path,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<String, ClientError> {
    let protocol = |message: String| ClientError::Protocol {
        path: socket.to_path_buf(),
        message,
    };
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ClientError::Connect {
            path: socket.to_path_buf(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| protocol(error.to_string()))?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "control");
    let body = match body {
        Some(value) => {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
            Bytes::from(value.to_string())
        }
        None => Bytes::new(),
    };
    let request = request
        .body(Full::new(body))
        .map_err(|error| protocol(error.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| protocol(error.to_string()))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|error| protocol(error.to_string()))?
        .to_bytes();
    let body = String::from_utf8_lossy(&bytes).into_owned();
    if status.is_success() {
        Ok(body)
    } else {
        Err(ClientError::Refused { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn putenv_pairs() {
        let body = env_body(&["A=1".into(), "B".into(), "C=".into(), "D=x=y".into()]).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"A": "1", "B": null, "C": "", "D": "x=y"})
        );
    }

    #[test]
    fn putmetric_pairs() {
        let body = metric_body(&["a=2".into(), "b=1.5".into()]).unwrap();
        assert_eq!(body, serde_json::json!({"a": 2.0, "b": 1.5}));
        assert!(metric_body(&["a".into()]).is_err());
        assert!(metric_body(&["a=x".into()]).is_err());
        assert!(metric_body(&["a=inf".into()]).is_err());
    }

    #[test]
    fn status_table_lists_jobs_and_watches() {
        let status = serde_json::json!({
            "jobs": [{"name": "app", "state": "running", "pid": 7, "restarts": 0, "health": "healthy"}],
            "watches": [{"name": "db", "instances": 2}],
            "locks": {"primary": {"holding": true, "since": "2026-12-06T20:00:00Z"},
                      "backup": {"holding": false, "holder": {"ID": "db-host2"}}},
            "maintenance": false,
            "generation": {"startedAt": "2026-01-02T03:04:05Z"}
        });
        let table = status_table(&status);
        assert!(table.contains("app") && table.contains("running") && table.contains("healthy"));
        assert!(table.contains("db") && table.contains("maintenance: false"));
        assert!(table.ends_with("configuration in force since: 2026-01-02T03:04:05Z"));
        assert!(
            table.contains("primary                  yes      2026-12-06T20:00:00Z"),
            "{table}"
        );
        assert!(table.contains("db-host2"), "{table}");
    }
}
