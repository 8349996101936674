//! Fuzz target: whatever bytes a client sends to the control socket, the
//! control plane answers with HTTP and never panics or hangs (see
//! `drivers/control_request.rs`).
//!
//! Run: `cargo +nightly fuzz run control_request` from the repository root.
#![no_main]

#[path = "../drivers/control_request.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
