//! Robustness of the control socket (docs/control-plane.md) against
//! clients that misbehave, over the real unix socket of a running autopilot:
//! one that sends garbage and stays connected, and one that closes its
//! sending side as soon as its request is out (`nc -N`, `socat` do that).
//! Neither may disturb the others, and the second still gets its answer.

use crate::common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

use common::{wait_until, Autopilot, Mode, Scratch};
use nix::sys::signal::Signal;

/// Sends `request` on a fresh connection, closes the sending side, and reads
/// the whole answer.
fn half_closed_exchange(socket: &std::path::Path, request: &str) -> String {
    let mut stream = UnixStream::connect(socket).expect("connect to the control socket");
    stream.set_read_timeout(Some(common::DEADLINE)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    answer
}

#[test]
fn misbehaving_clients_disturb_nothing_and_half_closed_requests_are_answered() {
    let scratch = Scratch::new();
    let config = scratch.config(r#"{ jobs: [ { name: "idle", exec: ["sleep", "3600"] } ] }"#);
    let autopilot = Autopilot::new(Mode::Subreaper, ["-config", &config])
        .current_dir(scratch.dir())
        .start();
    let socket = scratch.path("control.sock");
    wait_until("the control socket", || {
        UnixStream::connect(&socket).is_ok()
    });

    let mut garbage = UnixStream::connect(&socket).unwrap();
    garbage
        .write_all(b"\x00\xffGARBAGE / HTTP/9\r\nno colon\r\n")
        .unwrap();

    // Answered only when autopilot's supervisor has replied, after the end
    // of the request stream was already read.
    let status = half_closed_exchange(&socket, "GET /v3/status HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(status.starts_with("HTTP/1.1 200 OK"), "{status}");
    assert!(status.contains("\"idle\""), "{status}");
    let ping = half_closed_exchange(&socket, "GET /v3/ping HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        ping.starts_with("HTTP/1.1 200 OK") && ping.ends_with("ok"),
        "{ping}"
    );

    drop(garbage);
    autopilot.signal(Signal::SIGTERM);
    let finished = autopilot.finish();
    assert_eq!(finished.code, 0, "{}", finished.stderr_text());
}
