//! A test double of the Consul agent's HTTP API v1: the subset autopilot uses, answered as
//! Consul answers it, with faults that can be injected at runtime.
//!
//! It stands in for a real agent where Consul cannot be installed: autopilot's integration
//! tests and its Docker-free demo. It is not a Consul: one node, one datacenter, TTL checks
//! only (other check kinds are stored and reported but never run), one KV store, no DNS.
//! It speaks HTTP, or HTTPS with a given certificate (`Config::tls`), and can stand behind a
//! proxy that requires HTTP Basic credentials (`Config::http_auth`, what `CONSUL_HTTP_AUTH`
//! is for).
//!
//! # Endpoints
//! - `PUT /v1/agent/service/register[?replace-existing-checks]`
//! - `PUT /v1/agent/service/deregister/<id>`
//! - `PUT /v1/agent/service/maintenance/<id>?enable=true|false[&reason=]`
//! - `PUT /v1/agent/check/update/<id>` (`{"Status","Output"}`), `PUT /v1/agent/check/pass|warn|fail/<id>[?note=]`
//! - `GET /v1/health/service/<name>[?passing][&tag=T...][&dc=D][&index=N&wait=W]`
//! - `GET /v1/catalog/service/<name>` (same parameters)
//! - `GET /v1/catalog/services[?dc=D][&index=N&wait=W]`, `GET /v1/catalog/datacenters`
//! - `GET /v1/kv/<key>[?recurse|?keys[&separator=S]|?raw][&index=N&wait=W]` (404 when
//!   absent), `PUT /v1/kv/<key>[?flags=F]` (the body is the value), `DELETE /v1/kv/<key>[?recurse]`
//! - KV locks and conditional writes: `PUT /v1/kv/<key>?acquire=<session>|?release=<session>|?cas=N`
//!   and `DELETE /v1/kv/<key>?cas=N` (answer `true`/`false`; the entry shows `Session` and
//!   `LockIndex`)
//! - `PUT /v1/session/create` (`Name`, `TTL`, `LockDelay`, `Behavior`, `Checks`, `NodeChecks`,
//!   `ServiceChecks`), `PUT /v1/session/renew/<id>`, `PUT /v1/session/destroy/<id>`,
//!   `GET /v1/session/info/<id>`, `GET /v1/session/list`, `GET /v1/session/node/<node>`.
//!   A session dies when destroyed, when a linked check turns critical or is deregistered,
//!   or twice its TTL after its last renewal (Consul's multiplier); its keys are then
//!   released (or deleted, `Behavior: delete`) and cannot be acquired for its lock-delay.
//! - `GET /v1/agent/services`, `GET /v1/agent/checks`, `GET /v1/status/leader`
//! - `/_double/...`: the double's own control surface (see the `introspect` module docs).
//!
//! # Rust API
//! ```no_run
//! use std::time::Duration;
//! use consul_double::{Config, ConsulDouble, Fault, FaultRule, Restart, Status};
//!
//! let consul = ConsulDouble::start(Config::default()).unwrap();
//! let addr = consul.addr(); // give to the process under test as CONSUL_HTTP_ADDR
//! // ... start the process under test ...
//! let state = consul
//!     .wait_for(Duration::from_secs(10), |s| s.passing_instances("app").len() == 1)
//!     .unwrap();
//! consul.set_fault(FaultRule::on_path("/v1/agent/check/", Fault::unavailable()).times(2));
//! consul.restart_agent(Restart::KeepIndex);
//! let register = consul
//!     .wait_for_request(Duration::from_secs(10), |r| r.path == "/v1/agent/service/register")
//!     .unwrap();
//! assert_eq!(register.content_type.as_deref(), Some("application/json"));
//! ```
//!
//! # Where it departs from Consul (on purpose)
//! - Reaping: Consul reaps critical services every 30 s and never before 1 min; the double
//!   reaps every `Config::reap_interval` (100 ms) with a floor of
//!   `Config::deregister_interval_min` (0). Set them to 30 s / 60 s for Consul's timing.
//! - Blocking queries get no random jitter (Consul adds up to wait/16).
//! - One index for the whole catalog; a name's blocking query wakes on changes to that name.
//! - Check output changes reach `/v1/health/service` at once (Consul may defer output-only
//!   changes by `check_update_interval`).
//! - The shortest session TTL is `Config::session_ttl_min`: Consul's 10 s by default, lower
//!   for tests of expiry. The `serfHealth` node check is always passing.

mod acl;
mod agent;
mod api;
mod control;
mod duration;
mod error;
mod faults;
mod handle;
mod introspect;
mod journal;
mod kv;
mod registration;
mod render;
mod reply;
mod server;
mod session;
mod state;
mod timers;

pub use control::{Config, Control, Restart};
pub use error::{StartError, WaitTimeout};
pub use faults::{Fault, FaultRule};
pub use handle::{AsyncConsulDouble, ConsulDouble};
pub use journal::{Outcome, RecordedRequest, TokenSource, REDACTED};
pub use state::{Check, Service, State, Status};
/// The TLS library of [`Config::tls`].
pub use tokio_rustls::rustls;
