//! Choosing the IP a service advertises (docs/configuration.md, `jobs[]`, `interfaces`).
//!
//! Owns the interface spec syntax and the selection rule; the only OS access is the
//! getifaddrs call in [`find_ip`]. Selection itself ([`select`]) is pure.
//!
//! Specs, tried in order, first match wins:
//! - `eth0` or `eth0:inet`: the first IPv4 address of `eth0`; `eth0:inet6`: its first IPv6;
//! - `eth0[1]`: its address number 1 (zero-based) of either family;
//! - `10.0.0.0/16`, `fd00::/8`: the first address inside the network, on any interface;
//! - `inet` / `inet6`: the first IPv4 / IPv6 address not on a loopback interface and not a
//!   loopback address;
//! - `static:1.2.3.4`: that address, whatever the interfaces.
//!
//! "First" means interfaces sorted by name, then each interface's addresses sorted by their
//! bytes, IPv4 compared as IPv4-mapped IPv6 (the order ContainerPilot's Go code produced).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use nix::net::if_::InterfaceFlags;

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Inet,
    Inet6,
}

impl Family {
    fn holds(self, ip: &IpAddr) -> bool {
        matches!(
            (self, ip),
            (Family::Inet, IpAddr::V4(_)) | (Family::Inet6, IpAddr::V6(_))
        )
    }
}

/// One parsed interface spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterfaceSpec {
    /// `eth0`, `eth0:inet`, `eth0:inet6`.
    Named { interface: String, family: Family },
    /// `eth0[1]`.
    Indexed { interface: String, index: usize },
    /// An IPv4 or IPv6 CIDR network.
    Network(IpNet),
    /// `inet` / `inet6`: any non-loopback address of the family.
    Any(Family),
    /// `static:<ip>`.
    Static(IpAddr),
}

/// Why no IP could be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InterfaceError {
    #[error("invalid interface spec {spec:?}: {reason}")]
    InvalidSpec { spec: String, reason: String },
    #[error("no interface matches {specs:?}; interfaces seen: {seen}")]
    NoMatch { specs: Vec<String>, seen: String },
    #[error("cannot list network interfaces: {0}")]
    Os(String),
}

impl FromStr for InterfaceSpec {
    type Err = InterfaceError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| InterfaceError::InvalidSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if let Some(ip) = spec.strip_prefix("static:") {
            return ip
                .parse()
                .map(InterfaceSpec::Static)
                .map_err(|_| invalid("not an IP address after \"static:\""));
        }
        if spec.contains('/') {
            return spec
                .parse()
                .map(InterfaceSpec::Network)
                .map_err(|_| invalid("not a CIDR network"));
        }
        match spec {
            "inet" => return Ok(InterfaceSpec::Any(Family::Inet)),
            "inet6" => return Ok(InterfaceSpec::Any(Family::Inet6)),
            "" => return Err(invalid("empty")),
            _ => {}
        }
        if let Some(rest) = spec.strip_suffix(']') {
            let (interface, index) = rest
                .split_once('[')
                .ok_or_else(|| invalid("\"]\" without \"[\""))?;
            let index = index
                .parse()
                .map_err(|_| invalid("the index must be a non-negative integer"))?;
            check_interface_name(interface).map_err(invalid)?;
            return Ok(InterfaceSpec::Indexed {
                interface: interface.to_string(),
                index,
            });
        }
        let (interface, family) = match spec.split_once(':') {
            None => (spec, Family::Inet),
            Some((interface, "inet")) => (interface, Family::Inet),
            Some((interface, "inet6")) => (interface, Family::Inet6),
            Some(_) => return Err(invalid("the family must be inet or inet6")),
        };
        check_interface_name(interface).map_err(invalid)?;
        Ok(InterfaceSpec::Named {
            interface: interface.to_string(),
            family,
        })
    }
}

/// The longest interface name Linux allows (`IFNAMSIZ` less its NUL).
const MAX_INTERFACE_NAME: usize = 15;

/// An interface name as Linux names them: 1 to 15 letters, digits, `_`, `-`
/// or `.` (`eth0`, `br-1a2b`, `eth0.100`). An IP address is not a name:
/// ContainerPilot refused it too, and the user meant `static:` or a CIDR.
fn check_interface_name(name: &str) -> Result<(), &'static str> {
    if name.parse::<IpAddr>().is_ok() {
        return Err("an IP address is not an interface name: write static:<ip> to advertise it, or <ip>/32 to pick the interface that has it");
    }
    let valid = !name.is_empty()
        && name.len() <= MAX_INTERFACE_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err("not an interface name (1 to 15 letters, digits, '_', '-' or '.'), nor inet, inet6, static:<ip> or a CIDR network")
    }
}

/// One address of one interface, as the OS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterfaceAddress {
    pub interface: String,
    pub ip: IpAddr,
    /// The interface is a loopback interface.
    pub loopback: bool,
}

impl InterfaceAddress {
    fn is_loopback(&self) -> bool {
        self.loopback || self.ip.is_loopback()
    }
}

/// The IP the first matching spec picks among `addresses` (in any order).
pub(crate) fn select(specs: &[InterfaceSpec], addresses: &[InterfaceAddress]) -> Option<IpAddr> {
    let sorted = sorted(addresses);
    specs.iter().find_map(|spec| pick(spec, &sorted))
}

fn pick(spec: &InterfaceSpec, sorted: &[&InterfaceAddress]) -> Option<IpAddr> {
    match spec {
        InterfaceSpec::Static(ip) => Some(*ip),
        InterfaceSpec::Named { interface, family } => on(sorted, interface)
            .find(|a| family.holds(&a.ip))
            .map(|a| a.ip),
        InterfaceSpec::Indexed { interface, index } => {
            on(sorted, interface).nth(*index).map(|a| a.ip)
        }
        InterfaceSpec::Network(net) => sorted.iter().find(|a| net.contains(&a.ip)).map(|a| a.ip),
        InterfaceSpec::Any(family) => sorted
            .iter()
            .find(|a| family.holds(&a.ip) && !a.is_loopback())
            .map(|a| a.ip),
    }
}

/// The addresses of one interface, keeping their order.
fn on<'a>(
    sorted: &'a [&'a InterfaceAddress],
    interface: &'a str,
) -> impl Iterator<Item = &'a &'a InterfaceAddress> + 'a {
    sorted.iter().filter(move |a| a.interface == interface)
}

fn sorted(addresses: &[InterfaceAddress]) -> Vec<&InterfaceAddress> {
    let mut sorted: Vec<&InterfaceAddress> = addresses.iter().collect();
    sorted.sort_by(|a, b| {
        a.interface
            .cmp(&b.interface)
            .then_with(|| compare_ips(&a.ip, &b.ip))
    });
    sorted
}

fn compare_ips(a: &IpAddr, b: &IpAddr) -> Ordering {
    as_v6_bytes(a).cmp(&as_v6_bytes(b))
}

fn as_v6_bytes(ip: &IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Parses `specs` and picks the IP from this machine's interfaces.
pub fn find_ip(specs: &[String]) -> Result<IpAddr, InterfaceError> {
    let parsed = specs
        .iter()
        .map(|spec| spec.parse())
        .collect::<Result<Vec<InterfaceSpec>, _>>()?;
    let (names, addresses) = scan_interfaces()?;
    select(&parsed, &addresses).ok_or_else(|| InterfaceError::NoMatch {
        specs: specs.to_vec(),
        seen: describe(&names, &addresses),
    })
}

/// Every interface name (with or without an address) and every IPv4 and IPv6 address, from
/// getifaddrs.
fn scan_interfaces() -> Result<(Vec<String>, Vec<InterfaceAddress>), InterfaceError> {
    let entries = nix::ifaddrs::getifaddrs().map_err(|e| InterfaceError::Os(e.to_string()))?;
    let mut names = Vec::new();
    let mut addresses = Vec::new();
    for entry in entries {
        let ip = entry.address.as_ref().and_then(|address| {
            match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
                (Some(v4), _) => Some(IpAddr::V4(v4.ip())),
                (_, Some(v6)) => Some(IpAddr::V6(v6.ip())),
                _ => None,
            }
        });
        if let Some(ip) = ip {
            addresses.push(InterfaceAddress {
                interface: entry.interface_name.clone(),
                ip,
                loopback: entry.flags.contains(InterfaceFlags::IFF_LOOPBACK),
            });
        }
        names.push(entry.interface_name);
    }
    Ok((names, addresses))
}

/// `eth0 (10.0.0.2, fe80::1), lo (127.0.0.1)`, sorted like the selection sees them.
fn describe(names: &[String], addresses: &[InterfaceAddress]) -> String {
    let mut by_name: BTreeMap<&str, Vec<String>> = names
        .iter()
        .map(|name| (name.as_str(), Vec::new()))
        .collect();
    for address in sorted(addresses) {
        by_name
            .entry(&address.interface)
            .or_default()
            .push(address.ip.to_string());
    }
    if by_name.is_empty() {
        return "none".to_string();
    }
    let described: Vec<String> = by_name
        .into_iter()
        .map(|(name, ips)| DescribedInterface(name, &ips).to_string())
        .collect();
    described.join(", ")
}

struct DescribedInterface<'a>(&'a str, &'a [String]);

impl fmt::Display for DescribedInterface<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1.is_empty() {
            write!(f, "{} (no address)", self.0)
        } else {
            write!(f, "{} ({})", self.0, self.1.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> InterfaceSpec {
        text.parse().unwrap()
    }

    fn addr(interface: &str, ip: &str) -> InterfaceAddress {
        InterfaceAddress {
            interface: interface.to_string(),
            ip: ip.parse().unwrap(),
            loopback: interface == "lo",
        }
    }

    /// Deliberately unsorted, as the OS may list them.
    fn machine() -> Vec<InterfaceAddress> {
        vec![
            addr("eth1", "192.168.1.5"),
            addr("eth0", "fe80::1"),
            addr("eth0", "10.0.0.9"),
            addr("lo", "127.0.0.1"),
            addr("eth0", "10.0.0.2"),
            addr("lo", "::1"),
            addr("eth1", "2001:db8::5"),
        ]
    }

    fn pick_one(text: &str) -> Option<IpAddr> {
        select(&[spec(text)], &machine())
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn parses_every_form() {
        let named = |name: &str, family| InterfaceSpec::Named {
            interface: name.to_string(),
            family,
        };
        assert_eq!(spec("eth0"), named("eth0", Family::Inet));
        assert_eq!(spec("eth0:inet"), named("eth0", Family::Inet));
        assert_eq!(spec("eth0:inet6"), named("eth0", Family::Inet6));
        assert_eq!(
            spec("eth0[1]"),
            InterfaceSpec::Indexed {
                interface: "eth0".to_string(),
                index: 1
            }
        );
        assert_eq!(
            spec("10.0.0.0/16"),
            InterfaceSpec::Network("10.0.0.0/16".parse().unwrap())
        );
        assert_eq!(
            spec("fd00::/8"),
            InterfaceSpec::Network("fd00::/8".parse().unwrap())
        );
        assert_eq!(spec("inet"), InterfaceSpec::Any(Family::Inet));
        assert_eq!(spec("inet6"), InterfaceSpec::Any(Family::Inet6));
        assert_eq!(
            spec("static:1.2.3.4"),
            InterfaceSpec::Static(ip("1.2.3.4").unwrap())
        );
    }

    #[test]
    fn rejects_malformed_specs() {
        for bad in [
            "eth0:ipx",
            "eth0[x]",
            "eth0[-1]",
            "10.0.0.0/99",
            "static:nope",
            "",
            "eth0]",
            "127.0.0.1",
            "!",
            "eth 0",
            "!eth0[1]",
            "sixteen-chars-xx",
        ] {
            assert!(
                matches!(
                    bad.parse::<InterfaceSpec>(),
                    Err(InterfaceError::InvalidSpec { .. })
                ),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn named_interfaces_pick_the_lowest_address_of_the_family() {
        assert_eq!(pick_one("eth0"), ip("10.0.0.2"));
        assert_eq!(pick_one("eth0:inet6"), ip("fe80::1"));
        assert_eq!(pick_one("lo"), ip("127.0.0.1"));
        assert_eq!(pick_one("eth9"), None);
    }

    #[test]
    fn index_counts_sorted_addresses_of_both_families() {
        assert_eq!(pick_one("eth0[0]"), ip("10.0.0.2"));
        assert_eq!(pick_one("eth0[1]"), ip("10.0.0.9"));
        assert_eq!(pick_one("eth0[2]"), ip("fe80::1"));
        assert_eq!(pick_one("eth0[3]"), None);
    }

    #[test]
    fn networks_match_any_interface() {
        assert_eq!(pick_one("192.168.0.0/16"), ip("192.168.1.5"));
        assert_eq!(pick_one("2001:db8::/32"), ip("2001:db8::5"));
        assert_eq!(pick_one("127.0.0.0/8"), ip("127.0.0.1"));
        assert_eq!(pick_one("172.16.0.0/12"), None);
    }

    #[test]
    fn families_skip_loopback() {
        assert_eq!(pick_one("inet"), ip("10.0.0.2"));
        assert_eq!(pick_one("inet6"), ip("fe80::1"));
        let only_loopback = [addr("lo", "127.0.0.1"), addr("lo", "::1")];
        assert_eq!(select(&[spec("inet")], &only_loopback), None);
    }

    #[test]
    fn static_needs_no_interface() {
        assert_eq!(select(&[spec("static:1.2.3.4")], &[]), ip("1.2.3.4"));
    }

    #[test]
    fn first_matching_spec_wins() {
        let specs = [spec("eth9"), spec("eth1"), spec("eth0")];
        assert_eq!(select(&specs, &machine()), ip("192.168.1.5"));
    }

    #[test]
    fn description_lists_interfaces_and_addresses_in_order() {
        let names = vec!["tun0".to_string(), "eth0".to_string()];
        let described = describe(&names, &[addr("eth0", "fe80::1"), addr("eth0", "10.0.0.2")]);
        assert_eq!(described, "eth0 (10.0.0.2, fe80::1), tun0 (no address)");
        assert_eq!(describe(&[], &[]), "none");
    }
}
