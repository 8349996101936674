//! The PID 1 core, end to end (docs/design.md: "Command line", "Exit codes", "PID 1 duties"): the real
//! binary, run as PID 1 of a fresh PID namespace or as a child subreaper,
//! with real processes and real signals. Covers exit codes, reaping,
//! signal forwarding, graceful shutdown, output and stdin passthrough, and
//! the command line of the bare supervisor (no configuration).

use crate::common;

use std::time::Instant;

use autopilot::testing::config::model::DEFAULT_STOP_TIMEOUT as DEFAULT_GRACE;
use autopilot::testing::supervisor::SHUTDOWN_SIGNAL_BURST;
use common::{procfs, send_signal, sh, wait_until, Autopilot, Mode};
use nix::sys::signal::Signal;

/// The tail of a shell APP that reports it is ready, then idles until a
/// signal ends it. It `wait`s on a background `sleep` because a trapped
/// signal interrupts `wait` at once (POSIX) and runs its trap, whereas a
/// foreground `sleep` would delay the trap until the sleep ends.
const READY_THEN_IDLE: &str = "echo ready; while :; do sleep 1000 & wait; done";

/// The signals autopilot passes on to the APP's process group untouched.
const FORWARDED: [Signal; 8] = [
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGHUP,
    Signal::SIGWINCH,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGCONT,
];

fn exit_code_as_pid1(script: &str) -> i32 {
    Autopilot::new(Mode::Pid1, sh(script)).run().code
}

#[test]
fn exit_code_is_the_apps_own() {
    for code in [0, 3] {
        assert_eq!(exit_code_as_pid1(&format!("exit {code}")), code);
    }
}

#[test]
fn app_killed_by_a_signal_gives_128_plus_the_signal_number() {
    assert_eq!(exit_code_as_pid1("kill -KILL $$"), 137);
    assert_eq!(exit_code_as_pid1("kill -TERM $$"), 143);
}

/// The APP (a Perl script, so that forking is fast) leaves 2 000 orphans
/// blocked on a pipe, checks they were all re-parented to PID 1, then closes
/// the pipe so that they all exit at once, and polls the namespace's /proc
/// until nothing but PID 1 and itself is left (no zombie either), for up to
/// 10 s (well within the test's deadline, so that it reports what is left).
/// Exit 0: all reaped; 1: some never were; 3: orphans were not PID 1's.
const MAKE_ORPHANS_AND_CHECK_THEY_ARE_REAPED: &str = r#"
use strict;
use POSIX ();
my $orphans = 2000;
sub others { opendir my $proc, "/proc" or die; grep { /^\d+$/ && $_ != 1 && $_ != $$ } readdir $proc }
sub parent { open my $stat, "<", "/proc/$_[0]/stat" or return -1; (<$stat> =~ /\) \S (\d+)/)[0] }
pipe(my $release, my $hold) or die "pipe: $!";
for (1 .. $orphans) {
    my $child = fork // die "fork: $!";
    if ($child == 0) {
        my $orphan = fork // POSIX::_exit(1);
        if ($orphan == 0) { close $hold; sysread($release, my $byte, 1); POSIX::_exit(0) }
        POSIX::_exit(0);
    }
    waitpid($child, 0);
}
my $adopted = grep { parent($_) == 1 } others();
if ($adopted != $orphans) { print "PID 1 adopted $adopted of $orphans orphans\n"; exit 3 }
close $hold;
my $give_up = time + 10;
while (time < $give_up) {
    exit 0 unless others();
    select undef, undef, undef, 0.01;
}
print scalar(others()), " processes left, zombies included\n";
exit 1;
"#;

#[test]
fn reaps_two_thousand_orphaned_zombies() {
    let finished = Autopilot::new(
        Mode::Pid1,
        ["perl", "-e", MAKE_ORPHANS_AND_CHECK_THEY_ARE_REAPED],
    )
    .run();
    assert_eq!(
        finished.code,
        0,
        "{}{}",
        finished.stdout_text(),
        finished.stderr_text()
    );
}

/// SIGTERM and SIGINT both stop the APP with SIGTERM, and autopilot returns
/// whatever the APP exits with.
#[test]
fn shutdown_signal_reaches_the_app_as_sigterm_and_its_exit_code_is_returned() {
    for shutdown in [Signal::SIGTERM, Signal::SIGINT] {
        let script = format!("trap 'exit 42' TERM; trap 'exit 43' INT; {READY_THEN_IDLE}");
        let mut autopilot = Autopilot::new(Mode::Pid1, sh(&script)).start();
        autopilot.expect_line("ready");
        autopilot.signal(shutdown);
        assert_eq!(autopilot.finish().code, 42, "after {shutdown}");
    }
}

/// An APP that survives SIGTERM, and says so each time it gets one.
fn start_app_that_survives_sigterm() -> common::Running {
    let script = format!("trap 'echo got TERM' TERM; {READY_THEN_IDLE}");
    let mut autopilot = Autopilot::new(Mode::Pid1, sh(&script)).start();
    autopilot.expect_line("ready");
    autopilot
}

#[test]
fn app_surviving_sigterm_is_killed_when_the_grace_period_is_over() {
    let mut autopilot = start_app_that_survives_sigterm();
    let asked_to_stop = Instant::now();
    autopilot.signal(Signal::SIGTERM);
    autopilot.expect_line("got TERM");
    assert_eq!(autopilot.finish().code, 137);
    // The SIGKILL cannot come before the grace period has run out.
    assert!(asked_to_stop.elapsed() >= DEFAULT_GRACE);
}

#[test]
fn second_shutdown_signal_kills_without_waiting_for_the_grace_period() {
    for second in [Signal::SIGTERM, Signal::SIGINT] {
        let mut autopilot = start_app_that_survives_sigterm();
        let asked_to_stop = Instant::now();
        autopilot.signal(Signal::SIGTERM);
        autopilot.expect_line("got TERM");
        // A signal sooner than this would be part of the same burst, the same request.
        std::thread::sleep(SHUTDOWN_SIGNAL_BURST);
        autopilot.signal(second);
        assert_eq!(autopilot.finish().code, 137, "after SIGTERM then {second}");
        // Without the second signal the SIGKILL could only come after the
        // whole grace period (see the test above); the APP reported the first
        // SIGTERM within milliseconds, so anything shorter means it was skipped.
        assert!(
            asked_to_stop.elapsed() < DEFAULT_GRACE,
            "{second} did not cut the grace period short"
        );
    }
}

/// Both the APP and a process it forked (same process group) record each
/// signal named in its arguments. Perl rather than sh: a shell's background job has SIGQUIT ignored
/// and cannot trap it.
const RECORD_FORWARDED_SIGNALS: &str = r#"
$| = 1;
my $who = fork() ? "app" : "grandchild";
for my $name (@ARGV) {
    $SIG{$name} = sub { print "$who got $name\n" };
}
print "$who ready\n";
sleep 1000 while 1;
"#;

/// Reads `count` stdout lines, in whatever order the processes wrote them.
fn next_lines_sorted(autopilot: &mut common::Running, count: usize) -> Vec<String> {
    let mut lines: Vec<String> = (0..count).map(|_| autopilot.next_line()).collect();
    lines.sort();
    lines
}

#[test]
fn other_signals_are_forwarded_to_the_apps_process_group() {
    let names = FORWARDED.map(|signal| &signal.as_str()["SIG".len()..]);
    let app = ["perl", "-e", RECORD_FORWARDED_SIGNALS, "--"]
        .into_iter()
        .chain(names);
    let mut autopilot = Autopilot::new(Mode::Pid1, app).start();
    assert_eq!(
        next_lines_sorted(&mut autopilot, 2),
        ["app ready", "grandchild ready"]
    );
    for (signal, name) in FORWARDED.into_iter().zip(names) {
        autopilot.signal(signal);
        assert_eq!(
            next_lines_sorted(&mut autopilot, 2),
            [format!("app got {name}"), format!("grandchild got {name}")],
            "{signal} was not forwarded to the whole group"
        );
    }
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 128 + Signal::SIGTERM as i32);
}

/// Deterministic bytes that cover every value and are not periodic
/// (xorshift64, low byte of each step).
fn varied_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Explains the first difference without printing megabytes.
fn assert_same_bytes(actual: &[u8], expected: &[u8], stream: &str) {
    let first_difference = actual.iter().zip(expected).position(|(a, b)| a != b);
    assert!(
        actual == expected,
        "{stream}: {} bytes instead of {}, first difference at {first_difference:?}",
        actual.len(),
        expected.len()
    );
}

#[test]
fn stdout_and_stderr_pass_through_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = varied_bytes(50_000_000, 0x9E37_79B9_7F4A_7C15);
    // A different stream, and a length that is no multiple of any buffer size.
    let stderr = varied_bytes(7_000_003, 0xD1B5_4A32_D192_ED03);
    std::fs::write(dir.path().join("out"), &stdout).unwrap();
    std::fs::write(dir.path().join("err"), &stderr).unwrap();
    let finished = Autopilot::new(Mode::Pid1, sh("cat out & cat err >&2; wait"))
        .current_dir(dir.path())
        .run();
    assert_eq!(finished.code, 0);
    assert_same_bytes(&finished.stdout, &stdout, "stdout");
    assert_same_bytes(&finished.stderr, &stderr, "stderr");
}

#[test]
fn app_inherits_stdin() {
    let finished = Autopilot::new(Mode::Pid1, ["cat"])
        .stdin("data\nmore data")
        .run();
    assert_eq!(
        (finished.code, finished.stdout_text().as_str()),
        (0, "data\nmore data")
    );
}

/// When it is not PID 1, autopilot is a child subreaper: an orphan of the
/// APP becomes autopilot's child and is reaped as soon as it ends.
#[test]
fn as_a_subreaper_it_adopts_and_reaps_orphans() {
    let script = "(sleep 1000 >/dev/null 2>&1 & echo $!); echo ready; exec sleep 1000";
    let mut autopilot = Autopilot::new(Mode::Subreaper, sh(script)).start();
    let orphan: i32 = autopilot.next_line().parse().unwrap();
    autopilot.expect_line("ready");
    let supervisor = autopilot.autopilot_pid();
    wait_until("the orphan to be adopted by autopilot", || {
        procfs::parent(orphan) == Some(supervisor)
    });
    send_signal(orphan, Signal::SIGKILL);
    wait_until("autopilot to reap the orphan", || !procfs::exists(orphan));
    let zombies: Vec<i32> = procfs::children(supervisor)
        .into_iter()
        .filter(|&child| !procfs::is_alive(child))
        .collect();
    assert!(
        zombies.is_empty(),
        "autopilot left zombie children: {zombies:?}"
    );
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 143);
}

/// A grandchild that ignores SIGTERM is still killed with the APP's process
/// group once the APP has ended. Tested as a subreaper: as PID 1 the whole
/// namespace would die with autopilot anyway.
#[test]
fn grandchildren_in_the_apps_process_group_are_killed_when_it_ends() {
    let script = format!(
        "(trap '' TERM; exec sleep 1000) >/dev/null 2>&1 & echo $!; trap 'exit 0' TERM; {READY_THEN_IDLE}"
    );
    let mut autopilot = Autopilot::new(Mode::Subreaper, sh(&script)).start();
    let grandchild: i32 = autopilot.next_line().parse().unwrap();
    autopilot.expect_line("ready");
    assert!(procfs::is_alive(grandchild));
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 0);
    wait_until("the grandchild to die", || !procfs::is_alive(grandchild));
}

/// autopilot blocks while nothing happens: no polling loop wakes it up.
#[test]
fn idle_supervisor_never_wakes_up() {
    let mut autopilot = Autopilot::new(Mode::Subreaper, sh("echo ready; exec sleep 1000")).start();
    autopilot.expect_line("ready");
    let supervisor = autopilot.autopilot_pid();
    // The APP's "ready" may come before autopilot has settled into its event loop.
    wait_until("autopilot to block in epoll_wait", || {
        procfs::wait_channel(supervisor).is_some_and(|channel| channel.contains("epoll"))
    });
    let before = procfs::voluntary_context_switches(supervisor);
    // An observation window, not a wait for something to happen.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let after = procfs::voluntary_context_switches(supervisor);
    assert_eq!(after, before, "autopilot woke up while idle");
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 143);
}

#[test]
fn missing_app_exits_127_and_names_it() {
    let finished = Autopilot::new(Mode::Subreaper, ["no-such-app-anywhere"]).run();
    assert_eq!(finished.code, 127);
    assert!(finished.stderr_text().contains("no-such-app-anywhere"));
}

#[test]
fn non_executable_app_exits_126_and_names_it() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_str().unwrap();
    let finished = Autopilot::new(Mode::Subreaper, [path]).run();
    assert_eq!(finished.code, 126);
    assert!(finished.stderr_text().contains(path));
}

#[test]
fn no_app_and_no_config_prints_usage_and_exits_2() {
    let finished = Autopilot::new(Mode::Subreaper, Vec::<&str>::new()).run();
    assert_eq!(finished.code, 2);
    assert!(
        finished.stderr_text().contains("Usage:"),
        "{}",
        finished.stderr_text()
    );
    assert_eq!(finished.stdout_text(), "");
}

#[test]
fn unknown_flag_is_a_usage_error_not_the_app() {
    for flag in ["-bogus", "--bogus", "-bogus=1"] {
        let finished = Autopilot::new(Mode::Subreaper, [flag, "true"]).run();
        assert_eq!(finished.code, 2, "{flag}");
        assert!(
            finished
                .stderr_text()
                .contains("flag provided but not defined: -bogus"),
            "{}",
            finished.stderr_text()
        );
    }
}

#[test]
fn version_flag_in_go_and_gnu_spelling() {
    for flag in ["-version", "--version"] {
        let finished = Autopilot::new(Mode::Subreaper, [flag]).run();
        assert_eq!(finished.code, 0);
        let stdout = finished.stdout_text();
        let hash = stdout
            .strip_prefix(&format!(
                "Version: {}\nGitHash: ",
                env!("CARGO_PKG_VERSION")
            ))
            .and_then(|rest| rest.strip_suffix('\n'))
            .unwrap_or_else(|| panic!("{flag} printed {stdout:?}"));
        // build.rs writes "unknown" when the source is not a git checkout.
        let is_git_hash = (7..=40).contains(&hash.len())
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        assert!(is_git_hash || hash == "unknown", "GitHash {hash:?}");
    }
}

/// Both spellings of `-config` parse and leave the APP to run. (Loading the
/// file belongs to the configuration front end; an empty document is valid.)
#[test]
fn config_flag_in_go_and_gnu_spelling() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "{}").unwrap();
    let path = config.path().to_str().unwrap();
    let go_style = format!("-config={path}");
    for flags in [vec![go_style.as_str()], vec!["--config", path]] {
        let args = flags.iter().copied().chain(sh("exit 7"));
        let finished = Autopilot::new(Mode::Subreaper, args).run();
        assert_eq!(finished.code, 7, "{flags:?}: {}", finished.stderr_text());
    }
}
