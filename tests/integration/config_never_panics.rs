//! Property test: no input makes the configuration front end (template,
//! JSON5, validation, translation) panic. Inputs are built from the pieces
//! real configs are made of, so they reach deep into every stage, plus
//! arbitrary text. The cargo-fuzz target in `fuzz/` explores the same API
//! without bounds.

use autopilot::testing::config::{load_str, render_args, Env, Origin};
use proptest::prelude::*;

const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\n",
    "'",
    "\"",
    "//c\n",
    "/*",
    "*/",
    "null",
    "true",
    "-1",
    "0",
    "1.5",
    "1e9",
    "99999999999999999999",
    "\"x\"",
    "\"\"",
    "jobs",
    "watches",
    "telemetry",
    "consul",
    "etcd",
    "logging",
    "control",
    "services",
    "backends",
    "tasks",
    "coprocesses",
    "preStart",
    "onStart",
    "preStop",
    "postStop",
    "stopTimeout",
    "sensors",
    "metrics",
    "name",
    "exec",
    "when",
    "interval",
    "source",
    "once",
    "each",
    "timeout",
    "restarts",
    "health",
    "ttl",
    "port",
    "tags",
    "interfaces",
    "initial_status",
    "initialStatus",
    "stopSignal",
    "killTimeout",
    "restartDelay",
    "primary",
    "poll",
    "onChange",
    "command",
    "frequency",
    "check",
    "type",
    "counter",
    "endpoints",
    "\"unlimited\"",
    "\"never\"",
    "\"startup\"",
    "\"SIGHUP\"",
    "\"1500ms\"",
    "\"nope\"",
    "\"app\"",
    "\"watch.app\"",
    "{{",
    "}}",
    "{{-",
    "-}}",
    "{{ .A }}",
    "{{ .B }}",
    "{{ if .A }}",
    "{{ else }}",
    "{{ end }}",
    "{{ range loop 3 }}",
    "{{ range $i := split \",\" .A }}",
    "{{ $x := 1 }}",
    "{{ $x }}",
    "{{ printf \"%05d\" 1 }}",
    "{{ default 1 .B }}",
    "{{ regexReplaceAll \"(\" \"\" .A }}",
    "{{ index . \"A\" }}",
    "{{ len . }}",
    "(",
    ")",
    "|",
    "$",
    ".",
    "/*c*/",
];

fn env() -> Env {
    [("A", "a,b"), ("B", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check(text: &str) {
    let app = ["/bin/app", "{{ .A }}"].map(std::ffi::OsString::from);
    for app in [None, Some(app.as_slice())] {
        match load_str(text, &Origin::Inline, app, &env()) {
            Ok(loaded) => {
                serde_json::to_string(&loaded.config).expect("a loaded config serializes");
            }
            Err(error) => assert!(error.to_string().starts_with("config error: "), "{error}"),
        }
    }
    let _ = render_args(&[text.into()], &env());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn assembled_configs_never_panic(pieces in prop::collection::vec(prop::sample::select(PIECES), 0..60)) {
        check(&pieces.concat());
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn text_without_actions_renders_unchanged(text in "[^{]*") {
        let text = std::ffi::OsString::from(text);
        prop_assert_eq!(render_args(std::slice::from_ref(&text), &env()).unwrap(), vec![text]);
    }
}

#[test]
fn known_hard_inputs_never_panic() {
    for text in [
        "{{",
        "}}",
        "{{-",
        "{{- -}}",
        "{{/*",
        "{{ ( }}",
        "{{ ) }}",
        "{{ $ }}",
        "{{ . . }}",
        "{{ range }}{{ end }}",
        "{{ else }}",
        "{{ 0x }}",
        "{{ '' }}",
        "{{ '\\x' }}",
        "{{ \"\\u{}\" }}",
        "{{ printf \"%*d\" -5 1 }}",
        "{{ printf \"%.*f\" 99999999 1.0 }}",
        "{{ loop -9223372036854775808 9223372036854775807 }}",
        "{{ index \"é\" 1 }}",
        "{jobs: [{name: 'a', exec: 'x', when: {interval: 1e300}}]}",
        "{jobs: [{name: 'a', exec: 'x', timeout: -0.0}]}",
        "{watches: [{name: 'ab', interval: 1e20}]}",
        "{jobs: [{name: 'a', exec: 'x', restarts: 1e30}]}",
        "{jobs: [{name: 'a', exec: \"'\"}]}",
        "{telemetry: {port: 70000}}",
        "{jobs: [{exec: ['']}]}",
        "{jobs: [{exec: '/'}]}",
    ] {
        check(text);
    }
    check(&"[".repeat(50_000));
    check(&"{{ (".repeat(5_000));
    check(&"{{ if 1 }}".repeat(5_000));
}
