//! The Autopilot Pattern demo of `docker-compose.yml`, without Docker.
//!
//! The same configuration files (`examples/demo/*/containerpilot.json5`), the
//! same backend and the same nginx template run here as real processes: each
//! "container" is autopilot as PID 1 of its own PID and UTS namespaces (so its
//! hostname, and with it its catalog service ID, is its own), listening on its
//! own loopback port, against the Consul double. Only the environment differs
//! from the compose file, exactly as a container's would.
//!
//! It walks the demo's story: the services register, nginx's watches see
//! them, autopilot renders nginx.conf and reloads nginx; the backends find
//! each other through Consul and reload on SIGHUP; customers scales to three
//! and nginx spreads requests over them; a stopped instance (`docker stop`)
//! and one in maintenance leave nginx's upstreams.

use crate::common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::{free_port, http, wait_until, Autopilot, Mode, Running, Scratch};
use consul_double::{Config, ConsulDouble};
use nix::sys::signal::Signal;

/// The demo's files, as the images hold them under /opt/demo.
fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo")
}

/// One demo container: autopilot as PID 1 with the container's own
/// configuration file, named by `CONTAINERPILOT` as in the compose file.
struct Container {
    autopilot: Running,
    hostname: String,
    port: u16,
    /// The container's own files (nginx.conf, nginx.pid).
    run_dir: PathBuf,
    control_socket: PathBuf,
    config: PathBuf,
}

struct Demo {
    consul: ConsulDouble,
    scratch: Scratch,
}

impl Demo {
    fn new() -> Demo {
        common::require_program("nginx", "nginx-light");
        common::require_program("python3", "python3");
        Demo {
            consul: ConsulDouble::start(Config::default()).expect("start the Consul double"),
            scratch: Scratch::new(),
        }
    }

    /// Starts the container of `service` (customers, sales or nginx).
    fn start(&self, service: &str, hostname: &str) -> Container {
        let port = free_port();
        let run_dir = self.scratch.path(hostname);
        std::fs::create_dir(&run_dir).expect("the container's directory");
        let control_socket = run_dir.join("containerpilot.socket");
        let config = demo_dir().join(service).join("containerpilot.json5");
        let bin_dir = common::binary().parent().expect("the binary's directory");
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let autopilot = Autopilot::new(Mode::Pid1, std::iter::empty::<&str>())
            .hostname(hostname)
            .env("CONTAINERPILOT", &config.display().to_string())
            .env("CONSUL", &self.consul.addr().to_string())
            .env("PORT", &port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("INTERFACE", "static:127.0.0.1")
            .env("DEMO_DIR", &demo_dir().display().to_string())
            .env("RUN_DIR", &run_dir.display().to_string())
            .env("CONTROL_SOCKET", &control_socket.display().to_string())
            .env("PATH", &path)
            .current_dir(&run_dir)
            .start();
        Container {
            autopilot,
            hostname: hostname.to_string(),
            port,
            run_dir,
            control_socket,
            config,
        }
    }

    /// Waits until the catalog has exactly these healthy instances of `service`.
    fn wait_for_instances(&self, service: &str, containers: &[&Container]) {
        let wanted: BTreeSet<String> = containers
            .iter()
            .map(|c| format!("{service}-{}", c.hostname))
            .collect();
        self.consul
            .wait_for(common::DEADLINE, |state| {
                let passing: BTreeSet<String> = state
                    .passing_instances(service)
                    .iter()
                    .map(|s| s.id.clone())
                    .collect();
                passing == wanted
            })
            .unwrap_or_else(|e| panic!("{service} instances never became {wanted:?}: {e}"));
    }
}

impl Container {
    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// What the backend answers through nginx at /`service`/: its hostname
    /// and the peers it found through Consul.
    fn via_nginx(&self, service: &str) -> Option<serde_json::Value> {
        let (status, body) =
            http::request(self.address(), "GET", &format!("/{service}/"), "").ok()?;
        (status == 200)
            .then(|| serde_json::from_str(&body).ok())
            .flatten()
    }

    /// The hostnames that answer `requests` requests for `service` through nginx.
    fn answering(&self, service: &str, requests: usize) -> BTreeSet<String> {
        (0..requests)
            .filter_map(|_| self.via_nginx(service))
            .filter_map(|answer| answer["hostname"].as_str().map(str::to_string))
            .collect()
    }

    /// The hostname a backend answers with when asked directly.
    fn answering_directly(&self) -> Option<String> {
        let (_, body) = http::request(self.address(), "GET", "/", "").ok()?;
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        answer["hostname"].as_str().map(str::to_string)
    }

    fn nginx_conf(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("nginx.conf")).unwrap_or_default()
    }

    /// Runs an autopilot client command against this container's control socket.
    fn client(&self, args: &[&str]) {
        let status = std::process::Command::new(common::binary())
            .args(args)
            .env("CONTAINERPILOT", &self.config)
            .env("CONTROL_SOCKET", &self.control_socket)
            .status()
            .expect("run the autopilot client");
        assert!(status.success(), "autopilot {args:?}: {status}");
    }

    /// `docker stop`: SIGTERM to PID 1, which must end cleanly.
    fn stop(self) {
        self.autopilot.signal(Signal::SIGTERM);
        let finished = self.autopilot.finish();
        assert_eq!(
            finished.code,
            0,
            "{} exited with {}; its output:\n{}{}",
            self.hostname,
            finished.code,
            finished.stdout_text(),
            finished.stderr_text()
        );
    }
}

fn hostnames(containers: &[&Container]) -> BTreeSet<String> {
    containers.iter().map(|c| c.hostname.clone()).collect()
}

/// The peers a backend reports, e.g. `["127.0.0.1:4000"]`.
fn peers(answer: &serde_json::Value, peer: &str) -> Vec<String> {
    answer["peers"][peer]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn addresses(containers: &[&Container]) -> Vec<String> {
    let mut all: Vec<String> = containers.iter().map(|c| c.address().to_string()).collect();
    all.sort();
    all
}

#[test]
fn register_watch_render_reload_scale_and_stop() {
    let demo = Demo::new();
    let sales = demo.start("sales", "sales-1");
    let customers_1 = demo.start("customers", "customers-1");
    let nginx = demo.start("nginx", "nginx-1");

    // register → watch → render → reload: nginx routes to both services.
    demo.wait_for_instances("customers", &[&customers_1]);
    demo.wait_for_instances("sales", &[&sales]);
    demo.wait_for_instances("nginx", &[&nginx]);
    wait_until("nginx to route /customers/ to customers-1", || {
        nginx.answering("customers", 1) == hostnames(&[&customers_1])
    });
    // The backends found each other through Consul.
    wait_until("customers-1 to know sales-1", || {
        nginx
            .via_nginx("customers")
            .is_some_and(|answer| peers(&answer, "sales") == addresses(&[&sales]))
    });
    wait_until("sales-1 to know customers-1", || {
        nginx
            .via_nginx("sales")
            .is_some_and(|answer| peers(&answer, "customers") == addresses(&[&customers_1]))
    });

    // scale: `docker compose up --scale customers=3`.
    let customers_2 = demo.start("customers", "customers-2");
    let customers_3 = demo.start("customers", "customers-3");
    let all = [&customers_1, &customers_2, &customers_3];
    demo.wait_for_instances("customers", &all);
    wait_until("nginx.conf to list three customers", || {
        let conf = nginx.nginx_conf();
        all.iter()
            .all(|c| conf.contains(&format!("server {};", c.address())))
    });
    wait_until("nginx to spread requests over three customers", || {
        nginx.answering("customers", 6) == hostnames(&all)
    });
    wait_until("sales-1 to learn of the new customers (SIGHUP)", || {
        nginx
            .via_nginx("sales")
            .is_some_and(|answer| peers(&answer, "customers") == addresses(&all))
    });

    // stop: `docker stop` of one instance takes it out of nginx.
    let stopped = customers_3.address();
    customers_3.stop();
    let left = [&customers_1, &customers_2];
    demo.wait_for_instances("customers", &left);
    wait_until("nginx.conf to drop the stopped instance", || {
        !nginx.nginx_conf().contains(&format!("server {stopped};"))
    });
    wait_until("nginx to use the two instances left", || {
        nginx.answering("customers", 6) == hostnames(&left)
    });

    // maintenance: customers-2 still runs, but nginx no longer sends it
    // anything: the reload really reached nginx.
    customers_2.client(&["-maintenance", "enable"]);
    demo.wait_for_instances("customers", &[&customers_1]);
    wait_until("nginx to send everything to customers-1", || {
        nginx.answering("customers", 6) == hostnames(&[&customers_1])
    });
    assert_eq!(
        customers_2.answering_directly(),
        Some("customers-2".to_string()),
        "customers-2 is in maintenance, not down"
    );

    for container in [nginx, customers_2, customers_1, sales] {
        container.stop();
    }
    let left = demo.consul.state();
    assert!(
        ["customers", "sales", "nginx"]
            .iter()
            .all(|service| left.passing_instances(service).is_empty()),
        "every service deregistered at shutdown"
    );
}
