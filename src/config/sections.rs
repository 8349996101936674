//! The configuration sections both file formats share: `consul`, `etcd`,
//! `logging`, `control`, and the common parts of `telemetry`. Each function
//! reads one section into its model type and enforces its rules.

use std::path::PathBuf;

use serde_json::Value;

use super::address::{check_host_port, check_http_url, Port};
use super::decode::{Object, Result};
use super::error::{did_you_mean, ConfigError};
use super::jobs::{check_interfaces, DEFAULT_INTERFACES};
use super::model::{
    ConsulConfig, ControlConfig, EtcdConfig, LogFormat, LogLevel, LogOutput, LoggingConfig,
    MetricConfig, MetricKind, TlsConfig,
};

/// `consul`: `"host:port"`, `"https://host:port"`, or an object. An empty
/// string (an unset template variable) means no Consul configuration.
pub(crate) fn consul(value: &Value, path: &str) -> Result<Option<ConsulConfig>> {
    let object = match value {
        Value::String(text) if text.is_empty() => return Ok(None),
        Value::String(text) => {
            let (scheme, address) = split_scheme(text, path)?;
            check_host_port(&address, path, Port::Optional)?;
            return Ok(Some(ConsulConfig {
                address,
                scheme: scheme.unwrap_or("http").to_string(),
                token: None,
                tls: None,
            }));
        }
        other => Object::new(other, path, &["address", "scheme", "token", "tls"])?,
    };
    let address_text = object.string("address")?.unwrap_or_default();
    let (address_scheme, address) = split_scheme(&address_text, &object.at("address"))?;
    check_host_port(&address, &object.at("address"), Port::Optional)?;
    let scheme = match object.non_empty_string("scheme")? {
        Some(scheme) if scheme == "http" || scheme == "https" => scheme,
        Some(other) => {
            return Err(ConfigError::invalid(
                object.at("scheme"),
                format!("must be \"http\" or \"https\", not {other:?}"),
            ))
        }
        None => address_scheme.unwrap_or("http").to_string(),
    };
    let tls = object
        .object(
            "tls",
            &[
                "cafile",
                "capath",
                "clientcert",
                "clientkey",
                "servername",
                "verify",
            ],
        )?
        .map(|tls| tls_config(&tls))
        .transpose()?;
    Ok(Some(ConsulConfig {
        address,
        scheme,
        token: object.non_empty_string("token")?,
        tls,
    }))
}

fn tls_config(tls: &Object<'_>) -> Result<TlsConfig> {
    let path = |key: &str| -> Result<Option<PathBuf>> {
        Ok(tls.non_empty_string(key)?.map(PathBuf::from))
    };
    Ok(TlsConfig {
        cafile: path("cafile")?,
        capath: path("capath")?,
        clientcert: path("clientcert")?,
        clientkey: path("clientkey")?,
        servername: tls.non_empty_string("servername")?,
        verify: tls.bool("verify")?.unwrap_or(true),
    })
}

/// Splits an optional `http://` / `https://` off an address.
fn split_scheme<'t>(text: &'t str, path: &str) -> Result<(Option<&'t str>, String)> {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => (Some(scheme), rest),
        Some((other, _)) => {
            return Err(ConfigError::invalid(
                path,
                format!("scheme {other:?} is not supported (use http or https)"),
            ));
        }
        None => (None, text),
    };
    Ok((scheme, rest.trim_end_matches('/').to_string()))
}

/// `etcd`: `{endpoints: "url" | ["url", ...], prefix}`.
pub(crate) fn etcd(value: &Value, path: &str) -> Result<EtcdConfig> {
    let object = Object::new(value, path, &["endpoints", "prefix"])?;
    let endpoints = object.string_or_strings("endpoints")?.unwrap_or_default();
    if endpoints.iter().all(String::is_empty) {
        return Err(ConfigError::invalid(
            object.at("endpoints"),
            "required: at least one etcd URL",
        ));
    }
    for endpoint in endpoints.iter().filter(|e| !e.is_empty()) {
        check_http_url(endpoint, &object.at("endpoints"), false)?;
    }
    Ok(EtcdConfig {
        endpoints,
        prefix: object
            .non_empty_string("prefix")?
            .unwrap_or_else(|| "/containerpilot".to_string()),
    })
}

/// `logging`: `{level, format, output}`; names are matched ignoring case.
pub(crate) fn logging(value: &Value, path: &str) -> Result<LoggingConfig> {
    let object = Object::new(value, path, &["level", "format", "output"])?;
    let mut config = LoggingConfig::default();
    if let Some(level) = object.non_empty_string("level")? {
        config.level = match level.to_ascii_uppercase().as_str() {
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARN" | "WARNING" => LogLevel::Warn,
            "ERROR" => LogLevel::Error,
            "FATAL" => LogLevel::Fatal,
            "PANIC" => LogLevel::Panic,
            _ => {
                return Err(one_of(
                    &object.at("level"),
                    &level,
                    &["DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC"],
                ))
            }
        };
    }
    if let Some(format) = object.non_empty_string("format")? {
        config.format = match format.to_ascii_lowercase().as_str() {
            "default" => LogFormat::Default,
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                return Err(one_of(
                    &object.at("format"),
                    &format,
                    &["default", "text", "json"],
                ))
            }
        };
    }
    if let Some(output) = object.non_empty_string("output")? {
        config.output = match output.as_str() {
            "stdout" => LogOutput::Stdout,
            "stderr" => LogOutput::Stderr,
            file => LogOutput::File(PathBuf::from(file)),
        };
    }
    Ok(config)
}

/// The longest path a unix socket can be bound at: `sun_path` holds 108
/// bytes with the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// `control`: `{socket}`. An empty `socket` is refused: ContainerPilot tried
/// to listen on "" and failed, and falling back to the default path would
/// leave `-putenv` and friends of a job talking to another socket.
pub(crate) fn control(value: &Value, path: &str) -> Result<ControlConfig> {
    let object = Object::new(value, path, &["socket"])?;
    let Some(socket) = object.string("socket")? else {
        return Ok(ControlConfig::default());
    };
    let at = object.at("socket");
    if socket.trim().is_empty() {
        return Err(ConfigError::invalid(
            at,
            "must not be empty: give a path, or leave out `socket` for the default /var/run/containerpilot.socket",
        ));
    }
    if socket.ends_with('/') {
        return Err(ConfigError::invalid(
            at,
            format!("{socket:?} names a directory: give the socket file's path"),
        ));
    }
    if socket.len() > MAX_SOCKET_PATH {
        return Err(ConfigError::invalid(
            at,
            format!(
                "{} bytes is too long for a unix socket path (at most {MAX_SOCKET_PATH})",
                socket.len()
            ),
        ));
    }
    Ok(ControlConfig {
        socket: PathBuf::from(socket),
        explicit: true,
    })
}

/// The `telemetry` fields both formats share: port (default 9090),
/// interfaces (an array; a string is an error, as in ContainerPilot) and tags.
pub(crate) struct TelemetryBase {
    pub port: u16,
    pub interfaces: Vec<String>,
    pub tags: Vec<String>,
}

pub(crate) fn telemetry_base(object: &Object<'_>) -> Result<TelemetryBase> {
    let port = match object.int("port")? {
        None => 9090,
        Some(port) => u16::try_from(port)
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| {
                ConfigError::invalid(
                    object.at("port"),
                    format!("{port} is not a TCP port (1-65535)"),
                )
            })?,
    };
    let interfaces = object
        .strings("interfaces")?
        .unwrap_or_else(|| DEFAULT_INTERFACES.map(String::from).to_vec());
    check_interfaces(&interfaces, &object.at("interfaces"))?;
    Ok(TelemetryBase {
        port,
        interfaces,
        tags: object.strings("tags")?.unwrap_or_default(),
    })
}

/// One metric: `{namespace, subsystem, name, help, type}`.
pub(crate) fn metric(object: &Object<'_>) -> Result<MetricConfig> {
    let name = object
        .non_empty_string("name")?
        .ok_or_else(|| ConfigError::invalid(object.at("name"), "required"))?;
    let parts = [
        object.string("namespace")?,
        object.string("subsystem")?,
        Some(name),
    ];
    let full_name = parts
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    if !is_metric_name(&full_name) {
        return Err(ConfigError::invalid(
            object.path(),
            format!("{full_name:?} is not a valid Prometheus metric name (letters, digits, '_' and ':', not starting with a digit)"),
        ));
    }
    let kind_text = object.string("type")?.unwrap_or_default();
    let kind = match kind_text.as_str() {
        "counter" => MetricKind::Counter,
        "gauge" => MetricKind::Gauge,
        "histogram" => MetricKind::Histogram,
        "summary" => MetricKind::Summary,
        _ => {
            return Err(one_of(
                &object.at("type"),
                &kind_text,
                &["counter", "gauge", "histogram", "summary"],
            ))
        }
    };
    Ok(MetricConfig {
        full_name,
        help: object.string("help")?.unwrap_or_default(),
        kind,
    })
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Metric names must be unique, and every metric must be one the registry
/// accepts at run time (a help text, no clash with autopilot's own metrics):
/// registering them into a throwaway registry here is what makes `--check`
/// refuse what run time would.
pub(crate) fn check_unique_metrics(metrics: &[MetricConfig], path: &str) -> Result<()> {
    for (i, metric) in metrics.iter().enumerate() {
        if metrics[..i].iter().any(|m| m.full_name == metric.full_name) {
            return Err(ConfigError::invalid(
                format!("{path}[{i}]"),
                format!("metric {:?} is defined twice", metric.full_name),
            ));
        }
    }
    crate::telemetry::Metrics::new(metrics)
        .map(drop)
        .map_err(|error| ConfigError::invalid(path, error.to_string()))
}

/// `"x" is not one of a, b, c (did you mean "b"?)`.
pub(crate) fn one_of(path: &str, got: &str, allowed: &[&str]) -> ConfigError {
    let list = allowed
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    ConfigError::invalid(
        path,
        format!("{got:?} is not one of {list}{}", did_you_mean(got, allowed)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn consul_forms() {
        let plain = consul(&json!("consul:8500"), "consul").unwrap().unwrap();
        assert_eq!(
            (plain.address.as_str(), plain.scheme.as_str()),
            ("consul:8500", "http")
        );
        let tls = consul(&json!("https://consul:8500/"), "consul")
            .unwrap()
            .unwrap();
        assert_eq!(
            (tls.address.as_str(), tls.scheme.as_str()),
            ("consul:8500", "https")
        );
        assert_eq!(consul(&json!(""), "consul").unwrap(), None);
        let object = consul(
            &json!({"address": "c:8500", "scheme": "https", "token": "t", "tls": {"cafile": "ca.crt", "verify": false}}),
            "consul",
        )
        .unwrap()
        .unwrap();
        assert_eq!(object.token.as_deref(), Some("t"));
        let tls = object.tls.unwrap();
        assert_eq!(
            (tls.cafile, tls.verify),
            (Some(PathBuf::from("ca.crt")), false)
        );
        assert!(consul(&json!({"address": "c", "scheme": "ftp"}), "consul").is_err());
        assert!(consul(&json!("ftp://c"), "consul").is_err());
        assert!(consul(&json!({"adress": "c"}), "consul")
            .unwrap_err()
            .to_string()
            .contains("did you mean \"address\""));
    }

    #[test]
    fn tls_verifies_unless_told_not_to() {
        let config = consul(&json!({"address": "c", "tls": {}}), "consul")
            .unwrap()
            .unwrap();
        assert!(config.tls.unwrap().verify);
    }

    #[test]
    fn etcd_endpoints_string_or_array() {
        let single = etcd(&json!({"endpoints": "http://etcd:4001"}), "etcd").unwrap();
        assert_eq!(
            (single.endpoints, single.prefix.as_str()),
            (vec!["http://etcd:4001".to_string()], "/containerpilot")
        );
        assert!(etcd(&json!({"prefix": "/x"}), "etcd").is_err());
    }

    #[test]
    fn logging_values() {
        let config = logging(
            &json!({"level": "debug", "format": "TEXT", "output": "/tmp/log"}),
            "logging",
        )
        .unwrap();
        assert_eq!(config.level, LogLevel::Debug);
        assert_eq!(config.format, LogFormat::Text);
        assert_eq!(config.output, LogOutput::File(PathBuf::from("/tmp/log")));
        let error = logging(&json!({"level": "INFOO"}), "logging")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("logging.level: \"INFOO\" is not one of")
                && error.contains("did you mean \"INFO\""),
            "{error}"
        );
    }

    #[test]
    fn control_socket_is_explicit_when_named() {
        assert!(
            control(&json!({"socket": "/tmp/cp.sock"}), "control")
                .unwrap()
                .explicit
        );
        assert_eq!(
            control(&json!({}), "control").unwrap(),
            ControlConfig::default()
        );
    }

    #[test]
    fn control_socket_paths_that_cannot_be_bound_are_refused() {
        let refused = |socket: &str| {
            control(&json!({ "socket": socket }), "control")
                .unwrap_err()
                .to_string()
        };
        assert!(
            refused("").contains("control.socket: must not be empty"),
            "{}",
            refused("")
        );
        assert!(refused("  ").contains("must not be empty"));
        assert!(refused("/var/run/").contains("names a directory"));
        let long = format!("/tmp/{}", "s".repeat(103));
        assert!(
            refused(&long).contains("108 bytes is too long"),
            "{}",
            refused(&long)
        );
        let longest = format!("/tmp/{}", "s".repeat(102));
        assert!(control(&json!({ "socket": longest }), "control").is_ok());
    }

    #[test]
    fn metrics_need_a_name_and_a_known_type() {
        let read = |value: Value| {
            metric(
                &Object::new(
                    &value,
                    "telemetry.metrics[0]",
                    &["namespace", "subsystem", "name", "help", "type"],
                )
                .unwrap(),
            )
        };
        let ok = read(json!({"namespace": "org", "subsystem": "", "name": "zed", "help": "h", "type": "gauge"})).unwrap();
        assert_eq!(
            (ok.full_name.as_str(), ok.kind),
            ("org_zed", MetricKind::Gauge)
        );
        let error = read(json!({"name": "x", "type": "countr"}))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("telemetry.metrics[0].type: \"countr\" is not one of")
                && error.contains("did you mean \"counter\""),
            "{error}"
        );
        assert!(read(json!({"type": "counter"})).is_err());
        assert!(read(json!({"name": "1x", "type": "counter"})).is_err());
    }
}
