//! The functions a template can call: Go's builtins, ContainerPilot's
//! additions (`default`, `env`, `split`, `join`, `replaceAll`,
//! `regexReplaceAll`, `loop`), consul-template's helpers ([`helpers`]) and,
//! in render templates, consul-template's data functions over the catalog
//! ([`catalog`]), with Go's argument checking and error texts. The table of
//! names and argument counts here is also what `--check` checks calls
//! against.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::catalog::{Listing, Reader};
use super::exec::{Scratch, Value, MAX_OUTPUT};
use super::fmt::{sprint, sprintf, sprintln};
use super::helpers;

/// `loop` refuses ranges longer than this.
pub(super) const MAX_LOOP: i64 = 100_000;

/// Every function: its name, the fewest arguments it takes and the most
/// (`None`: any number).
const FUNCTIONS: &[(&str, usize, Option<usize>)] = &[
    // Go's builtins.
    ("and", 1, None),
    ("or", 1, None),
    ("not", 1, Some(1)),
    ("len", 1, Some(1)),
    ("index", 1, None),
    ("print", 0, None),
    ("printf", 1, None),
    ("println", 0, None),
    ("html", 0, None),
    ("js", 0, None),
    ("urlquery", 0, None),
    ("eq", 2, None),
    ("ne", 2, Some(2)),
    ("lt", 2, Some(2)),
    ("le", 2, Some(2)),
    ("gt", 2, Some(2)),
    ("ge", 2, Some(2)),
    ("call", 1, None),
    // ContainerPilot's (also consul-template's, with the same meaning).
    ("default", 2, Some(2)),
    ("env", 1, Some(1)),
    ("envOrDefault", 2, Some(2)),
    ("split", 2, Some(2)),
    ("join", 2, Some(2)),
    ("replaceAll", 3, Some(3)),
    ("regexReplaceAll", 3, Some(3)),
    // `loop` checks its own count, with ContainerPilot's message.
    ("loop", 0, None),
    ("scratch", 0, Some(0)),
];

/// consul-template's catalog and KV functions (render templates only), as
/// [`FUNCTIONS`].
const CATALOG_FUNCTIONS: &[(&str, usize, Option<usize>)] = &[
    ("service", 1, None),
    ("services", 0, Some(1)),
    ("key", 1, Some(1)),
    ("keyExists", 1, Some(1)),
    ("keyOrDefault", 2, Some(2)),
    ("key_or_default", 2, Some(2)),
    ("ls", 1, Some(1)),
    ("safeLs", 1, Some(1)),
    ("tree", 1, Some(1)),
    ("safeTree", 1, Some(1)),
    ("datacenters", 0, Some(1)),
];

/// consul-template's functions that autopilot does not provide, and why;
/// `--check` names the reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("secret", "Vault is not supported"),
    ("secrets", "Vault is not supported"),
    ("node", "node queries are not supported"),
    ("nodes", "node queries are not supported"),
    (
        "file",
        "files are read by the template's own job, not watched",
    ),
    ("plugin", "plugins (external commands) are not supported"),
    ("executeTemplate", "named templates are not supported"),
    ("connect", "Consul Connect is not supported"),
    ("caRoots", "Consul Connect is not supported"),
    ("caLeaf", "Consul Connect is not supported"),
    ("pkiCert", "Vault is not supported"),
    ("toTOML", "TOML output is not supported"),
    ("sockaddr", "go-sockaddr templates are not supported"),
];

/// Is this one of consul-template's catalog or KV functions?
pub(super) fn reads_catalog(name: &str) -> bool {
    CATALOG_FUNCTIONS.iter().any(|(known, ..)| *known == name)
}

/// Does a function of this name exist?
pub(super) fn exists(name: &str) -> bool {
    arity(name).is_some()
}

/// The fewest and the most arguments a function takes.
pub(super) fn arity(name: &str) -> Option<(usize, Option<usize>)> {
    FUNCTIONS
        .iter()
        .chain(CATALOG_FUNCTIONS)
        .chain(helpers::FUNCTIONS)
        .find(|(known, _, _)| *known == name)
        .map(|(_, min, max)| (*min, *max))
}

/// Why a consul-template function is not there, if it is one autopilot
/// leaves out on purpose.
pub(super) fn unsupported(name: &str) -> Option<&'static str> {
    UNSUPPORTED
        .iter()
        .chain(helpers::UNSUPPORTED)
        .find(|(known, _)| *known == name)
        .map(|(_, why)| *why)
        .or_else(|| {
            name.starts_with("sprig_")
                .then_some("only the sprig functions listed in docs/configuration.md are included")
        })
}

/// The error for `got` arguments to `name`, if that is not a count it takes.
pub(super) fn check_count(name: &str, got: usize) -> Result<(), String> {
    let Some((min, max)) = arity(name) else {
        return Ok(());
    };
    let want = match max {
        Some(max) if got > max || got < min => {
            if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            }
        }
        None if got < min => format!("at least {min}"),
        _ => return Ok(()),
    };
    Err(format!(
        "wrong number of args for {name}: want {want} got {got}"
    ))
}

/// What every call of one execution shares.
pub(super) struct Context<'c> {
    pub env: Rc<BTreeMap<String, String>>,
    /// The catalog, in render templates only.
    pub catalog: Option<&'c Reader<'c>>,
    pub scratch: Scratch,
}

/// Calls `name` with its evaluated arguments (a piped value comes last).
pub(super) fn call(name: &str, args: Vec<Value>, context: &Context<'_>) -> Result<Value, String> {
    let result = check_count(name, args.len()).and_then(|()| dispatch(name, args, context));
    result.map_err(|message| {
        if message.starts_with("wrong number") || message.starts_with("error calling") {
            message
        } else {
            format!("error calling {name}: {message}")
        }
    })
}

fn dispatch(name: &str, args: Vec<Value>, context: &Context<'_>) -> Result<Value, String> {
    match name {
        "and" => Ok(first_or_last(args, |v| !v.is_true())),
        "or" => Ok(first_or_last(args, Value::is_true)),
        "not" => Ok(Value::Bool(!args[0].is_true())),
        "len" => length(&args[0]),
        "index" => index(&args[0], &args[1..]),
        "print" => Ok(Value::Str(sprint(&args))),
        "println" => Ok(Value::Str(sprintln(&args))),
        "printf" => Ok(Value::Str(sprintf(string_arg(&args[0])?, &args[1..]))),
        "html" => Ok(Value::Str(escape_html(&text_of(&args)))),
        "js" => Ok(Value::Str(escape_js(&text_of(&args)))),
        "urlquery" => Ok(Value::Str(escape_query(&text_of(&args)))),
        "eq" => equal_any(&args[0], &args[1..]).map(Value::Bool),
        "ne" => equal_any(&args[0], &args[1..]).map(|eq| Value::Bool(!eq)),
        "lt" | "le" | "gt" | "ge" => compare(name, &args[0], &args[1]),
        "call" => Err(format!("call: {} is not a function", args[0].type_name())),
        "default" => Ok(default(&args[0], &args[1])),
        "env" => Ok(Value::Str(
            context
                .env
                .get(string_arg(&args[0])?)
                .cloned()
                .unwrap_or_default(),
        )),
        "split" => split(string_arg(&args[0])?, string_arg(&args[1])?),
        "join" => join(string_arg(&args[0])?, &args[1]),
        "replaceAll" => Ok(Value::Str(
            string_arg(&args[2])?.replace(string_arg(&args[0])?, string_arg(&args[1])?),
        )),
        "regexReplaceAll" => regex_replace_all(
            string_arg(&args[0])?,
            string_arg(&args[1])?,
            string_arg(&args[2])?,
        ),
        "loop" => loop_values(&args),
        "scratch" => Ok(Value::Scratch(context.scratch.clone())),
        "envOrDefault" => Ok(Value::Str(
            context
                .env
                .get(string_arg(&args[0])?)
                .cloned()
                .unwrap_or(string_arg(&args[1])?.to_string()),
        )),
        name => match helpers::call(name, &args) {
            Some(result) => result,
            None => catalog_call(name, &args, context.catalog),
        },
    }
}

/// consul-template's data functions (render templates only).
fn catalog_call(name: &str, args: &[Value], catalog: Option<&Reader<'_>>) -> Result<Value, String> {
    let catalog = catalog.ok_or_else(|| {
        "the catalog is available only in the templates of jobs[].render".to_string()
    })?;
    let text = |index: usize| args.get(index).map_or(Ok(""), string_arg);
    match name {
        "service" => {
            let parts = args.iter().map(string_arg).collect::<Result<Vec<_>, _>>()?;
            catalog.service(&parts.join("|"))
        }
        "services" => catalog.services(text(0)?),
        "key" => Ok(catalog.key(text(0)?)),
        "keyExists" => Ok(catalog.key_exists(text(0)?)),
        "keyOrDefault" | "key_or_default" => Ok(catalog.key_or_default(text(0)?, text(1)?)),
        "ls" => Ok(catalog.pairs(text(0)?, Listing::Level)),
        "safeLs" => Ok(catalog.pairs(text(0)?, Listing::SafeLevel)),
        "tree" => Ok(catalog.pairs(text(0)?, Listing::Tree)),
        "safeTree" => Ok(catalog.pairs(text(0)?, Listing::SafeTree)),
        "datacenters" => Ok(catalog.datacenters()),
        _ => Err(format!("function {name:?} not defined")),
    }
}

pub(super) fn string_arg(value: &Value) -> Result<&str, String> {
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
        Value::Dict(map) => Ok(Value::Int(map.len() as i64)),
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
            (Value::Dict(map), Value::Str(key)) => Ok(map.get(key).cloned().unwrap_or(Value::Nil)),
            (Value::Map(_) | Value::Dict(_), other) => Err(format!(
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
