//! The project's own configuration fixtures (`tests/fixtures/`) load, or are
//! refused, as each file's header says, through the real binary
//! (`autopilot --check -config FILE`).
//!
//! A fixture's first comment lines state what to expect:
//! `// expect: valid, N jobs` (exit 0, the printed configuration has N jobs)
//! or `// expect: error "TEXT"` (exit 2, one `config error: ` line holding
//! TEXT), and `// env: NAME=value` for each variable the template reads.
//! A file dropped into the folder is picked up automatically.

use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

#[derive(Debug, PartialEq)]
enum Expect {
    Valid { jobs: usize },
    Error(String),
}

struct Header {
    expect: Expect,
    env: Vec<(String, String)>,
}

fn header(path: &Path, text: &str) -> Header {
    let mut expect = None;
    let mut env = Vec::new();
    for line in text.lines().map_while(|line| line.strip_prefix("// ")) {
        if let Some(verdict) = line.strip_prefix("expect: ") {
            expect =
                Some(parse_expect(verdict).unwrap_or_else(|| {
                    panic!("{}: cannot read `expect: {verdict}`", path.display())
                }));
        } else if let Some((name, value)) =
            line.strip_prefix("env: ").and_then(|v| v.split_once('='))
        {
            env.push((name.to_string(), value.to_string()));
        }
    }
    let expect = expect.unwrap_or_else(|| panic!("{}: no `// expect:` line", path.display()));
    Header { expect, env }
}

/// `valid, N jobs` or `error "TEXT"` (with `\"` for a quote inside TEXT).
fn parse_expect(verdict: &str) -> Option<Expect> {
    if let Some(jobs) = verdict.strip_prefix("valid, ") {
        let jobs = jobs.strip_suffix(" jobs")?.parse().ok()?;
        return Some(Expect::Valid { jobs });
    }
    let quoted = verdict.strip_prefix("error \"")?.strip_suffix('"')?;
    Some(Expect::Error(quoted.replace("\\\"", "\"")))
}

fn fixture_files(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(FIXTURES).join(folder))
        .expect("read a fixtures folder")
        .map(|entry| entry.expect("read a fixture entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in tests/fixtures/{folder}");
    files
}

/// What `autopilot --check` made of one fixture, or why it disagrees with
/// the header.
fn disagreement(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).expect("read a fixture");
    let header = header(path, &text);
    let output = Command::new(env!("CARGO_BIN_EXE_autopilot"))
        .env_clear()
        .envs(header.env)
        .args(["--check", "-config"])
        .arg(path)
        .output()
        .expect("run autopilot --check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match (&header.expect, output.status.code()) {
        (Expect::Valid { jobs }, Some(0)) => {
            let printed: serde_json::Value = match serde_json::from_str(&stdout) {
                Ok(printed) => printed,
                Err(error) => return Some(format!("printed no JSON ({error}): {stdout}")),
            };
            let found = printed["jobs"].as_array().map_or(0, Vec::len);
            (found != *jobs).then(|| format!("expected {jobs} jobs, found {found}: {stdout}"))
        }
        (Expect::Error(text), Some(2))
            if stderr.starts_with("config error: ") && stderr.contains(text.as_str()) =>
        {
            None
        }
        (expect, code) => Some(format!("expected {expect:?}, exit code {code:?}: {stderr}")),
    }
}

fn check_folder(folder: &str) {
    let failures: Vec<String> = fixture_files(folder)
        .iter()
        .filter_map(|path| {
            disagreement(path).map(|problem| format!("{}: {problem}", path.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_3x_fixture_loads() {
    check_folder("v3");
}

#[test]
fn every_2x_fixture_loads() {
    check_folder("v2");
}

#[test]
fn every_invalid_fixture_is_refused_with_its_error() {
    check_folder("invalid");
}

#[test]
fn headers_are_read_as_documented() {
    assert_eq!(
        parse_expect("valid, 3 jobs"),
        Some(Expect::Valid { jobs: 3 })
    );
    assert_eq!(
        parse_expect(r#"error "unknown key \"x\"""#),
        Some(Expect::Error("unknown key \"x\"".into()))
    );
    assert_eq!(parse_expect("valid"), None);
}

#[test]
fn a_syntax_error_shows_the_line_and_a_caret() {
    let path = Path::new(FIXTURES).join("invalid/missing-comma.json5");
    let output = Command::new(env!("CARGO_BIN_EXE_autopilot"))
        .args(["--check", "-config"])
        .arg(&path)
        .output()
        .expect("run autopilot --check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("    6 |     restarts: \"unlimited\",\n      |     ^"),
        "{stderr}"
    );
}
