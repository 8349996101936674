//! consul-template's helper functions, with its argument order and meaning
//! (its documentation is the reference): strings (`toLower`, `toUpper`,
//! `toTitle`, `trimSpace`, `indent`, `regexMatch`), parsing (`parseBool`,
//! `parseInt`, `parseUint`, `parseFloat`, `parseJSON`), encoding
//! (`base64Encode`/`Decode`, their URL forms, `toJSON`, `toJSONPretty`,
//! `toYAML`), collections (`in`, `contains`, `containsAll`/`Any`/`None`/
//! `NotAll`, `byKey`, `byTag`, `explode`), arithmetic (`add`, `subtract`,
//! `multiply`, `divide`, `modulo`, `minimum`, `maximum`: the piped value is
//! the left operand, so `{{ 7 | subtract 2 }}` is 5), `timestamp`,
//! `envOrDefault`, and a few of the `sprig_*` names.
//!
//! Pure functions of their arguments: no environment, no catalog.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;

use super::encode;
use super::exec::Value;
use super::funcs::string_arg;
use super::timefmt;

/// The helpers and their argument counts (see `funcs::FUNCTIONS`).
pub(super) const FUNCTIONS: &[(&str, usize, Option<usize>)] = &[
    ("toLower", 1, Some(1)),
    ("toUpper", 1, Some(1)),
    ("toTitle", 1, Some(1)),
    ("trimSpace", 1, Some(1)),
    ("indent", 2, Some(2)),
    ("regexMatch", 2, Some(2)),
    ("parseBool", 1, Some(1)),
    ("parseInt", 1, Some(1)),
    ("parseUint", 1, Some(1)),
    ("parseFloat", 1, Some(1)),
    ("parseJSON", 1, Some(1)),
    ("base64Encode", 1, Some(1)),
    ("base64Decode", 1, Some(1)),
    ("base64URLEncode", 1, Some(1)),
    ("base64URLDecode", 1, Some(1)),
    ("toJSON", 1, Some(1)),
    ("toJSONPretty", 1, Some(1)),
    ("toYAML", 1, Some(1)),
    ("in", 2, Some(2)),
    ("contains", 2, Some(2)),
    ("containsAll", 2, Some(2)),
    ("containsAny", 2, Some(2)),
    ("containsNone", 2, Some(2)),
    ("containsNotAll", 2, Some(2)),
    ("byKey", 1, Some(1)),
    ("byTag", 1, Some(1)),
    ("explode", 1, Some(1)),
    ("add", 2, Some(2)),
    ("subtract", 2, Some(2)),
    ("multiply", 2, Some(2)),
    ("divide", 2, Some(2)),
    ("modulo", 2, Some(2)),
    ("minimum", 2, Some(2)),
    ("maximum", 2, Some(2)),
    ("timestamp", 0, Some(1)),
    ("sprig_lower", 1, Some(1)),
    ("sprig_upper", 1, Some(1)),
    ("sprig_trim", 1, Some(1)),
    ("sprig_b64enc", 1, Some(1)),
    ("sprig_b64dec", 1, Some(1)),
    ("sprig_trimPrefix", 2, Some(2)),
    ("sprig_trimSuffix", 2, Some(2)),
    ("sprig_hasPrefix", 2, Some(2)),
    ("sprig_hasSuffix", 2, Some(2)),
];

/// Helpers consul-template has that autopilot leaves out, and why.
pub(super) const UNSUPPORTED: &[(&str, &str)] = &[
    ("md5sum", "hashing functions are not included"),
    ("sha256Hex", "hashing functions are not included"),
    (
        "writeToFile",
        "templates do not write files other than their output",
    ),
];

/// Calls the helper `name`; `None` if there is no such helper. The count of
/// `args` was checked against [`FUNCTIONS`].
pub(super) fn call(name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    let text = |i: usize| string_arg(&args[i]);
    let string = |f: fn(&str) -> String| text(0).map(|s| Value::Str(f(s)));
    Some(match name {
        "toLower" | "sprig_lower" => string(str::to_lowercase),
        "toUpper" | "sprig_upper" => string(str::to_uppercase),
        "toTitle" => string(title),
        "trimSpace" | "sprig_trim" => string(|s| s.trim().to_string()),
        "indent" => indent(&args[0], text(1)),
        "regexMatch" => regex_match(text(0), text(1)),
        "parseBool" => text(0).and_then(parse_bool),
        "parseInt" => text(0).and_then(|s| {
            parse_number(s, "parseInt", "ParseInt", |s| {
                s.parse::<i64>().ok().map(Value::Int)
            })
        }),
        "parseUint" => text(0).and_then(|s| {
            parse_number(s, "parseUint", "ParseUint", |s| {
                s.parse::<u64>()
                    .ok()
                    .and_then(|u| i64::try_from(u).ok())
                    .map(Value::Int)
            })
        }),
        "parseFloat" => text(0).and_then(|s| {
            parse_number(s, "parseFloat", "ParseFloat", |s| {
                s.parse::<f64>().ok().map(Value::Float)
            })
        }),
        "parseJSON" => text(0).and_then(encode::parse_json),
        "base64Encode" | "sprig_b64enc" => {
            string(|s| base64::engine::general_purpose::STANDARD.encode(s))
        }
        "base64Decode" | "sprig_b64dec" => {
            text(0).and_then(|s| decode64(&base64::engine::general_purpose::STANDARD, name, s))
        }
        "base64URLEncode" => string(|s| base64::engine::general_purpose::URL_SAFE.encode(s)),
        "base64URLDecode" => {
            text(0).and_then(|s| decode64(&base64::engine::general_purpose::URL_SAFE, name, s))
        }
        "toJSON" => encode::to_json(&args[0], false),
        "toJSONPretty" => encode::to_json(&args[0], true),
        "toYAML" => encode::to_yaml(&args[0]),
        "in" => contained(&args[1], &args[0]).map(Value::Bool),
        "contains" => contained(&args[0], &args[1]).map(Value::Bool),
        "containsAll" | "containsAny" | "containsNone" | "containsNotAll" => {
            contains_set(name, &args[0], &args[1])
        }
        "byKey" => by_key(&args[0]),
        "byTag" => by_tag(&args[0]),
        "explode" => explode(&args[0]),
        "add" | "subtract" | "multiply" | "divide" | "modulo" | "minimum" | "maximum" => {
            arithmetic(name, &args[1], &args[0])
        }
        "timestamp" => timestamp(args.first()),
        "sprig_trimPrefix" => text(0)
            .and_then(|p| text(1).map(|s| Value::Str(s.strip_prefix(p).unwrap_or(s).to_string()))),
        "sprig_trimSuffix" => text(0)
            .and_then(|p| text(1).map(|s| Value::Str(s.strip_suffix(p).unwrap_or(s).to_string()))),
        "sprig_hasPrefix" => text(0).and_then(|p| text(1).map(|s| Value::Bool(s.starts_with(p)))),
        "sprig_hasSuffix" => text(0).and_then(|p| text(1).map(|s| Value::Bool(s.ends_with(p)))),
        _ => return None,
    })
}

/// Go's `strings.Title`: the first letter of each word in upper case.
fn title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at_start = true;
    for c in text.chars() {
        if at_start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

fn indent(spaces: &Value, text: Result<&str, String>) -> Result<Value, String> {
    let Value::Int(spaces) = spaces else {
        return Err(format!(
            "wrong type for value; expected int; got {}",
            spaces.type_name()
        ));
    };
    let spaces = usize::try_from(*spaces)
        .map_err(|_| "indent value must be a positive integer".to_string())?;
    let pad = " ".repeat(spaces);
    let lines: Vec<String> = text?
        .split('\n')
        .map(|line| format!("{pad}{line}"))
        .collect();
    Ok(Value::Str(lines.join("\n")))
}

fn regex_match(pattern: Result<&str, String>, text: Result<&str, String>) -> Result<Value, String> {
    let regex =
        regex_lite::Regex::new(pattern?).map_err(|e| format!("error parsing regexp: {e}"))?;
    Ok(Value::Bool(regex.is_match(text?)))
}

/// consul-template's `parseBool`: an empty string is false.
fn parse_bool(text: &str) -> Result<Value, String> {
    match text {
        "" | "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Value::Bool(false)),
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Value::Bool(true)),
        _ => Err(format!(
            "parseBool: strconv.ParseBool: parsing {text:?}: invalid syntax"
        )),
    }
}

/// `parseInt`, `parseUint`, `parseFloat`: an empty string is zero.
fn parse_number(
    text: &str,
    name: &str,
    go_name: &str,
    parse: impl Fn(&str) -> Option<Value>,
) -> Result<Value, String> {
    let text = if text.is_empty() { "0" } else { text };
    parse(text)
        .ok_or_else(|| format!("{name}: strconv.{go_name}: parsing {text:?}: invalid syntax"))
}

fn decode64(engine: &impl Engine, name: &str, text: &str) -> Result<Value, String> {
    let bytes = engine.decode(text).map_err(|e| format!("{name}: {e}"))?;
    Ok(Value::Str(String::from_utf8_lossy(&bytes).into_owned()))
}

/// `in list value` / `contains value list`: an element of a list, or a
/// substring of a string.
fn contained(value: &Value, collection: &Value) -> Result<bool, String> {
    match (collection, value) {
        (Value::List(items), _) => Ok(items.contains(value)),
        (Value::Str(text), Value::Str(part)) => Ok(text.contains(part.as_str())),
        (other, _) => Err(format!("in: invalid type {}", other.type_name())),
    }
}

/// `containsAll values list` and its siblings.
fn contains_set(name: &str, values: &Value, collection: &Value) -> Result<Value, String> {
    let Value::List(values) = values else {
        return Err(format!(
            "{name}: expected a list; got {}",
            values.type_name()
        ));
    };
    let found = values
        .iter()
        .map(|value| contained(value, collection))
        .collect::<Result<Vec<bool>, String>>()?;
    Ok(Value::Bool(match name {
        "containsAll" => found.iter().all(|f| *f),
        "containsAny" => found.iter().any(|f| *f),
        "containsNone" => !found.iter().any(|f| *f),
        _ => !found.iter().all(|f| *f),
    }))
}

/// The named string field of a record (`.Key`, `.Tags` ...).
fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    match value {
        Value::Record(record) => record
            .fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v),
        _ => None,
    }
}

fn records<'v>(name: &str, value: &'v Value) -> Result<&'v [Value], String> {
    match value {
        Value::List(items) => Ok(items),
        other => Err(format!("{name}: wrong argument type {}", other.type_name())),
    }
}

fn dict(map: BTreeMap<String, Value>) -> Value {
    Value::Dict(Rc::new(map))
}

/// `byKey`: tree pairs grouped by their first path segment; each group maps
/// the rest of the key to its pair.
fn by_key(pairs: &Value) -> Result<Value, String> {
    let mut groups: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for pair in records("byKey", pairs)? {
        let Some(Value::Str(key)) = field(pair, "Key") else {
            return Err("byKey: expected key pairs".into());
        };
        let Some((top, rest)) = key.split_once('/').filter(|(_, rest)| !rest.is_empty()) else {
            continue;
        };
        let Value::Record(record) = pair else {
            continue;
        };
        let mut renamed = (**record).clone();
        for (name, value) in &mut renamed.fields {
            if *name == "Key" {
                *value = Value::Str(rest.to_string());
            }
        }
        groups
            .entry(top.to_string())
            .or_default()
            .insert(rest.to_string(), Value::Record(Rc::new(renamed)));
    }
    Ok(dict(
        groups.into_iter().map(|(k, v)| (k, dict(v))).collect(),
    ))
}

/// `byTag`: services grouped by each of their tags.
fn by_tag(services: &Value) -> Result<Value, String> {
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for service in records("byTag", services)? {
        let Some(Value::List(tags)) = field(service, "Tags") else {
            return Err("byTag: expected services".into());
        };
        for tag in tags {
            if let Value::Str(tag) = tag {
                groups.entry(tag.clone()).or_default().push(service.clone());
            }
        }
    }
    Ok(dict(
        groups
            .into_iter()
            .map(|(k, v)| (k, Value::List(v)))
            .collect(),
    ))
}

/// `explode`: tree pairs as nested maps, one level per key segment.
fn explode(pairs: &Value) -> Result<Value, String> {
    let mut root = BTreeMap::new();
    for pair in records("explode", pairs)? {
        let (Some(Value::Str(key)), Some(value)) = (field(pair, "Key"), field(pair, "Value"))
        else {
            return Err("explode: expected key pairs".into());
        };
        let parts: Vec<&str> = key.split('/').filter(|p| !p.is_empty()).collect();
        insert_path(&mut root, &parts, value.clone());
    }
    Ok(dict(root))
}

fn insert_path(map: &mut BTreeMap<String, Value>, parts: &[&str], value: Value) {
    match parts {
        [] => {}
        [last] => {
            map.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let mut child = match map.remove(*first) {
                Some(Value::Dict(child)) => (*child).clone(),
                _ => BTreeMap::new(),
            };
            insert_path(&mut child, rest, value);
            map.insert((*first).to_string(), dict(child));
        }
    }
}

/// consul-template's arithmetic: `a` is the piped (last) argument.
fn arithmetic(name: &str, a: &Value, b: &Value) -> Result<Value, String> {
    let number = |value: &Value| match value {
        Value::Int(_) | Value::Float(_) => Ok(()),
        other => Err(format!(
            "{name}: unknown type for {} ({})",
            super::fmt::print_value(other),
            other.type_name()
        )),
    };
    number(a)?;
    number(b)?;
    if let (Value::Int(a), Value::Int(b)) = (a, b) {
        let (a, b) = (*a, *b);
        if b == 0 && matches!(name, "divide" | "modulo") {
            return Err(format!("{name}: division by 0"));
        }
        return Ok(Value::Int(match name {
            "add" => a.wrapping_add(b),
            "subtract" => a.wrapping_sub(b),
            "multiply" => a.wrapping_mul(b),
            "divide" => a.wrapping_div(b),
            "modulo" => a.wrapping_rem(b),
            "minimum" => a.min(b),
            _ => a.max(b),
        }));
    }
    let float = |value: &Value| match value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => 0.0,
    };
    let (a, b) = (float(a), float(b));
    if name == "modulo" {
        return Err("modulo: unknown type for float64".into());
    }
    if b == 0.0 && name == "divide" {
        return Err("divide: division by 0".into());
    }
    Ok(Value::Float(match name {
        "add" => a + b,
        "subtract" => a - b,
        "multiply" => a * b,
        "divide" => a / b,
        "minimum" => a.min(b),
        _ => a.max(b),
    }))
}

/// `timestamp ["layout"]`: now, in UTC, as RFC 3339 or with a Go layout;
/// `"unix"` gives seconds since the epoch.
fn timestamp(layout: Option<&Value>) -> Result<Value, String> {
    let layout = layout
        .map(string_arg)
        .transpose()?
        .unwrap_or(timefmt::RFC3339);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    let seconds = i64::try_from(now.as_secs()).map_err(|e| e.to_string())?;
    Ok(Value::Str(if layout == "unix" {
        seconds.to_string()
    } else {
        timefmt::format(layout, seconds, now.subsec_nanos())
    }))
}
