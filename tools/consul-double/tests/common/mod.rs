//! Shared helpers for the double's HTTP tests: a small blocking client that talks to the
//! double over real HTTP, and registration bodies as autopilot sends them.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use consul_double::{Config, ConsulDouble, Control};
use serde_json::{json, Value};

/// Generous deadline for conditions that normally hold within milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub fn start() -> ConsulDouble {
    start_with(Config::default())
}

pub fn start_with(config: Config) -> ConsulDouble {
    ConsulDouble::start(config).expect("the double starts")
}

/// A status, the `X-Consul-Index` header and the body of one answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub index: Option<u64>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts the status and the exact body text (Consul's error answers are text).
    pub fn assert_text(&self, status: u16, body: &str) {
        assert_eq!((self.status, self.body.as_str()), (status, body));
    }

    /// The `Service.ID`s of a `/v1/health/service` answer.
    pub fn instance_ids(&self) -> Vec<String> {
        self.json()
            .as_array()
            .expect("an array")
            .iter()
            .map(|entry| entry["Service"]["ID"].as_str().unwrap().to_string())
            .collect()
    }
}

pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
    token: Option<String>,
}

impl Client {
    pub fn new(double: &Control) -> Self {
        Client::with_timeout(double, Duration::from_secs(30))
    }

    pub fn with_timeout(double: &Control, timeout: Duration) -> Self {
        Client {
            base: double.url(),
            http: reqwest::blocking::Client::builder()
                .timeout(timeout)
                .build()
                .unwrap(),
            token: None,
        }
    }

    /// Sends this token in `X-Consul-Token` from now on.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    pub fn get(&self, path: &str) -> Answer {
        self.try_get(path).expect("GET answered")
    }

    pub fn try_get(&self, path: &str) -> Result<Answer, reqwest::Error> {
        self.send(self.http.get(self.url(path)))
    }

    pub fn put(&self, path: &str, body: &Value) -> Answer {
        self.try_put(path, body).expect("PUT answered")
    }

    pub fn try_put(&self, path: &str, body: &Value) -> Result<Answer, reqwest::Error> {
        self.send(self.http.put(self.url(path)).json(body))
    }

    /// A PUT without a body, as the pass/warn/fail, deregister and maintenance calls are.
    pub fn put_empty(&self, path: &str) -> Answer {
        self.send(self.http.put(self.url(path)))
            .expect("PUT answered")
    }

    /// A PUT whose body is `body` as is (a KV value).
    pub fn put_raw(&self, path: &str, body: &str) -> Answer {
        self.send(self.http.put(self.url(path)).body(body.to_string()))
            .expect("PUT answered")
    }

    pub fn delete(&self, path: &str) -> Answer {
        self.send(self.http.delete(self.url(path)))
            .expect("DELETE answered")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> Result<Answer, reqwest::Error> {
        let request = match &self.token {
            Some(token) => request.header("X-Consul-Token", token),
            None => request,
        };
        let response = request.send()?;
        let status = response.status().as_u16();
        let index = response
            .headers()
            .get("X-Consul-Index")
            .map(|value| value.to_str().unwrap().parse().unwrap());
        Ok(Answer {
            status,
            index,
            body: response.text()?,
        })
    }
}

/// A registration with one TTL check, as autopilot sends it.
pub fn ttl_service(id: &str, name: &str, ttl: &str, status: &str) -> Value {
    json!({
        "ID": id,
        "Name": name,
        "Tags": [],
        "Port": 8080,
        "Address": "10.0.0.5",
        "EnableTagOverride": false,
        "Check": {"TTL": ttl, "Status": status, "Notes": "TTL for app"},
    })
}

/// Registers a service with a passing 30 s TTL check, asserting success.
pub fn register_passing(client: &Client, id: &str, name: &str) {
    let answer = client.put(
        "/v1/agent/service/register",
        &ttl_service(id, name, "30s", "passing"),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// Starts `GET <route>?index=<index>&<params>` on another thread and waits until the double
/// reports it blocked; its answer arrives on the returned channel.
pub fn blocking_query(
    consul: &Control,
    route: &str,
    index: u64,
    params: &str,
) -> mpsc::Receiver<Answer> {
    let (sender, receiver) = mpsc::channel();
    let client = Client::new(consul);
    let path = format!("{route}?index={index}&{params}");
    thread::spawn(move || {
        let _ = sender.send(client.get(&path));
    });
    consul
        .wait_for_request(DEADLINE, |r| {
            r.path == route && r.blocked && r.query_values("index") == [index.to_string()]
        })
        .expect("the query blocks");
    receiver
}
