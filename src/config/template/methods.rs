//! Methods templates call on values, as Go templates call methods of Go
//! types: consul-template's scratch pad (`scratch.Set "k" v`,
//! `scratch.Get "k"`, `Key`, `SetX`, `MapSet`, `MapSetX`, `MapValues`) and
//! the `Contains` of a service's `.Tags`.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::exec::Value;

/// Calls `method` on `receiver`; `None` when the value has no such method.
pub(super) fn call(
    receiver: &Value,
    method: &str,
    args: Vec<Value>,
) -> Option<Result<Value, String>> {
    match receiver {
        Value::Scratch(scratch) => {
            let mut pad = scratch.borrow_mut();
            Some(scratch_method(&mut pad, method, args))
        }
        Value::List(tags) if method == "Contains" => Some(match args.as_slice() {
            [wanted] => Ok(Value::Bool(tags.contains(wanted))),
            _ => Err(wrong_count(method, 1, args.len())),
        }),
        _ => None,
    }
}

fn scratch_method(
    pad: &mut BTreeMap<String, Value>,
    method: &str,
    args: Vec<Value>,
) -> Result<Value, String> {
    let want = match method {
        "Key" | "Get" | "MapValues" => 1,
        "Set" | "SetX" => 2,
        "MapSet" | "MapSetX" => 3,
        _ => {
            return Err(format!(
                "can't evaluate field {method} in type *template.Scratch"
            ))
        }
    };
    if args.len() != want {
        return Err(wrong_count(method, want, args.len()));
    }
    let mut args = args.into_iter();
    let key = match args.next() {
        Some(Value::Str(key)) => key,
        Some(other) => {
            return Err(format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            ))
        }
        None => unreachable!("the count was checked"),
    };
    let rest: Vec<Value> = args.collect();
    Ok(match (method, rest.as_slice()) {
        ("Key", _) => Value::Bool(pad.contains_key(&key)),
        ("Get", _) => pad.get(&key).cloned().unwrap_or(Value::Nil),
        ("Set", [value]) => set(pad, key, value.clone(), true),
        ("SetX", [value]) => set(pad, key, value.clone(), false),
        ("MapSet" | "MapSetX", [Value::Str(inner), value]) => {
            let mut map = match pad.get(&key) {
                Some(Value::Dict(map)) => (**map).clone(),
                _ => BTreeMap::new(),
            };
            if method == "MapSet" || !map.contains_key(inner) {
                map.insert(inner.clone(), value.clone());
            }
            pad.insert(key, Value::Dict(Rc::new(map)));
            Value::Str(String::new())
        }
        ("MapSet" | "MapSetX", [other, _]) => {
            return Err(format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            ))
        }
        // `MapValues`: the values of the map, sorted by their keys.
        _ => match pad.get(&key) {
            Some(Value::Dict(map)) => Value::List(map.values().cloned().collect()),
            _ => Value::List(Vec::new()),
        },
    })
}

/// Setters return an empty string, so `{{ scratch.Set "k" v }}` prints nothing.
fn set(pad: &mut BTreeMap<String, Value>, key: String, value: Value, replace: bool) -> Value {
    if replace || !pad.contains_key(&key) {
        pad.insert(key, value);
    }
    Value::Str(String::new())
}

fn wrong_count(method: &str, want: usize, got: usize) -> String {
    format!("wrong number of args for {method}: want {want} got {got}")
}
