//! A real etcd server (Debian's `etcd-server`, 3.4) for the tests of the etcd backend:
//! started on free ports of a loopback address of its own with a temporary data directory, killed (and its data
//! removed) on drop. Its JSON gateway is also how tests look behind autopilot's back.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autopilot::testing::config::model::EtcdConfig;
use autopilot::testing::discovery::Discovery;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{free_port_on, DEADLINE};

/// The key prefix autopilot uses by default.
pub const PREFIX: &str = "/containerpilot";

/// A running etcd, killed (and its data removed) on drop.
pub struct Etcd {
    child: Child,
    /// The client URL, e.g. `http://127.0.0.1:2379`.
    pub endpoint: String,
    data: tempfile::TempDir,
}

impl Etcd {
    pub async fn start() -> Etcd {
        let data = tempfile::tempdir().unwrap();
        // A loopback address of its own: a port picked free there cannot be
        // taken meanwhile by a test that listens on 127.0.0.1.
        let host = private_loopback_address();
        let (client, peer) = (free_port_on(&host), free_port_on(&host));
        let client_url = format!("http://{host}:{client}");
        let peer_url = format!("http://{host}:{peer}");
        let log = std::fs::File::create(data.path().join("etcd.log")).unwrap();
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(data.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run etcd ({error}): these tests need the real etcd server; \
                     install it with `apt-get install etcd-server` (.ci/run does)"
                )
            });
        let mut etcd = Etcd {
            child,
            endpoint: client_url,
            data,
        };
        etcd.wait_until_healthy().await;
        etcd
    }

    async fn wait_until_healthy(&mut self) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(format!("{}/health", self.endpoint)).send().await {
                if response.text().await.unwrap_or_default().contains("true") {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("etcd exited with {status}:\n{}", self.log());
            }
            assert!(
                started.elapsed() < DEADLINE,
                "etcd never became healthy:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("etcd.log")).unwrap_or_default()
    }

    /// Stops the server without killing it (SIGSTOP): a hung etcd, connections open.
    pub fn pause(&self) {
        super::send_signal(self.child.id() as i32, nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        super::send_signal(self.child.id() as i32, nix::sys::signal::Signal::SIGCONT);
    }

    /// autopilot's etcd backend, talking to this server with the default prefix.
    pub fn discovery(&self) -> Discovery {
        Discovery::etcd(&EtcdConfig {
            endpoints: vec![self.endpoint.clone()],
            prefix: PREFIX.to_string(),
        })
        .unwrap()
    }

    /// A raw call to the JSON gateway, to look behind the backend's back.
    pub async fn gateway(&self, path: &str, body: Value) -> Value {
        reqwest::Client::new()
            .post(format!("{}{path}", self.endpoint))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The key-value entry at `key` as the gateway returns it (`key`, `value` in base64,
    /// `lease`, ...), if the key exists.
    pub async fn get(&self, key: &str) -> Option<Value> {
        let answer = self
            .gateway("/v3/kv/range", json!({ "key": BASE64.encode(key) }))
            .await;
        answer["kvs"]
            .as_array()
            .and_then(|kvs| kvs.first())
            .cloned()
    }

    /// Waits until the server has at least `count` watchers (its
    /// `etcd_debugging_mvcc_watcher_total`): a client's watch is in place.
    pub async fn wait_for_watchers(&self, count: u64) {
        let started = Instant::now();
        let mut seen = None;
        while seen < Some(count) {
            assert!(
                started.elapsed() < DEADLINE,
                "etcd never had {count} watchers (last seen: {seen:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            let metrics = reqwest::get(format!("{}/metrics", self.endpoint)).await;
            let text = match metrics {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => continue,
            };
            seen = text
                .lines()
                .find_map(|line| line.strip_prefix("etcd_debugging_mvcc_watcher_total "))
                .and_then(|value| value.trim().parse::<f64>().ok())
                .map(|value| value as u64);
        }
    }

    /// The JSON value stored at `key`, if the key exists.
    pub async fn get_json(&self, key: &str) -> Option<Value> {
        let entry = self.get(key).await?;
        let bytes = BASE64.decode(entry["value"].as_str()?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A random address in 127.0.0.0/8 other than 127.0.0.1.
fn private_loopback_address() -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id().rotate_left(16);
    let [_, a, b, c] = seed.to_be_bytes();
    format!("127.{}.{}.{}", a.max(1), b, c.max(2))
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
