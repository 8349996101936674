//! Service discovery end to end against a real etcd (docs/design.md, "Discovery"): a real autopilot
//! advertises a job as a leased key and watches it, from a 3.x configuration and from a
//! 2.x one, both naming `etcd`. Observed through etcd's JSON gateway and the onChange
//! handler's runs.

use crate::common;

use common::etcd::{Etcd, PREFIX};
use common::{wait_until, Autopilot, Mode, Scratch};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// The instance key of the job `web` on host `e1`.
fn web_key() -> String {
    format!("{PREFIX}/web/web-e1")
}

/// Runs `args` (a configuration advertising `web` at 192.0.2.30:8080, healthy while the
/// file `sick` does not exist, and watching `web` with an onChange handler that appends to
/// `changed`) through the whole lifecycle: registered on its first passing check, gone
/// when unhealthy, back when healthy again, gone at shutdown; the handler runs once for
/// each appearance and disappearance.
fn lifecycle(config: &str, app: &[&str]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let etcd = runtime.block_on(Etcd::start());
    let stored = || runtime.block_on(etcd.get_json(&web_key()));
    let scratch = Scratch::new();
    let config = scratch.config(&config.replace("ENDPOINT", &etcd.endpoint));
    let mut args = vec!["-config", config.as_str()];
    args.extend_from_slice(app);
    let autopilot = Autopilot::new(Mode::Subreaper, &args)
        .hostname("e1")
        .current_dir(scratch.dir())
        .start();
    let changes = || scratch.read("changed").lines().count();

    wait_until("web registered", || stored().is_some());
    assert_eq!(
        stored(),
        Some(
            json!({"ID": "web-e1", "Name": "web", "Address": "192.0.2.30", "Port": 8080, "Tags": []})
        )
    );
    wait_until("onChange for the appearance", || changes() == 1);

    scratch.write("sick", "");
    wait_until("web gone while unhealthy", || stored().is_none());
    wait_until("onChange for the disappearance", || changes() == 2);

    std::fs::remove_file(scratch.path("sick")).unwrap();
    wait_until("web back once healthy", || stored().is_some());
    wait_until("onChange for the return", || changes() == 3);

    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 0);
    // The lease (TTL 10 s) was renewed a second ago: only a revocation removes it now.
    assert_eq!(stored(), None::<Value>, "deregistered at shutdown");
    assert_eq!(changes(), 3, "one onChange per change");
}

#[test]
fn a_3x_configuration_with_etcd() {
    lifecycle(
        r#"{
          etcd: { endpoints: ["ENDPOINT"] },
          watches: [ { name: "web", interval: 1 } ],
          jobs: [
            { name: "web", exec: "sleep 1000", port: 8080, interfaces: ["static:192.0.2.30"],
              health: { exec: "test ! -e sick", interval: 1, ttl: 10 } },
            { name: "on-change", exec: ["sh", "-c", "echo run >> changed"],
              when: { source: "watch.web", each: "changed" } },
          ]
        }"#,
        &[],
    );
}

#[test]
fn a_2x_configuration_with_etcd() {
    lifecycle(
        r#"{
          etcd: { endpoints: "ENDPOINT", prefix: "/containerpilot" },
          services: [ { name: "web", port: 8080, interfaces: ["static:192.0.2.30"],
                        health: "test ! -e sick", poll: 1, ttl: 10 } ],
          backends: [ { name: "web", poll: 1, onChange: "sh -c 'echo run >> changed'" } ]
        }"#,
        &["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"],
    );
}
