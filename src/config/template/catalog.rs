//! The catalog as render templates see it [beyond]: consul-template's data
//! functions (`service`, `services`, `key`, `keyExists`, `keyOrDefault`,
//! `ls`, `tree`, `datacenters`) over data fetched for the template.
//!
//! A render works the way consul-template's does: executing the template
//! records every [`Dependency`] it reads; those not fetched yet read as empty
//! and are reported as missing, so the caller fetches them and renders again
//! (and writes nothing until none is missing). An absent key read with `key`
//! counts as missing too: consul-template waits for it to exist.
//!
//! This module turns fetched data into template values and parses service
//! queries; fetching belongs to the caller (`jobs::render`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;
use std::sync::OnceLock;

use super::exec::{Record, Value};

/// What a template reads from the catalog: consul-template's dependencies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dependency {
    /// `service "tag.name@dc~near|filter"`: instances of one service.
    Service(ServiceQuery),
    /// `services` or `services "@dc"`: the catalog's service names and tags.
    Services { dc: Option<String> },
    /// `key`, `keyExists`, `keyOrDefault`: one KV key.
    Key(String),
    /// `ls`, `tree`: every KV pair under a prefix.
    Prefix(String),
    /// `datacenters`.
    Datacenters,
}

/// What the template called, as it would call it (for logs and errors).
impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dependency::Service(query) => {
                let tag = query
                    .tag
                    .as_ref()
                    .map_or(String::new(), |t| format!("{t}."));
                let dc = query
                    .dc
                    .as_ref()
                    .map_or(String::new(), |dc| format!("@{dc}"));
                let near = query
                    .near
                    .as_ref()
                    .map_or(String::new(), |n| format!("~{n}"));
                let filter = query.filter.join(",");
                write!(f, "service \"{tag}{}{dc}{near}|{filter}\"", query.name)
            }
            Dependency::Services { dc: None } => f.write_str("services"),
            Dependency::Services { dc: Some(dc) } => write!(f, "services \"@{dc}\""),
            Dependency::Key(key) => write!(f, "key {key:?}"),
            Dependency::Prefix(prefix) => write!(f, "tree {prefix:?}"),
            Dependency::Datacenters => f.write_str("datacenters"),
        }
    }
}

/// A parsed `service` query (consul-template's `health.service` syntax).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceQuery {
    pub name: String,
    pub tag: Option<String>,
    pub dc: Option<String>,
    pub near: Option<String>,
    /// The health statuses accepted, sorted: `passing` when none is given;
    /// `any` accepts every status.
    pub filter: Vec<String>,
}

/// The statuses a service query may filter on.
const STATUSES: [&str; 5] = ["any", "passing", "warning", "critical", "maintenance"];

impl ServiceQuery {
    /// Parses `[tag.]name[@dc][~near][|filter,...]` as consul-template does.
    pub fn parse(text: &str) -> Result<ServiceQuery, String> {
        static QUERY: OnceLock<regex_lite::Regex> = OnceLock::new();
        let pattern = QUERY.get_or_init(|| {
            regex_lite::Regex::new(
                r"\A((?P<tag>[[:word:]=:.\-]+)\.)?(?P<name>[[:word:]\-]+)(@(?P<dc>[[:word:].\-]+))?(~(?P<near>[[:word:].\-]+))?(\|(?P<filter>[[:word:],]+))?\z",
            )
            .expect("the service query pattern is valid")
        });
        let captures = pattern
            .captures(text)
            .ok_or_else(|| format!("health.service: invalid format: {text:?}"))?;
        let part = |name: &str| captures.name(name).map(|m| m.as_str().to_string());
        let mut filter = Vec::new();
        for word in part("filter").unwrap_or_default().split(',') {
            match word.trim() {
                "" => {}
                word if STATUSES.contains(&word) => filter.push(word.to_string()),
                word => {
                    return Err(format!(
                        "health.service: invalid filter: {word:?} in {text:?}"
                    ))
                }
            }
        }
        if filter.is_empty() {
            filter.push("passing".to_string());
        }
        filter.sort();
        Ok(ServiceQuery {
            name: part("name").unwrap_or_default(),
            tag: part("tag"),
            dc: part("dc"),
            near: part("near"),
            filter,
        })
    }

    /// Only passing instances: the catalog can filter them itself.
    pub fn passing_only(&self) -> bool {
        self.filter == ["passing"]
    }

    /// Does an instance with this aggregated status pass the filter?
    pub fn accepts(&self, status: &str) -> bool {
        self.filter.iter().any(|f| f == "any" || f == status)
    }
}

/// Parses `services`' optional `@dc` argument.
pub(super) fn services_dc(text: &str) -> Result<Option<String>, String> {
    match text.strip_prefix('@') {
        _ if text.is_empty() => Ok(None),
        Some(dc) if !dc.is_empty() && !dc.contains(['@', '/', '|', ' ']) => {
            Ok(Some(dc.to_string()))
        }
        _ => Err(format!("catalog.services: invalid format: {text:?}")),
    }
}

/// One instance of a service, with consul-template's `HealthService` fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceInstance {
    pub node: String,
    pub node_address: String,
    pub node_datacenter: String,
    pub node_meta: BTreeMap<String, String>,
    pub service_meta: BTreeMap<String, String>,
    pub address: String,
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    /// The aggregated status of the instance's checks.
    pub status: String,
    pub port: u16,
}

/// One service of the catalog (`services`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogService {
    pub name: String,
    pub tags: Vec<String>,
}

/// One KV pair, its key in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub key: String,
    pub value: String,
}

/// The answer to one [`Dependency`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    Instances(Vec<ServiceInstance>),
    Services(Vec<CatalogService>),
    /// A key's value; `None` when the key does not exist.
    Key(Option<String>),
    Pairs(Vec<KeyPair>),
    Datacenters(Vec<String>),
}

/// Everything fetched so far for one template.
pub(crate) type Catalog = BTreeMap<Dependency, Fetched>;

/// A catalog being read by one render: records what the template used and
/// what it still lacks.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    catalog: &'a Catalog,
    used: RefCell<BTreeSet<Dependency>>,
    missing: RefCell<BTreeSet<Dependency>>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(catalog: &'a Catalog) -> Reader<'a> {
        Reader {
            catalog,
            used: RefCell::default(),
            missing: RefCell::default(),
        }
    }

    /// What the render read, and what of it was not there yet.
    pub(super) fn into_dependencies(self) -> (BTreeSet<Dependency>, BTreeSet<Dependency>) {
        (self.used.into_inner(), self.missing.into_inner())
    }

    fn read(&self, dependency: Dependency) -> Option<&'a Fetched> {
        let fetched = self.catalog.get(&dependency);
        if fetched.is_none() {
            self.missing.borrow_mut().insert(dependency.clone());
        }
        self.used.borrow_mut().insert(dependency);
        fetched
    }

    /// `service "query"`: the instances passing the query's health filter,
    /// sorted by node, then ID (in Consul's order with `~near`).
    pub(super) fn service(&self, query: &str) -> Result<Value, String> {
        let query = ServiceQuery::parse(query)?;
        let instances = match self.read(Dependency::Service(query.clone())) {
            Some(Fetched::Instances(instances)) => instances.as_slice(),
            _ => &[],
        };
        let mut accepted: Vec<&ServiceInstance> = instances
            .iter()
            .filter(|instance| query.accepts(&instance.status))
            .collect();
        // With `~near`, Consul's order (nearest first) is the point.
        if query.near.is_none() {
            accepted.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
        }
        Ok(Value::List(
            accepted.into_iter().map(instance_value).collect(),
        ))
    }

    /// `services ["@dc"]`: the catalog's services sorted by name, each with
    /// `.Name` and `.Tags`.
    pub(super) fn services(&self, dc: &str) -> Result<Value, String> {
        let dc = services_dc(dc)?;
        let services = match self.read(Dependency::Services { dc }) {
            Some(Fetched::Services(services)) => services.as_slice(),
            _ => &[],
        };
        let mut services: Vec<&CatalogService> = services.iter().collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Value::List(
            services
                .into_iter()
                .map(|service| {
                    record(
                        "*dependency.CatalogSnippet",
                        vec![
                            ("Name", Value::Str(service.name.clone())),
                            ("Tags", tags(&service.tags)),
                        ],
                    )
                })
                .collect(),
        ))
    }

    /// A key's value: `None` while unfetched or absent.
    fn key_value(&self, path: &str) -> (bool, Option<String>) {
        match self.read(Dependency::Key(kv_path(path))) {
            Some(Fetched::Key(value)) => (true, value.clone()),
            _ => (false, None),
        }
    }

    /// `key "path"`: the value; an absent key holds the render back until it
    /// exists, as in consul-template.
    pub(super) fn key(&self, path: &str) -> Value {
        let (fetched, value) = self.key_value(path);
        if fetched && value.is_none() {
            self.missing
                .borrow_mut()
                .insert(Dependency::Key(kv_path(path)));
        }
        Value::Str(value.unwrap_or_default())
    }

    /// `keyExists "path"`.
    pub(super) fn key_exists(&self, path: &str) -> Value {
        Value::Bool(self.key_value(path).1.is_some())
    }

    /// `keyOrDefault "path" "default"`: the default while the key is absent.
    pub(super) fn key_or_default(&self, path: &str, fallback: &str) -> Value {
        Value::Str(
            self.key_value(path)
                .1
                .unwrap_or_else(|| fallback.to_string()),
        )
    }

    /// `ls "prefix"` (only the keys right under the prefix) and `tree
    /// "prefix"` (every key below it): pairs with `.Key` relative to the
    /// prefix, `.Path` and `.Value`, sorted by key, folders left out. The
    /// `safe` forms hold the render back while the prefix holds nothing.
    pub(super) fn pairs(&self, prefix: &str, listing: Listing) -> Value {
        let prefix = kv_path(prefix);
        let dependency = Dependency::Prefix(prefix.clone());
        let pairs = match self.read(dependency.clone()) {
            Some(Fetched::Pairs(pairs)) => pairs.as_slice(),
            _ => &[],
        };
        if pairs.is_empty() && matches!(listing, Listing::SafeLevel | Listing::SafeTree) {
            self.missing.borrow_mut().insert(dependency);
        }
        let recursive = matches!(listing, Listing::Tree | Listing::SafeTree);
        let mut listed: Vec<(&str, &str, &str)> = pairs
            .iter()
            .filter_map(|pair| {
                let key = pair.key.strip_prefix(&prefix)?.trim_start_matches('/');
                let keep =
                    !key.is_empty() && !key.ends_with('/') && (recursive || !key.contains('/'));
                keep.then_some((key, pair.key.as_str(), pair.value.as_str()))
            })
            .collect();
        listed.sort();
        Value::List(
            listed
                .into_iter()
                .map(|(key, path, value)| {
                    record(
                        "*dependency.KeyPair",
                        vec![
                            ("Path", Value::Str(path.to_string())),
                            ("Key", Value::Str(key.to_string())),
                            ("Value", Value::Str(value.to_string())),
                        ],
                    )
                })
                .collect(),
        )
    }

    /// `datacenters`: every known datacenter, sorted.
    pub(super) fn datacenters(&self) -> Value {
        let mut names = match self.read(Dependency::Datacenters) {
            Some(Fetched::Datacenters(names)) => names.clone(),
            _ => Vec::new(),
        };
        names.sort();
        Value::List(names.into_iter().map(Value::Str).collect())
    }
}

/// Which KV listing function is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listing {
    /// `ls`
    Level,
    /// `safeLs`
    SafeLevel,
    /// `tree`
    Tree,
    /// `safeTree`
    SafeTree,
}

/// consul-template trims the leading slash of KV paths.
fn kv_path(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

fn instance_value(instance: &ServiceInstance) -> Value {
    record(
        "*dependency.HealthService",
        vec![
            ("Node", Value::Str(instance.node.clone())),
            ("NodeAddress", Value::Str(instance.node_address.clone())),
            (
                "NodeDatacenter",
                Value::Str(instance.node_datacenter.clone()),
            ),
            ("NodeMeta", string_map(&instance.node_meta)),
            ("ServiceMeta", string_map(&instance.service_meta)),
            ("Address", Value::Str(instance.address.clone())),
            ("ID", Value::Str(instance.id.clone())),
            ("Name", Value::Str(instance.name.clone())),
            ("Tags", tags(&instance.tags)),
            ("Status", Value::Str(instance.status.clone())),
            ("Port", Value::Int(i64::from(instance.port))),
        ],
    )
}

/// Tags as consul-template gives them: sorted.
fn tags(tags: &[String]) -> Value {
    let mut tags = tags.to_vec();
    tags.sort();
    Value::List(tags.into_iter().map(Value::Str).collect())
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(Rc::new(map.clone()))
}

fn record(type_name: &'static str, fields: Vec<(&'static str, Value)>) -> Value {
    Value::Record(Rc::new(Record { type_name, fields }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_queries_parse_like_consul_templates() {
        let q = ServiceQuery::parse("web").unwrap();
        assert_eq!(
            (q.name.as_str(), q.tag, q.dc, q.filter),
            ("web", None, None, vec!["passing".to_string()])
        );
        let q = ServiceQuery::parse("prod.web@east~node1|warning,passing").unwrap();
        assert_eq!(q.name, "web");
        assert_eq!(q.tag.as_deref(), Some("prod"));
        assert_eq!(q.dc.as_deref(), Some("east"));
        assert_eq!(q.near.as_deref(), Some("node1"));
        assert_eq!(q.filter, ["passing", "warning"]);
        assert!(!q.passing_only() && q.accepts("warning") && !q.accepts("critical"));
        let any = ServiceQuery::parse("web|any").unwrap();
        assert!(any.accepts("critical") && any.accepts("maintenance"));
        assert_eq!(
            ServiceQuery::parse("web|bogus").unwrap_err(),
            "health.service: invalid filter: \"bogus\" in \"web|bogus\""
        );
        for bad in ["", "web@", "we b", "web|", "@dc", "web/x"] {
            assert!(
                ServiceQuery::parse(bad)
                    .unwrap_err()
                    .starts_with("health.service: invalid format"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn dependencies_print_as_template_calls() {
        let query = ServiceQuery::parse("prod.web@east|warning,passing").unwrap();
        assert_eq!(
            Dependency::Service(query).to_string(),
            "service \"prod.web@east|passing,warning\""
        );
        assert_eq!(Dependency::Key("a/b".into()).to_string(), "key \"a/b\"");
        assert_eq!(
            Dependency::Services {
                dc: Some("x".into())
            }
            .to_string(),
            "services \"@x\""
        );
    }

    #[test]
    fn services_take_an_optional_datacenter() {
        assert_eq!(services_dc("").unwrap(), None);
        assert_eq!(services_dc("@east").unwrap().as_deref(), Some("east"));
        assert!(services_dc("east").is_err() && services_dc("@").is_err());
    }

    #[test]
    fn readers_record_used_and_missing_dependencies() {
        let catalog = Catalog::from([(Dependency::Key("a".into()), Fetched::Key(None))]);
        let reader = Reader::new(&catalog);
        assert_eq!(reader.key_exists("/a"), Value::Bool(false));
        assert_eq!(reader.key_or_default("b", "d"), Value::Str("d".into()));
        let (used, missing) = reader.into_dependencies();
        assert_eq!(used.len(), 2);
        assert_eq!(
            missing.into_iter().collect::<Vec<_>>(),
            [Dependency::Key("b".into())]
        );
        let reader = Reader::new(&catalog);
        reader.key("a");
        assert_eq!(reader.into_dependencies().1.len(), 1, "an absent key waits");
    }
}
