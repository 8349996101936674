//! The Consul HTTP API v1 endpoints the double serves: routing, parameter parsing, ACL and
//! vetting order, blocking queries.
//!
//! Owns the order in which Consul checks things (decode, then token, then existence, then
//! permission, then the change) and the query-parameter rules. State changes are delegated
//! to `agent`, JSON shapes to `render`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::Method;

use crate::acl::{PresentedToken, Principal};
use crate::agent::InstanceFilter;
use crate::control::{Inner, Shared};
use crate::duration::parse_go_duration;
use crate::error::ApiError;
use crate::kv::{Condition, KvRead};
use crate::registration::{decode_check_update, decode_registration, Registration};
use crate::render;
use crate::reply::Reply;
use crate::session;
use crate::state::Status;

/// Consul's `defaultQueryTime` and `maxQueryTime` for blocking queries.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const MAX_WAIT: Duration = Duration::from_secs(600);

/// A request on the Consul API, after the journal and the faults have seen it.
pub(crate) struct ApiRequest {
    pub seq: u64,
    pub method: Method,
    pub path: String,
    pub params: Vec<(String, String)>,
    pub body: Bytes,
    pub token: PresentedToken,
    /// The `LegacyAgent` fault applies.
    pub legacy: bool,
}

impl ApiRequest {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn params_named(&self, name: &str) -> Vec<String> {
        self.params
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// Consul's `getBoolQueryParam`: present without a value means true.
    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.param(name) {
            None => Ok(false),
            Some("") => Ok(true),
            Some(text) => parse_go_bool(text)
                .ok_or_else(|| ApiError::BadRequest(format!("Invalid value for ?{name}"))),
        }
    }
}

enum Endpoint<'a> {
    Register,
    Deregister(&'a str),
    Maintenance(&'a str),
    CheckUpdate(&'a str),
    CheckSet(&'a str, Status),
    HealthService(&'a str),
    CatalogService(&'a str),
    AgentServices,
    AgentChecks,
    StatusLeader,
    CatalogServices,
    CatalogDatacenters,
    Session(SessionEndpoint<'a>),
}

/// `/v1/session/...`.
#[derive(Clone, Copy)]
enum SessionEndpoint<'a> {
    Create,
    Destroy(&'a str),
    Renew(&'a str),
    Info(&'a str),
    List,
    Node(&'a str),
}

/// Builds an endpoint from what follows its path prefix.
type FromPathRest = fn(&str) -> Endpoint<'_>;

/// The endpoint for a path and the one method it accepts.
fn route(path: &str) -> Option<(Endpoint<'_>, Method)> {
    const PREFIXED: [(&str, FromPathRest, Method); 12] = [
        (
            "/v1/session/destroy/",
            |id| Endpoint::Session(SessionEndpoint::Destroy(id)),
            Method::PUT,
        ),
        (
            "/v1/session/renew/",
            |id| Endpoint::Session(SessionEndpoint::Renew(id)),
            Method::PUT,
        ),
        (
            "/v1/session/info/",
            |id| Endpoint::Session(SessionEndpoint::Info(id)),
            Method::GET,
        ),
        (
            "/v1/session/node/",
            |node| Endpoint::Session(SessionEndpoint::Node(node)),
            Method::GET,
        ),
        (
            "/v1/agent/service/deregister/",
            |id| Endpoint::Deregister(id),
            Method::PUT,
        ),
        (
            "/v1/agent/service/maintenance/",
            |id| Endpoint::Maintenance(id),
            Method::PUT,
        ),
        (
            "/v1/agent/check/update/",
            |id| Endpoint::CheckUpdate(id),
            Method::PUT,
        ),
        (
            "/v1/agent/check/pass/",
            |id| Endpoint::CheckSet(id, Status::Passing),
            Method::PUT,
        ),
        (
            "/v1/agent/check/warn/",
            |id| Endpoint::CheckSet(id, Status::Warning),
            Method::PUT,
        ),
        (
            "/v1/agent/check/fail/",
            |id| Endpoint::CheckSet(id, Status::Critical),
            Method::PUT,
        ),
        (
            "/v1/health/service/",
            |name| Endpoint::HealthService(name),
            Method::GET,
        ),
        (
            "/v1/catalog/service/",
            |name| Endpoint::CatalogService(name),
            Method::GET,
        ),
    ];
    let exact = match path {
        "/v1/agent/service/register" => Some((Endpoint::Register, Method::PUT)),
        "/v1/agent/services" => Some((Endpoint::AgentServices, Method::GET)),
        "/v1/agent/checks" => Some((Endpoint::AgentChecks, Method::GET)),
        "/v1/status/leader" => Some((Endpoint::StatusLeader, Method::GET)),
        "/v1/catalog/services" => Some((Endpoint::CatalogServices, Method::GET)),
        "/v1/catalog/datacenters" => Some((Endpoint::CatalogDatacenters, Method::GET)),
        "/v1/session/create" => Some((Endpoint::Session(SessionEndpoint::Create), Method::PUT)),
        "/v1/session/list" => Some((Endpoint::Session(SessionEndpoint::List), Method::GET)),
        _ => None,
    };
    exact.or_else(|| {
        PREFIXED.iter().find_map(|(prefix, endpoint, method)| {
            path.strip_prefix(prefix)
                .map(|rest| (endpoint(rest), method.clone()))
        })
    })
}

pub(crate) async fn handle(shared: &Arc<Shared>, request: ApiRequest) -> Reply {
    match dispatch(shared, &request).await {
        Ok(reply) => reply,
        Err(error) => Reply::error(&error),
    }
}

async fn dispatch(shared: &Arc<Shared>, request: &ApiRequest) -> Result<Reply, ApiError> {
    let caller = || {
        Principal::resolve(shared.config.acl_token.as_deref(), &request.token).map(|principal| {
            Caller {
                shared,
                request,
                principal,
            }
        })
    };
    // The KV endpoint takes three methods on one path.
    if let Some(key) = request.path.strip_prefix("/v1/kv/") {
        return caller()?.kv(key).await;
    }
    let (endpoint, method) = route(&request.path).ok_or(ApiError::NoSuchEndpoint)?;
    if request.method != method {
        return Err(ApiError::MethodNotAllowed(request.method.to_string()));
    }
    // Consul decodes a body before it resolves the token, and resolves no token for the
    // status endpoints.
    match endpoint {
        Endpoint::StatusLeader => Ok(Reply::json(&format!("{}:8300", shared.config.node_address))),
        Endpoint::Register => {
            let registration = decode_registration(&request.body)?;
            caller()?.register(registration)
        }
        Endpoint::Deregister(id) => caller()?.deregister(id),
        Endpoint::Maintenance(id) => caller()?.maintenance(id),
        Endpoint::CheckUpdate(id) => {
            let update = decode_check_update(&request.body)?;
            caller()?.update_check(id, update.status, &update.output)
        }
        Endpoint::CheckSet(id, status) => {
            caller()?.update_check(id, status, request.param("note").unwrap_or_default())
        }
        Endpoint::HealthService(name) => caller()?.instances(name, Listing::Health).await,
        Endpoint::CatalogService(name) => caller()?.instances(name, Listing::Catalog).await,
        Endpoint::AgentServices => Ok(caller()?.agent_services()),
        Endpoint::AgentChecks => Ok(caller()?.agent_checks()),
        Endpoint::CatalogServices => caller()?.catalog_services().await,
        Endpoint::CatalogDatacenters => Ok(Reply::json(&[&shared.config.datacenter])),
        Endpoint::Session(endpoint) => caller()?.session(endpoint).await,
    }
}

/// One request being served, with who it runs as.
struct Caller<'a> {
    shared: &'a Arc<Shared>,
    request: &'a ApiRequest,
    principal: Principal,
}

/// The two endpoints that list a service's instances.
#[derive(Clone, Copy)]
enum Listing {
    /// `/v1/health/service`: instances with their checks; honours `?passing`.
    Health,
    /// `/v1/catalog/service`: instances only; `?passing` means nothing there.
    Catalog,
}

impl Caller<'_> {
    fn register(&self, registration: Registration) -> Result<Reply, ApiError> {
        let replace = self.request.flag("replace-existing-checks")?;
        let service = &registration.service;
        self.principal.require_service_write(&service.name)?;
        tracing::info!(id = %service.id, name = %service.name, "service registered");
        self.shared
            .write(|inner| inner.agent.register(registration, replace, Instant::now()));
        Ok(Reply::empty())
    }

    fn deregister(&self, id: &str) -> Result<Reply, ApiError> {
        self.shared.write(|inner| {
            let Some(service) = inner.agent.service(id) else {
                return if self.request.legacy {
                    Ok(Reply::empty())
                } else {
                    Err(ApiError::UnknownService(id.to_string()))
                };
            };
            self.principal.require_service_write(&service.name)?;
            inner.agent.deregister(id)?;
            tracing::info!(id, "service deregistered");
            Ok(Reply::empty())
        })
    }

    fn maintenance(&self, id: &str) -> Result<Reply, ApiError> {
        let enable = match self.request.param("enable") {
            None => return Err(ApiError::BadRequest("Missing value for enable".into())),
            Some(text) => parse_go_bool(text).ok_or_else(|| {
                ApiError::BadRequest(format!("Invalid value for enable: {text:?}"))
            })?,
        };
        let reason = self.request.param("reason").unwrap_or_default();
        self.shared.write(|inner| {
            let Some(service) = inner.agent.service(id) else {
                return Err(if self.request.legacy {
                    ApiError::LegacyNoSuchService(id.to_string())
                } else {
                    ApiError::UnknownService(id.to_string())
                });
            };
            self.principal.require_service_write(&service.name)?;
            inner
                .agent
                .set_maintenance(id, enable, reason, Instant::now())?;
            tracing::info!(id, enable, "service maintenance");
            Ok(Reply::empty())
        })
    }

    fn update_check(&self, id: &str, status: Status, output: &str) -> Result<Reply, ApiError> {
        self.shared.write(|inner| {
            let Some(check) = inner.agent.check(id) else {
                return Err(if self.request.legacy {
                    ApiError::NoAssociatedTtl(id.to_string())
                } else {
                    ApiError::UnknownCheck(id.to_string())
                });
            };
            self.principal.require_service_write(&check.service_name)?;
            inner.agent.update_ttl(id, status, output, Instant::now())?;
            Ok(Reply::empty())
        })
    }

    /// `GET /v1/health/service/<name>` and `GET /v1/catalog/service/<name>`.
    async fn instances(&self, name: &str, listing: Listing) -> Result<Reply, ApiError> {
        self.require_local_datacenter()?;
        let passing_only = match listing {
            Listing::Health => self.request.flag("passing")?,
            Listing::Catalog => false,
        };
        let renderer = match listing {
            Listing::Health => render::health_service,
            Listing::Catalog => render::catalog_service,
        };
        let tags = self.request.params_named("tag");
        let wait = BlockingParams::parse(self.request)?;
        let filter = InstanceFilter {
            tags: &tags,
            passing_only,
        };
        let visible = self.principal.can_read();
        let evaluate = |inner: &Inner| {
            let agent = &inner.agent;
            let (index, instances) = agent.instances(name, &filter);
            let instances = if visible { instances } else { Vec::new() };
            (index, renderer(agent, &instances))
        };
        let (index, body) = blocking_query(self.shared, self.request.seq, wait, evaluate).await;
        Ok(Reply::json(&body).with_index(index))
    }

    /// `GET /v1/catalog/services[?dc=]`: every service name with the union of its tags.
    async fn catalog_services(&self) -> Result<Reply, ApiError> {
        self.require_local_datacenter()?;
        let wait = BlockingParams::parse(self.request)?;
        let visible = self.principal.can_read();
        let evaluate = |inner: &Inner| {
            let agent = &inner.agent;
            let entries = agent.service_entries().filter(|_| visible);
            (agent.index(), render::catalog_services(entries))
        };
        let (index, body) = blocking_query(self.shared, self.request.seq, wait, evaluate).await;
        Ok(Reply::json(&body).with_index(index))
    }

    /// `/v1/kv/<key>`: `GET [?recurse|?keys[&separator=]|?raw]` (blocking), `PUT [?flags=]`
    /// with the value as the body, `DELETE [?recurse]`.
    async fn kv(&self, key: &str) -> Result<Reply, ApiError> {
        let key = percent_encoding::percent_decode_str(key)
            .decode_utf8_lossy()
            .into_owned();
        let method = &self.request.method;
        if *method == Method::GET {
            return self.kv_read(&key).await;
        }
        self.principal.require("key:write", &key)?;
        let recurse = self.request.flag("recurse")?;
        let flags = match self.request.param("flags") {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| ApiError::BadRequest("Invalid flags".into()))?,
        };
        let body = self.request.body.to_vec();
        let condition = self.kv_condition()?;
        if condition != Condition::None {
            return self.kv_conditional_write(&key, body, flags, condition);
        }
        // Every write is a raft apply: the index moves even when nothing was deleted.
        match *method {
            Method::PUT => self.shared.write(|inner| {
                let index = inner.agent.next_index();
                inner.kv.put(&key, body, flags, index);
            }),
            Method::DELETE => self.shared.write(|inner| {
                let index = inner.agent.next_index();
                inner.kv.delete(&key, recurse, index);
            }),
            _ => return Err(ApiError::MethodNotAllowed(method.to_string())),
        }
        tracing::info!(key, %method, "kv write");
        Ok(Reply::json(&true))
    }

    /// `/v1/session/...`. Sessions belong to the node, so writes need `session:write` on it.
    async fn session(&self, endpoint: SessionEndpoint<'_>) -> Result<Reply, ApiError> {
        let node = self.shared.config.node_name.clone();
        let now = Instant::now();
        match endpoint {
            SessionEndpoint::Create => {
                self.principal.require("session:write", &node)?;
                let ttl_min = self.shared.config.session_ttl_min;
                let body = &self.request.body;
                let id = self.shared.write_if_changed(|inner| {
                    let created = inner.sessions.create(&mut inner.agent, body, ttl_min, now);
                    let changed = created.is_ok();
                    (created, changed)
                })?;
                tracing::info!(session = %id, "session created");
                Ok(Reply::json(&serde_json::json!({ "ID": id })))
            }
            SessionEndpoint::Destroy(id) => {
                self.principal.require("session:write", &node)?;
                let ids = [id.to_string()];
                self.shared
                    .write_if_changed(|inner| ((), session::invalidate(inner, &ids, now)));
                Ok(Reply::json(&true))
            }
            SessionEndpoint::Renew(id) => {
                self.principal.require("session:write", &node)?;
                let renewed = self.shared.write(|inner| inner.sessions.renew(id, now));
                let session = renewed.ok_or_else(|| ApiError::NoSuchSession(id.to_string()))?;
                Ok(Reply::json(&[session]))
            }
            SessionEndpoint::Info(id) => self.sessions_read(Some(id)).await,
            SessionEndpoint::List => self.sessions_read(None).await,
            SessionEndpoint::Node(name) if name == node => self.sessions_read(None).await,
            SessionEndpoint::Node(_) => Ok(Reply::json(&Vec::<serde_json::Value>::new())),
        }
    }

    /// `GET /v1/session/info/<id>` and `/v1/session/list` (blocking).
    async fn sessions_read(&self, id: Option<&str>) -> Result<Reply, ApiError> {
        let wait = BlockingParams::parse(self.request)?;
        let visible = self.principal.can_read();
        let evaluate = |inner: &Inner| {
            let (index, sessions) = inner.sessions.read(id);
            (
                index,
                if visible {
                    sessions
                } else {
                    serde_json::Value::Array(Vec::new())
                },
            )
        };
        let (index, body) = blocking_query(self.shared, self.request.seq, wait, evaluate).await;
        Ok(Reply::json(&body).with_index(index))
    }

    /// `?cas=`, `?acquire=` or `?release=` of a KV write.
    fn kv_condition(&self) -> Result<Condition<'_>, ApiError> {
        let request = self.request;
        if let Some(text) = request.param("cas") {
            let index = text
                .parse()
                .map_err(|_| ApiError::BadRequest("Invalid CAS index".into()))?;
            return Ok(Condition::Cas(index));
        }
        Ok(match (request.param("acquire"), request.param("release")) {
            (Some(session), _) => Condition::Acquire(session),
            (None, Some(session)) => Condition::Release(session),
            (None, None) => Condition::None,
        })
    }

    /// A KV write that may not happen: answers `true` or `false`, as Consul does. Acquiring
    /// with a session that does not exist is refused with Consul's error.
    fn kv_conditional_write(
        &self,
        key: &str,
        body: Vec<u8>,
        flags: u64,
        condition: Condition<'_>,
    ) -> Result<Reply, ApiError> {
        let delete = self.request.method == Method::DELETE;
        let done = self.shared.write_if_changed(|inner| {
            if let Condition::Acquire(session) = condition {
                if !inner.sessions.exists(session) {
                    return (
                        Err(ApiError::Internal(format!("invalid session {session:?}"))),
                        false,
                    );
                }
            }
            let index = inner.agent.index() + 1;
            let now = Instant::now();
            let done = if delete {
                inner.kv.delete_if(key, condition, index)
            } else {
                inner.kv.put_if(key, body, flags, condition, index, now)
            };
            if done {
                inner.agent.next_index();
            }
            (Ok(done), done)
        })?;
        tracing::info!(key, ?condition, done, "kv conditional write");
        Ok(Reply::json(&done))
    }

    async fn kv_read(&self, key: &str) -> Result<Reply, ApiError> {
        self.principal.require("key:read", key)?;
        if self.request.param("raw").is_some() {
            return self
                .shared
                .read(|inner| inner.kv.raw(key))
                .map_or(Err(ApiError::NoSuchKey), |value| Ok(Reply::bytes(value)));
        }
        let read = if self.request.flag("recurse")? {
            KvRead::Recurse
        } else if self.request.param("keys").is_some() {
            KvRead::Keys(self.request.param("separator"))
        } else {
            KvRead::Key
        };
        let wait = BlockingParams::parse(self.request)?;
        let evaluate = |inner: &Inner| inner.kv.read(key, read);
        let (index, body) = blocking_query(self.shared, self.request.seq, wait, evaluate).await;
        match body {
            Some(body) => Ok(Reply::json(&body).with_index(index)),
            None => Ok(Reply::error(&ApiError::NoSuchKey).with_index(index)),
        }
    }

    fn agent_services(&self) -> Reply {
        let visible = self.principal.can_read();
        self.shared.read(|inner| {
            let agent = &inner.agent;
            Reply::json(&render::agent_services(
                agent,
                agent.service_entries().filter(|_| visible),
            ))
        })
    }

    fn agent_checks(&self) -> Reply {
        let visible = self.principal.can_read();
        self.shared.read(|inner| {
            let agent = &inner.agent;
            Reply::json(&render::agent_checks(
                agent,
                agent.check_entries().filter(|_| visible),
            ))
        })
    }

    fn require_local_datacenter(&self) -> Result<(), ApiError> {
        match self.request.param("dc") {
            Some(dc) if !dc.is_empty() && dc != self.shared.config.datacenter => {
                Err(ApiError::NoPathToDatacenter)
            }
            _ => Ok(()),
        }
    }
}

/// `?index=` and `?wait=` of a blocking query.
struct BlockingParams {
    min_index: u64,
    wait: Duration,
}

impl BlockingParams {
    /// Consul's `parseWait`: the wait defaults to 5 min and is capped at 10 min. (Consul
    /// adds up to wait/16 of random jitter; the double does not.)
    fn parse(request: &ApiRequest) -> Result<Self, ApiError> {
        let wait = match request.param("wait").filter(|text| !text.is_empty()) {
            None => DEFAULT_WAIT,
            Some(text) => parse_go_duration(text)
                .ok_or_else(|| ApiError::BadRequest("Invalid wait time".into()))?,
        };
        let min_index = match request.param("index").filter(|text| !text.is_empty()) {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| ApiError::BadRequest("Invalid index".into()))?,
        };
        Ok(BlockingParams {
            min_index,
            wait: if wait.is_zero() {
                DEFAULT_WAIT
            } else {
                wait.min(MAX_WAIT)
            },
        })
    }
}

/// Runs `evaluate` and, when the request asked for an index the result has not passed yet,
/// waits until the result's index moves past it or the wait ends, then answers with the
/// latest result (Consul's `blockingQuery`).
async fn blocking_query<T>(
    shared: &Shared,
    seq: u64,
    params: BlockingParams,
    mut evaluate: impl FnMut(&Inner) -> (u64, T),
) -> (u64, T) {
    let mut changes = shared.subscribe();
    let mut result = shared.read(&mut evaluate);
    if params.min_index == 0 || result.0 > params.min_index {
        return result;
    }
    shared.write(|inner| inner.journal.update(seq, |entry| entry.blocked = true));
    let deadline = tokio::time::Instant::now() + params.wait;
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return result },
            _ = tokio::time::sleep_until(deadline) => return shared.read(&mut evaluate),
        }
        result = shared.read(&mut evaluate);
        if result.0 > params.min_index {
            return result;
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
