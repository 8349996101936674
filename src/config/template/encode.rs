//! Template values to and from data formats, as consul-template's Go code
//! does it: `parseJSON` (objects become maps, numbers `float64`), `toJSON`
//! and `toJSONPretty` (Go's `json.Marshal`: sorted keys, `<>&` escaped) and
//! `toYAML`.
//!
//! The YAML writer is hand-written: it only ever writes plain data (maps,
//! lists, scalars), and a YAML crate would add far more code than these
//! few lines to a binary that must stay small.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{Map, Number, Value as Json};

use super::exec::Value;

/// `parseJSON`: an empty string is an empty map, as in consul-template.
pub(super) fn parse_json(text: &str) -> Result<Value, String> {
    if text.is_empty() {
        return Ok(Value::Dict(Rc::default()));
    }
    serde_json::from_str::<Json>(text)
        .map(from_json)
        .map_err(|e| e.to_string())
}

fn from_json(json: Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => Value::Float(n.as_f64().unwrap_or_default()),
        Json::String(s) => Value::Str(s),
        Json::Array(items) => Value::List(items.into_iter().map(from_json).collect()),
        Json::Object(map) => Value::Dict(Rc::new(
            map.into_iter().map(|(k, v)| (k, from_json(v))).collect(),
        )),
    }
}

/// `toJSON` (`pretty`: `toJSONPretty`, two-space indents).
pub(super) fn to_json(value: &Value, pretty: bool) -> Result<Value, String> {
    let json = json_of(value)?;
    let text = if pretty {
        serde_json::to_string_pretty(&json)
    } else {
        serde_json::to_string(&json)
    }
    .map_err(|e| e.to_string())?;
    Ok(Value::Str(go_html_escape(&text)))
}

fn json_of(value: &Value) -> Result<Json, String> {
    Ok(match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => float_json(*f)?,
        Value::Str(s) => Json::String(s.clone()),
        Value::List(items) => Json::Array(items.iter().map(json_of).collect::<Result<_, _>>()?),
        Value::Map(_) | Value::Dict(_) => {
            let entries = value.entries().unwrap_or_default();
            let mut map = Map::new();
            for (key, item) in entries {
                map.insert(key, json_of(&item)?);
            }
            Json::Object(map)
        }
        Value::Record(record) => {
            let mut map = Map::new();
            for (name, field) in &record.fields {
                map.insert((*name).to_string(), json_of(field)?);
            }
            Json::Object(map)
        }
        Value::Scratch(_) => return Err("json: unsupported type: *template.Scratch".into()),
    })
}

/// Go writes integral floats without a fraction (`1`, not `1.0`).
fn float_json(f: f64) -> Result<Json, String> {
    if !f.is_finite() {
        return Err(format!("json: unsupported value: {f}"));
    }
    if f.fract() == 0.0 && f.abs() < 1e15 {
        return Ok(Json::from(f as i64));
    }
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or_else(|| format!("json: unsupported value: {f}"))
}

/// Go's `json.Marshal` escapes `<`, `>`, `&`, U+2028 and U+2029 (they can
/// only occur inside strings).
fn go_html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// `toYAML`: block style, keys sorted, lists at their key's indentation (as
/// go-yaml writes them), no trailing newline.
pub(super) fn to_yaml(value: &Value) -> Result<Value, String> {
    let mut out = String::new();
    yaml_block(&json_of(value)?, 0, &mut out);
    Ok(Value::Str(out.trim_end().to_string()))
}

fn yaml_block(json: &Json, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match json {
        Json::Object(map) if !map.is_empty() => {
            let sorted: BTreeMap<&String, &Json> = map.iter().collect();
            for (key, item) in sorted {
                out.push_str(&format!("{pad}{}:", yaml_scalar(key)));
                yaml_child(item, indent, indent + 2, out);
            }
        }
        Json::Array(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                match item {
                    Json::Object(map) if !map.is_empty() => {
                        let mut nested = String::new();
                        yaml_block(item, indent + 2, &mut nested);
                        out.push(' ');
                        out.push_str(nested.trim_start());
                    }
                    _ => yaml_child(item, indent, indent + 2, out),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", yaml_inline(other))),
    }
}

/// What follows `key:` or `-`: a scalar on the same line, or a block below
/// (lists under a key keep the key's indentation).
fn yaml_child(item: &Json, indent: usize, deeper: usize, out: &mut String) {
    match item {
        Json::Object(map) if !map.is_empty() => {
            out.push('\n');
            yaml_block(item, deeper, out);
        }
        Json::Array(items) if !items.is_empty() => {
            out.push('\n');
            yaml_block(item, indent, out);
        }
        other => out.push_str(&format!(" {}\n", yaml_inline(other))),
    }
}

fn yaml_inline(json: &Json) -> String {
    match json {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => yaml_scalar(s),
        Json::Array(_) => "[]".into(),
        Json::Object(_) => "{}".into(),
    }
}

/// A string plain when YAML reads it back as the same string, else quoted.
fn yaml_scalar(text: &str) -> String {
    const WORDS: [&str; 11] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "",
    ];
    let ambiguous = WORDS.contains(&text.to_ascii_lowercase().as_str())
        || text.parse::<f64>().is_ok()
        || text.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c))
        || text.ends_with(' ')
        || text.contains(": ")
        || text.contains(" #")
        || text.chars().any(char::is_control);
    if ambiguous {
        Json::String(text.to_string()).to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Value {
        parse_json(text).unwrap()
    }

    fn text(value: Result<Value, String>) -> String {
        match value.unwrap() {
            Value::Str(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_round_trips_like_gos_encoding_json() {
        let value = parsed(r#"{"b":[1,2.5,"x<y"],"a":{"n":null,"t":true}}"#);
        assert_eq!(
            text(to_json(&value, false)),
            r#"{"a":{"n":null,"t":true},"b":[1,2.5,"x\u003cy"]}"#
        );
        assert_eq!(text(to_json(&parsed("[1]"), true)), "[\n  1\n]");
        assert_eq!(parsed(""), Value::Dict(Rc::default()));
        assert!(parse_json("{").is_err());
    }

    #[test]
    fn yaml_is_block_style_with_sorted_keys() {
        let value = parsed(
            r#"{"z":"plain","a":{"list":["x","true"],"empty":[]},"items":[{"k":1,"j":"2"}]}"#,
        );
        assert_eq!(
            text(to_yaml(&value)),
            "a:\n  empty: []\n  list:\n  - x\n  - \"true\"\nitems:\n- j: \"2\"\n  k: 1\nz: plain"
        );
    }
}
