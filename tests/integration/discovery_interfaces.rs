//! IP selection (docs/configuration.md, `interfaces`) on real interfaces: a network namespace whose `eth0` (one end
//! of a veth pair) has known addresses. The selection runs on a thread that entered the
//! namespace with setns(2); the namespace is deleted at the end, even when an assertion fails.

use crate::common;

use std::net::IpAddr;

use autopilot::testing::discovery::interfaces::{find_ip, InterfaceError};
use common::netns::Namespace;

/// A namespace whose `eth0` holds 10.99.0.7/24, 10.99.0.3/24 and fd00:99::5/64, added in
/// that order (selection must sort them).
fn namespace() -> Namespace {
    Namespace::create(&["10.99.0.7/24", "10.99.0.3/24", "fd00:99::5/64"])
}

/// `find_ip(specs)` as seen from inside the namespace.
fn find_ip_in(ns: &Namespace, specs: &[&str]) -> Result<IpAddr, InterfaceError> {
    let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
    ns.inside(|| find_ip(&specs))
}

fn addr(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn selection_on_real_interfaces_inside_a_network_namespace() {
    let ns = namespace();
    let pick = |specs: &[&str]| find_ip_in(&ns, specs).unwrap();

    assert_eq!(pick(&["eth0"]), addr("10.99.0.3"), "lowest IPv4 first");
    assert_eq!(pick(&["eth0:inet"]), addr("10.99.0.3"));
    assert_eq!(pick(&["eth0:inet6"]), addr("fd00:99::5"));
    assert_eq!(pick(&["eth0[1]"]), addr("10.99.0.7"));
    assert_eq!(pick(&["eth0[2]"]), addr("fd00:99::5"));
    assert_eq!(pick(&["inet"]), addr("10.99.0.3"));
    assert_eq!(pick(&["inet6"]), addr("fd00:99::5"));
    assert_eq!(pick(&["10.99.0.4/30"]), addr("10.99.0.7"));
    assert_eq!(pick(&["fd00:99::/64"]), addr("fd00:99::5"));
    assert_eq!(pick(&["lo"]), addr("127.0.0.1"));
    assert_eq!(pick(&["eth1", "static:192.0.2.1"]), addr("192.0.2.1"));
    assert_eq!(pick(&["eth1", "eth0[9]", "eth0"]), addr("10.99.0.3"));

    let error = find_ip_in(&ns, &["eth1", "10.1.0.0/16"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no interface matches [\"eth1\", \"10.1.0.0/16\"]; interfaces seen: \
         eth0 (10.99.0.3, 10.99.0.7, fd00:99::5), lo (::1, 127.0.0.1)"
    );
}
