//! The integration tests, one test binary (one link, one copy of the shared
//! helpers) with a module per area. Most modules drive the real autopilot
//! binary from the outside (as PID 1 or as a subreaper); some reach inside
//! the crate through `autopilot::testing`.
//!
//! The long robustness cases (a 30 s catalog outage, the bounded fuzzing
//! runs) live in modules named `long`: CI runs them, and
//! `cargo test --workspace -- --skip long::` leaves them out (README, "Tests").

mod common;
mod compat;
mod config_cli;
mod config_fixtures;
mod config_never_panics;
mod config_rules;
mod control;
mod control_support;
mod demo;
mod discovery_consul;
mod discovery_e2e;
mod discovery_e2e_etcd;
mod discovery_etcd;
mod discovery_interfaces;
mod dropin;
mod engine;
mod failover;
mod failure_lines;
mod fuzz_corpus;
mod fuzz_run;
mod kv_watch;
mod legacy_nginx;
mod locks;
mod logged_output;
mod name_resolution;
mod pid1;
mod raw_bytes;
mod reload;
mod render;
mod robustness_catalog;
mod robustness_control;
mod robustness_output;
mod robustness_signals;
mod shipping;
mod telemetry_e2e;
mod telemetry_http;
