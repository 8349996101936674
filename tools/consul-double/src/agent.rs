//! The agent's state machine: services, checks, TTL timers, critical-service reaping and the
//! raft-like index, following Consul's agent (`agent/agent.go`, `agent/checks/check.go`,
//! `agent/local/state.go`).
//!
//! Owns every mutation of services and checks and decides when the index moves. It knows
//! nothing of HTTP, ACLs, faults or clocks: callers pass `now` in.
//!
//! Semantics kept from Consul:
//! - a registration's checks get the ID `service:<ID>` (`service:<ID>:<n>` when there are
//!   several), the name `Service '<Name>' check`, and start `critical` unless `Status` says
//!   otherwise;
//! - re-registering keeps the status and output of checks whose ID already exists (Consul
//!   restores them from its snapshot) and restarts their TTL timers; other checks of the
//!   service stay unless `replace-existing-checks` is set;
//! - a TTL check not updated within its TTL turns `critical` with output `TTL expired`
//!   (or `TTL expired (last output before timeout follows): <output>`); the timer fires once
//!   and is re-armed by the next update;
//! - updates with an output over 4096 bytes are truncated as Consul does;
//! - idempotent writes (same status and output, identical re-registration) do not move the
//!   index, as Consul's state store skips them.
//!
//! The index is one counter for the whole catalog; each service name also remembers the
//! index of the last change that touched it, which is what its blocking queries watch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::registration::{CheckDefinition, Registration};
use crate::state::{Check, Service, State, Status};

/// Consul's default `check_output_max_size`.
const OUTPUT_MAX_SIZE: usize = 4096;
/// The index at which the node and its `serfHealth` check were registered: the index the
/// agent starts from (and starts over from), so that the first change is above what a
/// query for a never-seen name reports.
pub(crate) const NODE_INDEX: u64 = 1;
const MAINTENANCE_CHECK_PREFIX: &str = "_service_maintenance:";
const DEFAULT_MAINTENANCE_REASON: &str =
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";

/// The node the agent runs on.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub name: String,
    pub address: String,
    pub datacenter: String,
}

pub(crate) struct ServiceEntry {
    pub service: Service,
    pub create_index: u64,
    pub modify_index: u64,
}

pub(crate) struct CheckEntry {
    pub check: Check,
    pub create_index: u64,
    pub modify_index: u64,
    ttl_timer: Option<TtlTimer>,
    critical_since: Option<Instant>,
}

struct TtlTimer {
    deadline: Instant,
    fired: bool,
    last_output: String,
}

/// One instance in a health query: the service and all its checks.
pub(crate) struct Instance<'a> {
    pub service: &'a ServiceEntry,
    pub checks: Vec<&'a CheckEntry>,
}

/// Which instances a health or catalog query wants.
pub(crate) struct InstanceFilter<'a> {
    pub tags: &'a [String],
    pub passing_only: bool,
}

pub(crate) struct Agent {
    node: Node,
    index: u64,
    services: BTreeMap<String, ServiceEntry>,
    checks: BTreeMap<String, CheckEntry>,
    index_by_name: HashMap<String, u64>,
}

impl Agent {
    pub fn new(node: Node) -> Self {
        Agent {
            node,
            index: NODE_INDEX,
            services: BTreeMap::new(),
            checks: BTreeMap::new(),
            index_by_name: HashMap::new(),
        }
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn snapshot(&self) -> State {
        State {
            index: self.index,
            services: self.services.values().map(|e| e.service.clone()).collect(),
            checks: self.checks.values().map(|e| e.check.clone()).collect(),
        }
    }

    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.get(id).map(|entry| &entry.service)
    }

    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.get(id).map(|entry| &entry.check)
    }

    pub(crate) fn service_entries(&self) -> impl Iterator<Item = &ServiceEntry> {
        self.services.values()
    }

    pub(crate) fn check_entries(&self) -> impl Iterator<Item = &CheckEntry> {
        self.checks.values()
    }

    /// The index a blocking query on this service name reports and waits on: that of the
    /// last change to the name, or the node's registration for a name never seen.
    pub fn index_of_name(&self, name: &str) -> u64 {
        self.index_by_name.get(name).copied().unwrap_or(NODE_INDEX)
    }

    /// The instances of `name` that pass the filter, with their index.
    pub(crate) fn instances(
        &self,
        name: &str,
        filter: &InstanceFilter,
    ) -> (u64, Vec<Instance<'_>>) {
        let instances = self
            .services
            .values()
            .filter(|entry| entry.service.name == name && entry.service.has_all_tags(filter.tags))
            .map(|entry| Instance {
                service: entry,
                checks: self
                    .checks
                    .values()
                    .filter(|check| check.check.service_id == entry.service.id)
                    .collect(),
            })
            .filter(|instance| {
                !filter.passing_only
                    || instance
                        .checks
                        .iter()
                        .all(|check| check.check.status == Status::Passing)
            })
            .collect();
        (self.index_of_name(name), instances)
    }

    /// `PUT /v1/agent/service/register`: adds or replaces the service and its checks.
    pub fn register(
        &mut self,
        registration: Registration,
        replace_existing_checks: bool,
        now: Instant,
    ) {
        let next = self.index + 1;
        let Registration { service, checks } = registration;
        let registered = self.add_registration_checks(&service, &checks, now, next);
        let removed =
            replace_existing_checks && self.remove_checks_not_in(&service.id, &registered.ids);
        let mut touched = BTreeSet::new();
        if registered.changed || removed {
            touched.insert(service.name.clone());
        }
        touched.extend(self.put_service(service, next));
        self.commit(touched);
    }

    /// Adds the registration's checks, returning their IDs and whether any changed.
    fn add_registration_checks(
        &mut self,
        service: &Service,
        definitions: &[CheckDefinition],
        now: Instant,
        next: u64,
    ) -> RegisteredChecks {
        let mut registered = RegisteredChecks::default();
        for (position, definition) in definitions.iter().enumerate() {
            let id = definition
                .check_id
                .clone()
                .unwrap_or_else(|| default_check_id(&service.id, position, definitions.len()));
            let check = Check {
                id: id.clone(),
                name: definition
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("Service '{}' check", service.name)),
                status: definition.status.unwrap_or(Status::Critical),
                notes: definition.notes.clone(),
                output: String::new(),
                service_id: service.id.clone(),
                service_name: service.name.clone(),
                kind: definition.kind.clone(),
                ttl: definition.ttl,
                deregister_critical_service_after: definition.deregister_critical_service_after,
            };
            registered.changed |= self.put_registered_check(check, now, next);
            registered.ids.insert(id);
        }
        registered
    }

    /// Stores a check from a registration, restoring status and output from an existing
    /// check with the same ID. Returns whether anything visible changed.
    fn put_registered_check(&mut self, mut check: Check, now: Instant, next: u64) -> bool {
        let ttl_timer = check.ttl.map(|ttl| TtlTimer {
            deadline: now + ttl,
            fired: false,
            last_output: String::new(),
        });
        match self.checks.get_mut(&check.id) {
            Some(existing) => {
                check.status = existing.check.status;
                check.output = existing.check.output.clone();
                existing.ttl_timer = ttl_timer;
                let changed = existing.check != check;
                if changed {
                    existing.check = check;
                    existing.modify_index = next;
                }
                changed
            }
            None => {
                let critical_since = (check.status == Status::Critical).then_some(now);
                self.checks.insert(
                    check.id.clone(),
                    CheckEntry {
                        check,
                        create_index: next,
                        modify_index: next,
                        ttl_timer,
                        critical_since,
                    },
                );
                true
            }
        }
    }

    /// Removes the service's checks not in `keep`; returns whether any went.
    fn remove_checks_not_in(&mut self, service_id: &str, keep: &BTreeSet<String>) -> bool {
        let before = self.checks.len();
        self.checks
            .retain(|id, entry| entry.check.service_id != service_id || keep.contains(id));
        self.checks.len() != before
    }

    /// Stores the service; returns the names whose results changed.
    fn put_service(&mut self, service: Service, next: u64) -> Vec<String> {
        match self.services.get_mut(&service.id) {
            Some(existing) if existing.service == service => Vec::new(),
            Some(existing) => {
                let old_name = std::mem::replace(&mut existing.service, service);
                existing.modify_index = next;
                vec![old_name.name, existing.service.name.clone()]
            }
            None => {
                let name = service.name.clone();
                self.services.insert(
                    service.id.clone(),
                    ServiceEntry {
                        service,
                        create_index: next,
                        modify_index: next,
                    },
                );
                vec![name]
            }
        }
    }

    /// `PUT /v1/agent/service/deregister/<id>`: removes the service and its checks.
    pub fn deregister(&mut self, service_id: &str) -> Result<(), ApiError> {
        let name = self
            .remove_service(service_id)
            .ok_or_else(|| ApiError::UnknownService(service_id.to_string()))?;
        self.commit([name]);
        Ok(())
    }

    fn remove_service(&mut self, service_id: &str) -> Option<String> {
        let entry = self.services.remove(service_id)?;
        self.checks
            .retain(|_, check| check.check.service_id != service_id);
        Some(entry.service.name)
    }

    /// A TTL update (`check/update`, `check/pass|warn|fail`): sets status and output and
    /// re-arms the TTL timer.
    pub fn update_ttl(
        &mut self,
        check_id: &str,
        status: Status,
        output: &str,
        now: Instant,
    ) -> Result<(), ApiError> {
        let next = self.index + 1;
        let entry = self
            .checks
            .get_mut(check_id)
            .ok_or_else(|| ApiError::UnknownCheck(check_id.to_string()))?;
        let timer = entry
            .ttl_timer
            .as_mut()
            .ok_or_else(|| ApiError::NoAssociatedTtl(check_id.to_string()))?;
        let output = truncate_output(output);
        timer.deadline = now + entry.check.ttl.unwrap_or_default();
        timer.fired = false;
        timer.last_output = output.clone();
        if entry.set_status(status, output, now, next) {
            let name = entry.check.service_name.clone();
            self.commit([name]);
        }
        Ok(())
    }

    /// `PUT /v1/agent/service/maintenance/<id>`: adds or removes the critical
    /// `_service_maintenance:<id>` check.
    pub fn set_maintenance(
        &mut self,
        service_id: &str,
        enable: bool,
        reason: &str,
        now: Instant,
    ) -> Result<(), ApiError> {
        let service = self
            .service(service_id)
            .cloned()
            .ok_or_else(|| ApiError::UnknownService(service_id.to_string()))?;
        let check_id = format!("{MAINTENANCE_CHECK_PREFIX}{service_id}");
        let changed = if enable {
            self.add_maintenance_check(check_id, &service, reason, now)
        } else {
            self.checks.remove(&check_id).is_some()
        };
        if changed {
            self.commit([service.name]);
        }
        Ok(())
    }

    fn add_maintenance_check(
        &mut self,
        check_id: String,
        service: &Service,
        reason: &str,
        now: Instant,
    ) -> bool {
        if self.checks.contains_key(&check_id) {
            return false;
        }
        let notes = if reason.is_empty() {
            DEFAULT_MAINTENANCE_REASON
        } else {
            reason
        };
        let check = Check {
            id: check_id.clone(),
            name: "Service Maintenance Mode".into(),
            status: Status::Critical,
            notes: notes.into(),
            output: String::new(),
            service_id: service.id.clone(),
            service_name: service.name.clone(),
            kind: "maintenance".into(),
            ttl: None,
            deregister_critical_service_after: None,
        };
        let next = self.index + 1;
        self.checks.insert(
            check_id,
            CheckEntry {
                check,
                create_index: next,
                modify_index: next,
                ttl_timer: None,
                critical_since: Some(now),
            },
        );
        true
    }

    /// Fires every TTL timer due by `now`; returns the IDs of the checks that expired.
    pub fn expire_ttls(&mut self, now: Instant) -> Vec<String> {
        let next = self.index + 1;
        let mut expired = Vec::new();
        let mut touched = BTreeSet::new();
        for entry in self.checks.values_mut() {
            let Some(timer) = entry
                .ttl_timer
                .as_mut()
                .filter(|t| !t.fired && t.deadline <= now)
            else {
                continue;
            };
            timer.fired = true;
            let output = expired_output(&timer.last_output);
            if entry.set_status(Status::Critical, output, now, next) {
                touched.insert(entry.check.service_name.clone());
            }
            expired.push(entry.check.id.clone());
        }
        self.commit(touched);
        expired
    }

    /// When the next TTL timer fires, if any is armed.
    pub fn next_ttl_deadline(&self) -> Option<Instant> {
        self.checks
            .values()
            .filter_map(|entry| entry.ttl_timer.as_ref())
            .filter(|timer| !timer.fired)
            .map(|timer| timer.deadline)
            .min()
    }

    /// Consul's `reapServices`: removes every service with a check that has been critical
    /// for longer than its `DeregisterCriticalServiceAfter` (raised to `minimum`, Consul's
    /// `check_deregister_interval_min`). Returns the removed service IDs.
    pub fn reap_critical_services(&mut self, now: Instant, minimum: Duration) -> Vec<String> {
        let due: BTreeSet<String> = self
            .checks
            .values()
            .filter(|entry| entry.check.status == Status::Critical)
            .filter_map(|entry| {
                let timeout = entry.check.deregister_critical_service_after?.max(minimum);
                let since = entry.critical_since?;
                (now.saturating_duration_since(since) >= timeout)
                    .then(|| entry.check.service_id.clone())
            })
            .collect();
        let names: Vec<String> = due
            .iter()
            .filter_map(|id| self.remove_service(id))
            .collect();
        self.commit(names);
        due.into_iter().collect()
    }

    /// Forgets every service and check, as an agent restarted without a data dir does.
    /// With `reset_index`, the index starts over too (a dev-mode agent is also the server).
    pub fn restart(&mut self, reset_index: bool) {
        let names: Vec<String> = self
            .services
            .values()
            .map(|entry| entry.service.name.clone())
            .collect();
        self.services.clear();
        self.checks.clear();
        if reset_index {
            self.index = NODE_INDEX;
            self.index_by_name.clear();
        } else {
            self.commit(names);
        }
    }

    /// Moves the index when anything changed, recording it for the touched service names.
    /// Takes the next index for a write outside the agent's services (the KV store).
    pub(crate) fn next_index(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    /// The index of the last change to the catalog.
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    fn commit(&mut self, touched_names: impl IntoIterator<Item = String>) {
        let mut names = touched_names.into_iter().peekable();
        if names.peek().is_none() {
            return;
        }
        self.index += 1;
        for name in names {
            self.index_by_name.insert(name, self.index);
        }
    }
}

#[derive(Default)]
struct RegisteredChecks {
    ids: BTreeSet<String>,
    changed: bool,
}

impl CheckEntry {
    /// Sets status and output; returns whether either changed. Tracks since when the check
    /// has been critical, for the reaper.
    fn set_status(&mut self, status: Status, output: String, now: Instant, next: u64) -> bool {
        if self.check.status == status && self.check.output == output {
            return false;
        }
        if status != Status::Critical {
            self.critical_since = None;
        } else if self.check.status != Status::Critical {
            self.critical_since = Some(now);
        }
        self.check.status = status;
        self.check.output = output;
        self.modify_index = next;
        true
    }
}

fn default_check_id(service_id: &str, position: usize, count: usize) -> String {
    if count > 1 {
        format!("service:{service_id}:{}", position + 1)
    } else {
        format!("service:{service_id}")
    }
}

/// Consul's `CheckTTL.getExpiredOutput`.
fn expired_output(last_output: &str) -> String {
    if last_output.is_empty() {
        "TTL expired".to_string()
    } else {
        format!("TTL expired (last output before timeout follows): {last_output}")
    }
}

/// Consul's truncation of check output beyond `check_output_max_size` bytes.
fn truncate_output(output: &str) -> String {
    if output.len() <= OUTPUT_MAX_SIZE {
        return output.to_string();
    }
    let mut end = OUTPUT_MAX_SIZE;
    while !output.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{} ... (captured {OUTPUT_MAX_SIZE} of {} bytes)",
        &output[..end],
        output.len()
    )
}
