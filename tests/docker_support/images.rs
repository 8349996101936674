//! Images built without a registry: the static binaries they get, build
//! contexts, and the base images (busybox on scratch, the Consul double, the
//! demo images of the repository's Dockerfile), tagged and reused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;

use super::debian::debian_image;
use super::{docker, docker_ok};
use crate::common;

/// The images built here, by tag.
const BUSYBOX_IMAGE: &str = "autopilot-test/busybox";
const CONSUL_DOUBLE_IMAGE: &str = "autopilot-test/consul-double";
const DEMO_BACKEND_IMAGE: &str = "autopilot-test/demo-backend";
const DEMO_NGINX_IMAGE: &str = "autopilot-test/demo-nginx";
/// The Dockerfile's build stage: tagged and labelled like the images above,
/// so that once a later run replaces it, it is removed as they are.
const DEMO_BUILD_STAGE_IMAGE: &str = "autopilot-test/demo-build-stage";

// ---- the binaries copied into images ----------------------------------------

/// The binaries the images get, each checked to be static.
pub(crate) struct Binaries {
    pub(crate) autopilot: PathBuf,
    pub(crate) consul_double: PathBuf,
}

/// The one place the binaries copied into images come from: the autopilot
/// Cargo built for this test run, and the Consul double built here by Cargo
/// with the same settings. A `scratch` image has no libc to load, so each
/// must be statically linked; the test fails at once, saying so, if not.
pub(crate) fn static_binaries() -> &'static Binaries {
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
pub(crate) fn cargo_build_binary(package: &str, bin: &str) -> PathBuf {
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
pub(crate) fn require_static(binary: &Path) {
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
pub(crate) struct BuildContext {
    dir: tempfile::TempDir,
}

impl BuildContext {
    pub(crate) fn new() -> BuildContext {
        BuildContext {
            dir: tempfile::tempdir().expect("a temporary build context"),
        }
    }

    pub(crate) fn write(&self, name: &str, contents: &str) -> &Self {
        self.make_parent(name);
        std::fs::write(self.dir.path().join(name), contents).expect("write into the build context");
        self
    }

    pub(crate) fn make_parent(&self, name: &str) {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a file in the context"))
            .expect("a directory in the build context");
    }

    /// Copies `source` (a file, or a directory and everything in it) to `name`.
    pub(crate) fn copy(&self, source: &Path, name: &str) -> &Self {
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
    pub(crate) fn build(&self, tag: &str, dockerfile: &str) {
        self.write("Dockerfile", dockerfile);
        self.build_with(tag, &[]);
    }

    /// `docker build -t TAG ARGS` of this context.
    pub(crate) fn build_with(&self, tag: &str, args: &[&str]) {
        remove_stale_images();
        let context = self.dir.path().to_str().expect("a UTF-8 temporary path");
        let mut command = vec!["build", "--quiet", "--label", IMAGE_LABEL, "--tag", tag];
        command.extend_from_slice(args);
        command.push(context);
        docker_ok(&command);
    }
}

/// The label of every image these tests build.
pub(crate) const IMAGE_LABEL: &str = "autopilot-test";

/// Removes, once per test run, the images earlier runs built that no tag
/// names any more (each run's binaries replace the last run's): the disk
/// would otherwise fill up run after run.
pub(crate) fn remove_stale_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let label = format!("label={IMAGE_LABEL}");
        docker_ok(&["image", "prune", "--force", "--filter", &label]);
    });
}

pub(crate) fn image_exists(tag: &str) -> bool {
    docker(&["image", "inspect", tag]).status.success()
}

/// Runs `build` at most once per test run, and not at all when `tag` is
/// already there from an earlier run (base images only: they never change).
pub(crate) fn base_image(
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
pub(crate) fn busybox_image() -> &'static str {
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
pub(crate) fn image_once(
    tag: &'static str,
    built: &'static OnceLock<()>,
    build: impl FnOnce(),
) -> &'static str {
    built.get_or_init(build);
    tag
}

/// The Consul double on scratch, with autopilot as its PID 1 (so that
/// `docker stop` ends it at once: a bare PID 1 ignores SIGTERM).
pub(crate) fn consul_double_image() -> &'static str {
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

/// The demo images of docker-compose.yml, built from the repository's own
/// Dockerfile with this run's autopilot instead of a Rust build stage, on
/// the debootstrapped Debian base; their `apt-get install` reaches Debian's
/// archive through the host's network.
pub(crate) fn demo_images() -> [&'static str; 2] {
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
            ("build", DEMO_BUILD_STAGE_IMAGE),
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
