//! The PID 1 core, end to end (docs/design.md: "Command line", "Exit codes", "PID 1 duties"): the real
//! binary, run as PID 1 of a fresh PID namespace or as a child subreaper,
//! with real processes and real signals. Covers exit codes, reaping,
//! signal forwarding, graceful shutdown, output and stdin passthrough, and
//! the command line of the bare supervisor (no configuration).

use crate::common;

use std::time::{Duration, Instant};

use autopilot::testing::config::model::{DEFAULT_STOP_TIMEOUT, WRAP_KILL_TIMEOUT};
use autopilot::testing::supervisor::SHUTDOWN_SIGNAL_BURST;
use common::{procfs, send_signal, sh, wait_until, Autopilot, Mode, Scratch};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The tail of a shell APP that reports it is ready, then idles until a
/// signal ends it. It `wait`s on a background `sleep` because a trapped
/// signal interrupts `wait` at once (POSIX) and runs its trap, whereas a
/// foreground `sleep` would delay the trap until the sleep ends.
const READY_THEN_IDLE: &str = "echo ready; while :; do sleep 1000 & wait; done";

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

/// In wrap mode the APP gets the signal that asked autopilot to stop (as
/// with tini), and autopilot returns whatever the APP exits with.
#[test]
fn wrapped_app_gets_the_signal_that_asked_for_the_stop() {
    for (shutdown, code) in [(Signal::SIGTERM, 42), (Signal::SIGINT, 43)] {
        let script = format!("trap 'exit 42' TERM; trap 'exit 43' INT; {READY_THEN_IDLE}");
        let mut autopilot = Autopilot::new(Mode::Pid1, sh(&script)).start();
        autopilot.expect_line("ready");
        autopilot.signal(shutdown);
        assert_eq!(autopilot.finish().code, code, "after {shutdown}");
    }
}

/// A configuration that only keeps autopilot's log lines off the APP's stdout.
const QUIET_CONFIG: &str = r#"{logging: {level: "ERROR"}}"#;

/// With a configuration, ContainerPilot's way: SIGINT stops the APP with its
/// stop signal (SIGTERM).
#[test]
fn with_a_configuration_sigint_stops_the_app_with_sigterm() {
    let script = format!("trap 'exit 42' TERM; trap 'exit 43' INT; {READY_THEN_IDLE}");
    let args = ["-config", QUIET_CONFIG].into_iter().chain(sh(&script));
    let mut autopilot = Autopilot::new(Mode::Pid1, args).start();
    autopilot.expect_line("ready");
    autopilot.signal(Signal::SIGINT);
    assert_eq!(autopilot.finish().code, 42);
}

/// An APP that survives SIGTERM, and says so each time it gets one.
fn start_app_that_survives_sigterm(flags: &[&str]) -> common::Running {
    let script = format!("trap 'echo got TERM' TERM; {READY_THEN_IDLE}");
    let args = flags.iter().copied().chain(sh(&script));
    let mut autopilot = Autopilot::new(Mode::Pid1, args).start();
    autopilot.expect_line("ready");
    autopilot
}

/// Wrap mode's default kill timeout, for real: a `docker stop` (10 s grace)
/// leaves the APP 8 s, and autopilot kills it and exits itself before Docker would.
#[test]
fn app_surviving_sigterm_is_killed_when_the_kill_timeout_is_over() {
    let mut autopilot = start_app_that_survives_sigterm(&[]);
    let asked_to_stop = Instant::now();
    autopilot.signal(Signal::SIGTERM);
    autopilot.expect_line("got TERM");
    assert_eq!(autopilot.finish().code, 137);
    // The SIGKILL cannot come before the kill timeout has run out.
    let waited = asked_to_stop.elapsed();
    assert!(waited >= WRAP_KILL_TIMEOUT, "killed after {waited:?}");
    assert!(waited < DOCKER_STOP_GRACE, "killed after {waited:?}");
}

/// `docker stop`'s default grace period, after which Docker kills PID 1.
const DOCKER_STOP_GRACE: Duration = Duration::from_secs(10);

#[test]
fn second_shutdown_signal_with_a_configuration_kills_without_waiting() {
    for second in [Signal::SIGTERM, Signal::SIGINT] {
        let mut autopilot = start_app_that_survives_sigterm(&["-config", QUIET_CONFIG]);
        let asked_to_stop = Instant::now();
        autopilot.signal(Signal::SIGTERM);
        autopilot.expect_line("got TERM");
        // A signal sooner than this would be part of the same burst, the same request.
        std::thread::sleep(SHUTDOWN_SIGNAL_BURST);
        autopilot.signal(second);
        assert_eq!(autopilot.finish().code, 137, "after SIGTERM then {second}");
        // Without the second signal the SIGKILL could only come after the
        // whole kill timeout; the APP reported the first SIGTERM within
        // milliseconds, so anything shorter means it was skipped.
        assert!(
            asked_to_stop.elapsed() < DEFAULT_STOP_TIMEOUT,
            "{second} did not cut the kill timeout short"
        );
    }
}

/// Ctrl-C at an interactive `docker run -it`, twice: in wrap mode the APP
/// gets SIGINT each time, as with tini. Signals within the burst window are
/// one request and reach the APP once.
#[test]
fn repeated_sigint_in_wrap_mode_reaches_the_app_once_per_request() {
    let script =
        format!("n=0; trap 'n=$((n+1)); echo INT $n; [ $n = 2 ] && exit 5' INT; {READY_THEN_IDLE}");
    let mut autopilot = Autopilot::new(Mode::Pid1, sh(&script)).start();
    autopilot.expect_line("ready");
    autopilot.signal(Signal::SIGINT);
    autopilot.signal(Signal::SIGINT);
    autopilot.expect_line("INT 1");
    // A signal sooner than this would be part of the same burst, the same request.
    std::thread::sleep(SHUTDOWN_SIGNAL_BURST);
    autopilot.signal(Signal::SIGINT);
    let finished = autopilot.finish();
    assert_eq!(
        (finished.code, finished.stdout_text().as_str()),
        (5, "INT 2\n"),
        "{}",
        finished.stderr_text()
    );
}

/// One run of the wrapped `script` with stop `flags` and an environment
/// `variable` (name, value), and what is expected of it.
struct StopCase<'a, T> {
    flags: &'a [&'a str],
    variable: Option<(&'a str, &'a str)>,
    expected: T,
}

impl<T> StopCase<'_, T> {
    fn autopilot(&self, mode: Mode, script: &str) -> Autopilot {
        let args = self.flags.iter().copied().chain(sh(script));
        let autopilot = Autopilot::new(mode, args);
        match self.variable {
            Some((name, value)) => autopilot.env(name, value),
            None => autopilot,
        }
    }

    fn describe(&self) -> String {
        format!("{:?} {:?}", self.flags, self.variable)
    }
}

const fn case<'a, T>(
    flags: &'a [&'a str],
    variable: Option<(&'a str, &'a str)>,
    expected: T,
) -> StopCase<'a, T> {
    StopCase {
        flags,
        variable,
        expected,
    }
}

/// `-kill-timeout` and `AUTOPILOT_KILL_TIMEOUT` (the flag wins) give an APP
/// that takes its time to stop what it needs.
#[test]
fn kill_timeout_flag_and_variable_give_the_app_more_time() {
    const SLOW_STOP: &str =
        "trap 'sleep 2; exit 3' TERM; echo ready; while :; do sleep 1000 & wait; done";
    const VARIABLE: &str = "AUTOPILOT_KILL_TIMEOUT";
    let cases = [
        case(&["-kill-timeout", "20s"], None, 3),
        case(&[], Some((VARIABLE, "20")), 3),
        case(&["--kill-timeout=1s"], Some((VARIABLE, "20s")), 137),
    ];
    for case in cases {
        let mut autopilot = case.autopilot(Mode::Pid1, SLOW_STOP).start();
        autopilot.expect_line("ready");
        let asked_to_stop = Instant::now();
        autopilot.signal(Signal::SIGTERM);
        let finished = autopilot.finish();
        let what = case.describe();
        assert_eq!(
            finished.code,
            case.expected,
            "{what}: {}",
            finished.stderr_text()
        );
        if case.expected == 3 {
            assert!(asked_to_stop.elapsed() >= Duration::from_secs(2), "{what}");
        }
    }
}

/// `-stop-signal` and `AUTOPILOT_STOP_SIGNAL` choose what the APP gets,
/// whatever asked autopilot to stop.
#[test]
fn stop_signal_flag_and_variable_choose_the_apps_signal() {
    let script =
        format!("trap 'exit 40' TERM; trap 'exit 41' QUIT; trap 'exit 42' USR1; {READY_THEN_IDLE}");
    const VARIABLE: &str = "AUTOPILOT_STOP_SIGNAL";
    let cases = [
        case(&["-stop-signal", "SIGQUIT"], None, 41),
        case(&[], Some((VARIABLE, "usr1")), 42),
        case(&["-stop-signal=3"], Some((VARIABLE, "USR1")), 41),
    ];
    for case in cases {
        let mut autopilot = case.autopilot(Mode::Pid1, &script).start();
        autopilot.expect_line("ready");
        autopilot.signal(Signal::SIGINT);
        assert_eq!(
            autopilot.finish().code,
            case.expected,
            "{}",
            case.describe()
        );
    }
}

/// A bad value is refused before the APP runs, naming the flag or variable.
#[test]
fn bad_stop_flags_and_variables_are_refused_before_anything_runs() {
    let scratch = Scratch::new();
    let marker = scratch.path("ran");
    let touch = format!("touch {}", marker.display());
    let cases = [
        case(
            &["-kill-timeout", "soon"],
            None,
            "-kill-timeout: time: invalid duration \"soon\"",
        ),
        case(
            &[],
            Some(("AUTOPILOT_KILL_TIMEOUT", "-5")),
            "environment variable AUTOPILOT_KILL_TIMEOUT",
        ),
        case(
            &["-stop-signal", "SIGNOPE"],
            None,
            "-stop-signal: \"SIGNOPE\" is not a signal",
        ),
        case(
            &[],
            Some(("AUTOPILOT_STOP_SIGNAL", "99")),
            "environment variable AUTOPILOT_STOP_SIGNAL: \"99\"",
        ),
    ];
    for case in cases {
        let finished = case.autopilot(Mode::Subreaper, &touch).run();
        let what = case.describe();
        assert_eq!(finished.code, 2, "{what}");
        assert!(
            finished.stderr_text().contains(case.expected),
            "{what}: {}",
            finished.stderr_text()
        );
        assert!(!marker.exists(), "the APP ran despite {what}");
    }
}

/// The signals autopilot passes on to the APP's process group untouched: every
/// catchable signal but SIGTERM/SIGINT (a stop) and those an init keeps
/// (faults, SIGTTIN/SIGTTOU, SIGCHLD). SIGCONT follows SIGTSTP, which stops
/// the recording APP.
const FORWARDED: [Signal; 17] = [
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGSTKFLT,
    Signal::SIGTSTP,
    Signal::SIGCONT,
    Signal::SIGURG,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGWINCH,
    Signal::SIGIO,
    Signal::SIGPWR,
];

/// The APP of the signal tests: it and a process it forks (same process
/// group) append `app NAME` / `grandchild NAME` to the file named by its
/// first argument for each signal named in the others, then act as the
/// default action would for SIGTSTP (stop, from the main loop: Perl blocks
/// a signal while its handler runs) and SIGINT/SIGTERM (exit 128 + N).
/// Perl rather than sh: a shell's background job has SIGQUIT ignored and
/// cannot trap it.
const RECORD_SIGNALS: &str = r#"
use POSIX ();
my $file = shift @ARGV;
my $who = fork() ? "app" : "grandchild";
my $stop = 0;
sub record { open my $out, ">>", $file or die "$file: $!"; print $out "$who $_[0]\n"; close $out }
for my $name (@ARGV) {
    $SIG{$name} = sub {
        record($name);
        $stop = 1 if $name eq "TSTP";
        POSIX::_exit(128 + POSIX->can("SIG$name")->()) if $name eq "INT" || $name eq "TERM";
    };
}
record("ready");
while (1) {
    select undef, undef, undef, 0.05;
    if ($stop) { $stop = 0; local $SIG{TSTP} = "DEFAULT"; kill "TSTP", $$ }
}
"#;

fn signal_name(signal: Signal) -> &'static str {
    &signal.as_str()["SIG".len()..]
}

/// The recording APP's command line: the lines go to `record`.
fn recording_app<'a>(record: &'a str, signals: &'a [Signal]) -> Vec<&'a str> {
    ["perl", "-e", RECORD_SIGNALS, record]
        .into_iter()
        .chain(signals.iter().map(|signal| signal_name(*signal)))
        .collect()
}

/// Waits until both the APP and its grandchild recorded `what`.
fn wait_until_recorded(scratch: &Scratch, what: &str) {
    wait_until_recorded_by(scratch, &["app", "grandchild"], what);
}

fn wait_until_recorded_by(scratch: &Scratch, recorders: &[&str], what: &str) {
    wait_until(&format!("{recorders:?} to record {what}"), || {
        let lines = scratch.read("signals");
        recorders
            .iter()
            .all(|who| lines.lines().any(|line| line == format!("{who} {what}")))
    });
}

/// Sends each of [`FORWARDED`] through `send` and checks the APP's whole
/// group recorded it; `init` is autopilot's (or the control init's) pid.
fn assert_every_signal_reaches_the_group(scratch: &Scratch, init: i32, stops_with_the_app: bool) {
    wait_until_recorded(scratch, "ready");
    for signal in FORWARDED {
        send_signal(init, signal);
        wait_until_recorded(scratch, signal_name(signal));
        if signal == Signal::SIGTSTP {
            let expected = if stops_with_the_app { 'T' } else { 'S' };
            wait_until("the init's state after the APP stopped", || {
                procfs::state(init) == Some(expected)
            });
        }
    }
}

#[test]
fn every_catchable_signal_reaches_the_apps_process_group() {
    for mode in [Mode::Pid1, Mode::Subreaper] {
        let scratch = Scratch::new();
        let record = scratch.path("signals");
        let record = record.to_str().unwrap();
        let autopilot = Autopilot::new(mode, recording_app(record, &FORWARDED)).start();
        // As PID 1 autopilot cannot be stopped; otherwise it stops with the APP.
        let stops = mode == Mode::Subreaper;
        assert_every_signal_reaches_the_group(&scratch, autopilot.autopilot_pid(), stops);
        autopilot.signal(Signal::SIGTERM);
        assert_eq!(
            autopilot.finish().code,
            128 + Signal::SIGTERM as i32,
            "{mode:?}"
        );
    }
}

/// Real-time signals (the first, one in the middle, the last) reach the
/// APP's group too, as with tini and dumb-init; autopilot survives them.
#[test]
fn real_time_signals_reach_the_apps_process_group() {
    const REAL_TIME: [(i32, &str); 3] = [(34, "RTMIN"), (40, "NUM40"), (64, "RTMAX")];
    for mode in [Mode::Pid1, Mode::Subreaper] {
        let scratch = Scratch::new();
        let record = scratch.path("signals");
        let app = ["perl", "-e", RECORD_SIGNALS, record.to_str().unwrap()]
            .into_iter()
            .chain(REAL_TIME.map(|(_, name)| name));
        let autopilot = Autopilot::new(mode, app).start();
        wait_until_recorded(&scratch, "ready");
        for (number, name) in REAL_TIME {
            // SAFETY: kill(2) with plain integers.
            assert_eq!(unsafe { libc::kill(autopilot.autopilot_pid(), number) }, 0);
            wait_until_recorded(&scratch, name);
        }
        autopilot.signal(Signal::SIGTERM);
        assert_eq!(autopilot.finish().code, 143, "{mode:?}");
    }
}

/// The control: tini (`-g`: to the APP's group, as autopilot does) passes on
/// the same signals; it does not stop with the APP.
#[test]
fn tini_passes_on_the_same_signals() {
    let scratch = Scratch::new();
    let record = scratch.path("signals");
    let mut tini = std::process::Command::new("tini");
    tini.args(["-s", "-g", "--"])
        .args(recording_app(record.to_str().unwrap(), &FORWARDED));
    let tini = Init::start(tini);
    assert_every_signal_reaches_the_group(&scratch, tini.pid(), false);
}

/// A control init (or autopilot) started directly; dropping it kills it and
/// its APP's process group, so that a failing test leaves nothing behind.
struct Init(std::process::Child);

impl Init {
    /// Starts `command` as the leader of a process group of its own, in the
    /// test's session: a stopped APP in dumb-init's group (or autopilot's)
    /// is then never in an orphaned process group, whose SIGTSTP the kernel
    /// would discard, whatever process group the test runner has.
    fn start(mut command: std::process::Command) -> Init {
        use std::os::unix::process::CommandExt;
        let child = command
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{command:?}: {error} (is it installed?)"));
        Init(child)
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn exit_code(mut self) -> Option<i32> {
        self.0.wait().expect("wait for the init").code()
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        // The APP leads a group of its own (autopilot, tini) or is in the
        // init's (dumb-init --single-child, which leaves the APP's children
        // behind when the APP ends).
        for group in procfs::children(self.pid()) {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// `kill -TSTP` to autopilot (not PID 1) stops the APP, then autopilot
/// itself, as dumb-init does; SIGCONT resumes both. The control (dumb-init)
/// behaves the same. As PID 1 only the APP stops, and autopilot goes on
/// forwarding.
#[test]
fn sigtstp_stops_the_app_then_autopilot_and_sigcont_resumes_both() {
    // dumb-init's way (it stops the APP, then itself, so a shell sees the
    // job stopped); docs/signals-and-exit-codes.md compares the inits.
    let signals = [Signal::SIGTSTP, Signal::SIGCONT];
    let scratch = Scratch::new();
    let record = scratch.path("signals");
    let mut command = std::process::Command::new(common::binary());
    command.args(recording_app(record.to_str().unwrap(), &signals));
    let child = Init::start(command);
    let pid = child.pid();
    wait_until_recorded(&scratch, "ready");
    let app_pid = procfs::children(pid)[0];
    send_signal(pid, Signal::SIGTSTP);
    wait_until("autopilot and the APP to stop", || {
        procfs::state(pid) == Some('T') && procfs::state(app_pid) == Some('T')
    });
    send_signal(pid, Signal::SIGCONT);
    wait_until_recorded_by(&scratch, &["app"], "CONT");
    wait_until("autopilot and the APP to run again", || {
        procfs::state(pid) != Some('T') && procfs::state(app_pid) != Some('T')
    });
    send_signal(pid, Signal::SIGTERM);
    assert_eq!(child.exit_code(), Some(143));
}

#[test]
fn sigtstp_as_pid1_stops_only_the_app() {
    let scratch = Scratch::new();
    let record = scratch.path("signals");
    let signals = [Signal::SIGTSTP, Signal::SIGCONT, Signal::SIGUSR1];
    let autopilot = Autopilot::new(
        Mode::Pid1,
        recording_app(record.to_str().unwrap(), &signals),
    )
    .start();
    wait_until_recorded(&scratch, "ready");
    let pid = autopilot.autopilot_pid();
    let app_pid = procfs::children(pid)[0];
    autopilot.signal(Signal::SIGTSTP);
    wait_until("the APP to stop", || procfs::state(app_pid) == Some('T'));
    // autopilot still runs: it forwards the next signals.
    assert_ne!(procfs::state(pid), Some('T'));
    autopilot.signal(Signal::SIGCONT);
    autopilot.signal(Signal::SIGUSR1);
    wait_until_recorded(&scratch, "USR1");
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 143);
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

/// As under ContainerPilot (Go's exec), an executable file without a `#!`
/// line is not handed to `/bin/sh` (execvp would): it is not executable.
#[test]
fn executable_script_without_interpreter_line_exits_126_unrun() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("no-interpreter-line");
    std::fs::write(&script, "echo ran-by-a-shell\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = script.to_str().unwrap();
    let finished = Autopilot::new(Mode::Subreaper, [path]).run();
    assert_eq!(finished.code, 126);
    assert!(finished.stderr_text().contains(path));
    assert!(!finished.stdout_text().contains("ran-by-a-shell"));
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

/// Ignores SIGHUP, SIGINT, SIGQUIT, SIGTTOU and SIGPIPE, blocks SIGTERM and
/// SIGTTIN, then execs its arguments: what `nohup`, a script's background
/// job or a careful parent hands down.
const WITH_INHERITED_SIGNAL_STATE: &str = r#"
use POSIX;
sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGTERM, SIGTTIN)) or die;
$SIG{$_} = "IGNORE" for qw(HUP INT QUIT TTOU PIPE);
exec @ARGV or die "$ARGV[0]: $!";
"#;

/// The `SigBlk`/`SigIgn` lines a program started by `init` (nothing, tini
/// or autopilot) sees, under [`WITH_INHERITED_SIGNAL_STATE`].
fn inherited_signal_state(mode: Mode, init: &[&str]) -> String {
    let mut command = match mode {
        Mode::Pid1 => {
            let mut unshare = std::process::Command::new("unshare");
            unshare.args(["--pid", "--fork", "--mount-proc", "perl"]);
            unshare
        }
        Mode::Subreaper => std::process::Command::new("perl"),
    };
    let output = command
        .args(["-e", WITH_INHERITED_SIGNAL_STATE, "--"])
        .args(init)
        .args(["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("{init:?}: {error}"));
    assert!(output.status.success(), "{init:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// The APP inherits the ignored signals and the mask autopilot inherited,
/// exactly as with tini or with no init at all.
#[test]
fn app_inherits_the_signal_dispositions_and_mask_autopilot_inherited() {
    let autopilot = common::binary().to_str().unwrap();
    for mode in [Mode::Pid1, Mode::Subreaper] {
        let without_init = inherited_signal_state(mode, &[]);
        let mask = |name: &str| {
            let line = without_init
                .lines()
                .find_map(|line| line.strip_prefix(name));
            u64::from_str_radix(line.expect(name).trim(), 16).unwrap()
        };
        // The wrapper's own state (the test harness may hand down more).
        assert_eq!(mask("SigBlk:") & 0x104000, 0x104000, "{without_init}");
        assert_eq!(mask("SigIgn:") & 0x201007, 0x201007, "{without_init}");
        let tini = if mode == Mode::Pid1 {
            &["tini", "--"][..]
        } else {
            &["tini", "-s", "--"]
        };
        assert_eq!(
            inherited_signal_state(mode, tini),
            without_init,
            "tini {mode:?}"
        );
        assert_eq!(
            inherited_signal_state(mode, &[autopilot, "--"]),
            without_init,
            "autopilot {mode:?}"
        );
    }
}

/// A signal autopilot inherited as ignored (SIGINT for a script's
/// background job) is ignored by autopilot too, as by tini: it neither stops
/// the APP nor reaches it.
#[test]
fn a_signal_ignored_when_autopilot_started_stays_ignored() {
    let scratch = Scratch::new();
    let record = scratch.path("signals");
    let mut command = std::process::Command::new("perl");
    command
        .args([
            "-e",
            WITH_INHERITED_SIGNAL_STATE,
            "--",
            common::binary().to_str().unwrap(),
            "-kill-timeout=1s",
        ])
        .args(recording_app(
            record.to_str().unwrap(),
            &[Signal::SIGINT, Signal::SIGUSR1],
        ));
    let autopilot = Init::start(command);
    wait_until_recorded(&scratch, "ready");
    send_signal(autopilot.pid(), Signal::SIGINT);
    // Signals are handled in order: once USR1 arrived, the SIGINT was dropped.
    send_signal(autopilot.pid(), Signal::SIGUSR1);
    wait_until_recorded(&scratch, "USR1");
    assert!(
        !scratch.read("signals").contains("INT"),
        "{}",
        scratch.read("signals")
    );
    // SIGTERM is blocked, not ignored: autopilot still receives it.
    send_signal(autopilot.pid(), Signal::SIGTERM);
    // The APP inherited SIGTERM blocked, so the kill timeout ends it.
    let waited = Instant::now();
    assert_eq!(autopilot.exit_code(), Some(137));
    assert!(waited.elapsed() >= Duration::from_millis(900));
}

/// An interactive bash on a real pseudo-terminal, as a user at a terminal
/// has it: job control on, the terminal its controlling terminal.
struct InteractiveShell {
    master: std::fs::File,
    bash: std::process::Child,
    output: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Output received and not yet matched by [`InteractiveShell::expect`].
    unread: String,
}

impl InteractiveShell {
    fn start() -> InteractiveShell {
        use std::os::unix::process::CommandExt;
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave = std::fs::File::from(pty.slave);
        let mut bash = std::process::Command::new("bash");
        bash.args(["--norc", "--noprofile", "-i"])
            .env("PS1", "$ ")
            .env("TERM", "dumb")
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        // SAFETY: two system calls between fork and exec, no allocation.
        unsafe {
            bash.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let bash = bash.spawn().expect("bash");
        let master = std::fs::File::from(pty.master);
        let mut reader = master.try_clone().unwrap();
        let (sender, output) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buffer = [0; 4096];
            // Ends with EIO once bash and everything on the terminal are gone.
            while let Ok(count @ 1..) = reader.read(&mut buffer) {
                if sender.send(buffer[..count].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut shell = InteractiveShell {
            master,
            bash,
            output,
            unread: String::new(),
        };
        shell.expect("$ ");
        shell
    }

    fn pid(&self) -> i32 {
        self.bash.id() as i32
    }

    /// Types `bytes` at the terminal.
    fn type_in(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.master.write_all(bytes).expect("write to the terminal");
    }

    /// Waits until the terminal shows `text`, and consumes the output up to it.
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + common::DEADLINE;
        loop {
            if let Some(at) = self.unread.find(text) {
                self.unread.drain(..at + text.len());
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(chunk) => self.unread.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!(
                    "the terminal never showed {text:?}; it shows {:?}",
                    self.unread
                ),
            }
        }
    }

    /// Checks the shell still reads and runs commands:
    /// the output of `$((…))` appears only if the shell evaluated it.
    fn assert_reads_commands(&mut self) {
        self.type_in(b"echo alive-$((40+2))\n");
        self.expect("alive-42");
        self.expect("$ ");
    }

    /// Checks what `$?` is: the exit code of the last foreground command.
    fn expect_exit_status(&mut self, status: i32) {
        // The echoed command line shows `$?`, not the number.
        self.type_in(b"echo status=$?.\n");
        self.expect(&format!("status={status}."));
    }
}

impl Drop for InteractiveShell {
    fn drop(&mut self) {
        // bash's session: bash, autopilot and the APP's group all go.
        for pid in procfs_session_members(self.pid()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.bash.kill();
        let _ = self.bash.wait();
    }
}

/// Fields of /proc/PID/stat after the command name: 0 state, 2 process
/// group, 3 session, 5 the terminal's foreground process group.
fn stat_field(pid: i32, index: usize) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    fields.get(index)?.parse().ok()
}

fn process_group(pid: i32) -> Option<i32> {
    stat_field(pid, 2)
}

/// The process group the terminal of `pid` delivers Ctrl-C and Ctrl-Z to.
fn terminal_foreground_group(pid: i32) -> Option<i32> {
    stat_field(pid, 5)
}

fn procfs_session_members(session: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|&pid| pid != session && stat_field(pid, 3) == Some(session))
        .collect()
}

/// The only child of `parent` once it has one.
fn only_child(parent: i32, what: &str) -> i32 {
    let mut child = None;
    wait_until(what, || {
        child = procfs::children(parent).first().copied();
        child.is_some()
    });
    child.unwrap()
}

/// Writes the recording APP to a file, so that a command typed at the shell
/// can run it.
fn recording_app_command(scratch: &Scratch, signals: &[Signal]) -> String {
    scratch.write("record.pl", RECORD_SIGNALS);
    let names: Vec<&str> = signals.iter().map(|signal| signal_name(*signal)).collect();
    format!(
        "{} perl {} {} {}",
        common::binary().display(),
        scratch.path("record.pl").display(),
        scratch.path("signals").display(),
        names.join(" ")
    )
}

/// Ctrl-Z in an interactive shell stops the APP, then autopilot, and the
/// shell gets its terminal back; `fg` resumes both and gives the terminal
/// to the APP again; Ctrl-C then reaches the APP, whose exit code the shell sees.
#[test]
fn ctrl_z_stops_the_job_and_fg_resumes_it_at_an_interactive_shell() {
    let scratch = Scratch::new();
    let mut shell = InteractiveShell::start();
    let command = recording_app_command(
        &scratch,
        &[Signal::SIGTSTP, Signal::SIGCONT, Signal::SIGINT],
    );
    shell.type_in(format!("{command}\n").as_bytes());
    let autopilot = only_child(shell.pid(), "the shell to start autopilot");
    let app = only_child(autopilot, "autopilot to start the APP");
    wait_until_recorded(&scratch, "ready");
    wait_until("the APP to own the terminal", || {
        terminal_foreground_group(app) == process_group(app)
    });

    shell.type_in(b"\x1a");
    wait_until_recorded(&scratch, "TSTP");
    wait_until("the APP and autopilot to stop", || {
        procfs::state(app) == Some('T') && procfs::state(autopilot) == Some('T')
    });
    shell.expect("Stopped");
    shell.expect("$ ");
    assert_eq!(
        terminal_foreground_group(shell.pid()),
        process_group(shell.pid())
    );
    shell.assert_reads_commands();

    shell.type_in(b"fg\n");
    wait_until_recorded(&scratch, "CONT");
    wait_until(
        "the APP and autopilot to run again, the APP owning the terminal",
        || {
            procfs::state(app) != Some('T')
                && procfs::state(autopilot) != Some('T')
                && terminal_foreground_group(app) == process_group(app)
        },
    );

    shell.type_in(b"\x03");
    // Not the grandchild: the APP's exit may kill it first.
    wait_until_recorded_by(&scratch, &["app"], "INT");
    shell.expect("$ ");
    shell.expect_exit_status(130);
    shell.assert_reads_commands();
}

/// Started with `&`, autopilot leaves the terminal to the shell, which goes
/// on reading commands; `kill %1` stops it like any job.
#[test]
fn started_in_the_background_it_leaves_the_terminal_to_the_shell() {
    let scratch = Scratch::new();
    let mut shell = InteractiveShell::start();
    let command = recording_app_command(&scratch, &[Signal::SIGTERM]);
    shell.type_in(format!("{command} &\n").as_bytes());
    wait_until_recorded(&scratch, "ready");
    shell.assert_reads_commands();
    assert_eq!(
        terminal_foreground_group(shell.pid()),
        process_group(shell.pid())
    );
    shell.type_in(b"kill %1; wait %1\n");
    // Not the grandchild: the APP's exit may kill it first.
    wait_until_recorded_by(&scratch, &["app"], "TERM");
    shell.expect("$ ");
    shell.expect_exit_status(143);
}

/// With a configuration and no APP, the signals with no meaning of their
/// own go to the `primary: true` job's process group, and to no other job
/// (docs/signals-and-exit-codes.md, "Without an APP").
#[test]
fn without_an_app_signals_go_to_the_primary_jobs_process_group() {
    const SENT: [(i32, &str); 5] = [
        (Signal::SIGQUIT as i32, "QUIT"),
        (Signal::SIGUSR2 as i32, "USR2"),
        (Signal::SIGHUP as i32, "HUP"),
        (Signal::SIGWINCH as i32, "WINCH"),
        (40, "NUM40"),
    ];
    let scratch = Scratch::new();
    scratch.write("record.pl", RECORD_SIGNALS);
    let recorder = |file: &str| {
        let mut argv = vec![
            "perl".to_string(),
            scratch.path("record.pl").display().to_string(),
            scratch.path(file).display().to_string(),
        ];
        argv.extend(SENT.map(|(_, name)| name.to_string()));
        format!("{argv:?}")
    };
    let config = scratch.config(&format!(
        r#"{{ logging: {{ level: "ERROR" }}, jobs: [
             {{ name: "main", primary: true, exec: {} }},
             {{ name: "side", exec: {} }} ] }}"#,
        recorder("main"),
        recorder("side")
    ));
    let autopilot = Autopilot::new(Mode::Pid1, ["-config", &config]).start();
    let recorded = |file: &str, what: &str| {
        let lines = scratch.read(file);
        ["app", "grandchild"]
            .iter()
            .all(|who| lines.lines().any(|line| line == format!("{who} {what}")))
    };
    wait_until("both jobs to be ready", || {
        recorded("main", "ready") && recorded("side", "ready")
    });
    for (number, name) in SENT {
        // SAFETY: kill(2) with plain integers.
        assert_eq!(unsafe { libc::kill(autopilot.autopilot_pid(), number) }, 0);
        wait_until(&format!("the primary job's group to get {name}"), || {
            recorded("main", name)
        });
    }
    let mut side: Vec<_> = scratch.read("side").lines().map(str::to_string).collect();
    side.sort();
    assert_eq!(
        side,
        ["app ready", "grandchild ready"],
        "the other job got nothing"
    );
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 143, "the primary job's exit code");
}

/// With no APP and no primary job a forwardable signal is dropped, and the
/// log says so at INFO, once per signal.
#[test]
fn without_an_app_or_a_primary_job_a_dropped_signal_is_logged_once() {
    let scratch = Scratch::new();
    let log = scratch.path("autopilot.log");
    let config = scratch.config(&format!(
        r#"{{ logging: {{ level: "INFO", output: {log:?} }},
             jobs: [{{ name: "side", exec: ["sleep", "1000"] }}] }}"#
    ));
    let autopilot = Autopilot::new(Mode::Pid1, ["-config", &config]).start();
    let dropped = |signal: &str| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let line = format!(
            "{signal} dropped: there is no APP on the command line and no job is primary: true to forward it to"
        );
        text.lines().filter(|l| l.contains(&line)).count()
    };
    wait_until("the control socket, once signals are handled", || {
        scratch.path("control.sock").exists()
    });
    autopilot.signal(Signal::SIGUSR2);
    wait_until("SIGUSR2 to be reported", || dropped("SIGUSR2") == 1);
    autopilot.signal(Signal::SIGUSR2);
    // Signals are handled in arrival order: once SIGQUIT is reported, the
    // second SIGUSR2 has been handled too.
    autopilot.signal(Signal::SIGQUIT);
    wait_until("SIGQUIT to be reported", || dropped("SIGQUIT") == 1);
    assert_eq!(dropped("SIGUSR2"), 1, "reported once");
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 0);
}
