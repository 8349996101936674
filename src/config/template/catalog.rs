//! The catalog as render templates see it [beyond]: consul-template's
//! `service` and `services` functions, over the healthy instances that
//! autopilot's watches saw last, so that templates written for
//! consul-template (`{{ range service "web" }}server {{ .Address }}:{{ .Port }};{{ end }}`)
//! render unchanged.
//!
//! Only the services the configuration watches are known: `services` lists
//! them, and `service` of another name is an error that names them. This
//! module turns that data into template values; where it comes from is the
//! caller's business.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::exec::{Record, Value};

/// One healthy instance of a watched service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceInstance {
    pub id: String,
    pub address: String,
    pub port: u16,
}

/// Each watched service (by name) and its healthy instances, in the order
/// templates list them.
pub type Catalog = BTreeMap<String, Vec<ServiceInstance>>;

/// `service "name"`: the healthy instances of a watched service, each with
/// `.ID`, `.Name`, `.Address` and `.Port` (consul-template's
/// `*dependency.HealthService` fields that autopilot knows).
pub fn service(catalog: Option<&Catalog>, name: &str) -> Result<Value, String> {
    let catalog = catalog.ok_or_else(only_in_render)?;
    let instances = catalog.get(name).ok_or_else(|| {
        let watched: Vec<&str> = catalog.keys().map(String::as_str).collect();
        format!(
            "{name:?} is not watched: a render template sees only the services in `watches` ({})",
            if watched.is_empty() {
                "there are none".to_string()
            } else {
                watched.join(", ")
            }
        )
    })?;
    Ok(Value::List(
        instances
            .iter()
            .map(|instance| {
                record(
                    "*dependency.HealthService",
                    vec![
                        ("ID", Value::Str(instance.id.clone())),
                        ("Name", Value::Str(name.to_string())),
                        ("Address", Value::Str(instance.address.clone())),
                        ("Port", Value::Int(i64::from(instance.port))),
                    ],
                )
            })
            .collect(),
    ))
}

/// `services`: every watched service, by name, each with `.Name`, whether
/// or not it has healthy instances (as consul-template's `services` lists
/// the catalog's services).
pub fn services(catalog: Option<&Catalog>) -> Result<Value, String> {
    let catalog = catalog.ok_or_else(only_in_render)?;
    Ok(Value::List(
        catalog
            .keys()
            .map(|name| {
                record(
                    "*dependency.CatalogSnippet",
                    vec![("Name", Value::Str(name.clone()))],
                )
            })
            .collect(),
    ))
}

fn record(type_name: &'static str, fields: Vec<(&'static str, Value)>) -> Value {
    Value::Record(Rc::new(Record { type_name, fields }))
}

fn only_in_render() -> String {
    "the catalog is available only in the templates of jobs[].render".to_string()
}
