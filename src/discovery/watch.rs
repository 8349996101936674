//! What a watch result means (docs/design.md, "Discovery"): which events to publish and which index to
//! block on next. Pure logic; the engine runs the loop and publishes.
//!
//! Events, in the order to publish them:
//! - `changed`: the set of (ID, Address, Port) differs from the previous result. Before the
//!   first result the set counts as empty, so a service present at start is `changed`
//!   (as in ContainerPilot) and one absent at start is not.
//! - `healthy`: instances now, none (or unknown) before.
//! - `unhealthy`: no instances now, some (or unknown) before, so a watch whose service is
//!   absent at start publishes `unhealthy`.

use std::collections::BTreeSet;

use super::{HealthyInstances, Instance};
use crate::events::EventCode;

/// One watch's memory between two queries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WatchState {
    /// `None` until the first result.
    known: Option<BTreeSet<Instance>>,
    index: u64,
}

impl WatchState {
    pub fn new() -> WatchState {
        WatchState::default()
    }

    /// The index to pass to the next query: 0 (answer at once) before the first result and
    /// after the index went backwards.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// How many healthy instances the last result had (for `containerpilot_watch_instances`).
    pub fn instance_count(&self) -> usize {
        self.known.as_ref().map_or(0, BTreeSet::len)
    }

    /// The healthy instances of the last result, sorted by ID (empty before the first).
    pub fn instances(&self) -> Vec<Instance> {
        self.known.iter().flatten().cloned().collect()
    }

    /// Takes a new result and returns the events it means, in publishing order.
    pub fn update(&mut self, result: HealthyInstances) -> Vec<EventCode> {
        self.index = next_index(self.index, result.index);
        let current: BTreeSet<Instance> = result.instances.into_iter().collect();
        let previous = self.known.replace(current.clone());
        let was_empty = previous.as_ref().map(BTreeSet::is_empty);
        let mut events = Vec::new();
        if previous.unwrap_or_default() != current {
            events.push(EventCode::Changed);
        }
        match (was_empty, current.is_empty()) {
            (None | Some(true), false) => events.push(EventCode::Healthy),
            (None | Some(false), true) => events.push(EventCode::Unhealthy),
            _ => {}
        }
        events
    }
}

/// Consul's rules for blocking indexes: if the index went backwards (the agent lost its
/// state, a snapshot was restored) start over from 0; otherwise never block on 0 again.
pub(crate) fn next_index(previous: u64, returned: u64) -> u64 {
    if returned < previous {
        0
    } else {
        returned.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventCode::{Changed, Healthy, Unhealthy};

    fn instance(id: &str, port: u16) -> Instance {
        Instance {
            id: id.to_string(),
            address: "10.0.0.1".to_string(),
            port,
        }
    }

    fn result(instances: &[Instance], index: u64) -> HealthyInstances {
        HealthyInstances {
            instances: instances.to_vec(),
            index,
        }
    }

    #[test]
    fn absent_at_start_is_unhealthy_without_change() {
        let mut state = WatchState::new();
        assert_eq!(state.update(result(&[], 5)), vec![Unhealthy]);
        assert_eq!(state.update(result(&[], 6)), vec![]);
    }

    #[test]
    fn present_at_start_is_changed_and_healthy() {
        let mut state = WatchState::new();
        assert_eq!(
            state.update(result(&[instance("a", 80)], 5)),
            vec![Changed, Healthy]
        );
        assert_eq!(state.instance_count(), 1);
        assert_eq!(state.instances(), [instance("a", 80)]);
    }

    #[test]
    fn transitions_between_empty_and_not() {
        let mut state = WatchState::new();
        state.update(result(&[], 1));
        assert_eq!(
            state.update(result(&[instance("a", 80)], 2)),
            vec![Changed, Healthy]
        );
        assert_eq!(
            state.update(result(&[instance("a", 80), instance("b", 80)], 3)),
            vec![Changed]
        );
        assert_eq!(state.update(result(&[], 4)), vec![Changed, Unhealthy]);
        assert_eq!(state.instance_count(), 0);
    }

    #[test]
    fn same_set_in_another_order_is_no_change() {
        let mut state = WatchState::new();
        state.update(result(&[instance("a", 80), instance("b", 81)], 1));
        assert_eq!(
            state.update(result(&[instance("b", 81), instance("a", 80)], 2)),
            vec![]
        );
    }

    #[test]
    fn a_new_port_or_address_is_a_change() {
        let mut state = WatchState::new();
        state.update(result(&[instance("a", 80)], 1));
        assert_eq!(state.update(result(&[instance("a", 81)], 2)), vec![Changed]);
        let moved = Instance {
            address: "10.0.0.2".to_string(),
            ..instance("a", 81)
        };
        assert_eq!(state.update(result(&[moved], 3)), vec![Changed]);
    }

    #[test]
    fn index_follows_the_catalog_and_resets_when_it_goes_backwards() {
        let mut state = WatchState::new();
        assert_eq!(state.index(), 0, "the first query answers at once");
        state.update(result(&[], 40));
        assert_eq!(state.index(), 40);
        state.update(result(&[], 12));
        assert_eq!(state.index(), 0, "backwards: start over");
        state.update(result(&[], 12));
        assert_eq!(state.index(), 12);
    }

    #[test]
    fn index_zero_from_the_catalog_becomes_one() {
        assert_eq!(next_index(0, 0), 1);
        assert_eq!(next_index(7, 9), 9);
        assert_eq!(next_index(9, 7), 0);
    }
}
