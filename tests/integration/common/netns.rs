//! A network namespace for tests of interface selection: `lo` up and an `eth0` (one end of
//! a veth pair) holding the addresses a test asks for. Code runs inside it either on a
//! thread that entered it with setns(2) ([`Namespace::inside`]) or as a process started
//! there ([`super::Autopilot::network_namespace`] with [`Namespace::path`]). Deleted on
//! drop, even when an assertion failed.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{setns, CloneFlags};

/// Namespaces made by this test process so far, to name the next one uniquely.
static CREATED: AtomicUsize = AtomicUsize::new(0);

pub struct Namespace {
    name: String,
    host_end: String,
}

impl Namespace {
    /// A namespace whose `eth0` holds `addresses` (CIDR notation), added in that order.
    /// IPv6 addresses skip duplicate address detection, and `eth0` gets no automatic
    /// link-local address: it holds exactly what was asked for.
    pub fn create(addresses: &[&str]) -> Namespace {
        let pid = std::process::id();
        let serial = CREATED.fetch_add(1, Ordering::Relaxed);
        // Interface names are limited to 15 bytes.
        let namespace = Namespace {
            name: format!("ap-disc-{pid}-{serial}"),
            host_end: format!("ap{pid}x{serial}h"),
        };
        let peer = format!("ap{pid}x{serial}p");
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
        namespace.ip(&["link", "set", "eth0", "addrgenmode", "none"]);
        for address in addresses {
            let mut add = vec!["addr", "add", address, "dev", "eth0"];
            if address.contains(':') {
                add.push("nodad");
            }
            namespace.ip(&add);
        }
        namespace.ip(&["link", "set", "eth0", "up"]);
        namespace.ip(&["link", "set", "lo", "up"]);
        namespace
    }

    /// The namespace's file, for setns(2).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Runs `task` on a thread inside the namespace. Sockets it opens stay in the
    /// namespace after it returns, so a server bound here serves the namespace.
    pub fn inside<T: Send>(&self, task: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // setns(CLONE_NEWNET) moves only this thread into the namespace.
                    let handle = File::open(&path).unwrap();
                    setns(handle, CloneFlags::CLONE_NEWNET).unwrap();
                    task()
                })
                .join()
                .unwrap()
        })
    }

    fn ip(&self, args: &[&str]) {
        let mut inside = vec!["netns", "exec", &self.name, "ip"];
        inside.extend_from_slice(args);
        ip(&inside);
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
            .stderr(Stdio::null())
            .status();
    }
}

fn ip(args: &[&str]) {
    super::run_to_success(
        Command::new("ip").args(args),
        &format!("ip {args:?} (iproute2)"),
    );
}
