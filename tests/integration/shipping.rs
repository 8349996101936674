//! What users meet first: a statically linked binary (it is copied into
//! scratch images), `examples/hello.json5` (the README's first command) that
//! runs to its end, and example configurations that are all valid.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Autopilot, Mode};

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path)
}

/// The job names in autopilot's `text` log lines, in order, without repeats
/// in a row.
fn job_sequence(log: &str) -> Vec<String> {
    let mut jobs: Vec<String> = Vec::new();
    let names = log.lines().filter_map(|line| line.rsplit_once(" job="));
    for job in names.filter_map(|(_, fields)| fields.split(' ').next()) {
        if jobs.last().map(String::as_str) != Some(job) {
            jobs.push(job.to_string());
        }
    }
    jobs
}

#[test]
fn hello_runs_its_hooks_around_the_app_and_exits_with_the_apps_code() {
    let scratch = common::Scratch::new();
    let hello = example("hello.json5").display().to_string();
    let finished = Autopilot::new(Mode::Subreaper, ["-config", &hello])
        .env("TMPDIR", &scratch.dir().display().to_string())
        .run();
    let log = finished.stdout_text();
    assert_eq!(finished.code, 0, "{log}{}", finished.stderr_text());
    let jobs = job_sequence(&log);
    assert_eq!(jobs.first().map(String::as_str), Some("setup"), "{log}");
    assert_eq!(jobs.last().map(String::as_str), Some("cleanup"), "{log}");
    for job in ["app", "on-healthy", "tick"] {
        assert!(jobs.iter().any(|j| j == job), "{job} did not run:\n{log}");
    }
    assert!(log.contains("app: done"), "{log}");

    let failing = Autopilot::new(Mode::Subreaper, ["-config", &hello])
        .env("TMPDIR", &scratch.dir().display().to_string())
        .env("HELLO_EXIT", "3")
        .run();
    assert_eq!(
        failing.code, 3,
        "the primary job's exit code is autopilot's"
    );
}

#[test]
fn every_example_configuration_is_valid() {
    for config in [
        "hello.json5",
        "demo/customers/containerpilot.json5",
        "demo/sales/containerpilot.json5",
        "demo/nginx/containerpilot.json5",
    ] {
        let path = example(config).display().to_string();
        // The demo's files where the images hold them (/opt/demo), so that
        // --check reads and checks the nginx template too.
        let finished = Autopilot::new(Mode::Subreaper, ["--check", "-config", &path])
            .env("DEMO_DIR", &example("demo").display().to_string())
            .run();
        assert_eq!(
            (finished.code, finished.stderr_text()),
            (0, String::new()),
            "{config}"
        );
    }
}

#[test]
fn the_binary_is_statically_linked() {
    // `.cargo/config.toml` links every build of the binary with +crt-static,
    // debug and release alike.
    let output = std::process::Command::new("file")
        .arg("-b")
        .arg(common::binary())
        .output()
        .expect("run `file` (Debian package `file`)");
    let description = String::from_utf8_lossy(&output.stdout);
    assert!(
        description.contains("static") && !description.contains("dynamically linked"),
        "{description}"
    );
}

#[test]
fn the_compose_file_runs_the_configurations_the_demo_test_runs() {
    // tests/integration/demo.rs runs examples/demo/<service>/containerpilot.json5; the
    // compose file must point each container at the same file, which the
    // Dockerfile copies to /opt/demo (the configurations' default DEMO_DIR).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| std::fs::read_to_string(root.join(name)).expect(name);
    let compose = read("docker-compose.yml");
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("COPY examples/demo /opt/demo"));
    let named: Vec<&str> = compose
        .lines()
        .filter_map(|line| line.trim().strip_prefix("CONTAINERPILOT: /opt/demo/"))
        .collect();
    assert_eq!(
        named,
        [
            "customers/containerpilot.json5",
            "sales/containerpilot.json5",
            "nginx/containerpilot.json5"
        ]
    );
    for config in named {
        let text = read(&format!("examples/demo/{config}"));
        assert!(
            text.contains(r#".DEMO_DIR | default "/opt/demo""#),
            "{config}"
        );
    }
    for target in ["demo-backend", "demo-nginx"] {
        assert!(dockerfile.contains(&format!(" AS {target}")), "{target}");
        assert!(compose.contains(&format!("target: {target} ")), "{target}");
    }
}
