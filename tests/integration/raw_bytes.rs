//! Arguments and environment variables that are not UTF-8 (a Latin-1 file
//! name, a binary token) reach the APP and the jobs byte for byte, with
//! autopilot as PID 1 and as a subreaper; only templates see them converted,
//! with U+FFFD for the bytes that are not UTF-8.

use crate::common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use common::{sh, Autopilot, Mode, Scratch};

fn raw(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

#[test]
fn an_argument_that_is_not_utf8_reaches_the_app() {
    for mode in [Mode::Pid1, Mode::Subreaper] {
        let args = [
            "--".into(),
            "printf".into(),
            "%s".into(),
            raw(b"caf\xe9 \xff"),
        ];
        let finished = Autopilot::new(mode, args).run();
        assert_eq!(finished.code, 0, "{mode:?}: {}", finished.stderr_text());
        assert_eq!(finished.stdout, b"caf\xe9 \xff", "{mode:?}");
    }
}

#[test]
fn a_variable_that_is_not_utf8_reaches_the_app() {
    for mode in [Mode::Pid1, Mode::Subreaper] {
        let finished = Autopilot::new(mode, sh("printf %s \"$RAW\""))
            .env_bytes("RAW", raw(b"a\xffb"))
            .run();
        assert_eq!(finished.code, 0, "{mode:?}: {}", finished.stderr_text());
        assert_eq!(finished.stdout, b"a\xffb", "{mode:?}");
    }
}

#[test]
fn jobs_get_every_variable_byte_for_byte_and_templates_a_lossy_copy() {
    let scratch = Scratch::new();
    let config = scratch.config(
        r#"{
          jobs: [
            // No shell in between: shells drop variables whose names are not
            // identifiers. Raw output: autopilot does not relay it line by line.
            { name: "env", exec: "env", logging: { raw: true } },
            { name: "template", exec: ["sh", "-c", "printf %s \"$1\" > template.txt", "sh", "{{ .RAW }}"] },
          ],
        }"#,
    );
    let finished = Autopilot::new(Mode::Pid1, ["-config", &config])
        .env_bytes("RAW", raw(b"a\xffb"))
        .env_bytes(raw(b"NAME_\xfe"), "value")
        .current_dir(scratch.dir())
        .run();
    assert_eq!(finished.code, 0, "{}", finished.stderr_text());
    let lines: Vec<&[u8]> = finished.stdout.split(|byte| *byte == b'\n').collect();
    for variable in [&b"RAW=a\xffb"[..], b"NAME_\xfe=value"] {
        assert!(lines.contains(&variable), "{}", finished.stdout_text());
    }
    assert_eq!(scratch.read("template.txt"), "a\u{fffd}b");
}

#[test]
fn a_configuration_path_that_is_not_utf8_is_an_error_not_ignored() {
    let finished = Autopilot::new(Mode::Subreaper, ["--check"])
        .env_bytes("CONTAINERPILOT", raw(b"/nonexistent/caf\xe9.json5"))
        .run();
    assert_eq!(finished.code, 2);
    assert_eq!(
        finished.stderr_text(),
        "config error: cannot read /nonexistent/caf\u{fffd}.json5: No such file or directory (os error 2)\n"
    );
}
