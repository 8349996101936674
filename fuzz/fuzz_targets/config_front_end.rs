//! Fuzz target: the configuration front end never panics (see
//! `drivers/config_front_end.rs`).
//!
//! Run: `cargo +nightly fuzz run config_front_end` from the repository root.
#![no_main]

#[path = "../drivers/config_front_end.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
