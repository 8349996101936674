//! What the container tests (tests/docker.rs) are made of: the docker CLI,
//! the containers and networks a test starts (removed when dropped), images
//! built without a registry, the Consul double in a container, compose
//! projects and a terminal of the test's own.
//!
//! Everything here drives Docker from the outside, with the docker CLI, as
//! a user would; nothing reaches into autopilot.

pub(crate) mod catalog;
pub(crate) mod compose;
pub(crate) mod debian;
pub(crate) mod images;
pub(crate) mod terminal;

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a condition may take to come true before the test fails. The
/// engine is slower than `unshare`, and the machine may be busy.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// How often a condition is checked: each check runs the docker CLI.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);

// ---- the docker CLI --------------------------------------------------------

/// Runs `docker ARGS` once a daemon answers.
pub(crate) fn docker(args: &[&str]) -> Output {
    require_daemon();
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run docker: {error}"))
}

/// Runs `docker ARGS`, fails the test unless it succeeds, and returns its
/// trimmed stdout.
pub(crate) fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(
        output.status.success(),
        "docker {} failed ({}):\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Fails the test, saying how to start one, when no Docker daemon answers.
pub(crate) fn require_daemon() {
    static ANSWER: OnceLock<Result<String, String>> = OnceLock::new();
    let answer = ANSWER.get_or_init(|| {
        let output = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("cannot run docker ({error})"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    });
    if let Err(error) = answer {
        panic!(
            "no Docker daemon answers: {error}\n\
             These tests need one. As root: `apt-get install docker.io`, then start it \
             with `dockerd >/var/log/dockerd.log 2>&1 &` (or `systemctl start docker`); \
             .ci/run does both."
        );
    }
}

/// A name no other container, network or project of this run uses.
pub(crate) fn unique_name(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "autopilot-test-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `condition` every [`POLL_INTERVAL`] until it holds; fails the test
/// if it does not within [`DEADLINE`]. Returns how long it took.
pub(crate) fn wait_for(what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < DEADLINE,
            "gave up after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    start.elapsed()
}

// ---- containers -----------------------------------------------------------------

/// A container this test started; removed (with its volumes) when dropped.
pub(crate) struct Container {
    name: String,
}

impl Container {
    /// `docker run --detach --name NAME ARGS`.
    pub(crate) fn run(args: &[&str]) -> Container {
        let container = Container {
            name: unique_name("container"),
        };
        let mut command = vec!["run", "--detach", "--name", &container.name];
        command.extend_from_slice(args);
        docker_ok(&command);
        container
    }

    /// The container named `name` (or with that ID), which something else
    /// starts (compose, an attached `docker run`).
    pub(crate) fn adopt(name: &str) -> Container {
        Container {
            name: name.to_string(),
        }
    }

    /// Everything it wrote, stdout and stderr merged in the order Docker
    /// received it (by Docker's timestamps), without the timestamps.
    pub(crate) fn logs(&self) -> Vec<String> {
        let output = docker(&["logs", "--timestamps", &self.name]);
        let mut lines: Vec<String> = [&output.stdout, &output.stderr]
            .iter()
            .flat_map(|stream| {
                String::from_utf8_lossy(stream)
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        // RFC 3339 with a fixed number of digits: text order is time order.
        lines.sort_by(|a, b| a.split(' ').next().cmp(&b.split(' ').next()));
        lines
            .iter()
            .map(|line| {
                let text = line.split_once(' ').map_or("", |(_, text)| text);
                text.trim_end_matches('\r').to_string()
            })
            .collect()
    }

    pub(crate) fn logs_text(&self) -> String {
        self.logs().join("\n")
    }

    /// Waits until a line of its output contains `text`.
    pub(crate) fn wait_for_output(&self, text: &str) {
        let start = Instant::now();
        while !self.logs().iter().any(|line| line.contains(text)) {
            assert!(
                start.elapsed() < DEADLINE,
                "{} never printed {text:?}; its output:\n{}",
                self.name,
                self.logs_text()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// `docker stop [ARGS]`, timed.
    pub(crate) fn stop(&self, args: &[&str]) -> Duration {
        let mut command = vec!["stop"];
        command.extend_from_slice(args);
        command.push(&self.name);
        let started = Instant::now();
        docker_ok(&command);
        started.elapsed()
    }

    /// `docker kill --signal SIGNAL`.
    pub(crate) fn kill(&self, signal: &str) {
        docker_ok(&["kill", "--signal", signal, &self.name]);
    }

    /// Its exit code, once it has exited (`docker wait`).
    pub(crate) fn exit_code(&self) -> i32 {
        let code = docker_ok(&["wait", &self.name]);
        code.parse()
            .unwrap_or_else(|_| panic!("docker wait answered {code:?}"))
    }

    pub(crate) fn exec(&self, args: &[&str]) -> String {
        let mut command = vec!["exec", &self.name];
        command.extend_from_slice(args);
        docker_ok(&command)
    }

    /// `docker inspect --format TEMPLATE`.
    pub(crate) fn inspect(&self, template: &str) -> String {
        docker_ok(&["inspect", "--format", template, &self.name])
    }

    /// Its address on its (one) network.
    pub(crate) fn ip(&self) -> IpAddr {
        let ip = self.inspect("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}");
        ip.parse()
            .unwrap_or_else(|_| panic!("{} has no single IP address: {ip:?}", self.name))
    }

    pub(crate) fn hostname(&self) -> String {
        self.inspect("{{.Config.Hostname}}")
    }

    /// Follows a container's output (`docker logs --follow`) until it is removed.
    pub(crate) fn follow_logs(&self) -> std::thread::JoinHandle<Vec<String>> {
        let mut child = Command::new("docker")
            .args(["logs", "--follow", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker logs --follow");
        let stderr = child.stderr.take().expect("its stderr");
        std::thread::spawn(move || {
            let lines = BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect();
            let _ = child.wait();
            lines
        })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "--force", "--volumes", &self.name]);
    }
}

/// A user-defined network: its containers find each other by name through
/// Docker's DNS server; removed when dropped (after its containers).
pub(crate) struct Network {
    pub(crate) name: String,
}

impl Network {
    pub(crate) fn create() -> Network {
        let name = unique_name("network");
        docker_ok(&["network", "create", &name]);
        Network { name }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.name]);
    }
}
