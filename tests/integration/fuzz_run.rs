//! A short, bounded libFuzzer run of each fuzz target (fuzz/README.md), so
//! that every change is fuzzed a little and not only checked against the
//! inputs earlier sessions found (tests/integration/fuzz_corpus.rs replays those).
//!
//! The targets are built on stable Rust with the coverage instrumentation
//! cargo-fuzz adds (`-Cpasses=sancov-module` and its options; no sanitizer,
//! which would need nightly) into `target/fuzz-ci`, then each runs for
//! [`SECONDS_PER_TARGET`] starting from its committed corpus. New inputs go
//! to a scratch directory, never into the repository. A crash, a hang past
//! libFuzzer's timeout or an out-of-memory fails the test with libFuzzer's
//! report and the input it saved.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TARGETS: [&str; 2] = ["config_front_end", "control_request"];
const SECONDS_PER_TARGET: u32 = 20;
/// What cargo-fuzz passes to rustc, less the sanitizer.
const COVERAGE_FLAGS: &str = "--cfg fuzzing -Cdebug-assertions -Coverflow-checks \
    -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares";

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds both targets; returns the directory holding their binaries.
fn build_targets() -> PathBuf {
    let target_dir = repository().join("target/fuzz-ci");
    common::run_to_success(
        Command::new(env!("CARGO"))
            .args(["build", "--release", "--bins", "--manifest-path"])
            .arg(repository().join("fuzz/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .env("RUSTFLAGS", COVERAGE_FLAGS),
        "building the fuzz targets",
    );
    // .cargo/config.toml builds for the host's tuple by name, so binaries land below it.
    target_dir.join(format!(
        "{}-unknown-linux-gnu/release",
        std::env::consts::ARCH
    ))
}

/// Runs one target for its time budget from the committed corpus.
fn fuzz(binary: &Path, target: &str, scratch: &Path) -> Output {
    let new_inputs = scratch.join(target);
    std::fs::create_dir_all(&new_inputs).expect("scratch corpus directory");
    Command::new(binary)
        .arg(format!("-max_total_time={SECONDS_PER_TARGET}"))
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg(format!("-artifact_prefix={}/", scratch.display()))
        .arg(&new_inputs)
        .arg(repository().join("fuzz/corpus").join(target))
        .output()
        .expect("cannot run the fuzz target")
}

/// libFuzzer's closing "Done N runs in S second(s)": N.
fn runs_done(report: &str) -> Option<u64> {
    let line = report
        .lines()
        .rev()
        .find(|line| line.starts_with("Done "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A build of the fuzz targets and 20 s per target: skipped by
/// `-- --skip long::` (see the README, "Tests").
mod long {
    use super::*;

    #[test]
    fn each_fuzz_target_survives_a_bounded_run_from_its_corpus() {
        let binaries = build_targets();
        let scratch = tempfile::tempdir().expect("scratch directory");
        let mut failures = Vec::new();
        for target in TARGETS {
            let output = fuzz(&binaries.join(target), target, scratch.path());
            let report = String::from_utf8_lossy(&output.stderr);
            let lines: Vec<&str> = report.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            match runs_done(&report) {
                Some(runs) if output.status.success() && runs > 0 => {
                    eprintln!("{target}: {runs} runs in {SECONDS_PER_TARGET} s, no failure");
                }
                _ => failures.push(format!(
                    "{target}: libFuzzer ended with {} (inputs saved under {}):\n{tail}",
                    output.status,
                    scratch.path().display()
                )),
            }
        }
        if !failures.is_empty() {
            // Keep the saved inputs for whoever reads the failure.
            let kept = scratch.keep();
            panic!(
                "fuzzing failed (inputs kept in {}):\n{}",
                kept.display(),
                failures.join("\n\n")
            );
        }
    }
}
