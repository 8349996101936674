//! Robustness under signal floods (docs/design.md, "Performance targets"): autopilot as PID 1 of
//! its own PID namespace survives a storm of SIGTERMs and a flood of SIGCHLDs
//! from thousands of orphans, shuts down cleanly with the right exit code,
//! and leaves no zombie behind.
//!
//! Zombies are looked for from the host: every process of the namespace is a
//! descendant of autopilot's host pid, and an orphan is re-parented to
//! autopilot, so "autopilot's only child is the APP" means every orphan has
//! been reaped (a zombie stays listed as a child until it is).

use crate::common;

use std::thread;
use std::time::Duration;

use common::{procfs, sh, wait_until, Autopilot, Mode, Scratch};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Signals in the SIGTERM storm.
const STORM_SIGNALS: usize = 100;
/// The gap between two signals of the storm: 100 signals in about 100 ms.
const STORM_GAP: Duration = Duration::from_millis(1);
/// Orphans the job of the SIGCHLD flood leaves to autopilot.
const FLOOD_ORPHANS: usize = 5_000;

/// autopilot's children that are zombies.
fn zombie_children(autopilot: i32) -> Vec<i32> {
    procfs::children(autopilot)
        .into_iter()
        .filter(|&pid| procfs::state(pid) == Some('Z'))
        .collect()
}

/// Waits until the APP (`app`) is autopilot's only child: every orphan has
/// exited and been reaped.
fn wait_for_only_child(autopilot: i32, app: i32) {
    wait_until("every orphan to be reaped", || {
        procfs::children(autopilot) == [app]
    });
    assert!(zombie_children(autopilot).is_empty());
}

fn assert_no_panic(output: &common::Finished) {
    let all = format!("{}{}", output.stdout_text(), output.stderr_text());
    assert!(!all.contains("panic"), "autopilot panicked:\n{all}");
}

/// The APP of the storm: on SIGTERM it reports, cleans up (which leaves 50
/// orphans to autopilot while the storm goes on), waits for the test to let
/// it go, and exits 42.
const CLEANS_UP_ON_TERM: &str = r#"
on_term() {
    echo terminating
    i=0
    while [ $i -lt 50 ]; do ( sleep 0.01 & ); i=$((i + 1)); done
    echo cleaned up
    while [ ! -e release ]; do sleep 0.01; done
    exit 42
}
trap on_term TERM
echo ready
while :; do sleep 1000 & wait; done
"#;

#[test]
fn sigterm_storm_is_one_graceful_shutdown() {
    let scratch = Scratch::new();
    let mut autopilot = Autopilot::new(Mode::Pid1, sh(CLEANS_UP_ON_TERM))
        .current_dir(scratch.dir())
        .start();
    autopilot.expect_line("ready");
    let pid = autopilot.autopilot_pid();
    let app = procfs::children(pid)[0];
    for sent in 0..STORM_SIGNALS {
        if kill(Pid::from_raw(pid), Signal::SIGTERM).is_err() {
            panic!("autopilot exited after {sent} of the storm's signals");
        }
        thread::sleep(STORM_GAP);
    }
    autopilot.expect_line("terminating");
    autopilot.expect_line("cleaned up");
    // The storm was one request to stop: the APP got to clean up, was not
    // killed, and its orphans were all reaped while it did.
    assert!(
        procfs::is_alive(app),
        "the APP was killed during its cleanup"
    );
    wait_for_only_child(pid, app);
    scratch.write("release", "");
    let finished = autopilot.finish();
    assert_eq!(finished.code, 42, "the APP's own exit code");
    assert_eq!(finished.stdout_text(), "", "the APP stopped once");
    assert_no_panic(&finished);
}

/// A job that forks [`FLOOD_ORPHANS`] short-lived children, each in a
/// subshell that exits at once, so every child is an orphan that autopilot
/// reaps (one SIGCHLD each), then exits 0.
fn orphan_flood_config(scratch: &Scratch) -> String {
    scratch.config(&format!(
        r#"{{
          logging: {{ level: "WARN" }},
          jobs: [{{
            name: "forker",
            exec: ["sh", "-c", "i=0; while [ $i -lt {FLOOD_ORPHANS} ]; do ( true & ); i=$((i + 1)); done; echo done >> log"],
          }}],
        }}"#
    ))
}

#[test]
fn sigchld_flood_leaves_the_app_running_and_no_zombie() {
    let scratch = Scratch::new();
    let config = orphan_flood_config(&scratch);
    let app = "trap 'exit 42' TERM; echo ready; while :; do sleep 1000 & wait; done";
    let mut autopilot = Autopilot::new(Mode::Pid1, ["-config", &config, "--", "sh", "-c", app])
        .current_dir(scratch.dir())
        .start();
    autopilot.expect_line("ready");
    let pid = autopilot.autopilot_pid();
    let app_pid = procfs::children(pid)
        .into_iter()
        .find(|&child| procfs::command_line(child).last().map(String::as_str) == Some(app))
        .expect("the APP runs");
    scratch.wait_for_lines(&["done"]);
    assert!(procfs::is_alive(app_pid), "the APP died in the flood");
    // The job has exited, so the APP is the only child left once the last
    // orphans are reaped.
    wait_for_only_child(pid, app_pid);
    autopilot.signal(Signal::SIGTERM);
    let finished = autopilot.finish();
    assert_eq!(finished.code, 42, "the APP's own exit code");
    assert_eq!(finished.stdout_text(), "", "the APP started once");
    assert_no_panic(&finished);
}
