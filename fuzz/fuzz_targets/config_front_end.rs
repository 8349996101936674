//! Fuzz target: the whole configuration front end (Go template rendering,
//! JSON5 parsing, format detection, validation, 2.x translation) and APP
//! argument rendering must never panic, whatever the input.
//!
//! Run: `cargo +nightly fuzz run config_front_end` from the repository root.
#![no_main]

use autopilot::config::{load_str, render_args, Env, Origin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env: Env = [("A", "a,b"), ("B", "")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let app = ["/bin/app".to_string(), "{{ .A }}".to_string()];
    if let Ok(loaded) = load_str(&text, &Origin::Inline, Some(&app), &env) {
        let _ = serde_json::to_string(&loaded.config);
    }
    let _ = render_args(&[text.into_owned()], &env);
});
