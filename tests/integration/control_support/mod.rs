//! Shared by the control-plane and telemetry end-to-end tests: a raw
//! HTTP/1.1 client over the control socket (so the tests never depend on
//! autopilot's own client), a raw `/metrics` scraper over TCP, the
//! exposition parsed back, and [`Pilot`]: a running autopilot with a 3.x
//! configuration, its socket and its telemetry port.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;

use nix::sys::signal::Signal;
use serde_json::Value;

pub use crate::common::free_port;
use crate::common::{self, wait_until, Autopilot, Finished, Mode, Running, Scratch, DEADLINE};

/// A status code and body, as the server sent them.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("{error}: not JSON: {:?}", self.body))
    }
}

/// Sends `request` as it is and reads until the server closes the
/// connection. The request is written from a thread, so a server that
/// answers before reading everything (413) cannot block the test.
pub fn exchange(stream: UnixStream, request: Vec<u8>) -> Vec<u8> {
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone the stream");
    // The server may hang up before it has read everything: that is its answer.
    let _writing = thread::spawn(move || writer.write_all(&request));
    let mut answer = Vec::new();
    let mut stream = stream;
    if let Err(error) = stream.read_to_end(&mut answer) {
        panic!(
            "reading the answer: {error}; so far {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    answer
}

/// One request on a fresh connection (`Connection: close`).
pub fn call(socket: &Path, method: &str, path: &str, body: &str) -> Reply {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: control\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    parse_reply(&exchange(connect(socket), request.into_bytes()))
}

pub fn connect(socket: &Path) -> UnixStream {
    UnixStream::connect(socket)
        .unwrap_or_else(|error| panic!("connect to {}: {error}", socket.display()))
}

/// Parses an HTTP/1.1 response whose body ends where the connection does;
/// checks `Content-Length` against it.
pub fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length").then(|| {
            value
                .trim()
                .parse::<usize>()
                .expect("a numeric Content-Length")
        })
    });
    if let Some(length) = length {
        assert_eq!(length, body.len(), "Content-Length of {text:?}");
    }
    Reply {
        status,
        body: body.to_string(),
    }
}

/// `GET /metrics` on 127.0.0.1:`port`, parsed into `series → value`
/// (`name{label="x",...}` exactly as exposed).
pub fn scrape(port: u16) -> HashMap<String, f64> {
    exposition(&scrape_text(port))
}

/// `GET /metrics` on 127.0.0.1:`port`: the exposition as text.
pub fn scrape_text(port: u16) -> String {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .unwrap_or_else(|error| panic!("connect to 127.0.0.1:{port}: {error}"));
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("the scrape answer");
    let reply = parse_reply(&answer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// The Prometheus text exposition parsed back; every sample line must be
/// `series value`.
pub fn exposition(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample: {line:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number in {line:?}"));
            (series.to_string(), value)
        })
        .collect()
}

/// The autopilot binary run as a client command in `dir`, with no
/// configuration from the environment except `env`.
pub fn client(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(common::binary())
        .args(args)
        .env_remove("CONTAINERPILOT")
        .env_remove("CONTAINERBUDDY")
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run the autopilot client")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running autopilot (a child subreaper, in its scratch directory) with a
/// 3.x configuration, its own control socket and telemetry on a loopback port.
pub struct Pilot {
    pub scratch: Scratch,
    pub running: Running,
    pub config: String,
    pub socket: PathBuf,
    pub port: u16,
}

impl Pilot {
    /// Starts autopilot with `jobs` (the inside of `jobs: [...]`) and the
    /// user `metrics` (the inside of `telemetry.metrics: [...]`); returns once
    /// the control socket accepts connections.
    pub fn start(jobs: &str, metrics: &str) -> Pilot {
        Self::start_in(Scratch::new(), |port| {
            Self::config_text(port, "", jobs, metrics)
        })
    }

    /// Starts autopilot in `scratch` with the configuration `config` makes
    /// for the telemetry port it is given (without `control`, which
    /// [`Scratch::config`] adds).
    pub fn start_in(scratch: Scratch, config: impl FnOnce(u16) -> String) -> Pilot {
        let port = free_port();
        let config = scratch.config(&config(port));
        let running = Autopilot::new(Mode::Subreaper, ["-config", &config])
            .current_dir(scratch.dir())
            .start();
        let socket = scratch.path("control.sock");
        wait_until("the control socket to accept connections", || {
            UnixStream::connect(&socket).is_ok()
        });
        Pilot {
            scratch,
            running,
            config,
            socket,
            port,
        }
    }

    /// A 3.x configuration: telemetry on `port` of the loopback interface with
    /// `metrics`, the top-level sections in `extra` (each followed by a comma),
    /// and `jobs`.
    pub fn config_text(port: u16, extra: &str, jobs: &str, metrics: &str) -> String {
        format!(
            r#"{{
              telemetry: {{ port: {port}, interfaces: ["lo"], metrics: [ {metrics} ] }},
              {extra}
              jobs: [ {jobs} ],
            }}"#
        )
    }

    /// Replaces the configuration file (same socket), e.g. before a reload.
    pub fn rewrite_config(&self, text: &str) {
        assert_eq!(self.scratch.config(text), self.config);
    }

    pub fn call(&self, method: &str, path: &str, body: &str) -> Reply {
        call(&self.socket, method, path, body)
    }

    pub fn status(&self) -> Value {
        let reply = self.call("GET", "/v3/status", "");
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    /// The status entry of job `name`.
    pub fn job(&self, name: &str) -> Value {
        let status = self.status();
        status["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|job| job["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no job {name:?} in {status}"))
    }

    /// The pid of job `name`, once it runs.
    pub fn running_pid(&self, name: &str) -> i64 {
        let mut pid = None;
        wait_until(&format!("job {name} to run"), || {
            let job = self.job(name);
            pid = job["pid"].as_i64().filter(|_| job["state"] == "running");
            pid.is_some()
        });
        pid.expect("found by wait_until")
    }

    pub fn metrics(&self) -> HashMap<String, f64> {
        scrape(self.port)
    }

    /// Waits until `/metrics` shows `series` with `value`.
    pub fn wait_for_metric(&self, series: &str, value: f64) {
        let mut seen = None;
        let what = format!("{series} to be {value}");
        wait_until(&what, || {
            seen = self.metrics().get(series).copied();
            seen == Some(value)
        });
    }

    /// Runs the client command `args` against this autopilot (`-config`).
    pub fn client(&self, args: &[&str]) -> Output {
        let mut all = vec!["-config", self.config.as_str()];
        all.extend_from_slice(args);
        client(self.scratch.dir(), &all, &[])
    }

    /// Like [`Pilot::client`], and checks that it succeeded; returns stdout.
    pub fn client_ok(&self, args: &[&str]) -> String {
        let output = self.client(args);
        assert!(
            output.status.success(),
            "{args:?} failed: {}{}",
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    }

    /// SIGTERM, then waits for autopilot to exit.
    pub fn stop(self) -> Finished {
        self.running.signal(Signal::SIGTERM);
        let finished = self.running.finish();
        assert!(!self.socket.exists(), "the socket file is removed at exit");
        finished
    }
}
