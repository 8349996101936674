//! The configuration flags of the real binary: `-config` (path, `file://`
//! URL, inline document), `CONTAINERPILOT`/`CONTAINERBUDDY`, `-template
//! [-out FILE]`, `--check`, and the normal run refusing a bad config and
//! running the APP under a good one.

use std::path::Path;
use std::process::{Command, Output};

fn autopilot(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_autopilot"));
    command.env_clear().env("PATH", "/usr/bin:/bin").args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run autopilot")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

const VALID: &str = "{\n  consul: \"{{ .CONSUL | default \"localhost:8500\" }}\",\n  jobs: [{name: \"app\", exec: \"true\"}]\n}\n";

#[test]
fn template_prints_the_rendered_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "cp.json5", VALID);
    let output = autopilot(
        &["-config", &config, "-template"],
        &[("CONSUL", "consul:8500")],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        VALID.replace("{{ .CONSUL | default \"localhost:8500\" }}", "consul:8500")
    );
}

#[test]
fn template_out_writes_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "cp.json5", VALID);
    let out = dir.path().join("rendered.json5");
    let output = autopilot(
        &[
            "-config",
            &format!("file://{config}"),
            "-template",
            "-out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(output.stdout.is_empty());
    assert!(std::fs::read_to_string(out)
        .unwrap()
        .contains("consul: \"localhost:8500\""));
}

#[test]
fn template_errors_name_line_and_column() {
    let output = autopilot(&["-template", "-config", "{\n  a: \"{{ .X \"\n}"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr)
            .starts_with("config error: inline config:2:7: template: unclosed action"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn check_prints_the_normalized_config() {
    let output = autopilot(
        &["--check", "-config", "{jobs: [{name: 'a', exec: 'x y'}]}"],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["format"], "v3");
    assert_eq!(json["jobs"][0]["exec"], serde_json::json!(["x", "y"]));
}

#[test]
fn check_takes_the_config_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "cp.json",
        r#"{"consul": "c:8500", "onStart": "/bin/x"}"#,
    );
    for variable in ["CONTAINERPILOT", "CONTAINERBUDDY"] {
        let output = autopilot(&["--check"], &[(variable, &format!("file://{config}"))]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{variable}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stderr).contains("warning: onStart is deprecated"),
            "{}",
            text(&output.stderr)
        );
    }
    let flag_wins = autopilot(
        &["--check", "-config", "{jobs: []}"],
        &[("CONTAINERPILOT", "/nonexistent")],
    );
    assert_eq!(
        flag_wins.status.code(),
        Some(0),
        "{}",
        text(&flag_wins.stderr)
    );
}

#[test]
fn check_fails_with_exit_code_2() {
    let output = autopilot(
        &[
            "--check",
            "-config",
            "{jobs: [{name: 'a', exec: 'x', restart: 1}]}",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "config error: jobs[0] \"a\": unknown key \"restart\" (did you mean \"restarts\"?)\n"
    );
    let missing = autopilot(&["--check", "-config", "/nonexistent/cp.json5"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).starts_with("config error: cannot read /nonexistent/cp.json5"),
        "{}",
        text(&missing.stderr)
    );
    let none = autopilot(&["--check"], &[]);
    assert_eq!(none.status.code(), Some(2));
}

#[test]
fn a_run_with_an_invalid_config_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let output = autopilot(
        &[
            "-config",
            "{jobs: [{name: 'a', port: 80}]}",
            "touch",
            marker.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("jobs[0] \"a\".port"),
        "{}",
        text(&output.stderr)
    );
    assert!(!marker.exists());
}

#[test]
fn a_run_with_a_valid_config_runs_the_app() {
    let output = autopilot(
        &["-config", "{jobs: []}", "sh", "-c", "echo started; exit 3"],
        &[],
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "started\n");
}

#[test]
fn check_into_a_closed_pipe_does_not_panic() {
    // `autopilot --check -config F | head -1`: the reader goes away early.
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "cp.json5", VALID);
    let mut child = Command::new(env!("CARGO_BIN_EXE_autopilot"))
        .args(["--check", "-config", &config])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        !text(&output.stderr).contains("panicked"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0));
}
