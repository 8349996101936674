//! IP selection (SPEC.md 8.4) on real interfaces: a network namespace whose `eth0` (one end
//! of a veth pair) has known addresses. The selection runs on a thread that entered the
//! namespace with setns(2); the namespace is deleted at the end, even when an assertion fails.

use std::fs::File;
use std::net::IpAddr;
use std::process::Command;

use autopilot::discovery::interfaces::{find_ip, InterfaceError};
use nix::sched::{setns, CloneFlags};

/// A network namespace with `lo` up and `eth0` holding 10.99.0.7/24, 10.99.0.3/24 and
/// fd00:99::5/64 (added in that order; selection must sort them). Deleted on drop.
struct Namespace {
    name: String,
    host_end: String,
}

impl Namespace {
    fn create() -> Namespace {
        let pid = std::process::id();
        // Interface names are limited to 15 bytes.
        let namespace = Namespace {
            name: format!("ap-disc-{pid}"),
            host_end: format!("apd{pid}h"),
        };
        let peer = format!("apd{pid}p");
        ip(&["netns", "add", &namespace.name]);
        ip(&[
            "link",
            "add",
            &namespace.host_end,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &namespace.name]);
        namespace.ip(&["link", "set", &peer, "name", "eth0"]);
        // No automatic link-local IPv6 address: only the addresses below.
        namespace.ip(&["link", "set", "eth0", "addrgenmode", "none"]);
        namespace.ip(&["addr", "add", "10.99.0.7/24", "dev", "eth0"]);
        namespace.ip(&["addr", "add", "10.99.0.3/24", "dev", "eth0"]);
        namespace.ip(&["addr", "add", "fd00:99::5/64", "dev", "eth0", "nodad"]);
        namespace.ip(&["link", "set", "eth0", "up"]);
        namespace.ip(&["link", "set", "lo", "up"]);
        namespace
    }

    fn ip(&self, args: &[&str]) {
        let mut inside = vec!["netns", "exec", &self.name, "ip"];
        inside.extend_from_slice(args);
        ip(&inside);
    }

    /// `find_ip(specs)` as seen from inside the namespace.
    fn find_ip(&self, specs: &[&str]) -> Result<IpAddr, InterfaceError> {
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // setns(CLONE_NEWNET) moves only this thread into the namespace.
                    let handle = File::open(&path).unwrap();
                    setns(handle, CloneFlags::CLONE_NEWNET).unwrap();
                    find_ip(&specs)
                })
                .join()
                .unwrap()
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace destroys its veth end, and with it the pair; the host end
        // is deleted explicitly in case creation failed before the move.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` (iproute2) is needed for this test");
    assert!(
        output.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn addr(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn selection_on_real_interfaces_inside_a_network_namespace() {
    let ns = Namespace::create();
    let pick = |specs: &[&str]| ns.find_ip(specs).unwrap();

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

    let error = ns.find_ip(&["eth1", "10.1.0.0/16"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no interface matches [\"eth1\", \"10.1.0.0/16\"]; interfaces seen: \
         eth0 (10.99.0.3, 10.99.0.7, fd00:99::5), lo (::1, 127.0.0.1)"
    );
}
