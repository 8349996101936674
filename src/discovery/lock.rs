//! Leader locks: one holder at a time for a key of the catalog, held through a Consul
//! session or an etcd lease (see `docs/configuration.md`, "Locks").
//!
//! Owns the holder's side of the protocol, the same for both backends: open a session
//! (Consul) or lease (etcd), keep it alive, take the key when it is free, watch it while
//! held, and report [`LockEvent`]s. The backends (`consul::lock`, `etcd::lock`) only know
//! the requests. It must not publish events on the bus or own jobs: the caller turns the
//! reported events into `lock.<name>` events.
//!
//! # The guarantee
//!
//! A holder never believes it holds a lock the catalog may already have given to someone
//! else. Belief starts with [`LockEvent::Acquired`], reported only after the catalog said
//! yes while the session was known alive, and ends with [`LockEvent::Lost`] or
//! [`LockEvent::Released`], reported before anything that could free the key:
//! - renewals keep the session alive; each success extends the belief to the time the
//!   renewal was *sent* plus 9/10 of the TTL. The catalog cannot expire the session before
//!   its TTL has passed since it *received* that renewal, so `Lost` comes first;
//! - a renewal answered "no such session", or a key the watch finds held by another
//!   session (or by none), is `Lost` at once;
//! - on stop, `Released` is reported, then the key is released and the session closed.
//!
//! What it cannot guarantee: Consul also invalidates a session at once when a linked
//! check turns critical, and the holder learns it only from its next renewal or key-watch
//! answer. The session's lock-delay (keys of an invalidated session cannot be taken for
//! that long) is what covers that window, so it must be longer than the time the holder
//! needs to hear about it.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Backend, Discovery, DiscoveryError};
use crate::discovery::outage::CallKind;

/// The longest a watch of the lock's key blocks before asking again.
pub(super) const OWNER_WAIT: Duration = Duration::from_secs(60);
/// How long to wait before trying again after a failed call to the catalog.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How often a free key that could not be taken (Consul's lock-delay) is tried again.
const LOCK_DELAY_RETRY: Duration = Duration::from_millis(250);

/// One lock, as the configuration describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct LockSpec {
    /// The lock's name: its events come from `lock.<name>`.
    pub name: String,
    /// The catalog key the holder takes.
    pub key: String,
    /// The session (lease) TTL: how long a holder that cannot reach the catalog keeps
    /// believing it holds the lock, at most.
    pub ttl: Duration,
    /// Consul's lock-delay: how long the key of an invalidated session stays untakeable.
    pub lock_delay: Duration,
    /// What the holder writes to the key: who and where it is.
    pub value: String,
    /// Consul check IDs the session is tied to (the lock's service's check): the session
    /// dies when one turns critical.
    pub checks: Vec<String>,
}

impl LockSpec {
    /// How long after a renewal was sent the holder keeps believing it holds the lock: 9/10
    /// of the TTL, so that `lost` comes before the TTL has passed.
    fn belief(&self) -> Duration {
        self.ttl - self.ttl / 10
    }

    /// How often the session is renewed: three chances within one TTL.
    fn renew_every(&self) -> Duration {
        self.ttl / 3
    }
}

/// What a lock reports, in order, to its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockEvent {
    /// This instance holds the lock now.
    Acquired,
    /// This instance held the lock and no longer does.
    Lost(LossCause),
    /// This instance held the lock and gives it up because it is stopping.
    Released,
    /// While waiting: another instance holds the lock and wrote this value.
    HeldElsewhere(HolderValue),
}

/// What a holder wrote to the key, as a waiting contender last read it.
pub(crate) type HolderValue = std::sync::Arc<str>;

/// Why a held lock was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCause {
    /// No renewal succeeded within the TTL.
    RenewalsFailed,
    /// The catalog no longer knows the session (expired, destroyed, check critical).
    SessionGone,
    /// The key is no longer held by this instance's session.
    KeyTaken,
}

impl std::fmt::Display for LossCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LossCause::RenewalsFailed => "no renewal succeeded within the TTL",
            LossCause::SessionGone => "the catalog invalidated the session",
            LossCause::KeyTaken => "the key is no longer held by this instance",
        })
    }
}

/// Who holds a key, and the index to wait on for a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyOwner {
    /// The holding session (Consul) or lease (etcd), if any.
    pub holder: Option<String>,
    /// What the holder wrote (who and where it is), when held.
    pub value: Option<String>,
    pub index: u64,
}

impl Discovery {
    /// Runs the lock until `stop` completes: contends for it, holds it, contends again
    /// after a loss. `report` gets every [`LockEvent`] at the moment it becomes true.
    pub async fn run_lock(
        &self,
        spec: &LockSpec,
        mut report: impl FnMut(LockEvent),
        stop: impl Future<Output = ()>,
    ) {
        let mut stop = pin!(stop);
        loop {
            let session = tokio::select! {
                session = self.open_session(spec) => session,
                () = &mut stop => return,
            };
            let held = AtomicBool::new(false);
            let (valid_until, validity) = watch::channel(Instant::now() + spec.belief());
            let ended = tokio::select! {
                cause = self.keep_alive(spec, &session, &valid_until) => Some(cause),
                cause = self.contend_and_hold(spec, &session, &validity, &held, &mut report) => Some(cause),
                () = &mut stop => None,
            };
            let was_held = held.load(Ordering::SeqCst);
            match ended {
                Some(cause) => {
                    if was_held {
                        tracing::warn!(lock = %spec.name, %cause, "lock lost");
                        report(LockEvent::Lost(cause));
                    }
                    self.close_quietly(spec, &session).await;
                }
                None => {
                    if was_held {
                        report(LockEvent::Released);
                        tracing::info!(lock = %spec.name, "lock released");
                    }
                    if let Err(error) = self.lock_call(|b| b.release(spec, &session)).await {
                        tracing::warn!(lock = %spec.name, %error, "cannot release the lock; it frees when the session expires");
                    }
                    return;
                }
            }
        }
    }

    /// Opens a session (lease), retrying until the catalog answers.
    async fn open_session(&self, spec: &LockSpec) -> String {
        loop {
            match self.lock_call(|b| b.open(spec)).await {
                Ok(session) => return session,
                Err(error) => {
                    tracing::debug!(lock = %spec.name, %error, "cannot open a lock session");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    }

    /// Renews the session until it is lost; each success extends `valid_until` to when
    /// the renewal was sent plus the belief period. Returns why it was lost.
    async fn keep_alive(
        &self,
        spec: &LockSpec,
        session: &str,
        valid_until: &watch::Sender<Instant>,
    ) -> LossCause {
        let mut next = Instant::now() + spec.renew_every();
        loop {
            let deadline = *valid_until.borrow();
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = tokio::time::sleep_until(deadline) => return LossCause::RenewalsFailed,
            }
            let sent = Instant::now();
            let renewal = tokio::time::timeout_at(deadline, self.lock_call(|b| b.renew(session)));
            match renewal.await {
                Err(_elapsed) => return LossCause::RenewalsFailed,
                Ok(Ok(true)) => {
                    valid_until.send_replace(sent + spec.belief());
                    next = sent + spec.renew_every();
                }
                Ok(Ok(false)) => return LossCause::SessionGone,
                Ok(Err(error)) => {
                    tracing::debug!(lock = %spec.name, %error, "lock renewal failed");
                    next = Instant::now() + (spec.ttl / 10).min(RETRY_DELAY);
                }
            }
        }
    }

    /// Takes the key when it is free, then watches it while held. Returns only when the
    /// key is no longer this session's.
    async fn contend_and_hold(
        &self,
        spec: &LockSpec,
        session: &str,
        validity: &watch::Receiver<Instant>,
        held: &AtomicBool,
        report: &mut impl FnMut(LockEvent),
    ) -> LossCause {
        loop {
            match self.lock_call(|b| b.try_acquire(spec, session)).await {
                Ok(true) if Instant::now() < *validity.borrow() => {
                    held.store(true, Ordering::SeqCst);
                    tracing::info!(lock = %spec.name, key = %spec.key, "lock acquired");
                    report(LockEvent::Acquired);
                    return self.watch_while_held(spec, session).await;
                }
                // Taken after the session may have lapsed: the renewals' deadline is about
                // to end this session anyway.
                Ok(true) => return std::future::pending().await,
                Ok(false) => self.wait_until_free(spec, report).await,
                Err(error) => {
                    tracing::debug!(lock = %spec.name, %error, "cannot try the lock");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    }

    /// Returns when the key may be free: at once (after a short pause) if a plain read
    /// finds it free though it could not be taken (an invalidated session's lock-delay),
    /// else when a blocking read finds it free.
    async fn wait_until_free(&self, spec: &LockSpec, report: &mut impl FnMut(LockEvent)) {
        let mut index = 0;
        loop {
            match self.lock_call(|b| b.owner(&spec.key, index)).await {
                Ok(KeyOwner {
                    holder: Some(_),
                    value,
                    index: next,
                }) => {
                    report(LockEvent::HeldElsewhere(value.unwrap_or_default().into()));
                    index = next;
                }
                Ok(KeyOwner { holder: None, .. }) => {
                    if index == 0 {
                        tokio::time::sleep(LOCK_DELAY_RETRY).await;
                    }
                    return;
                }
                Err(error) => {
                    tracing::debug!(lock = %spec.name, %error, "cannot watch the lock");
                    index = 0;
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    }

    /// Watches the held key; returns when another session (or none) holds it.
    async fn watch_while_held(&self, spec: &LockSpec, session: &str) -> LossCause {
        let mut index = 0;
        loop {
            match self.lock_call(|b| b.owner(&spec.key, index)).await {
                Ok(owner) if owner.holder.as_deref() == Some(session) => index = owner.index,
                Ok(_) => return LossCause::KeyTaken,
                Err(error) => {
                    tracing::debug!(lock = %spec.name, %error, "cannot watch the held lock");
                    index = 0;
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    }

    /// Closes a session that is lost anyway; a failure only delays its expiry.
    async fn close_quietly(&self, spec: &LockSpec, session: &str) {
        if let Err(error) = self.lock_call(|b| b.close(session)).await {
            tracing::debug!(lock = %spec.name, %error, "cannot close the lost lock's session");
        }
    }

    /// One call to the backend, counted in the agent's outage log.
    async fn lock_call<'a, T, F>(
        &'a self,
        call: impl FnOnce(LockBackend<'a>) -> F,
    ) -> Result<T, DiscoveryError>
    where
        F: Future<Output = Result<T, DiscoveryError>> + 'a,
    {
        let backend = match &self.backend {
            Backend::Consul(consul) => LockBackend::Consul(consul),
            Backend::Etcd(etcd) => LockBackend::Etcd(etcd),
        };
        self.observe(CallKind::Agent, call(backend)).await
    }
}

/// The backend's lock requests, dispatched without boxing.
#[derive(Clone, Copy)]
enum LockBackend<'a> {
    Consul(&'a super::ConsulBackend),
    Etcd(&'a super::EtcdBackend),
}

impl<'a> LockBackend<'a> {
    async fn open(self, spec: &LockSpec) -> Result<String, DiscoveryError> {
        match self {
            LockBackend::Consul(consul) => consul.open_session(spec).await,
            LockBackend::Etcd(etcd) => etcd.grant_lock_lease(spec).await,
        }
    }

    /// Whether the session (lease) is still alive after renewing it.
    async fn renew(self, session: &str) -> Result<bool, DiscoveryError> {
        match self {
            LockBackend::Consul(consul) => consul.renew_session(session).await,
            LockBackend::Etcd(etcd) => etcd.renew_lock_lease(session).await,
        }
    }

    async fn try_acquire(self, spec: &LockSpec, session: &str) -> Result<bool, DiscoveryError> {
        match self {
            LockBackend::Consul(consul) => consul.acquire(spec, session).await,
            LockBackend::Etcd(etcd) => etcd.create_if_absent(spec, session).await,
        }
    }

    /// Who holds `key`; with `index > 0`, first waits for a change past it.
    async fn owner(self, key: &str, index: u64) -> Result<KeyOwner, DiscoveryError> {
        match self {
            LockBackend::Consul(consul) => consul.key_owner(key, index).await,
            LockBackend::Etcd(etcd) => etcd.key_owner(key, index).await,
        }
    }

    /// Gives the key up and closes the session.
    async fn release(self, spec: &LockSpec, session: &str) -> Result<(), DiscoveryError> {
        match self {
            LockBackend::Consul(consul) => consul.release(spec, session).await,
            // Revoking the lease deletes the key with it.
            LockBackend::Etcd(etcd) => etcd.revoke_lock_lease(session).await,
        }
    }

    async fn close(self, session: &str) -> Result<(), DiscoveryError> {
        match self {
            LockBackend::Consul(consul) => consul.destroy_session(session).await,
            LockBackend::Etcd(etcd) => etcd.revoke_lock_lease(session).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn belief_ends_before_the_ttl_and_renewals_come_thrice_within_it() {
        let spec = LockSpec {
            name: "primary".into(),
            key: "service/db/primary".into(),
            ttl: Duration::from_secs(15),
            lock_delay: Duration::from_secs(1),
            value: String::new(),
            checks: Vec::new(),
        };
        assert_eq!(spec.belief(), Duration::from_millis(13_500));
        assert_eq!(spec.renew_every(), Duration::from_secs(5));
    }
}
