//! The state every part of the double shares (agent, request log, faults) and `Control`,
//! the Rust API tests use to read it, inject faults and wait for conditions.
//!
//! Owns locking and change notification. The lock is a plain mutex held only for short,
//! non-async sections; every change wakes both synchronous waiters (a condvar) and async
//! ones (a watch channel: blocking queries, hung requests, the timer task).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_rustls::rustls;

use crate::agent::{Agent, Node};
use crate::error::WaitTimeout;
use crate::faults::{FaultRule, FaultSet};
use crate::journal::{Journal, RecordedRequest};
use crate::kv::Kv;
use crate::session::{self, Sessions};
use crate::state::State;

/// How the double is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// When set, ACLs are on with `default_policy = "deny"` and this is the one (management)
    /// token: other tokens get 403 `ACL not found`, requests without a token run as the
    /// anonymous token (writes 403 `Permission denied: ...`, reads filtered to nothing).
    pub acl_token: Option<String>,
    /// The agent's node name. Default `consul-double`.
    pub node_name: String,
    /// The node's address, used as an instance's address when its service has none.
    /// Default `127.0.0.1`.
    pub node_address: String,
    /// The agent's datacenter; a query for another answers 500 `No path to datacenter`.
    /// Default `dc1`.
    pub datacenter: String,
    /// How often services whose check has been critical too long are reaped. Consul uses
    /// 30 s (`check_reap_interval`); the double defaults to 100 ms so tests need not wait.
    pub reap_interval: Duration,
    /// The floor on `DeregisterCriticalServiceAfter`. Consul uses 1 min
    /// (`check_deregister_interval_min`); the double defaults to 0.
    pub deregister_interval_min: Duration,
    /// The shortest session TTL accepted. Consul's is 10 s (`session_ttl_min`), the
    /// default here too; tests of TTL expiry lower it.
    pub session_ttl_min: Duration,
    /// When set (`user:password`, as `CONSUL_HTTP_AUTH` holds it), the double stands behind
    /// a reverse proxy that requires HTTP Basic authentication with these credentials (Consul
    /// itself has none; `CONSUL_HTTP_AUTH` exists for such proxies): a request without them
    /// is recorded and answered 401 `Unauthorized`, never handled. Default `None`.
    pub http_auth: Option<String>,
    /// When set, the agent speaks HTTPS with this server configuration (its certificate, and
    /// whether it requires client certificates: Consul's `verify_incoming`) instead of HTTP.
    /// A connection whose handshake fails is closed and records no request. Default `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            acl_token: None,
            node_name: "consul-double".into(),
            node_address: "127.0.0.1".into(),
            datacenter: "dc1".into(),
            reap_interval: Duration::from_millis(100),
            deregister_interval_min: Duration::ZERO,
            session_ttl_min: Duration::from_secs(10),
            http_auth: None,
            tls: None,
        }
    }
}

/// What an agent restart keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// A client agent restarted without a data dir: services and checks are gone, the
    /// catalog's index goes on (and moves, as the services leave the catalog).
    KeepIndex,
    /// A dev-mode agent (agent and server in one) restarted: the index starts over (at 1,
    /// the node's own registration), so a client's next `X-Consul-Index` is lower than the
    /// one it holds.
    ResetIndex,
}

pub(crate) struct Inner {
    pub agent: Agent,
    pub kv: Kv,
    pub sessions: Sessions,
    pub journal: Journal,
    pub faults: FaultSet,
}

pub(crate) struct Shared {
    pub config: Config,
    pub started: Instant,
    inner: Mutex<Inner>,
    changed: Condvar,
    changes: watch::Sender<u64>,
    restarts: watch::Sender<u64>,
}

impl Shared {
    pub fn new(config: Config) -> Self {
        let node = Node {
            name: config.node_name.clone(),
            address: config.node_address.clone(),
            datacenter: config.datacenter.clone(),
        };
        Shared {
            config,
            started: Instant::now(),
            inner: Mutex::new(Inner {
                agent: Agent::new(node),
                kv: Kv::default(),
                sessions: Sessions::default(),
                journal: Journal::default(),
                faults: FaultSet::default(),
            }),
            changed: Condvar::new(),
            changes: watch::channel(0).0,
            restarts: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn read<R>(&self, read: impl FnOnce(&Inner) -> R) -> R {
        read(&self.lock())
    }

    /// Runs a mutation and wakes every waiter.
    pub fn write<R>(&self, write: impl FnOnce(&mut Inner) -> R) -> R {
        self.write_if_changed(|inner| (write(inner), true))
    }

    /// Runs a mutation that reports whether it changed anything; wakes waiters only if so.
    /// A change that leaves a session's check critical or gone invalidates the session in
    /// the same step, as Consul's state store does.
    pub fn write_if_changed<R>(&self, write: impl FnOnce(&mut Inner) -> (R, bool)) -> R {
        let (result, changed) = {
            let mut inner = self.lock();
            let (result, changed) = write(&mut inner);
            if changed {
                session::invalidate_unhealthy(&mut inner, Instant::now());
            }
            (result, changed)
        };
        if changed {
            self.changes.send_modify(|version| *version += 1);
            self.changed.notify_all();
        }
        result
    }

    /// A receiver that sees every change from now on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A receiver that sees every agent restart from now on (connections close on it).
    pub fn subscribe_restarts(&self) -> watch::Receiver<u64> {
        self.restarts.subscribe()
    }

    /// How many agent restarts there have been.
    pub fn restart_generation(&self) -> u64 {
        *self.restarts.borrow()
    }

    fn restart_agent(&self, restart: Restart) {
        // The generation moves first: a request that sees the emptied state also sees that
        // its connection is gone, and is never answered.
        self.restarts.send_modify(|generation| *generation += 1);
        self.write(|inner| inner.agent.restart(restart == Restart::ResetIndex));
        tracing::info!(?restart, "agent restarted: services and checks forgotten");
    }

    /// Blocks the calling thread until `probe` yields a value or `timeout` passes.
    fn wait_until<T>(
        &self,
        timeout: Duration,
        mut probe: impl FnMut(&Inner) -> Option<T>,
    ) -> Result<T, WaitTimeout> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        loop {
            if let Some(found) = probe(&inner) {
                return Ok(found);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(WaitTimeout { waited: timeout });
            }
            inner = self
                .changed
                .wait_timeout(inner, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits, without blocking the runtime, until `probe` yields a value or `timeout` passes.
    async fn wait_until_async<T>(
        &self,
        timeout: Duration,
        mut probe: impl FnMut(&Inner) -> Option<T>,
    ) -> Result<T, WaitTimeout> {
        let mut changes = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.read(&mut probe) {
                return Ok(found);
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Err(WaitTimeout { waited: timeout }),
            }
        }
    }
}

/// The Rust API to a running double: read its state and request log, inject faults,
/// restart the agent, wait for conditions. Cheap to clone and `Send`, so it can move into
/// other threads.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Control {
    pub(crate) fn new(shared: Arc<Shared>, addr: SocketAddr) -> Self {
        Control { shared, addr }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The address the double listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, for `CONSUL_HTTP_ADDR` or a client's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Services, checks and index right now.
    pub fn state(&self) -> State {
        self.shared.read(|inner| inner.agent.snapshot())
    }

    /// Every request received so far (the most recent 10 000), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .read(|inner| inner.journal.entries().cloned().collect())
    }

    /// The session holding the lock on KV `key`, if any.
    pub fn lock_holder(&self, key: &str) -> Option<String> {
        self.shared.read(|inner| inner.kv.holder(key))
    }

    /// Forgets the request log (sequence numbers keep counting).
    pub fn clear_requests(&self) {
        self.shared.write(|inner| inner.journal.clear());
    }

    /// Adds a fault rule; rules apply in the order they were added, first match wins.
    pub fn set_fault(&self, rule: FaultRule) {
        self.set_faults([rule]);
    }

    /// Adds several rules at once, in order. No request sees only some of them, so a chain
    /// such as "two 503s, then two resets, then hang" is exactly that, with no request
    /// slipping through between two links.
    pub fn set_faults(&self, rules: impl IntoIterator<Item = FaultRule>) {
        let rules: Vec<FaultRule> = rules.into_iter().collect();
        tracing::info!(?rules, "faults set");
        self.shared.write(|inner| {
            for rule in rules {
                inner.faults.add(rule);
            }
        });
    }

    /// The rules still active.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.shared.read(|inner| inner.faults.rules())
    }

    /// Removes every fault rule and releases hung requests (they are then answered).
    pub fn clear_faults(&self) {
        tracing::info!("faults cleared");
        self.shared.write(|inner| inner.faults.clear());
    }

    /// Simulates an agent restart: every service and check is forgotten and every open
    /// connection is closed without an answer: in-flight requests and blocking queries, and
    /// idle keep-alive connections too, so a client that reuses one sees it reset, as it
    /// would with a real restart.
    pub fn restart_agent(&self, restart: Restart) {
        self.shared.restart_agent(restart);
    }

    /// Blocks until `condition` holds for the state, returning that state. Do not call it
    /// on the thread of a single-threaded runtime that runs an `AsyncConsulDouble`: use
    /// `wait_for_async` there.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&State) -> bool,
    ) -> Result<State, WaitTimeout> {
        self.shared
            .wait_until(timeout, |inner| matching_state(inner, &mut condition))
    }

    /// Blocks until a recorded request satisfies `condition`, returning the first that does.
    pub fn wait_for_request(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&RecordedRequest) -> bool,
    ) -> Result<RecordedRequest, WaitTimeout> {
        self.shared
            .wait_until(timeout, |inner| matching_request(inner, &mut condition))
    }

    /// `wait_for` for async code.
    pub async fn wait_for_async(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&State) -> bool,
    ) -> Result<State, WaitTimeout> {
        self.shared
            .wait_until_async(timeout, |inner| matching_state(inner, &mut condition))
            .await
    }

    /// `wait_for_request` for async code.
    pub async fn wait_for_request_async(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&RecordedRequest) -> bool,
    ) -> Result<RecordedRequest, WaitTimeout> {
        self.shared
            .wait_until_async(timeout, |inner| matching_request(inner, &mut condition))
            .await
    }
}

fn matching_state(inner: &Inner, condition: &mut impl FnMut(&State) -> bool) -> Option<State> {
    let state = inner.agent.snapshot();
    condition(&state).then_some(state)
}

fn matching_request(
    inner: &Inner,
    condition: &mut impl FnMut(&RecordedRequest) -> bool,
) -> Option<RecordedRequest> {
    inner
        .journal
        .entries()
        .find(|request| condition(request))
        .cloned()
}
