//! Decoding and validating the JSON body of `PUT /v1/agent/service/register` and
//! `PUT /v1/agent/check/update/<id>`, with Consul's own error texts.
//!
//! Owns the wire format only: no agent state is touched here.
//!
//! Keys are matched the way Consul's decoder does: case-insensitively (Go's `encoding/json`)
//! and with snake_case aliases (`deregister_critical_service_after`); unknown keys are
//! ignored; `null` means "not given".

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::duration::parse_go_duration;
use crate::error::ApiError;
use crate::state::{Service, Status};

/// A decoded service registration.
#[derive(Debug, Clone)]
pub struct Registration {
    pub service: Service,
    /// `Check` first (when not empty), then `Checks[]`, as Consul's `CheckTypes()` orders them.
    pub checks: Vec<CheckDefinition>,
}

/// One check of a registration.
#[derive(Debug, Clone)]
pub struct CheckDefinition {
    pub check_id: Option<String>,
    pub name: Option<String>,
    pub status: Option<Status>,
    pub notes: String,
    pub ttl: Option<Duration>,
    pub deregister_critical_service_after: Option<Duration>,
    /// `"ttl"`, or the type of a check the double stores but does not run.
    pub kind: String,
}

/// The body of `PUT /v1/agent/check/update/<id>`.
#[derive(Debug, Clone)]
pub struct CheckUpdate {
    pub status: Status,
    pub output: String,
}

/// Keys that make a check something other than a TTL check, with the `Type` Consul reports.
const NON_TTL_CHECK_KEYS: [(&str, &str); 8] = [
    ("HTTP", "http"),
    ("TCP", "tcp"),
    ("UDP", "udp"),
    ("GRPC", "grpc"),
    ("H2PING", "h2ping"),
    ("Args", "script"),
    ("DockerContainerID", "docker"),
    ("AliasService", "alias"),
];

pub fn decode_registration(body: &[u8]) -> Result<Registration, ApiError> {
    let object = decode_object(body)?;
    let fields = Fields(&object);
    let name = fields.string("Name")?.unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::BadRequest("Missing service name".into()));
    }
    let address = fields.string("Address")?.unwrap_or_default();
    if is_any_address(&address) {
        return Err(ApiError::BadRequest("Invalid service address".into()));
    }
    let checks = decode_checks(&fields)?;
    Ok(Registration {
        service: Service {
            id: fields
                .string("ID")?
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| name.clone()),
            name,
            tags: fields.strings("Tags")?,
            address,
            port: fields.port()?,
            meta: fields.string_map("Meta")?,
            enable_tag_override: fields.boolean("EnableTagOverride")?,
        },
        checks,
    })
}

pub fn decode_check_update(body: &[u8]) -> Result<CheckUpdate, ApiError> {
    let object = decode_object(body)?;
    let fields = Fields(&object);
    let status_text = fields.string("Status")?.unwrap_or_default();
    let status = status_text
        .parse()
        .map_err(|()| ApiError::BadRequest(format!("Invalid check status: '{status_text}'")))?;
    Ok(CheckUpdate {
        status,
        output: fields.string("Output")?.unwrap_or_default(),
    })
}

/// Consul refuses `0.0.0.0` and `::` as a service address (`ipaddr.IsAny`).
fn is_any_address(address: &str) -> bool {
    address
        .parse::<IpAddr>()
        .map(|ip| ip.is_unspecified())
        .unwrap_or(false)
}

fn decode_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(decode_failed(format!(
            "cannot decode {other} into an object"
        ))),
        Err(error) => Err(decode_failed(error)),
    }
}

fn decode_failed(detail: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("Request decode failed: {detail}"))
}

fn decode_checks(fields: &Fields) -> Result<Vec<CheckDefinition>, ApiError> {
    let mut objects = Vec::new();
    if let Some(check) = fields.object("Check")? {
        if !check.is_empty() {
            objects.push(check);
        }
    }
    match fields.get("Checks") {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::Object(check) => objects.push(check),
                    _ => return Err(decode_failed("Checks must be an array of objects")),
                }
            }
        }
        Some(_) => return Err(decode_failed("Checks must be an array")),
    }
    objects
        .into_iter()
        .map(|object| decode_check(&Fields(object)))
        .collect()
}

fn decode_check(fields: &Fields) -> Result<CheckDefinition, ApiError> {
    let status = match fields.string("Status")? {
        None => None,
        Some(text) if text.is_empty() => None,
        Some(text) => Some(text.parse().map_err(|()| {
            ApiError::BadRequest("Status for checks must 'passing', 'warning', 'critical'".into())
        })?),
    };
    let kind = NON_TTL_CHECK_KEYS
        .iter()
        .find(|(key, _)| fields.get(key).is_some_and(|value| !is_empty_value(value)))
        .map_or("ttl", |(_, kind)| kind)
        .to_string();
    let ttl = fields.duration("TTL")?;
    if kind == "ttl" && ttl.unwrap_or_default().is_zero() {
        return Err(ApiError::BadRequest(
            "Invalid check: TTL must be > 0 for TTL checks".into(),
        ));
    }
    Ok(CheckDefinition {
        check_id: fields
            .string("CheckID")?
            .or(fields.string("ID")?)
            .filter(|id| !id.is_empty()),
        name: fields.string("Name")?.filter(|name| !name.is_empty()),
        status,
        notes: fields.string("Notes")?.unwrap_or_default(),
        ttl: ttl.filter(|_| kind == "ttl"),
        deregister_critical_service_after: fields
            .duration("DeregisterCriticalServiceAfter")?
            .filter(|duration| !duration.is_zero()),
        kind,
    })
}

fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Case-insensitive, underscore-blind access to a JSON object's fields.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        let wanted = normalize_key(key);
        self.0
            .iter()
            .find(|(name, _)| normalize_key(name) == wanted)
            .map(|(_, value)| value)
            .filter(|value| !value.is_null())
    }

    fn string(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(wrong_type(key, "string", other)),
        }
    }

    fn boolean(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(flag)) => Ok(*flag),
            Some(other) => Err(wrong_type(key, "bool", other)),
        }
    }

    fn port(&self) -> Result<u16, ApiError> {
        match self.get("Port") {
            None => Ok(0),
            Some(value) => value
                .as_u64()
                .and_then(|port| u16::try_from(port).ok())
                .ok_or_else(|| wrong_type("Port", "int", value)),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, ApiError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| wrong_type(key, "[]string", item))
                })
                .collect(),
            Some(other) => Err(wrong_type(key, "[]string", other)),
        }
    }

    fn string_map(&self, key: &str) -> Result<BTreeMap<String, String>, ApiError> {
        match self.get(key) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(entries)) => entries
                .iter()
                .map(|(name, value)| match value {
                    Value::String(text) => Ok((name.clone(), text.clone())),
                    other => Err(wrong_type(key, "map[string]string", other)),
                })
                .collect(),
            Some(other) => Err(wrong_type(key, "map[string]string", other)),
        }
    }

    fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(object)) => Ok(Some(object)),
            Some(other) => Err(wrong_type(key, "object", other)),
        }
    }

    /// A Go duration string, or a number of nanoseconds (both decode in Consul).
    fn duration(&self, key: &str) -> Result<Option<Duration>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(Value::String(text)) => parse_go_duration(text)
                .map(Some)
                .ok_or_else(|| decode_failed(format!("invalid duration {text:?} for {key}"))),
            Some(Value::Number(number)) => number
                .as_u64()
                .map(|nanos| Some(Duration::from_nanos(nanos)))
                .ok_or_else(|| decode_failed(format!("invalid duration {number} for {key}"))),
            Some(other) => Err(wrong_type(key, "duration", other)),
        }
    }
}

fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn wrong_type(key: &str, expected: &str, found: &Value) -> ApiError {
    decode_failed(format!(
        "json: cannot unmarshal {found} into field {key} of type {expected}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_case_insensitively_and_snake_case() {
        let registration = decode_registration(
            br#"{"name":"web","ID":"web-1","port":80,
                 "check":{"ttl":"10s","deregister_critical_service_after":"1m"}}"#,
        )
        .unwrap();
        assert_eq!(registration.service.name, "web");
        assert_eq!(registration.service.id, "web-1");
        assert_eq!(registration.service.port, 80);
        let check = &registration.checks[0];
        assert_eq!(check.ttl, Some(Duration::from_secs(10)));
        assert_eq!(
            check.deregister_critical_service_after,
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn id_defaults_to_name_and_empty_check_is_ignored() {
        let registration = decode_registration(br#"{"Name":"web","Check":{}}"#).unwrap();
        assert_eq!(registration.service.id, "web");
        assert!(registration.checks.is_empty());
    }

    #[test]
    fn refuses_what_consul_refuses() {
        let cases: [(&[u8], &str); 5] = [
            (br#"{"Port":80}"#, "Missing service name"),
            (
                br#"{"Name":"w","Address":"0.0.0.0"}"#,
                "Invalid service address",
            ),
            (
                br#"{"Name":"w","Check":{"TTL":"1s","Status":"ok"}}"#,
                "Status for checks must 'passing', 'warning', 'critical'",
            ),
            (
                br#"{"Name":"w","Check":{"Notes":"no ttl"}}"#,
                "Invalid check: TTL must be > 0 for TTL checks",
            ),
            (br#"{"Name":"w","Port":"80"}"#, "Request decode failed"),
        ];
        for (body, message) in cases {
            let error = decode_registration(body).unwrap_err().to_string();
            assert!(error.starts_with(message), "{error}");
        }
    }

    #[test]
    fn check_update_needs_a_valid_status() {
        let update = decode_check_update(br#"{"Status":"warning","Output":"slow"}"#).unwrap();
        assert_eq!(update.status, Status::Warning);
        assert_eq!(update.output, "slow");
        let error = decode_check_update(br#"{"Status":"up"}"#).unwrap_err();
        assert_eq!(error.to_string(), "Invalid check status: 'up'");
    }
}
