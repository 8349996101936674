//! Helpers shared by the integration tests: run the real autopilot binary,
//! either as PID 1 of a fresh PID namespace (like in a container) or as an
//! ordinary child subreaper, talk to it with real signals, read what it and
//! its APP print, and look at processes through /proc.
//!
//! The helpers drive the binary from the outside only; they must not reach
//! into autopilot's internals. Every wait has a deadline and fails the test
//! with a message instead of hanging.

pub mod etcd;
pub mod netns;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{sethostname, Pid};

/// How long any single wait may take before the test fails. Generous: the
/// machine running the suite may be busy, and a passing test never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often a condition is re-checked while polling for it.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The autopilot binary Cargo built for this test run.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_autopilot"))
}

/// `sh -c SCRIPT`, as the APP part of autopilot's command line.
pub fn sh(script: &str) -> Vec<&str> {
    vec!["sh", "-c", script]
}

/// Where autopilot runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 of a new PID namespace with its own /proc
    /// (`unshare --pid --fork --mount-proc`), as in a container.
    Pid1,
    /// A plain child of the test process; autopilot makes itself a child
    /// subreaper.
    Subreaper,
}

/// An autopilot command line about to be started.
pub struct Autopilot {
    mode: Mode,
    command: Command,
    stdin: Option<Vec<u8>>,
}

impl Autopilot {
    /// autopilot with `args` (its flags, then the APP). It gets no stdin and
    /// no configuration from the environment (`CONTAINERPILOT`, `CONTAINERBUDDY`).
    pub fn new<S: AsRef<OsStr>>(mode: Mode, args: impl IntoIterator<Item = S>) -> Self {
        let mut command = match mode {
            Mode::Pid1 => {
                let mut unshare = Command::new("unshare");
                unshare
                    .args(["--pid", "--fork", "--mount-proc"])
                    .arg(binary());
                unshare
            }
            Mode::Subreaper => Command::new(binary()),
        };
        command
            .args(args)
            .env_remove("CONTAINERPILOT")
            .env_remove("CONTAINERBUDDY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Autopilot {
            mode,
            command,
            stdin: None,
        }
    }

    /// Feeds `input` to autopilot's stdin, then closes it.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.command.stdin(Stdio::piped());
        self.stdin = Some(input.into());
        self
    }

    /// Sets an environment variable for autopilot (and so its jobs).
    pub fn env(self, name: &str, value: &str) -> Self {
        self.env_bytes(name, value)
    }

    /// [`Autopilot::env`] for a name or value that need not be UTF-8 (any
    /// bytes but `=` and NUL).
    pub fn env_bytes(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    /// Runs it (and so the APP) in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Runs it in a UTS namespace of its own named `hostname`, as a container
    /// would be: several autopilots on one machine then advertise distinct
    /// service IDs (`<name>-<hostname>`).
    pub fn hostname(mut self, hostname: &str) -> Self {
        let hostname = hostname.to_string();
        // SAFETY: between fork and exec the closure makes only two system
        // calls (unshare(2), sethostname(2)) and allocates nothing.
        unsafe {
            self.command.pre_exec(move || {
                unshare(CloneFlags::CLONE_NEWUTS)?;
                sethostname(&hostname)?;
                Ok(())
            });
        }
        self
    }

    /// Runs it inside the network namespace `namespace` (a file such as
    /// `/run/netns/NAME`, see [`netns::Namespace`]).
    pub fn network_namespace(mut self, namespace: &Path) -> Self {
        let handle = File::open(namespace)
            .unwrap_or_else(|error| panic!("{}: {error}", namespace.display()));
        // SAFETY: between fork and exec the closure makes one system call
        // (setns(2)) and allocates nothing.
        unsafe {
            self.command.pre_exec(move || {
                setns(&handle, CloneFlags::CLONE_NEWNET)?;
                Ok(())
            });
        }
        self
    }

    /// Starts it; stdout and stderr are collected in the background.
    pub fn start(mut self) -> Running {
        let mut child = self
            .command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {:?}: {error}", self.command));
        if let (Some(input), Some(mut stdin)) = (self.stdin, child.stdin.take()) {
            // A reader that never reads must not block the test: write from a thread.
            thread::spawn(move || stdin.write_all(&input));
        }
        let stdout = read_in_chunks(child.stdout.take().expect("stdout is piped"));
        let stderr = read_in_chunks(child.stderr.take().expect("stderr is piped"));
        let pid = child.id() as i32;
        let (exit_sender, exit) = mpsc::channel();
        thread::spawn(move || exit_sender.send(child.wait()));
        Running {
            mode: self.mode,
            pid,
            autopilot_pid: OnceLock::new(),
            exit,
            finished: false,
            stdout,
            stderr,
            pending_stdout: Vec::new(),
        }
    }

    /// Starts it and waits for it to end.
    pub fn run(self) -> Finished {
        self.start().finish()
    }
}

/// A started autopilot. Dropping it unfinished kills it and its APP's process
/// group (and, as PID 1, its whole namespace), so that a failing test leaves
/// nothing behind.
pub struct Running {
    mode: Mode,
    /// The process the test started: autopilot itself, or `unshare`.
    pid: i32,
    autopilot_pid: OnceLock<i32>,
    exit: Receiver<std::io::Result<ExitStatus>>,
    finished: bool,
    stdout: Receiver<Vec<u8>>,
    stderr: Receiver<Vec<u8>>,
    /// Stdout received but not yet handed out by [`Running::next_line`].
    pending_stdout: Vec<u8>,
}

/// How autopilot ended, and everything it printed (on stdout: what was not
/// already read line by line).
#[derive(Debug)]
pub struct Finished {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl Running {
    /// The next line on stdout, without its newline.
    pub fn next_line(&mut self) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(end) = self.pending_stdout.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending_stdout.drain(..=end).collect();
                return String::from_utf8_lossy(&line[..end]).into_owned();
            }
            match self.stdout.recv_timeout(remaining(deadline)) {
                Ok(chunk) => self.pending_stdout.extend(chunk),
                Err(error) => panic!(
                    "no complete line on stdout ({error}); so far: {:?}",
                    String::from_utf8_lossy(&self.pending_stdout)
                ),
            }
        }
    }

    /// Reads the next stdout line and checks it is `expected`.
    pub fn expect_line(&mut self, expected: &str) {
        let line = self.next_line();
        assert_eq!(line, expected, "unexpected line on stdout");
    }

    /// autopilot's pid as the test sees it. As PID 1 that is the child of
    /// `unshare`, not `unshare` itself (which does not forward signals).
    pub fn autopilot_pid(&self) -> i32 {
        *self.autopilot_pid.get_or_init(|| match self.mode {
            Mode::Subreaper => self.pid,
            Mode::Pid1 => {
                let mut found = None;
                wait_until("autopilot to run under unshare", || {
                    found = namespace_init(self.pid);
                    found.is_some()
                });
                found.expect("found by wait_until")
            }
        })
    }

    /// Sends `signal` to autopilot.
    pub fn signal(&self, signal: Signal) {
        send_signal(self.autopilot_pid(), signal);
    }

    /// Waits for autopilot to exit and for its stdout and stderr to close,
    /// which also means no process it started is still holding them.
    pub fn finish(mut self) -> Finished {
        let deadline = Instant::now() + DEADLINE;
        let status = match self.exit.recv_timeout(remaining(deadline)) {
            Ok(status) => status.expect("waiting for autopilot"),
            Err(_) => panic!("autopilot did not exit within {DEADLINE:?}"),
        };
        self.finished = true;
        let code = status.code().unwrap_or_else(|| {
            panic!("autopilot itself was killed ({status}); it must always exit with a code")
        });
        let mut stdout = std::mem::take(&mut self.pending_stdout);
        stdout.extend(collect_until_closed(&self.stdout, deadline, "stdout"));
        let stderr = collect_until_closed(&self.stderr, deadline, "stderr");
        Finished {
            code,
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.finished || self.exit.try_recv().is_ok() {
            return;
        }
        let autopilot = self
            .autopilot_pid
            .get()
            .copied()
            .or_else(|| match self.mode {
                Mode::Subreaper => Some(self.pid),
                Mode::Pid1 => namespace_init(self.pid),
            });
        // Each child of autopilot (the APP) leads a process group: kill the
        // groups first, while they can still be found, then autopilot.
        for group in autopilot.into_iter().flat_map(procfs::children) {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        for pid in autopilot.into_iter().chain([self.pid]) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The process `unshare --fork` started, once it has exec'd autopilot.
fn namespace_init(unshare_pid: i32) -> Option<i32> {
    procfs::children(unshare_pid)
        .into_iter()
        .find(|&pid| procfs::command_name(pid).as_deref() == Some("autopilot"))
}

/// Sends `signal` to `pid`, which must exist.
pub fn send_signal(pid: i32, signal: Signal) {
    kill(Pid::from_raw(pid), signal)
        .unwrap_or_else(|error| panic!("kill -{signal} {pid}: {error}"));
}

/// Polls `condition` until it holds; fails the test if it does not within
/// [`DEADLINE`]. `what` names what is awaited, for the failure message.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "gave up after {DEADLINE:?} waiting for {what}"
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// A loopback TCP port that was free a moment ago, for a server the test
/// starts in another process (which must bind it by number).
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A TCP port of `host` that was free a moment ago.
pub fn free_port_on(host: &str) -> u16 {
    TcpListener::bind((host, 0))
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|error| panic!("a free port on {host}: {error}"))
        .port()
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Reads `source` on a thread, passing on each chunk; the channel closes at EOF.
fn read_in_chunks(mut source: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read @ 1..) = source.read(&mut buffer) {
            if sender.send(buffer[..read].to_vec()).is_err() {
                break;
            }
        }
    });
    receiver
}

fn collect_until_closed(chunks: &Receiver<Vec<u8>>, deadline: Instant, name: &str) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        match chunks.recv_timeout(remaining(deadline)) {
            Ok(chunk) => all.extend(chunk),
            Err(RecvTimeoutError::Disconnected) => return all,
            Err(RecvTimeoutError::Timeout) => panic!(
                "{name} still open {DEADLINE:?} after autopilot exited: a process it started survived"
            ),
        }
    }
}

/// Reading processes through /proc (of the test's own PID namespace).
pub mod procfs {
    use std::fs;

    /// Field `name` of /proc/PID/status (e.g. `PPid`), trimmed.
    pub fn status_field(pid: i32, name: &str) -> Option<String> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == name).then(|| value.trim().to_string())
        })
    }

    pub fn parent(pid: i32) -> Option<i32> {
        status_field(pid, "PPid")?.parse().ok()
    }

    /// The one-letter state of /proc/PID/stat (`R`, `S`, `Z`…), if the pid exists.
    pub fn state(pid: i32) -> Option<char> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may itself contain ") ".
        let after_name = &stat[stat.rfind(')')? + 1..];
        after_name.trim_start().chars().next()
    }

    /// Whether the pid exists at all (running, stopped, or an unreaped zombie).
    pub fn exists(pid: i32) -> bool {
        state(pid).is_some()
    }

    /// Whether the pid is a live process (neither gone nor a zombie).
    pub fn is_alive(pid: i32) -> bool {
        matches!(state(pid), Some(state) if state != 'Z' && state != 'X')
    }

    pub fn command_name(pid: i32) -> Option<String> {
        Some(
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()?
                .trim_end()
                .to_string(),
        )
    }

    /// The arguments `pid` was started with.
    pub fn command_line(pid: i32) -> Vec<String> {
        fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .split(|&byte| byte == 0)
            .filter(|argument| !argument.is_empty())
            .map(|argument| String::from_utf8_lossy(argument).into_owned())
            .collect()
    }

    /// The children of every thread of `pid`.
    pub fn children(pid: i32) -> Vec<i32> {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|list| {
                list.split_whitespace()
                    .filter_map(|pid| pid.parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    }

    /// The kernel function `pid` sleeps in (e.g. `do_epoll_wait`), if it sleeps.
    pub fn wait_channel(pid: i32) -> Option<String> {
        let channel = fs::read_to_string(format!("/proc/{pid}/wchan")).ok()?;
        (!channel.is_empty() && channel != "0").then_some(channel)
    }

    /// How many times the threads of `pid` gave up the CPU of their own
    /// accord (blocked or slept): each wake-up from a sleep adds one.
    pub fn voluntary_context_switches(pid: i32) -> u64 {
        let tasks = fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap_or_else(|error| panic!("/proc/{pid}/task: {error}"));
        tasks
            .flatten()
            .filter_map(|task| fs::read_to_string(task.path().join("status")).ok())
            .filter_map(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
                    .and_then(|count| count.trim().parse::<u64>().ok())
            })
            .sum()
    }
}

/// A temporary directory where a test's autopilot and jobs run and write.
/// Jobs append marker lines to `log` in it; the order of lines is the order
/// in which things happened.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).expect("write scratch file");
    }

    /// The file's contents, or "" while it does not exist.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Writes a configuration file and returns its path. A 3.x configuration
    /// gets a control socket of its own, so tests running in parallel never
    /// share the default one.
    pub fn config(&self, text: &str) -> String {
        let text = if text.contains("jobs:") {
            let socket = self.path("control.sock").display().to_string();
            text.replacen('{', &format!("{{ control: {{ socket: {socket:?} }},"), 1)
        } else {
            text.to_string()
        };
        self.write("config.json5", &text);
        self.path("config.json5").display().to_string()
    }

    /// The lines of `log`.
    pub fn lines(&self) -> Vec<String> {
        self.read("log").lines().map(str::to_string).collect()
    }

    /// Waits until `log` holds exactly `expected`, in order.
    pub fn wait_for_lines(&self, expected: &[&str]) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let seen = self.lines();
            if seen == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "log never became {expected:?}; it is {seen:?}"
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until `log` holds exactly `expected`, in any order.
    pub fn wait_for_lines_unordered(&self, expected: &[&str]) {
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort();
        wait_until(&format!("log to hold {expected:?}"), || {
            let mut lines = self.lines();
            lines.sort();
            lines == expected
        });
    }
}

/// ContainerPilot's configuration corpus, an extra check beside the
/// project's own fixtures: the folder `AUTOPILOT_COMPAT_DIR` names (`.ci/run`
/// sets it). Without it, `None`, and the first caller says once on stderr
/// that the corpus tests were not run and why.
pub fn compat_dir() -> Option<std::path::PathBuf> {
    static SKIP_NOTICE: std::sync::Once = std::sync::Once::new();
    let Some(dir) = std::env::var_os("AUTOPILOT_COMPAT_DIR") else {
        SKIP_NOTICE.call_once(|| {
            // Written to the stream itself: the test harness captures
            // `eprintln!` of passing tests, and this must be seen.
            let _ = std::io::stderr().write_all(
                b"note: ContainerPilot corpus tests not run: AUTOPILOT_COMPAT_DIR is not set \
                  (point it at a copy of the corpus's folder, as .ci/run does)\n",
            );
        });
        return None;
    };
    let dir = std::path::PathBuf::from(dir);
    assert!(
        dir.join("MANIFEST.md").is_file(),
        "AUTOPILOT_COMPAT_DIR={} holds no MANIFEST.md",
        dir.display()
    );
    Some(dir)
}

/// A minimal blocking HTTP/1.0 client for talking to the servers the tests
/// start (the Consul double, nginx, the demo's backends). HTTP/1.0 keeps the
/// answer simple to read (no chunked bodies, the server closes the
/// connection); the async `reqwest` the crate uses would need a runtime in
/// every synchronous test.
pub mod http {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    /// The status code and body of `METHOD path` (sending `body`, any bytes)
    /// on `address`, or the error
    /// that prevented an answer (refused, reset, timed out).
    pub fn request(
        address: SocketAddr,
        method: &str,
        path: &str,
        body: impl AsRef<[u8]>,
    ) -> std::io::Result<(u16, String)> {
        let body = body.as_ref();
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )?;
        stream.write_all(body)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head:?}")))?;
        Ok((status, body.to_string()))
    }
}

/// Fails the test at once, saying what to install, when `program` (a real
/// server some tests run, such as nginx) is not on this machine; `.ci/run`
/// installs every one of them.
pub fn require_program(program: &str, debian_package: &str) {
    if let Err(error) = std::process::Command::new(program)
        .arg("-V") // the version, for nginx and python3 alike
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        panic!(
            "cannot run {program} ({error}): this test needs it; \
             install Debian's {debian_package} (apt-get install {debian_package}), as .ci/run does"
        );
    }
}

/// Runs a helper command to its end and fails the test, with the command's
/// stderr, unless it succeeded. `what` names it in the message.
pub fn run_to_success(command: &mut Command, what: &str) -> std::process::Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
