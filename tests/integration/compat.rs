//! Every ContainerPilot config in the corpus `AUTOPILOT_COMPAT_DIR` names
//! loads, or is refused, exactly as its MANIFEST.md says, through the real
//! binary (`autopilot --check -config FILE`). Without the variable these
//! tests do nothing and say so once (the project's own fixtures, checked by
//! `config_fixtures`, do not need it).
//!
//! The test is driven by the folder and the MANIFEST: a file dropped into
//! the folder is picked up automatically (and must have a MANIFEST row).
//! Fragments are wrapped as the MANIFEST's Expected column says
//! (`... <fragment> ...`), or by their kind (`jobs-array` is the value of
//! `jobs`, ...). Variables the MANIFEST lists under "Needs env" are set to
//! `1234` so the templates render to something concrete.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::compat_dir;
use std::process::Command;

/// Files whose verdict autopilot deliberately changes (MANIFEST.md,
/// "Deliberate deviations"): the verdict autopilot gives.
const DEVIATIONS: [(&str, Verdict); 1] = [
    // 2.x files are read as JSON5, so the trailing comma is fine.
    (
        "v2/docs-12-configuration-block10-template-usage.json",
        Verdict::Valid,
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Valid,
    Invalid,
}

#[derive(Debug)]
struct Row {
    format: String,
    needs_env: String,
    expected: String,
}

fn manifest(dir: &Path) -> BTreeMap<String, Row> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.md")).expect("read MANIFEST.md");
    text.lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split(" | ")
                .map(str::trim)
                .collect();
            let [file, _origin, format, needs_env, expected, ..] = cells.as_slice() else {
                return None; // the templates table has fewer columns
            };
            let row = Row {
                format: format.to_string(),
                needs_env: needs_env.to_string(),
                expected: expected.to_string(),
            };
            Some((file.trim_matches('`').to_string(), row))
        })
        .collect()
}

/// The text to load and the verdict to expect for one row.
fn case(file: &str, row: &Row, content: &str) -> (String, Verdict) {
    let manifest_verdict = if row.expected.starts_with("invalid") {
        Verdict::Invalid
    } else {
        Verdict::Valid
    };
    let verdict = DEVIATIONS
        .iter()
        .find(|(f, _)| *f == file)
        .map_or(manifest_verdict, |(_, v)| *v);
    let kind = row.format.split_whitespace().nth(1).unwrap_or("whole-file");
    let text = match kind {
        "jobs-array" => format!("{{jobs: {content}}}"),
        "watches-array" => format!("{{watches: {content}}}"),
        "telemetry-object" => format!("{{telemetry: {content}}}"),
        "doc-fragment" => return fragment(row, content, verdict),
        _ => content.to_string(),
    };
    (text, verdict)
}

/// A documentation fragment, wrapped as the Expected column says; a value
/// of a single field ("n/a") is placed in a minimal job or service.
fn fragment(row: &Row, content: &str, verdict: Verdict) -> (String, Verdict) {
    let wrapper = row
        .expected
        .split('`')
        .skip(1)
        .step_by(2)
        .find(|snippet| snippet.contains("<fragment>"));
    if let Some(wrapper) = wrapper {
        return (wrapper.replace("<fragment>", content), verdict);
    }
    let expected = &row.expected;
    if expected.contains("`when` field") {
        (
            format!("{{jobs: [{{name: \"job\", exec: \"true\", {content}}}]}}"),
            Verdict::Valid,
        )
    } else if expected.contains("`health` field") {
        // "interval and ttl are required when health is present"
        (
            format!("{{jobs: [{{name: \"job\", exec: \"true\", {content}}}]}}"),
            Verdict::Invalid,
        )
    } else if expected.contains("service field") {
        let service =
            format!("{{\"name\": \"app\", \"port\": 80, \"poll\": 10, \"ttl\": 30, {content}}}");
        (
            format!("{{\"consul\": \"consul:8500\", \"services\": [{service}]}}"),
            Verdict::Valid,
        )
    } else {
        (format!("{{ {content} }}"), verdict)
    }
}

/// `line:col [L:C]` from ContainerPilot's parse error, when the column is a
/// real one (its highlighter printed negative columns for some lines).
fn parse_position(expected: &str) -> Option<(i64, i64)> {
    let start = expected.find("line:col [")? + "line:col [".len();
    let (line, rest) = expected[start..].split_once(':')?;
    let column = rest.split(']').next()?;
    let (line, column) = (line.parse().ok()?, column.parse().ok()?);
    (column > 0).then_some((line, column))
}

fn needed_vars(needs_env: &str) -> Vec<&str> {
    needs_env
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect()
}

fn config_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read compat folder") {
            let path = entry.expect("read compat entry").path();
            if path.is_dir() {
                if path.file_name() != Some("templates".as_ref()) {
                    pending.push(path);
                }
            } else if path.file_name() != Some("MANIFEST.md".as_ref()) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(config: &Path, vars: &[&str]) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_autopilot"));
    command.env_clear().args(["--check", "-config"]).arg(config);
    for var in vars {
        command.env(var, "1234");
    }
    let output = command.output().expect("run autopilot --check");
    Outcome {
        code: output.status.code().expect("autopilot exited normally"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn every_compat_file_gets_its_manifest_verdict() {
    let Some(dir) = compat_dir() else {
        return;
    };
    let rows = manifest(&dir);
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    let files = config_files(&dir);
    assert!(
        files.len() >= 60,
        "expected the whole corpus, found {} files in {}",
        files.len(),
        dir.display()
    );
    for path in &files {
        let file = path
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let Some(row) = rows.get(&file) else {
            failures.push(format!(
                "{file}: no row in MANIFEST.md (add one with its expected verdict)"
            ));
            continue;
        };
        let content = std::fs::read_to_string(path).expect("read compat file");
        let (text, verdict) = case(&file, row, &content);
        let config = scratch.path().join(file.replace('/', "__"));
        std::fs::write(&config, &text).expect("write wrapped config");
        let outcome = check(&config, &needed_vars(&row.needs_env));
        let problem = match (verdict, outcome.code) {
            (Verdict::Valid, 0)
                if serde_json::from_str::<serde_json::Value>(&outcome.stdout).is_ok() =>
            {
                None
            }
            (Verdict::Valid, 0) => Some(format!("printed no JSON: {}", outcome.stdout)),
            (Verdict::Invalid, 2) if !outcome.stderr.starts_with("config error: ") => {
                Some(format!(
                    "error does not start with 'config error: ': {}",
                    outcome.stderr
                ))
            }
            (Verdict::Invalid, 2) => parse_position(&row.expected)
                .filter(|(line, column)| !outcome.stderr.contains(&format!(":{line}:{column}:")))
                .map(|(line, column)| {
                    format!("expected the error at {line}:{column}: {}", outcome.stderr)
                }),
            (verdict, code) => Some(format!(
                "expected {verdict:?}, exit code {code}: {}",
                outcome.stderr
            )),
        };
        if let Some(problem) = problem {
            failures.push(format!("{file}: {problem}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} compat files disagree with MANIFEST.md:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn broken_files_report_line_column_and_the_line() {
    let Some(dir) = compat_dir() else {
        return;
    };
    let outcome = check(&dir.join("v3/docs-example-periodic-tasks.json5"), &[]);
    assert_eq!(outcome.code, 2);
    assert!(
        outcome
            .stderr
            .contains("docs-example-periodic-tasks.json5:11:7: expected a comma"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome
            .stderr
            .contains("   11 |       restarts: \"unlimited\",\n      |       ^"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn manifest_parsing_finds_every_kind() {
    let Some(dir) = compat_dir() else {
        return;
    };
    let rows = manifest(&dir);
    let kinds: std::collections::BTreeSet<&str> = rows
        .values()
        .filter_map(|r| r.format.split_whitespace().nth(1))
        .collect();
    for kind in [
        "jobs-array",
        "watches-array",
        "telemetry-object",
        "doc-fragment",
    ] {
        assert!(
            kinds.contains(kind),
            "MANIFEST.md has no {kind} rows: {kinds:?}"
        );
    }
    assert_eq!(
        parse_position("error: `parse error at line:col [11:7]: x`"),
        Some((11, 7))
    );
    assert_eq!(
        parse_position("error: `parse error at line:col [53:-34]: x`"),
        None
    );
}
