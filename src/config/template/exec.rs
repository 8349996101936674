//! Template execution: evaluates the parsed tree over the environment with
//! Go's semantics (truthiness, field access on the environment map with
//! `missingkey=zero` and on records like Go structs, pipelines passing their
//! value as the last argument, variable scopes), within budgets that keep
//! hostile input from exhausting memory or time.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::catalog::Reader;
use super::fmt::print_value;
use super::funcs;
use super::methods;
use super::parse::{Arg, ArgKind, Branch, Command, Node, Pipeline};
use super::TemplateError;

/// Executions longer than this many steps are stopped.
const MAX_STEPS: u64 = 5_000_000;
/// Rendered output larger than this is refused.
pub(super) const MAX_OUTPUT: usize = 16 << 20;

/// A number literal: Go's untyped constants become `int` when integral in
/// syntax and `float64` otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    /// Parses Go number syntax (`42`, `-7`, `0x1F`, `0o17`, `017`, `0b101`,
    /// `1_000`, `1.5`, `1e3`, `.5`).
    pub(super) fn parse(text: &str) -> Option<Number> {
        let (negative, body) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let clean = body.replace('_', "");
        if clean.is_empty() || body.starts_with('_') || body.ends_with('_') {
            return None;
        }
        let lower = clean.to_ascii_lowercase();
        let radix_int = |digits: &str, radix| i64::from_str_radix(digits, radix).ok();
        let magnitude = if let Some(hex) = lower.strip_prefix("0x") {
            radix_int(hex, 16).map(Number::Int)
        } else if let Some(octal) = lower.strip_prefix("0o") {
            radix_int(octal, 8).map(Number::Int)
        } else if let Some(binary) = lower.strip_prefix("0b") {
            radix_int(binary, 2).map(Number::Int)
        } else if lower.contains(['.', 'e']) {
            let valid = lower
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'));
            lower
                .parse::<f64>()
                .ok()
                .filter(|f| valid && f.is_finite())
                .map(Number::Float)
        } else if lower.len() > 1 && lower.starts_with('0') {
            radix_int(&lower[1..], 8).map(Number::Int)
        } else if lower.bytes().all(|b| b.is_ascii_digit()) {
            lower.parse().ok().map(Number::Int)
        } else {
            None
        }?;
        Some(match (negative, magnitude) {
            (true, Number::Int(i)) => Number::Int(-i),
            (true, Number::Float(f)) => Number::Float(-f),
            (false, number) => number,
        })
    }
}

/// A value during execution. Lists come from `split` (strings), `loop`
/// (ints) and the catalog functions (records); string maps are the
/// environment and catalog metadata; other maps come from `parseJSON`,
/// `explode`, `byKey` and `byTag`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(Rc<BTreeMap<String, String>>),
    Dict(Rc<BTreeMap<String, Value>>),
    Record(Rc<Record>),
    /// consul-template's `scratch`: one per render, shared by every call.
    Scratch(Scratch),
}

/// The scratch pad's storage.
pub(super) type Scratch = Rc<RefCell<BTreeMap<String, Value>>>;

/// What a Go template sees as a pointer to a struct: named fields, and an
/// error for any other field name.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Record {
    /// The Go type name, for `%T` and error messages.
    pub type_name: &'static str,
    pub fields: Vec<(&'static str, Value)>,
}

impl Value {
    /// Go's `isTrue`: the zero value and empty collections are false.
    pub(super) fn is_true(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(items) => !items.is_empty(),
            Value::Map(map) => !map.is_empty(),
            Value::Dict(map) => !map.is_empty(),
            Value::Record(_) | Value::Scratch(_) => true,
        }
    }

    /// The entries of a map value, in key order.
    pub(super) fn entries(&self) -> Option<Vec<(String, Value)>> {
        match self {
            Value::Map(map) => Some(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                    .collect(),
            ),
            Value::Dict(map) => Some(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            _ => None,
        }
    }

    /// The Go type name, as error messages and `%T` show it.
    pub(super) fn type_name(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::List(items) => match items.first() {
                Some(Value::Int(_)) => "[]int".into(),
                Some(Value::Record(record)) => format!("[]{}", record.type_name),
                _ => "[]string".into(),
            },
            Value::Map(_) => "map[string]string".into(),
            Value::Dict(_) => "map[string]interface {}".into(),
            Value::Record(record) => record.type_name.into(),
            Value::Scratch(_) => "*template.Scratch".into(),
        }
    }
}

impl From<Number> for Value {
    fn from(number: Number) -> Value {
        match number {
            Number::Int(i) => Value::Int(i),
            Number::Float(f) => Value::Float(f),
        }
    }
}

/// Executes `nodes` with the environment as dot; `catalog` feeds
/// consul-template's data functions.
pub(super) fn execute(
    nodes: &[Node],
    env: Rc<BTreeMap<String, String>>,
    catalog: Option<&Reader<'_>>,
) -> Result<String, TemplateError> {
    let dot = Value::Map(env.clone());
    let mut state = State {
        context: funcs::Context {
            env,
            catalog,
            scratch: Scratch::default(),
        },
        vars: vec![("$".to_string(), dot.clone())],
        out: String::new(),
        steps: 0,
    };
    state.walk_list(nodes, &dot)?;
    Ok(state.out)
}

struct State<'c> {
    context: funcs::Context<'c>,
    vars: Vec<(String, Value)>,
    out: String,
    steps: u64,
}

impl State<'_> {
    fn step(&mut self, pos: usize) -> Result<(), TemplateError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(TemplateError::new(pos, "template execution takes too long"));
        }
        if self.out.len() > MAX_OUTPUT {
            return Err(TemplateError::new(
                pos,
                "template output is larger than 16 MiB",
            ));
        }
        Ok(())
    }

    fn walk_list(&mut self, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
        let mark = self.vars.len();
        for node in nodes {
            self.walk(node, dot)?;
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn walk(&mut self, node: &Node, dot: &Value) -> Result<(), TemplateError> {
        match node {
            Node::Text(text) => {
                self.step(0)?;
                self.out.push_str(text);
            }
            Node::Action(pipe) => {
                let value = self.pipeline(pipe, dot)?;
                if pipe.vars.is_empty() {
                    self.out.push_str(&print_value(&value));
                }
            }
            Node::If(branch) => {
                let condition = self.pipeline(&branch.pipe, dot)?;
                let list = if condition.is_true() {
                    &branch.list
                } else {
                    &branch.else_list
                };
                self.walk_list(list, dot)?;
            }
            Node::With(branch) => {
                let value = self.pipeline(&branch.pipe, dot)?;
                if value.is_true() {
                    self.walk_list(&branch.list, &value)?;
                } else {
                    self.walk_list(&branch.else_list, dot)?;
                }
            }
            Node::Range(branch) => self.range(branch, dot)?,
        }
        Ok(())
    }

    fn range(&mut self, branch: &Branch, dot: &Value) -> Result<(), TemplateError> {
        let mark = self.vars.len();
        let value = self.pipeline_value(&branch.pipe, dot)?;
        let items: Vec<(Value, Value)> = match value {
            Value::List(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| (Value::Int(i as i64), item))
                .collect(),
            Value::Map(_) | Value::Dict(_) => value
                .entries()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (Value::Str(k), v))
                .collect(),
            Value::Nil => Vec::new(),
            other => {
                return Err(TemplateError::new(
                    branch.pipe.pos,
                    format!("range can't iterate over {}", print_value(&other)),
                ));
            }
        };
        if items.is_empty() {
            self.vars.truncate(mark);
            return self.walk_list(&branch.else_list, dot);
        }
        for (key, item) in items {
            self.step(branch.pipe.pos)?;
            match branch.pipe.vars.as_slice() {
                [element] => self.vars.push((element.clone(), item.clone())),
                [index, element] => {
                    self.vars.push((index.clone(), key));
                    self.vars.push((element.clone(), item.clone()));
                }
                _ => {}
            }
            self.walk_list(&branch.list, &item)?;
            self.vars.truncate(mark);
        }
        Ok(())
    }

    /// Evaluates a pipeline and binds its declared or assigned variable.
    fn pipeline(&mut self, pipe: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let value = self.pipeline_value(pipe, dot)?;
        for name in &pipe.vars {
            if pipe.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = value.clone();
                }
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    /// Evaluates the commands of a pipeline without binding variables
    /// (`range` binds its own).
    fn pipeline_value(&mut self, pipe: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let mut value = None;
        for command in &pipe.commands {
            value = Some(self.command(command, dot, value)?);
        }
        Ok(value.unwrap_or(Value::Nil))
    }

    fn command(
        &mut self,
        command: &Command,
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        self.step(command.pos)?;
        let first = &command.args[0];
        if let ArgKind::Function(name) = &first.kind {
            let mut args = command.args[1..]
                .iter()
                .map(|arg| self.arg(arg, dot))
                .collect::<Result<Vec<_>, _>>()?;
            args.extend(piped);
            if let Some((method, receiver)) = first.chain.split_last() {
                let function = funcs::call(name, Vec::new(), &self.context)
                    .map_err(|message| TemplateError::new(first.pos, message))?;
                return self.method_call(function, receiver, method, args, first.pos);
            }
            return funcs::call(name, args, &self.context)
                .map_err(|message| TemplateError::new(first.pos, message));
        }
        if let (Some((method, receiver)), true) = (
            first.chain.split_last(),
            command.args.len() > 1 || piped.is_some(),
        ) {
            let base = Arg {
                chain: Vec::new(),
                ..first.clone()
            };
            let base = self.arg(&base, dot)?;
            let mut args = command.args[1..]
                .iter()
                .map(|arg| self.arg(arg, dot))
                .collect::<Result<Vec<_>, _>>()?;
            args.extend(piped);
            return self.method_call(base, receiver, method, args, first.pos);
        }
        if command.args.len() > 1 || piped.is_some() {
            let what = match &first.kind {
                ArgKind::Dot if !first.chain.is_empty() => format!(".{}", first.chain.join(".")),
                _ => "a value".to_string(),
            };
            return Err(TemplateError::new(
                first.pos,
                format!("can't give argument to non-function {what}"),
            ));
        }
        if first.kind == ArgKind::Nil {
            return Err(TemplateError::new(first.pos, "nil is not a command"));
        }
        self.arg(first, dot)
    }

    /// `x.A.Method args`: the fields `receiver` on `base`, then a method
    /// call (consul-template's `scratch.Set "k" v`, `.Tags.Contains "x"`).
    fn method_call(
        &self,
        base: Value,
        receiver: &[String],
        method: &str,
        args: Vec<Value>,
        pos: usize,
    ) -> Result<Value, TemplateError> {
        let value = receiver
            .iter()
            .try_fold(base, |value, field| field_of(value, field))
            .map_err(|message| TemplateError::new(pos, message))?;
        methods::call(&value, method, args)
            .unwrap_or_else(|| {
                let chain: Vec<&str> = receiver.iter().map(String::as_str).collect();
                let path = [chain.as_slice(), &[method]].concat().join(".");
                Err(format!("can't give argument to non-function .{path}"))
            })
            .map_err(|message| TemplateError::new(pos, message))
    }

    fn arg(&mut self, arg: &Arg, dot: &Value) -> Result<Value, TemplateError> {
        let base = match &arg.kind {
            ArgKind::Dot => dot.clone(),
            ArgKind::Variable(name) => self
                .vars
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, value)| value.clone())
                .ok_or_else(|| {
                    TemplateError::new(arg.pos, format!("undefined variable {name:?}"))
                })?,
            ArgKind::Function(name) => funcs::call(name, Vec::new(), &self.context)
                .map_err(|message| TemplateError::new(arg.pos, message))?,
            ArgKind::Str(text) => Value::Str(text.clone()),
            ArgKind::Number(number) => Value::from(*number),
            ArgKind::Bool(b) => Value::Bool(*b),
            ArgKind::Nil => Value::Nil,
            ArgKind::Pipe(pipe) => self.pipeline(pipe, dot)?,
        };
        arg.chain.iter().try_fold(base, |value, field| {
            field_of(value, field).map_err(|m| TemplateError::new(arg.pos, m))
        })
    }
}

/// `.Field` on a value: a key of the environment map (missing keys give the
/// empty string, Go's `missingkey=zero` on a `map[string]string`), or a
/// field of a record (unknown fields are an error, as on a Go struct).
fn field_of(value: Value, field: &str) -> Result<Value, String> {
    match value {
        Value::Map(map) => Ok(Value::Str(map.get(field).cloned().unwrap_or_default())),
        // Go's missing key of a `map[string]interface{}` is no value at all.
        Value::Dict(map) => Ok(map.get(field).cloned().unwrap_or(Value::Nil)),
        Value::Record(record) => record
            .fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| format!("can't evaluate field {field} in type {}", record.type_name)),
        Value::Nil => Err(format!("nil pointer evaluating interface {{}}.{field}")),
        other => Err(format!(
            "can't evaluate field {field} in type {}",
            other.type_name()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_go_syntax() {
        assert_eq!(Number::parse("42"), Some(Number::Int(42)));
        assert_eq!(Number::parse("-7"), Some(Number::Int(-7)));
        assert_eq!(Number::parse("0x1F"), Some(Number::Int(31)));
        assert_eq!(Number::parse("017"), Some(Number::Int(15)));
        assert_eq!(Number::parse("0o17"), Some(Number::Int(15)));
        assert_eq!(Number::parse("0b101"), Some(Number::Int(5)));
        assert_eq!(Number::parse("1_000"), Some(Number::Int(1000)));
        assert_eq!(Number::parse("1.5"), Some(Number::Float(1.5)));
        assert_eq!(Number::parse("1e3"), Some(Number::Float(1000.0)));
        assert_eq!(Number::parse(".5"), Some(Number::Float(0.5)));
        for bad in [
            "",
            "-",
            "12abc",
            "0x",
            "09",
            "1e",
            "_1",
            "1..2",
            "99999999999999999999",
        ] {
            assert_eq!(Number::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn truthiness_is_gos() {
        for falsy in [
            Value::Nil,
            Value::Bool(false),
            Value::Int(0),
            Value::Float(0.0),
            Value::Str(String::new()),
            Value::List(vec![]),
        ] {
            assert!(!falsy.is_true(), "{falsy:?}");
        }
        for truthy in [
            Value::Bool(true),
            Value::Int(-1),
            Value::Str("0".into()),
            Value::List(vec![Value::Nil]),
        ] {
            assert!(truthy.is_true(), "{truthy:?}");
        }
    }
}
