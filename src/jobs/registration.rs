//! Keeping one job's service in the catalog in step with its health.
//!
//! Health checks must never wait for the catalog (a slow or dead Consul must
//! not delay checks, jobs or the APP), so they only *state* what the catalog
//! should say — passing with this output, critical with that output, gone —
//! and a registrar task per advertised job brings the catalog there, retrying
//! with back-off while it is unreachable. Only the latest wish matters, so
//! wishes made during an outage collapse into one. Deregistration at shutdown
//! is the one call the job waits for, bounded in time, because the service
//! must leave the catalog before its process is signalled.
//!
//! It also keeps count of how many services are in the catalog ([`InCatalog`]):
//! at shutdown the APP is signalled only once none is left.
//!
//! This module owns the registered/unregistered state of each service; it must
//! not run checks or touch processes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::model::CheckStatus;
use crate::discovery::outage::Backoff;
use crate::discovery::{Discovery, DiscoveryError, ServiceRegistration};
use crate::tasks::Tasks;

/// What the catalog should say about the service.
#[derive(Debug, Clone, PartialEq)]
enum Wish {
    /// Not in the catalog (before the first passing check, and after stopping).
    Absent,
    /// Registered with the job's `initial_status`, before any check ran.
    Initial,
    /// Registered, with this check status and output. `round` distinguishes
    /// two identical heartbeats, which must both reach the catalog.
    Checked {
        status: CheckStatus,
        output: String,
        round: u64,
    },
}

/// How many of autopilot's services are (believed to be) in the catalog, shared
/// by every registrar.
#[derive(Debug, Clone, Default)]
pub(crate) struct InCatalog(Arc<watch::Sender<usize>>);

impl InCatalog {
    fn changed(&self, registered: bool) {
        self.0.send_modify(|count| {
            *count = if registered {
                *count + 1
            } else {
                count.saturating_sub(1)
            }
        });
    }

    /// Waits, at most `limit`, until no service is left in the catalog. Every
    /// stopping job deregisters its service within [`super::DEREGISTER_LIMIT`].
    pub(crate) async fn wait_until_none(&self, limit: Duration) {
        let mut count = self.0.subscribe();
        let none = count.wait_for(|count| *count == 0);
        if tokio::time::timeout(limit, none).await.is_err() {
            tracing::warn!("services still in the catalog after {limit:?}; going on");
        }
    }
}

/// The job's handle on its registrar.
#[derive(Debug)]
pub(super) struct Registration {
    wish: watch::Sender<Wish>,
    /// True while the service is (or may be, a registration being under way)
    /// in the catalog.
    registered: watch::Receiver<bool>,
    /// Retires the registrar's task (it runs under the run's tracker).
    task: CancellationToken,
}

impl Registration {
    /// Starts the registrar for `service`. A service with an initial status
    /// registers at once; the others on their first passing check.
    pub(super) fn start(
        service: ServiceRegistration,
        discovery: Arc<Discovery>,
        maintenance: watch::Receiver<bool>,
        in_catalog: InCatalog,
        tasks: &Tasks,
    ) -> Registration {
        let first = match service.initial_status {
            Some(_) => Wish::Initial,
            None => Wish::Absent,
        };
        let (wish, wishes) = watch::channel(first);
        let (registered_sender, registered) = watch::channel(false);
        let registrar = Registrar {
            service,
            discovery,
            wishes,
            maintenance,
            registered: registered_sender,
            in_catalog,
            backoff: Backoff::default(),
        };
        Registration {
            wish,
            registered,
            task: tasks.spawn(registrar.run()),
        }
    }

    /// A passing check: heartbeat (registering first if needed).
    pub(super) fn passing(&self, output: &str) {
        self.want(CheckStatus::Passing, output);
    }

    /// A failing check: set the catalog check critical at once, with the
    /// check's output [beyond: ContainerPilot let the TTL lapse].
    pub(super) fn critical(&self, output: &str) {
        self.want(CheckStatus::Critical, output);
    }

    fn want(&self, status: CheckStatus, output: &str) {
        self.wish.send_modify(|wish| {
            let round = match wish {
                Wish::Checked { round, .. } => *round + 1,
                Wish::Absent | Wish::Initial => 0,
            };
            *wish = Wish::Checked {
                status,
                output: output.to_string(),
                round,
            };
        });
    }

    /// Takes the service out of the catalog and waits, at most `limit`, until
    /// that is done.
    pub(super) async fn deregister(&self, limit: Duration) {
        self.wish.send_replace(Wish::Absent);
        let mut registered = self.registered.clone();
        let done = registered.wait_for(|registered| !registered);
        if tokio::time::timeout(limit, done).await.is_err() {
            tracing::warn!("catalog did not confirm deregistration within {limit:?}; going on");
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.cancel();
    }
}

struct Registrar {
    service: ServiceRegistration,
    discovery: Arc<Discovery>,
    wishes: watch::Receiver<Wish>,
    maintenance: watch::Receiver<bool>,
    registered: watch::Sender<bool>,
    in_catalog: InCatalog,
    backoff: Backoff,
}

impl Drop for Registrar {
    /// A registrar that is gone no longer keeps anyone waiting for its service.
    fn drop(&mut self) {
        self.set_registered(false);
    }
}

impl Registrar {
    async fn run(mut self) {
        loop {
            let in_maintenance = *self.maintenance.borrow_and_update();
            let wish = self.wishes.borrow_and_update().clone();
            let outcome = if in_maintenance {
                self.enter_maintenance().await
            } else {
                self.fulfil(&wish).await
            };
            match outcome {
                Ok(()) => self.backoff.reset(),
                // The outage is logged by `Discovery`; try again after a pause,
                // unless a newer wish arrives first.
                Err(_) => {
                    let pause = self.backoff.next_delay();
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = self.wishes.changed() => continue,
                        _ = self.maintenance.changed() => continue,
                    }
                }
            }
            tokio::select! {
                changed = self.wishes.changed() => if changed.is_err() { return },
                changed = self.maintenance.changed() => if changed.is_err() { return },
            }
        }
    }

    fn is_registered(&self) -> bool {
        *self.registered.borrow()
    }

    fn set_registered(&self, registered: bool) {
        if self.registered.send_replace(registered) != registered {
            self.in_catalog.changed(registered);
        }
    }

    async fn fulfil(&mut self, wish: &Wish) -> Result<(), DiscoveryError> {
        let registered = self.is_registered();
        match wish {
            Wish::Absent if registered => {
                self.discovery.deregister(&self.service).await?;
                self.set_registered(false);
                Ok(())
            }
            Wish::Absent => Ok(()),
            Wish::Initial if registered => Ok(()),
            Wish::Initial => self.register().await,
            Wish::Checked { status, output, .. } => {
                if !registered {
                    // A failing check before the first pass leaves nothing in
                    // the catalog, unless an initial status registered it.
                    if *status != CheckStatus::Passing && self.service.initial_status.is_none() {
                        return Ok(());
                    }
                    self.register().await?;
                }
                match status {
                    CheckStatus::Passing => self.discovery.pass(&self.service, output).await,
                    _ => self.discovery.mark_critical(&self.service, output).await,
                }
            }
        }
    }

    /// The service counts as registered from the moment the request leaves:
    /// the agent may have taken it in before the answer comes back, so a
    /// deregistration asked for meanwhile must wait for it (else the service
    /// stays in the catalog after the job stopped). A refused request clears it.
    async fn register(&mut self) -> Result<(), DiscoveryError> {
        self.set_registered(true);
        let result = self.discovery.register(&self.service).await;
        if result.is_err() {
            self.set_registered(false);
        }
        result
    }

    /// In maintenance the service leaves the catalog and heartbeats stop;
    /// after it, the latest wish is fulfilled again (re-registering).
    async fn enter_maintenance(&mut self) -> Result<(), DiscoveryError> {
        if self.is_registered() {
            self.discovery
                .enter_maintenance(std::slice::from_ref(&self.service))
                .await?;
            self.set_registered(false);
        }
        Ok(())
    }
}
