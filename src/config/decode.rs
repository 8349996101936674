//! Lenient, path-aware reading of the parsed JSON5 tree.
//!
//! ContainerPilot decoded with mapstructure's weak typing: numeric strings
//! for numbers, numbers for strings, `"true"`/`"1"` for booleans, `null` as
//! absent, case-insensitive keys, and every unknown key an error. This
//! module reproduces that reading (docs/design.md, "Configuration loading") and names the place of
//! every problem (`jobs[2] "app".health.ttl`). It knows nothing about which
//! keys exist where; the front ends (`v3`, `v2`) say that.

use std::ffi::OsString;
use std::time::Duration;

use serde_json::{Map, Value};

use super::duration;
use super::error::{did_you_mean, ConfigError};
use super::model::Argv;
use super::words;

pub(crate) type Result<T> = std::result::Result<T, ConfigError>;

/// `parent.key`, or just `key` at the top.
pub(crate) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `jobs[2]`, plus ` "name"` when the item has a string `name` (so errors
/// say which job even before its name is validated).
pub(crate) fn item_path(parent: &str, index: usize, item: &Value) -> String {
    let name = item
        .as_object()
        .and_then(|map| map.iter().find(|(k, _)| k.eq_ignore_ascii_case("name")));
    match name.map(|(_, v)| v) {
        Some(Value::String(name)) if !name.is_empty() => format!("{parent}[{index}] {name:?}"),
        _ => format!("{parent}[{index}]"),
    }
}

/// How a JSON value is described in type errors.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(path: &str, want: &str, got: &Value) -> ConfigError {
    ConfigError::invalid(path, format!("must be {want}, not {}", describe(got)))
}

/// An object whose keys were all checked against the known ones.
#[derive(Debug)]
pub(crate) struct Object<'a> {
    path: String,
    fields: Vec<(&'static str, &'a Value)>,
}

impl<'a> Object<'a> {
    /// Reads `value` as an object with only `known` keys (matched exactly,
    /// else ignoring case). `null` values count as absent.
    pub(crate) fn new(value: &'a Value, path: &str, known: &[&'static str]) -> Result<Object<'a>> {
        let map = value
            .as_object()
            .ok_or_else(|| wrong_type(path, "an object", value))?;
        Self::from_map(map, path, known)
    }

    pub(crate) fn from_map(
        map: &'a Map<String, Value>,
        path: &str,
        known: &[&'static str],
    ) -> Result<Object<'a>> {
        let mut fields: Vec<(&'static str, &'a Value)> = Vec::new();
        for (key, value) in map {
            let resolved = known
                .iter()
                .find(|k| **k == key)
                .or_else(|| known.iter().find(|k| k.eq_ignore_ascii_case(key)))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        path,
                        format!("unknown key {key:?}{}", did_you_mean(key, known)),
                    )
                })?;
            if fields.iter().any(|(k, _)| k == resolved) {
                return Err(ConfigError::invalid(
                    path,
                    format!("{resolved:?} is given twice (keys ignore case)"),
                ));
            }
            if !value.is_null() {
                fields.push((resolved, value));
            }
        }
        Ok(Object {
            path: path.to_string(),
            fields,
        })
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn at(&self, key: &str) -> String {
        child(&self.path, key)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>> {
        self.get(key).map(|v| string(v, &self.at(key))).transpose()
    }

    /// A string that, when present, is not empty.
    pub(crate) fn non_empty_string(&self, key: &str) -> Result<Option<String>> {
        Ok(self.string(key)?.filter(|s| !s.is_empty()))
    }

    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>> {
        self.get(key).map(|v| int(v, &self.at(key))).transpose()
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key).map(|v| boolean(v, &self.at(key))).transpose()
    }

    /// A duration where a number means seconds; `""` counts as absent.
    pub(crate) fn duration(&self, key: &str) -> Result<Option<Duration>> {
        Ok(self
            .get(key)
            .map(|v| duration_value(v, &self.at(key)))
            .transpose()?
            .flatten())
    }

    /// An array of strings (a lone string is an error, as in ContainerPilot).
    pub(crate) fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        self.get(key).map(|v| strings(v, &self.at(key))).transpose()
    }

    /// An array of strings, or one string meaning a one-element array.
    pub(crate) fn string_or_strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.get(key) {
            Some(Value::Array(_)) | None => self.strings(key),
            Some(other) => Ok(Some(vec![string(other, &self.at(key))?])),
        }
    }

    /// A command: an array of strings, or a string split into words like a
    /// POSIX shell does. Empty commands are an error.
    pub(crate) fn command(&self, key: &str) -> Result<Option<Argv>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let path = self.at(key);
        let argv = match value {
            Value::Array(_) => strings(value, &path)?,
            Value::String(text) => words::split(text).map_err(|e| {
                ConfigError::invalid(&path, format!("cannot split {text:?} into words: {e}"))
            })?,
            other => return Err(wrong_type(&path, "a string or an array of strings", other)),
        };
        if argv.first().is_none_or(|program| program.is_empty()) {
            return Err(ConfigError::invalid(
                path,
                "must name a program to run, but is empty",
            ));
        }
        Ok(Some(argv.into_iter().map(OsString::from).collect()))
    }

    pub(crate) fn object(&self, key: &str, known: &[&'static str]) -> Result<Option<Object<'a>>> {
        self.get(key)
            .map(|v| Object::new(v, &self.at(key), known))
            .transpose()
    }

    /// An array's items with their paths (`key[i]`, plus the item's name).
    pub(crate) fn array(&self, key: &str) -> Result<Vec<(String, &'a Value)>> {
        let Some(value) = self.get(key) else {
            return Ok(Vec::new());
        };
        let path = self.at(key);
        let items = value
            .as_array()
            .ok_or_else(|| wrong_type(&path, "an array", value))?;
        Ok(items
            .iter()
            .enumerate()
            .filter(|(_, item)| !item.is_null())
            .map(|(i, item)| (item_path(&path, i, item), item))
            .collect())
    }
}

/// A string; numbers and booleans are accepted and printed as Go would.
pub(crate) fn string(value: &Value, path: &str) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.as_i64().map_or_else(|| n.to_string(), |i| i.to_string())),
        Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_string()),
        other => Err(wrong_type(path, "a string", other)),
    }
}

/// An integer: a number (fractions truncated, as Go did), a decimal string
/// (`""` is 0), or a boolean (1/0).
pub(crate) fn int(value: &Value, path: &str) -> Result<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.0e18)
                    .map(|f| f.trunc() as i64)
            })
            .ok_or_else(|| ConfigError::invalid(path, format!("{n} is out of range"))),
        Value::String(s) if s.is_empty() => Ok(0),
        Value::String(s) => s
            .parse()
            .map_err(|_| ConfigError::invalid(path, format!("must be a whole number, not {s:?}"))),
        Value::Bool(b) => Ok(i64::from(*b)),
        other => Err(wrong_type(path, "a number", other)),
    }
}

/// A boolean: `true`/`false`, a number (non-zero is true), or one of Go's
/// `strconv.ParseBool` strings (`""` is false).
pub(crate) fn boolean(value: &Value, path: &str) -> Result<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.as_str() {
            "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            _ => Err(ConfigError::invalid(
                path,
                format!("must be true or false, not {s:?}"),
            )),
        },
        other => Err(wrong_type(path, "true or false", other)),
    }
}

/// A duration: a number of seconds, or a string in Go syntax (a bare integer
/// string is seconds). `Ok(None)` for `""`. Negative values are an error.
pub(crate) fn duration_value(value: &Value, path: &str) -> Result<Option<Duration>> {
    match value {
        Value::Number(n) => {
            let seconds = n.as_f64().unwrap_or(f64::NAN);
            if !(0.0..=1.0e10).contains(&seconds) {
                return Err(ConfigError::invalid(
                    path,
                    format!("{n} is not a usable number of seconds"),
                ));
            }
            Ok(Some(Duration::from_secs_f64(seconds)))
        }
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => duration::parse_timeout(s)
            .map(Some)
            .map_err(|e| ConfigError::invalid(path, e.to_string())),
        other => Err(wrong_type(
            path,
            "a duration (\"10s\", \"1500ms\") or a number of seconds",
            other,
        )),
    }
}

/// An array of strings, each element read leniently.
pub(crate) fn strings(value: &Value, path: &str) -> Result<Vec<String>> {
    let items = value
        .as_array()
        .ok_or_else(|| wrong_type(path, "an array", value))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| string(item, &format!("{path}[{i}]")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(result: Result<impl std::fmt::Debug>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn unknown_keys_suggest_the_closest() {
        let value = json!({"interval": 5, "tll": 10});
        let error = message(Object::new(
            &value,
            "jobs[0] \"app\".health",
            &["interval", "ttl"],
        ));
        assert_eq!(
            error,
            "config error: jobs[0] \"app\".health: unknown key \"tll\" (did you mean \"ttl\"?)"
        );
    }

    #[test]
    fn keys_ignore_case_and_nulls_are_absent() {
        let value = json!({"Interval": 5, "ttl": null});
        let object = Object::new(&value, "h", &["interval", "ttl"]).unwrap();
        assert_eq!(object.int("interval").unwrap(), Some(5));
        assert!(!object.has("ttl"));
        let twice = json!({"ttl": 1, "TTL": 2});
        assert!(message(Object::new(&twice, "h", &["ttl"])).contains("given twice"));
    }

    #[test]
    fn weak_typing_like_mapstructure() {
        let p = "x";
        assert_eq!(int(&json!("103"), p).unwrap(), 103);
        assert_eq!(int(&json!(""), p).unwrap(), 0);
        assert_eq!(int(&json!(1.9), p).unwrap(), 1);
        assert_eq!(int(&json!(true), p).unwrap(), 1);
        assert!(int(&json!("ten"), p).is_err());
        assert_eq!(string(&json!(1), p).unwrap(), "1");
        assert_eq!(string(&json!(1.5), p).unwrap(), "1.5");
        assert_eq!(string(&json!(true), p).unwrap(), "1");
        assert!(string(&json!([]), p).is_err());
        assert!(boolean(&json!("1"), p).unwrap());
        assert!(!boolean(&json!("false"), p).unwrap());
        assert!(boolean(&json!(2), p).unwrap());
        assert_eq!(
            message(boolean(&json!("nope"), "jobs[0].consul.enableTagOverride")),
            "config error: jobs[0].consul.enableTagOverride: must be true or false, not \"nope\""
        );
    }

    #[test]
    fn durations_take_seconds_and_go_syntax() {
        let p = "d";
        assert_eq!(
            duration_value(&json!(5), p).unwrap(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            duration_value(&json!(0.5), p).unwrap(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            duration_value(&json!("10"), p).unwrap(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            duration_value(&json!("1m30s"), p).unwrap(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(duration_value(&json!(""), p).unwrap(), None);
        assert!(duration_value(&json!(-1), p).is_err());
        assert_eq!(
            message(duration_value(&json!("nope"), "t")),
            "config error: t: time: invalid duration \"nope\""
        );
    }

    #[test]
    fn arrays_are_not_made_from_scalars_except_where_allowed() {
        let value = json!({"interfaces": "eth0", "tags": "a"});
        let object = Object::new(&value, "telemetry", &["interfaces", "tags"]).unwrap();
        assert_eq!(
            object.string_or_strings("interfaces").unwrap(),
            Some(vec!["eth0".to_string()])
        );
        assert_eq!(
            message(object.strings("tags")),
            "config error: telemetry.tags: must be an array, not a string"
        );
    }

    #[test]
    fn commands_split_strings_and_refuse_empty() {
        let value = json!({"a": "sh -c 'x y'", "b": ["a", "b"], "c": "", "d": [], "e": 5});
        let object = Object::new(&value, "j", &["a", "b", "c", "d", "e"]).unwrap();
        assert_eq!(object.command("a").unwrap().unwrap(), ["sh", "-c", "x y"]);
        assert_eq!(object.command("b").unwrap().unwrap(), ["a", "b"]);
        for key in ["c", "d", "e"] {
            assert!(object.command(key).is_err(), "{key}");
        }
    }

    #[test]
    fn array_items_are_named_in_paths() {
        let value = json!({"jobs": [{"name": "app"}, {"exec": "x"}]});
        let object = Object::new(&value, "", &["jobs"]).unwrap();
        let paths: Vec<String> = object
            .array("jobs")
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(paths, ["jobs[0] \"app\"", "jobs[1]"]);
    }
}
