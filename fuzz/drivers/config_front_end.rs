//! The `config_front_end` fuzz driver: the whole configuration front end (Go
//! template rendering, JSON5 parsing, format detection, validation, 2.x
//! translation) and APP argument rendering must never panic, whatever the
//! input. Shared by the cargo-fuzz target and the corpus replay test
//! (`tests/integration/fuzz_corpus.rs`), which includes this file with `#[path]`.

use autopilot::testing::config::{load_str, render_args, Env, Origin};

/// Runs one input through the front end.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let env: Env = [("A", "a,b"), ("B", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let app = ["/bin/app", "{{ .A }}"].map(std::ffi::OsString::from);
    if let Ok(loaded) = load_str(&text, &Origin::Inline, Some(&app), &env) {
        serde_json::to_string(&loaded.config).expect("a loaded config serializes");
    }
    let _ = render_args(&[text.into_owned().into()], &env);
}
