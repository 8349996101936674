//! autopilot under a real Docker Engine: images built here, run and stopped
//! with the docker CLI exactly as users do.
//!
//! The PID 1 tests run autopilot under `unshare`, which is close to a
//! container but not one. Only a real engine gives `docker stop` (SIGTERM to
//! PID 1, SIGKILL after the grace period), `docker kill -s`, `docker run -t`,
//! `--user` with `--read-only`, scratch images without /var/run, Docker's own
//! /etc/resolv.conf and name server, and `docker compose`.
//!
//! No image registry is used: every image is built here, on `scratch` with
//! static binaries (autopilot, the Consul double, Debian's busybox-static) or
//! on a Debian base made with debootstrap and `docker import`ed under the
//! name the repository's Dockerfile uses. Base images are tagged and reused
//! (built only when the tag is missing); the images holding autopilot are
//! rebuilt every run (Docker's layer cache makes that cheap). Containers,
//! networks and compose projects a test creates are removed when the test
//! ends, failed or not.
//!
//! Needs a Docker daemon, `file`, busybox-static, debootstrap and
//! docker-compose (or the compose plugin): `.ci/run` installs them and starts
//! the daemon. Timings are printed (`cargo test --test docker -- --nocapture`).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a condition may take to come true before the test fails. The
/// engine is slower than `unshare`, and the machine may be busy.
const DEADLINE: Duration = Duration::from_secs(60);

/// How often a condition is checked: each check runs the docker CLI.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Docker's default grace period of `docker stop`.
const DOCKER_STOP_GRACE: Duration = Duration::from_secs(10);

/// The images these tests build, by tag.
const BUSYBOX_IMAGE: &str = "autopilot-test/busybox";
const WRAP_IMAGE: &str = "autopilot-test/wrap";
const CONFIGURED_IMAGE: &str = "autopilot-test/configured";
const CONSUL_DOUBLE_IMAGE: &str = "autopilot-test/consul-double";
const DEMO_BACKEND_IMAGE: &str = "autopilot-test/demo-backend";
const DEMO_NGINX_IMAGE: &str = "autopilot-test/demo-nginx";
/// The Dockerfile's base for the demo images, made here with debootstrap.
const DEBIAN_IMAGE: &str = "debian:bookworm-slim";
const DEBIAN_SUITE: &str = "bookworm";

// ---- the docker CLI --------------------------------------------------------

/// Runs `docker ARGS` once a daemon answers.
fn docker(args: &[&str]) -> Output {
    require_daemon();
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run docker: {error}"))
}

/// Runs `docker ARGS`, fails the test unless it succeeds, and returns its
/// trimmed stdout.
fn docker_ok(args: &[&str]) -> String {
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
fn require_daemon() {
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
fn unique_name(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "autopilot-test-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `condition` every [`POLL_INTERVAL`] until it holds; fails the test
/// if it does not within [`DEADLINE`]. Returns how long it took.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) -> Duration {
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

// ---- the binaries copied into images ----------------------------------------

/// The binaries the images get, each checked to be static.
struct Binaries {
    autopilot: PathBuf,
    consul_double: PathBuf,
}

/// The one place the binaries copied into images come from: the autopilot
/// Cargo built for this test run, and the Consul double built here by Cargo
/// with the same settings. A `scratch` image has no libc to load, so each
/// must be statically linked; the test fails at once, saying so, if not.
fn static_binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let binaries = Binaries {
            autopilot: PathBuf::from(env!("CARGO_BIN_EXE_autopilot")),
            consul_double: cargo_build_binary("consul-double", "consul-double"),
        };
        for binary in [&binaries.autopilot, &binaries.consul_double] {
            require_static(binary);
        }
        binaries
    })
}

/// Builds `bin` of `package` with this test run's Cargo and profile settings
/// and returns where Cargo put it (read from Cargo's own report, so wherever
/// the target directory and triple are).
fn cargo_build_binary(package: &str, bin: &str) -> PathBuf {
    let output = common::run_to_success(
        Command::new(env!("CARGO"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--message-format=json"])
            .args(["--package", package, "--bin", bin]),
        &format!("cargo build --bin {bin}"),
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["target"]["name"] == bin)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo build did not report where it put {bin}"))
}

/// Fails the test unless `file` reports `binary` as statically linked.
fn require_static(binary: &Path) {
    let output = common::run_to_success(
        Command::new("file")
            .args(["--brief", "--dereference"])
            .arg(binary),
        "file (apt-get install file)",
    );
    let description = String::from_utf8_lossy(&output.stdout);
    assert!(
        description.contains("statically linked") || description.contains("static-pie linked"),
        "{} is not statically linked, so it cannot run in a scratch image \
         (file says: {}). Build it static (+crt-static, as .cargo/config.toml sets).",
        binary.display(),
        description.trim()
    );
}

// ---- images -------------------------------------------------------------------

/// A build context: a temporary directory that files are put in, then built.
struct BuildContext {
    dir: tempfile::TempDir,
}

impl BuildContext {
    fn new() -> BuildContext {
        BuildContext {
            dir: tempfile::tempdir().expect("a temporary build context"),
        }
    }

    fn write(&self, name: &str, contents: &str) -> &Self {
        self.make_parent(name);
        std::fs::write(self.dir.path().join(name), contents).expect("write into the build context");
        self
    }

    fn make_parent(&self, name: &str) {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a file in the context"))
            .expect("a directory in the build context");
    }

    /// Copies `source` (a file, or a directory and everything in it) to `name`.
    fn copy(&self, source: &Path, name: &str) -> &Self {
        self.make_parent(name);
        common::run_to_success(
            Command::new("cp")
                .arg("-a")
                .arg(source)
                .arg(self.dir.path().join(name)),
            &format!("cp {}", source.display()),
        );
        self
    }

    /// `docker build -t TAG` with the Dockerfile given here.
    fn build(&self, tag: &str, dockerfile: &str) {
        self.write("Dockerfile", dockerfile);
        self.build_with(tag, &[]);
    }

    /// `docker build -t TAG ARGS` of this context.
    fn build_with(&self, tag: &str, args: &[&str]) {
        remove_stale_images();
        let context = self.dir.path().to_str().expect("a UTF-8 temporary path");
        let mut command = vec!["build", "--quiet", "--label", IMAGE_LABEL, "--tag", tag];
        command.extend_from_slice(args);
        command.push(context);
        docker_ok(&command);
    }
}

/// The label of every image these tests build.
const IMAGE_LABEL: &str = "autopilot-test";

/// Removes, once per test run, the images earlier runs built that no tag
/// names any more (each run's binaries replace the last run's): the disk
/// would otherwise fill up run after run.
fn remove_stale_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let label = format!("label={IMAGE_LABEL}");
        docker_ok(&["image", "prune", "--force", "--filter", &label]);
    });
}

fn image_exists(tag: &str) -> bool {
    docker(&["image", "inspect", tag]).status.success()
}

/// Runs `build` at most once per test run, and not at all when `tag` is
/// already there from an earlier run (base images only: they never change).
fn base_image(
    tag: &'static str,
    built: &'static OnceLock<()>,
    build: impl FnOnce(),
) -> &'static str {
    built.get_or_init(|| {
        if !image_exists(tag) {
            build();
        }
    });
    tag
}

/// `scratch` with Debian's static busybox as /bin/sh and every other tool.
fn busybox_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    base_image(BUSYBOX_IMAGE, &BUILT, || {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "{} is missing: apt-get install busybox-static",
            busybox.display()
        );
        require_static(busybox);
        BuildContext::new().copy(busybox, "busybox").build(
            BUSYBOX_IMAGE,
            "FROM scratch\n\
             COPY busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
        );
    })
}

/// Runs `build` once per test run: the image holds this run's binaries, so
/// it is built again every run (Docker's layer cache makes that cheap when
/// they did not change).
fn image_once(
    tag: &'static str,
    built: &'static OnceLock<()>,
    build: impl FnOnce(),
) -> &'static str {
    built.get_or_init(build);
    tag
}

/// The scripts the single-program tests run as the APP (under /test).
const TEST_SCRIPTS: &[(&str, &str)] = &[
    (
        "exit-on-term.sh",
        "trap 'echo \"app: got TERM\"; exit 42' TERM\n\
         echo \"app: ready\"\n\
         while :; do sleep 0.05; done\n",
    ),
    (
        "ignore-term.sh",
        "trap '' TERM\n\
         echo \"app: ready\"\n\
         while :; do sleep 0.05; done\n",
    ),
    (
        // The APP is this shell; its process group also holds the two members
        // of a pipeline (a pipeline, unlike a background job, keeps SIGQUIT).
        "group.sh",
        "trap 'echo \"app: got HUP\"' HUP\n\
         trap 'echo \"app: got QUIT\"' QUIT\n\
         trap 'echo \"app: got USR1\"' USR1\n\
         sh /test/member.sh first >&2 | sh /test/member.sh second\n",
    ),
    (
        "member.sh",
        "for signal in HUP QUIT USR1; do trap \"echo '$1: got '$signal\" $signal; done\n\
         echo \"$1: ready\"\n\
         while :; do sleep 0.05; done\n",
    ),
    (
        // Reports where it runs, then ends like a shell on Ctrl-C.
        "terminal.sh",
        "set -- $(cat /proc/$$/stat)\n\
         echo \"app: tty $(tty) process group $5 terminal's foreground group $8\"\n\
         trap 'echo \"app: got INT\"; exit 130' INT\n\
         echo \"app: ready\"\n\
         while :; do sleep 0.05; done\n",
    ),
    (
        // Each subshell starts a child and exits at once: the child is
        // re-parented to PID 1, which must reap it when it ends.
        "orphans.sh",
        "for i in 1 2 3 4 5; do\n\
           ( sh -c 'sleep 0.2; read -r _ _ _ parent _ < /proc/$$/stat; echo \"orphan: parent $parent\"' & )\n\
         done\n\
         echo \"app: orphans started\"\n\
         while :; do sleep 0.05; done\n",
    ),
];

/// Tini-style: `ENTRYPOINT ["autopilot", "--"]` on scratch with busybox.
fn wrap_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    image_once(WRAP_IMAGE, &BUILT, || {
        let context = BuildContext::new();
        context.copy(&static_binaries().autopilot, "autopilot");
        for (name, script) in TEST_SCRIPTS {
            context.write(&format!("test/{name}"), script);
        }
        context.build(
            WRAP_IMAGE,
            &format!(
                "FROM {}\n\
                 COPY autopilot /usr/local/bin/autopilot\n\
                 COPY test /test\n\
                 ENTRYPOINT [\"autopilot\", \"--\"]\n",
                busybox_image()
            ),
        );
    })
}

/// The APP of the configured images: says when it starts and when SIGTERM
/// reaches it, then exits 0.
const CONFIGURED_APP: &str = "echo 'app: started'; \
     trap 'echo \"app: got TERM\"; exit 0' TERM; \
     while :; do sleep 0.05; done";

/// A 3.x configuration: preStart, a health-checked service job, preStop and
/// postStop, with Consul reached by name through Docker's DNS.
fn v3_config() -> String {
    format!(
        r#"{{
  consul: "consul:8500",
  jobs: [
    {{ name: "preStart", exec: ["sh", "-c", "echo 'preStart: ran'"] }},
    {{
      name: "web",
      exec: ["sh", "-c", "{app}"],
      when: {{ source: "preStart", once: "exitSuccess" }},
      port: 8080,
      interfaces: ["eth0"],
      health: {{ exec: "true", interval: 1, ttl: 5 }},
    }},
    {{ name: "preStop", exec: ["sh", "-c", "echo 'preStop: ran'"], when: {{ source: "web", once: "stopping" }} }},
    {{ name: "postStop", exec: ["sh", "-c", "echo 'postStop: ran'"], when: {{ source: "web", once: "stopped" }} }},
  ],
}}
"#,
        app = CONFIGURED_APP.replace('"', "\\\"")
    )
}

/// The same in ContainerPilot 2's format; the APP comes from the command line.
const V2_CONFIG: &str = r#"{
  "consul": "consul:8500",
  "preStart": ["sh", "-c", "echo 'preStart: ran'"],
  "preStop": ["sh", "-c", "echo 'preStop: ran'"],
  "postStop": ["sh", "-c", "echo 'postStop: ran'"],
  "services": [
    { "name": "web", "port": 8080, "interfaces": ["eth0"], "health": ["true"], "poll": 1, "ttl": 5 }
  ]
}
"#;

/// `ENTRYPOINT ["autopilot"]` on scratch with busybox, a 3.x configuration
/// named by `CONTAINERPILOT`, a 2.x one beside it, and no /var/run.
fn configured_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    image_once(CONFIGURED_IMAGE, &BUILT, || {
        BuildContext::new()
            .copy(&static_binaries().autopilot, "autopilot")
            .write("etc/autopilot/v3.json5", &v3_config())
            .write("etc/autopilot/v2.json", V2_CONFIG)
            .build(
                CONFIGURED_IMAGE,
                &format!(
                    "FROM {}\n\
                     COPY autopilot /usr/local/bin/autopilot\n\
                     COPY etc /etc\n\
                     ENV CONTAINERPILOT=/etc/autopilot/v3.json5\n\
                     ENTRYPOINT [\"autopilot\"]\n",
                    busybox_image()
                ),
            );
    })
}

/// The Consul double on scratch, with autopilot as its PID 1 (so that
/// `docker stop` ends it at once: a bare PID 1 ignores SIGTERM).
fn consul_double_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    image_once(CONSUL_DOUBLE_IMAGE, &BUILT, || {
        let binaries = static_binaries();
        BuildContext::new()
            .copy(&binaries.autopilot, "autopilot")
            .copy(&binaries.consul_double, "consul-double")
            .build(
                CONSUL_DOUBLE_IMAGE,
                "FROM scratch\n\
                 COPY autopilot consul-double /\n\
                 EXPOSE 8500\n\
                 ENTRYPOINT [\"/autopilot\", \"--\", \"/consul-double\"]\n\
                 CMD [\"--listen\", \"0.0.0.0:8500\"]\n",
            );
    })
}

/// `debian:bookworm-slim`, the demo images' base, made with debootstrap
/// from the Debian mirror this machine's apt uses, and `docker import`ed.
fn debian_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    base_image(DEBIAN_IMAGE, &BUILT, || {
        let mirror = apt_mirror();
        let root = tempfile::tempdir().expect("a directory for debootstrap");
        let started = Instant::now();
        common::run_to_success(
            Command::new("debootstrap")
                .args(["--variant=minbase", DEBIAN_SUITE])
                .arg(root.path())
                .arg(&mirror),
            "debootstrap (apt-get install debootstrap)",
        );
        let archive = tempfile::NamedTempFile::new().expect("a file for the archive");
        common::run_to_success(
            Command::new("tar")
                .arg("--directory")
                .arg(root.path())
                .arg("--create")
                .arg("--file")
                .arg(archive.path())
                .arg("."),
            "tar of the debootstrapped tree",
        );
        let archive = archive.path().to_str().expect("a UTF-8 temporary path");
        docker_ok(&["import", archive, DEBIAN_IMAGE]);
        println!(
            "{DEBIAN_IMAGE}: made with debootstrap in {:.0?}",
            started.elapsed()
        );
    })
}

/// The Debian archive this machine's apt installs from (its first source for
/// this release), from /etc/apt/sources.list or /etc/apt/sources.list.d/.
fn apt_mirror() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let codename = release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .unwrap_or(DEBIAN_SUITE)
        .trim_matches('"')
        .to_string();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    files
        .iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(file).ok()?;
            match file.extension().and_then(|e| e.to_str()) {
                Some("sources") => deb822_mirror(&text, &codename),
                Some("list") => one_line_mirror(&text, &codename),
                _ => None,
            }
        })
        .next()
        .unwrap_or_else(|| {
            panic!("no apt source for Debian {codename} in /etc/apt: debootstrap needs a mirror")
        })
}

/// `deb URI SUITE COMPONENTS` lines (`deb [options] ...` too).
fn one_line_mirror(text: &str, codename: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line
            .split_whitespace()
            .filter(|word| !(word.starts_with('[') || word.ends_with(']')));
        (words.next() == Some("deb"))
            .then(|| (words.next(), words.next()))
            .and_then(|(uri, suite)| (suite == Some(codename)).then_some(uri?.to_string()))
    })
}

/// deb822 stanzas (`Types: deb`, `URIs: ...`, `Suites: ...`).
fn deb822_mirror(text: &str, codename: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let is_deb = field("Types")?.split_whitespace().any(|t| t == "deb");
        let has_suite = field("Suites")?.split_whitespace().any(|s| s == codename);
        (is_deb && has_suite)
            .then(|| field("URIs")?.split_whitespace().next().map(str::to_string))?
    })
}

/// The demo images of docker-compose.yml, built from the repository's own
/// Dockerfile with this run's autopilot instead of a Rust build stage, on
/// the debootstrapped Debian base; their `apt-get install` reaches Debian's
/// archive through the host's network.
fn demo_images() -> [&'static str; 2] {
    static BUILT: OnceLock<()> = OnceLock::new();
    let base = debian_image();
    image_once(DEMO_BACKEND_IMAGE, &BUILT, || {
        let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
        let context = BuildContext::new();
        context
            .copy(&static_binaries().autopilot, "autopilot")
            .copy(&repository.join("examples/demo"), "examples/demo");
        let dockerfile = repository.join("Dockerfile");
        let build_image = format!("BUILD_IMAGE={base}");
        for (target, tag) in [
            ("demo-backend", DEMO_BACKEND_IMAGE),
            ("demo-nginx", DEMO_NGINX_IMAGE),
        ] {
            let started = Instant::now();
            context.build_with(
                tag,
                &[
                    "--file",
                    dockerfile.to_str().expect("a UTF-8 path"),
                    "--target",
                    target,
                    "--network",
                    "host",
                    "--build-arg",
                    &build_image,
                    "--build-arg",
                    "AUTOPILOT_BINARY=autopilot",
                ],
            );
            println!("{tag}: built in {:.1?}", started.elapsed());
        }
    });
    [DEMO_BACKEND_IMAGE, DEMO_NGINX_IMAGE]
}

// ---- containers -----------------------------------------------------------------

/// A container this test started; removed (with its volumes) when dropped.
struct Container {
    name: String,
}

impl Container {
    /// `docker run --detach --name NAME ARGS`.
    fn run(args: &[&str]) -> Container {
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
    fn adopt(name: &str) -> Container {
        Container {
            name: name.to_string(),
        }
    }

    /// Everything it wrote, stdout and stderr merged in the order Docker
    /// received it (by Docker's timestamps), without the timestamps.
    fn logs(&self) -> Vec<String> {
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

    fn logs_text(&self) -> String {
        self.logs().join("\n")
    }

    /// Waits until a line of its output contains `text`.
    fn wait_for_output(&self, text: &str) {
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
    fn stop(&self, args: &[&str]) -> Duration {
        let mut command = vec!["stop"];
        command.extend_from_slice(args);
        command.push(&self.name);
        let started = Instant::now();
        docker_ok(&command);
        started.elapsed()
    }

    /// `docker kill --signal SIGNAL`.
    fn kill(&self, signal: &str) {
        docker_ok(&["kill", "--signal", signal, &self.name]);
    }

    /// Its exit code, once it has exited (`docker wait`).
    fn exit_code(&self) -> i32 {
        let code = docker_ok(&["wait", &self.name]);
        code.parse()
            .unwrap_or_else(|_| panic!("docker wait answered {code:?}"))
    }

    fn exec(&self, args: &[&str]) -> String {
        let mut command = vec!["exec", &self.name];
        command.extend_from_slice(args);
        docker_ok(&command)
    }

    /// `docker inspect --format TEMPLATE`.
    fn inspect(&self, template: &str) -> String {
        docker_ok(&["inspect", "--format", template, &self.name])
    }

    /// Its address on its (one) network.
    fn ip(&self) -> IpAddr {
        let ip = self.inspect("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}");
        ip.parse()
            .unwrap_or_else(|_| panic!("{} has no single IP address: {ip:?}", self.name))
    }

    fn hostname(&self) -> String {
        self.inspect("{{.Config.Hostname}}")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "--force", "--volumes", &self.name]);
    }
}

/// A user-defined network: its containers find each other by name through
/// Docker's DNS server; removed when dropped (after its containers).
struct Network {
    name: String,
}

impl Network {
    fn create() -> Network {
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

// ---- the catalog ------------------------------------------------------------------

/// The Consul double's `/_double/state` at `address`, or Null while it does not answer.
fn catalog_state(address: SocketAddr) -> Value {
    common::http::request(address, "GET", "/_double/state", "")
        .ok()
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or(Value::Null)
}

/// The IDs of `service`'s instances whose every check passes (what Consul's
/// `?passing` health query returns).
fn passing(state: &Value, service: &str) -> BTreeSet<String> {
    let checks = state["checks"].as_array().cloned().unwrap_or_default();
    state["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|instance| instance["name"] == service)
        .filter_map(|instance| instance["id"].as_str())
        .filter(|id| {
            checks
                .iter()
                .filter(|check| check["service_id"] == *id)
                .all(|check| check["status"] == "passing")
        })
        .map(str::to_string)
        .collect()
}

/// Every registered service instance's ID.
fn registered(state: &Value) -> BTreeSet<String> {
    state["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|instance| instance["id"].as_str().map(str::to_string))
        .collect()
}

/// The Consul double in a container, known as `consul` on `network`.
struct Consul {
    /// Held to remove the container with the catalog.
    _container: Container,
    address: SocketAddr,
}

impl Consul {
    fn start(network: &Network) -> Consul {
        let container = Container::run(&[
            "--network",
            &network.name,
            "--network-alias",
            "consul",
            consul_double_image(),
        ]);
        let address = SocketAddr::new(container.ip(), 8500);
        wait_for("the Consul double to answer", || {
            !catalog_state(address).is_null()
        });
        Consul {
            _container: container,
            address,
        }
    }

    fn state(&self) -> Value {
        catalog_state(self.address)
    }
}

// ---- 2. single-program images --------------------------------------------------

/// Starts the wrap image with `ARGS` (docker run options, then the APP).
fn run_wrapped(options: &[&str], app: &[&str]) -> Container {
    let mut args = options.to_vec();
    args.push(wrap_image());
    args.extend_from_slice(app);
    Container::run(&args)
}

#[test]
fn docker_stop_ends_an_app_that_exits_on_sigterm_at_once_with_its_code() {
    let container = run_wrapped(&[], &["sh", "/test/exit-on-term.sh"]);
    container.wait_for_output("app: ready");
    let took = container.stop(&[]);
    println!("docker stop (APP exits on SIGTERM): {took:.2?}");
    assert_eq!(
        container.exit_code(),
        42,
        "the APP's exit code passes through"
    );
    assert!(
        container.logs().contains(&"app: got TERM".to_string()),
        "SIGTERM reached the APP; its output:\n{}",
        container.logs_text()
    );
    assert!(
        took < Duration::from_secs(1),
        "docker stop took {took:?}: the APP exited on SIGTERM, autopilot must not wait"
    );
}

#[test]
fn docker_stop_kills_an_app_that_ignores_sigterm_when_the_grace_period_ends() {
    let container = run_wrapped(&[], &["sh", "/test/ignore-term.sh"]);
    container.wait_for_output("app: ready");
    let took = container.stop(&["--time", "2"]);
    println!("docker stop --time 2 (APP ignores SIGTERM): {took:.2?}");
    assert_eq!(
        container.exit_code(),
        137,
        "Docker's SIGKILL ended the container; its output:\n{}",
        container.logs_text()
    );
    assert!(
        took >= Duration::from_secs(2) && took < DOCKER_STOP_GRACE,
        "docker stop --time 2 took {took:?}"
    );
}

#[test]
fn docker_kill_reaches_the_apps_process_group() {
    let container = run_wrapped(&[], &["sh", "/test/group.sh"]);
    container.wait_for_output("first: ready");
    container.wait_for_output("second: ready");
    for signal in ["HUP", "QUIT", "USR1"] {
        container.kill(signal);
        for member in ["first", "second"] {
            container.wait_for_output(&format!("{member}: got {signal}"));
        }
    }
    container.kill("KILL");
    assert_eq!(container.exit_code(), 137);
}

#[test]
fn docker_run_tty_gives_the_terminal_to_the_app() {
    let container = run_wrapped(&["--tty"], &["sh", "/test/terminal.sh"]);
    container.wait_for_output("app: ready");
    let logs = container.logs();
    let report = logs
        .iter()
        .find_map(|line| line.strip_prefix("app: tty "))
        .unwrap_or_else(|| panic!("no tty report; output:\n{}", container.logs_text()));
    let words: Vec<&str> = report.split_whitespace().collect();
    assert!(
        words[0].starts_with("/dev/pts/"),
        "the APP's stdin is the container's terminal: {report}"
    );
    assert_eq!(
        words[3],
        words.last().copied().unwrap_or_default(),
        "the APP's process group is the terminal's foreground group: {report}"
    );
}

#[test]
fn docker_kill_int_under_a_tty_acts_as_ctrl_c() {
    let container = run_wrapped(&["--tty"], &["sh", "/test/terminal.sh"]);
    container.wait_for_output("app: ready");
    // What Ctrl-C would do: SIGINT to the APP, which decides what it means
    // (a shell, a REPL or a dev server may well go on running).
    container.kill("INT");
    assert_eq!(
        container.exit_code(),
        130,
        "the APP ended on SIGINT as on Ctrl-C; output:\n{}",
        container.logs_text()
    );
    assert!(container.logs().contains(&"app: got INT".to_string()));
}

/// A terminal of the test's own, as a user's: what `docker run -it` attached
/// to it prints, and the keys typed into it.
struct Terminal {
    keyboard: std::fs::File,
    screen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Terminal {
    /// Runs `command` with the terminal as its stdin, stdout and stderr.
    fn attach(command: &mut Command) -> (Terminal, std::process::Child) {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let side = |fd: &std::os::fd::OwnedFd| Stdio::from(fd.try_clone().expect("dup the pty"));
        let child = command
            .stdin(side(&pty.slave))
            .stdout(side(&pty.slave))
            .stderr(side(&pty.slave))
            .spawn()
            .expect("run the attached command");
        drop(pty.slave);
        let keyboard = std::fs::File::from(pty.master);
        let mut display = keyboard.try_clone().expect("dup the pty");
        let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let written = screen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // Ends with EIO once the last process holding the terminal is gone.
            while let Ok(read @ 1..) = std::io::Read::read(&mut display, &mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..read]);
                written.lock().expect("the screen").push_str(&text);
            }
        });
        (Terminal { keyboard, screen }, child)
    }

    fn screen(&self) -> String {
        self.screen.lock().expect("the screen").clone()
    }

    fn wait_for(&self, text: &str) {
        let start = Instant::now();
        while !self.screen().contains(text) {
            assert!(
                start.elapsed() < DEADLINE,
                "the terminal never showed {text:?}; it shows:\n{}",
                self.screen()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn type_keys(&mut self, keys: &[u8]) {
        std::io::Write::write_all(&mut self.keyboard, keys).expect("type on the terminal");
    }
}

/// Waits, at most [`DEADLINE`], for `child` to exit, and returns its code.
fn exit_code_of(child: &mut std::process::Child) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for docker") {
            return status.code();
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("docker run -it did not end within {DEADLINE:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[test]
fn ctrl_c_on_docker_run_it_reaches_the_app_through_its_terminal() {
    let name = unique_name("container");
    let _container = Container::adopt(&name);
    let (mut terminal, mut docker_run) = Terminal::attach(
        Command::new("docker")
            .args(["run", "--interactive", "--tty", "--name", &name])
            .args([wrap_image(), "sh", "/test/terminal.sh"]),
    );
    terminal.wait_for("app: ready");
    // The container's terminal turns Ctrl-C into SIGINT for its foreground
    // process group: the APP's, not autopilot's.
    terminal.type_keys(b"\x03");
    let code = exit_code_of(&mut docker_run);
    assert_eq!(
        code,
        Some(130),
        "the APP ended on Ctrl-C; the terminal shows:\n{}",
        terminal.screen()
    );
    assert!(terminal.screen().contains("app: got INT"));
}

#[test]
fn orphans_made_inside_are_reaped() {
    let container = run_wrapped(&[], &["sh", "/test/orphans.sh"]);
    wait_for("five orphans to report and end", || {
        container
            .logs()
            .iter()
            .filter(|line| line.as_str() == "orphan: parent 1")
            .count()
            == 5
    });
    let took = wait_for("no zombie to be left", || {
        // Processes may end while being listed: ignore the ones gone.
        let states = container.exec(&["sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null; true"]);
        states.lines().all(|stat| {
            let fields: Vec<&str> = stat.split_whitespace().collect();
            // state Z, parent PID 1: an orphan autopilot has not reaped
            fields.get(2) != Some(&"Z") || fields.get(3) != Some(&"1")
        })
    });
    println!("orphans reaped within {took:.2?} of their last report");
}

#[test]
fn runs_as_a_user_on_a_read_only_root() {
    let container = run_wrapped(
        &["--user", "1000:1000", "--read-only"],
        &[
            "sh",
            "-c",
            "echo \"app: uid $(id -u) gid $(id -g)\"; exit 3",
        ],
    );
    assert_eq!(
        container.exit_code(),
        3,
        "output:\n{}",
        container.logs_text()
    );
    assert_eq!(
        container.logs(),
        vec!["app: uid 1000 gid 1000".to_string()],
        "only the APP's output, no complaint from autopilot"
    );
}

// ---- 3. configured images --------------------------------------------------------

/// Runs the configured image on a network with the Consul double, checks
/// its service registers and passes, stops it with Docker's defaults, and
/// checks the hooks ran in order within the grace period, the service left
/// the catalog, and the control socket it could not create was reported
/// once while everything else ran.
fn run_configured(options: &[&str], args: &[&str]) {
    let network = Network::create();
    let consul = Consul::start(&network);
    let mut run = vec!["--network", network.name.as_str()];
    run.extend_from_slice(options);
    run.push(configured_image());
    run.extend_from_slice(args);
    let container = Container::run(&run);
    let service_id = format!("web-{}", container.hostname());
    let took = wait_for("the service to register and pass", || {
        passing(&consul.state(), "web").contains(&service_id)
    });
    println!("registered and passing after {took:.2?}");
    container.wait_for_output("app: started");

    let took = container.stop(&[]);
    println!("docker stop with the default grace period: {took:.2?}");
    let code = container.exit_code();
    let logs = container.logs();
    let text = container.logs_text();
    assert!(
        took < DOCKER_STOP_GRACE,
        "docker stop took {took:?}:\n{text}"
    );
    assert_eq!(code, 0, "exit code; output:\n{text}");
    let position = |wanted: &str| {
        logs.iter()
            .position(|line| line.ends_with(wanted))
            .unwrap_or_else(|| panic!("no {wanted:?} in the output:\n{text}"))
    };
    let order: Vec<usize> = [
        "preStart: ran",
        "app: started",
        "preStop: ran",
        "app: got TERM",
        "postStop: ran",
    ]
    .iter()
    .map(|line| position(line))
    .collect();
    assert!(
        order.windows(2).all(|pair| pair[0] < pair[1]),
        "hooks out of order ({order:?}):\n{text}"
    );
    let socket_reports = logs
        .iter()
        .filter(|line| line.contains("control socket"))
        .count();
    assert_eq!(
        socket_reports, 1,
        "the unavailable control socket is reported once:\n{text}"
    );
    assert!(
        !registered(&consul.state()).contains(&service_id),
        "the service left the catalog: {}",
        consul.state()
    );
}

#[test]
fn a_3x_configuration_runs_its_hooks_in_order_within_docker_stop() {
    // Scratch: there is no /var/run for the default control socket.
    run_configured(&[], &[]);
}

#[test]
fn a_2x_configuration_runs_its_hooks_in_order_within_docker_stop() {
    // A non-root user: /var/run exists but belongs to root.
    run_configured(
        &["--user", "1000:1000", "--tmpfs", "/var/run:mode=0755"],
        &[
            "-config",
            "/etc/autopilot/v2.json",
            "sh",
            "-c",
            CONFIGURED_APP,
        ],
    );
}

#[test]
fn the_control_socket_works_in_scratch_on_a_tmpfs_the_user_owns() {
    let network = Network::create();
    let _consul = Consul::start(&network);
    let container = Container::run(&[
        "--network",
        &network.name,
        "--user",
        "1000:1000",
        "--tmpfs",
        "/var/run:uid=1000,gid=1000",
        configured_image(),
    ]);
    container.wait_for_output("app: started");
    container.exec(&["autopilot", "-putenv", "DEMO=1"]);
    assert!(
        !container.logs_text().contains("control socket"),
        "no complaint about the control socket:\n{}",
        container.logs_text()
    );
}

// ---- 4. the compose demo ------------------------------------------------------------

/// `docker compose` where the plugin exists, else Debian's `docker-compose`.
fn compose_command() -> Command {
    static PLUGIN: OnceLock<bool> = OnceLock::new();
    let plugin = *PLUGIN.get_or_init(|| docker(&["compose", "version"]).status.success());
    if plugin {
        let mut command = Command::new("docker");
        command.arg("compose");
        command
    } else {
        Command::new("docker-compose")
    }
}

/// An override of the repository's docker-compose.yml: the Consul double
/// stands in for Consul (no registry holds Consul's image here) and the demo
/// images are the ones built beforehand; the user's file keeps Consul's image.
fn compose_override() -> String {
    let [backend, nginx] = demo_images();
    format!(
        r#"services:
  consul:
    image: {consul}
    command: ["--listen", "0.0.0.0:8500"]
  customers:
    image: {backend}
  sales:
    image: {backend}
  nginx:
    image: {nginx}
"#,
        consul = consul_double_image(),
    )
}

/// The demo brought up by compose; `down` when dropped.
struct ComposeProject {
    name: String,
    override_file: tempfile::NamedTempFile,
}

impl ComposeProject {
    fn new() -> ComposeProject {
        let override_file = tempfile::Builder::new()
            .suffix(".yml")
            .tempfile()
            .expect("a temporary compose override");
        std::fs::write(override_file.path(), compose_override()).expect("write the override");
        ComposeProject {
            name: unique_name("demo"),
            override_file,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = compose_command();
        command
            .current_dir(repository)
            .args(["--project-name", &self.name, "--file"])
            .arg(repository.join("docker-compose.yml"))
            .arg("--file")
            .arg(self.override_file.path())
            .args(args)
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let output = common::run_to_success(
            &mut self.command(args),
            &format!("compose {}", args.join(" ")),
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    /// The containers of one service.
    fn containers(&self, service: &str) -> Vec<Container> {
        self.run(&["ps", "-q", service])
            .lines()
            .map(Container::adopt)
            .collect()
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = self
            .command(&["down", "--volumes", "--remove-orphans"])
            .output();
    }
}

/// The hostname of the customers instance that answers one request through
/// nginx on the host's port 8080, as the README's `curl` does.
fn customers_via_nginx() -> Option<String> {
    let address = SocketAddr::from(([127, 0, 0, 1], 8080));
    let (status, body) = common::http::request(address, "GET", "/customers/", "").ok()?;
    let answer: Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
    answer["hostname"].as_str().map(str::to_string)
}

/// nginx.conf as autopilot rendered it in the nginx container.
fn nginx_conf(nginx: &Container) -> String {
    nginx.exec(&["cat", "/run/nginx.conf"])
}

fn upstream(ip: IpAddr) -> String {
    format!("server {ip}:4000;")
}

#[test]
fn the_compose_demo_scales_routes_and_deregisters() {
    let project = ComposeProject::new();
    let started = Instant::now();
    project.run(&["up", "--detach", "--no-build", "--scale", "customers=3"]);
    println!("compose up --scale customers=3: {:.1?}", started.elapsed());
    let customers = project.containers("customers");
    assert_eq!(customers.len(), 3, "three customers containers");
    let [sales, nginx, consul] = ["sales", "nginx", "consul"].map(|service| {
        project
            .containers(service)
            .pop()
            .unwrap_or_else(|| panic!("no {service} container"))
    });
    let catalog = SocketAddr::from(([127, 0, 0, 1], 8500));

    // Every instance registered and passing.
    let expected = |service: &str, containers: &[&Container]| -> BTreeSet<String> {
        containers
            .iter()
            .map(|c| format!("{service}-{}", c.hostname()))
            .collect()
    };
    let all: Vec<&Container> = customers.iter().collect();
    let wanted = [
        ("customers", expected("customers", &all)),
        ("sales", expected("sales", &[&sales])),
        ("nginx", expected("nginx", &[&nginx])),
    ];
    let took = wait_for("every instance to register and pass", || {
        let state = catalog_state(catalog);
        wanted
            .iter()
            .all(|(service, ids)| passing(&state, service) == *ids)
    });
    println!("all five instances passing {took:.1?} after compose up returned");

    // nginx's upstreams list the three, and each answers in turn.
    let ips: Vec<IpAddr> = customers.iter().map(Container::ip).collect();
    wait_for("nginx.conf to list the three customers", || {
        let conf = nginx_conf(&nginx);
        ips.iter().all(|ip| conf.contains(&upstream(*ip)))
    });
    let hostnames: BTreeSet<String> = customers.iter().map(Container::hostname).collect();
    wait_for("requests to go to each customers instance in turn", || {
        let answers: Vec<Option<String>> = (0..6).map(|_| customers_via_nginx()).collect();
        let first_round: BTreeSet<String> = answers[..3].iter().flatten().cloned().collect();
        first_round == hostnames && answers[..3] == answers[3..]
    });

    // `docker stop` of one instance takes it out of nginx within seconds.
    let stopped = &customers[2];
    let stopped_ip = ips[2];
    let stopped_id = format!("customers-{}", stopped.hostname());
    let started = Instant::now();
    stopped.stop(&[]);
    wait_for("the stopped instance to leave nginx.conf", || {
        !nginx_conf(&nginx).contains(&upstream(stopped_ip))
    });
    let took = started.elapsed();
    println!("docker stop of one customers instance: out of nginx's upstreams in {took:.1?}");
    assert!(
        !registered(&catalog_state(catalog)).contains(&stopped_id),
        "the stopped instance left the catalog"
    );
    assert!(took < DOCKER_STOP_GRACE, "took {took:?}");
    let left: BTreeSet<String> = customers[..2].iter().map(Container::hostname).collect();
    wait_for("requests to go to the two instances left", || {
        let answers: BTreeSet<String> = (0..4).filter_map(|_| customers_via_nginx()).collect();
        answers == left
    });

    // `compose down` deregisters everything: the double's request log,
    // followed until the double is removed, shows each deregistration.
    let still = registered(&catalog_state(catalog));
    assert_eq!(still.len(), 4, "two customers, sales and nginx: {still:?}");
    let consul_log = follow_logs(&consul);
    project.run(&["down", "--volumes"]);
    let log = consul_log.join().expect("the double's log");
    for id in &still {
        assert!(
            log.iter().any(
                |line| line.contains(&format!("PUT /v1/agent/service/deregister/{id}"))
                    && line.contains("status=200")
            ),
            "{id} was not deregistered at `compose down`; the double's log:\n{}",
            log.join("\n")
        );
    }
}

/// Follows a container's output (`docker logs --follow`) until it is removed.
fn follow_logs(container: &Container) -> std::thread::JoinHandle<Vec<String>> {
    let mut child = Command::new("docker")
        .args(["logs", "--follow", &container.name])
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
