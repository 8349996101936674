//! The Consul double in a container, and what its `/_double/state` says.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use super::images::consul_double_image;
use super::{wait_for, Container, Network};
use crate::common;

/// The Consul double's `/_double/state` at `address`, or Null while it does not answer.
pub(crate) fn catalog_state(address: SocketAddr) -> Value {
    common::http::request(address, "GET", "/_double/state", "")
        .ok()
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or(Value::Null)
}

/// The IDs of `service`'s instances whose every check passes (what Consul's
/// `?passing` health query returns).
pub(crate) fn passing(state: &Value, service: &str) -> BTreeSet<String> {
    let checks = state["checks"].as_array().cloned().unwrap_or_default();
    state["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|instance| instance["name"] == service)
        .filter_map(|instance| instance["id"].as_str())
        .filter(|id| {
            checks
                .iter()
                .filter(|check| check["service_id"] == *id)
                .all(|check| check["status"] == "passing")
        })
        .map(str::to_string)
        .collect()
}

/// Every registered service instance's ID.
pub(crate) fn registered(state: &Value) -> BTreeSet<String> {
    state["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|instance| instance["id"].as_str().map(str::to_string))
        .collect()
}

/// The Consul double in a container.
pub(crate) struct Consul {
    /// Held to remove the container with the catalog.
    _container: Container,
    address: SocketAddr,
}

impl Consul {
    /// The double known as `consul` on `network`, through Docker's name server.
    pub(crate) fn start(network: &Network) -> Consul {
        Consul::start_with(&["--network", &network.name, "--network-alias", "consul"])
    }

    /// The double on Docker's default bridge, where containers have no name
    /// server of Docker's: others find it only by address.
    pub(crate) fn start_on_default_bridge() -> Consul {
        Consul::start_with(&[])
    }

    fn start_with(options: &[&str]) -> Consul {
        let mut run = options.to_vec();
        run.push(consul_double_image());
        let container = Container::run(&run);
        let address = SocketAddr::new(container.ip(), 8500);
        wait_for("the Consul double to answer", || {
            !catalog_state(address).is_null()
        });
        Consul {
            _container: container,
            address,
        }
    }

    pub(crate) fn ip(&self) -> IpAddr {
        self.address.ip()
    }

    pub(crate) fn state(&self) -> Value {
        catalog_state(self.address)
    }
}
