//! The functions a template can call: Go's builtins, ContainerPilot's
//! additions (`default`, `env`, `split`, `join`, `replaceAll`,
//! `regexReplaceAll`, `loop`) and, in render templates, consul-template's
//! `service` and `services`, with Go's argument checking and error texts.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::catalog;
use super::exec::{Value, MAX_OUTPUT};
use super::fmt::{sprint, sprintf, sprintln};
use super::Catalog;

/// `loop` refuses ranges longer than this.
pub const MAX_LOOP: i64 = 100_000;

const NAMES: [&str; 27] = [
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "call",
    "default",
    "env",
    "split",
    "join",
    "replaceAll",
    "regexReplaceAll",
    "loop",
    "service",
    "services",
];

pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

/// One function call: its evaluated arguments (a piped value comes last).
pub struct Call<'a> {
    pub name: &'a str,
    pub args: Vec<Value>,
    pub env: &'a Rc<BTreeMap<String, String>>,
    /// The watched services, in render templates only.
    pub catalog: Option<&'a Catalog>,
}

pub fn call(call: Call<'_>) -> Result<Value, String> {
    let Call {
        name,
        args,
        env,
        catalog,
    } = call;
    let result = match name {
        "and" => at_least(name, &args, 1).map(|_| first_or_last(args, |v| !v.is_true())),
        "or" => at_least(name, &args, 1).map(|_| first_or_last(args, Value::is_true)),
        "not" => exactly(name, &args, 1).map(|_| Value::Bool(!args[0].is_true())),
        "len" => exactly(name, &args, 1).and_then(|_| length(&args[0])),
        "index" => at_least(name, &args, 1).and_then(|_| index(&args[0], &args[1..])),
        "print" => Ok(Value::Str(sprint(&args))),
        "println" => Ok(Value::Str(sprintln(&args))),
        "printf" => at_least(name, &args, 1)
            .and_then(|_| Ok(Value::Str(sprintf(string_arg(&args[0])?, &args[1..])))),
        "html" => Ok(Value::Str(escape_html(&text_of(&args)))),
        "js" => Ok(Value::Str(escape_js(&text_of(&args)))),
        "urlquery" => Ok(Value::Str(escape_query(&text_of(&args)))),
        "eq" => {
            at_least(name, &args, 2).and_then(|_| equal_any(&args[0], &args[1..]).map(Value::Bool))
        }
        "ne" => exactly(name, &args, 2)
            .and_then(|_| equal_any(&args[0], &args[1..]).map(|eq| Value::Bool(!eq))),
        "lt" | "le" | "gt" | "ge" => {
            exactly(name, &args, 2).and_then(|_| compare(name, &args[0], &args[1]))
        }
        "call" => Err(format!(
            "call: {} is not a function",
            args.first().map_or("nothing".into(), Value::type_name)
        )),
        "default" => exactly(name, &args, 2).map(|_| default(&args[0], &args[1])),
        "env" => exactly(name, &args, 1).and_then(|_| {
            Ok(Value::Str(
                env.get(string_arg(&args[0])?).cloned().unwrap_or_default(),
            ))
        }),
        "split" => exactly(name, &args, 2)
            .and_then(|_| split(string_arg(&args[0])?, string_arg(&args[1])?)),
        "join" => exactly(name, &args, 2).and_then(|_| join(string_arg(&args[0])?, &args[1])),
        "replaceAll" => exactly(name, &args, 3).and_then(|_| {
            Ok(Value::Str(
                string_arg(&args[2])?.replace(string_arg(&args[0])?, string_arg(&args[1])?),
            ))
        }),
        "regexReplaceAll" => exactly(name, &args, 3).and_then(|_| {
            regex_replace_all(
                string_arg(&args[0])?,
                string_arg(&args[1])?,
                string_arg(&args[2])?,
            )
        }),
        "loop" => loop_values(&args),
        "service" | "services" => catalog_call(name, &args, catalog),
        _ => Err(format!("function {name:?} not defined")),
    };
    result.map_err(|message| {
        if message.starts_with("wrong number") || message.starts_with("error calling") {
            message
        } else {
            format!("error calling {name}: {message}")
        }
    })
}

/// consul-template's catalog functions (render templates only).
fn catalog_call(name: &str, args: &[Value], catalog: Option<&Catalog>) -> Result<Value, String> {
    match name {
        "service" => {
            exactly(name, args, 1).and_then(|_| catalog::service(catalog, string_arg(&args[0])?))
        }
        _ => exactly(name, args, 0).and_then(|_| catalog::services(catalog)),
    }
}

fn exactly(name: &str, args: &[Value], want: usize) -> Result<(), String> {
    if args.len() == want {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want {want} got {}",
            args.len()
        ))
    }
}

fn at_least(name: &str, args: &[Value], want: usize) -> Result<(), String> {
    if args.len() >= want {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want at least {want} got {}",
            args.len()
        ))
    }
}

fn string_arg(value: &Value) -> Result<&str, String> {
    match value {
        Value::Str(s) => Ok(s),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

/// `and` returns its first false argument (or the last); `or` its first
/// true argument (or the last).
fn first_or_last(args: Vec<Value>, stop: impl Fn(&Value) -> bool) -> Value {
    let last = args.len() - 1;
    args.into_iter()
        .enumerate()
        .find(|(i, value)| stop(value) || *i == last)
        .map(|(_, value)| value)
        .unwrap_or(Value::Nil)
}

fn length(value: &Value) -> Result<Value, String> {
    match value {
        Value::Str(s) => Ok(Value::Int(s.len() as i64)),
        Value::List(items) => Ok(Value::Int(items.len() as i64)),
        Value::Map(map) => Ok(Value::Int(map.len() as i64)),
        other => Err(format!("len of type {}", other.type_name())),
    }
}

fn index(item: &Value, indices: &[Value]) -> Result<Value, String> {
    indices
        .iter()
        .try_fold(item.clone(), |item, key| match (&item, key) {
            (Value::Map(map), Value::Str(key)) => {
                Ok(Value::Str(map.get(key).cloned().unwrap_or_default()))
            }
            (Value::Map(_), other) => Err(format!(
                "value has type {}; should be string",
                other.type_name()
            )),
            (Value::List(items), Value::Int(i)) => usize::try_from(*i)
                .ok()
                .and_then(|i| items.get(i).cloned())
                .ok_or_else(|| format!("index out of range: {i}")),
            (Value::Str(s), Value::Int(i)) => usize::try_from(*i)
                .ok()
                .and_then(|i| s.as_bytes().get(i))
                .map(|b| Value::Int(i64::from(*b)))
                .ok_or_else(|| format!("index out of range: {i}")),
            (Value::List(_) | Value::Str(_), other) => Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            )),
            (Value::Nil, _) => Err("index of untyped nil".to_string()),
            (other, _) => Err(format!("can't index item of type {}", other.type_name())),
        })
}

/// The kinds Go's comparison functions accept.
#[derive(PartialEq, PartialOrd)]
enum Basic<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

fn basic(value: &Value) -> Result<Basic<'_>, String> {
    match value {
        Value::Bool(b) => Ok(Basic::Bool(*b)),
        Value::Int(i) => Ok(Basic::Int(*i)),
        Value::Float(f) => Ok(Basic::Float(*f)),
        Value::Str(s) => Ok(Basic::Str(s)),
        _ => Err("invalid type for comparison".to_string()),
    }
}

fn same_kind(a: &Basic<'_>, b: &Basic<'_>) -> Result<(), String> {
    if std::mem::discriminant(a) == std::mem::discriminant(b) {
        Ok(())
    } else {
        Err("incompatible types for comparison".to_string())
    }
}

/// `eq a b c...` is `a == b || a == c || ...`.
fn equal_any(first: &Value, others: &[Value]) -> Result<bool, String> {
    let first = basic(first)?;
    for other in others {
        let other = basic(other)?;
        same_kind(&first, &other)?;
        if first == other {
            return Ok(true);
        }
    }
    Ok(false)
}

fn compare(name: &str, a: &Value, b: &Value) -> Result<Value, String> {
    let (a, b) = (basic(a)?, basic(b)?);
    same_kind(&a, &b)?;
    if matches!(a, Basic::Bool(_)) {
        return Err("invalid type for comparison".to_string());
    }
    Ok(Value::Bool(match name {
        "lt" => a < b,
        "le" => a <= b,
        "gt" => a > b,
        _ => a >= b,
    }))
}

/// The text that `html`, `js` and `urlquery` escape: a lone string as is,
/// anything else printed like `print`.
fn text_of(args: &[Value]) -> String {
    match args {
        [Value::Str(s)] => s.clone(),
        _ => sprint(args),
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn escape_js(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 || c.is_control() => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn escape_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// ContainerPilot's `default`: the value if it is a non-empty string,
/// otherwise the default printed with `%v`.
fn default(fallback: &Value, value: &Value) -> Value {
    match value {
        Value::Str(s) if !s.is_empty() => value.clone(),
        _ => match fallback {
            Value::Str(_) => fallback.clone(),
            other => Value::Str(sprint(std::slice::from_ref(other))),
        },
    }
}

/// ContainerPilot's `split`: the input is trimmed first, and an empty input
/// gives an empty list.
fn split(separator: &str, text: &str) -> Result<Value, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Value::List(Vec::new()));
    }
    if separator.is_empty() {
        // Go's strings.Split with an empty separator splits into characters.
        return Ok(Value::List(
            text.chars().map(|c| Value::Str(c.to_string())).collect(),
        ));
    }
    Ok(Value::List(
        text.split(separator)
            .map(|s| Value::Str(s.to_string()))
            .collect(),
    ))
}

fn join(separator: &str, list: &Value) -> Result<Value, String> {
    let Value::List(items) = list else {
        return Err(format!(
            "wrong type for value; expected []string; got {}",
            list.type_name()
        ));
    };
    let parts = items
        .iter()
        .map(|item| match item {
            Value::Str(s) => Ok(s.as_str()),
            _ => Err(format!(
                "wrong type for value; expected []string; got {}",
                list.type_name()
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Str(parts.join(separator)))
}

/// Go's `Regexp.ReplaceAllString` (`$1`, `${name}` expand in `replacement`).
fn regex_replace_all(pattern: &str, replacement: &str, text: &str) -> Result<Value, String> {
    let regex = regex_lite::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("error parsing regexp: {e}"))?;
    let replaced = regex.replace_all(text, replacement);
    if replaced.len() > MAX_OUTPUT {
        return Err("result is larger than 16 MiB".to_string());
    }
    Ok(Value::Str(replaced.into_owned()))
}

/// ContainerPilot's `loop`: `loop 3` is 0 1 2; `loop 5 8` is 5 6 7;
/// `loop 5 1` counts down 5 4 3 2. Strings are parsed as integers.
fn loop_values(args: &[Value]) -> Result<Value, String> {
    let (start, stop) = match args {
        [stop] => (0, loop_int(stop)?),
        [start, stop] => (loop_int(start)?, loop_int(stop)?),
        _ => {
            return Err(format!(
                "loop: wrong number of arguments, expected 1 or 2, but got {}",
                args.len()
            ))
        }
    };
    if (stop as i128 - start as i128).abs() > i128::from(MAX_LOOP) {
        return Err(format!(
            "loop from {start} to {stop} is longer than {MAX_LOOP} steps"
        ));
    }
    let values: Vec<Value> = if stop < start {
        (stop + 1..=start).rev().map(Value::Int).collect()
    } else {
        (start..stop).map(Value::Int).collect()
    };
    Ok(Value::List(values))
}

fn loop_int(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(i) => Ok(*i),
        Value::Str(s) => s
            .parse::<i64>()
            .ok()
            .filter(|_| !s.starts_with('+') || s.len() > 1)
            .ok_or_else(|| format!("strconv.Atoi: parsing {s:?}: invalid syntax")),
        other => Err(format!(
            "interface conversion: interface {{}} is {}, not int",
            other.type_name()
        )),
    }
}
