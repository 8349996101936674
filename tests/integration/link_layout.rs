//! The release link's code layout (tools/link/hot-first-cc): the functions
//! of the hot list come first in .text, whatever the compiler's order, and
//! the output is stripped afterwards when the link asked for it.
//!
//! A small program is linked through the script by rustc itself (so with
//! the same self-contained lld and the same arguments as autopilot's
//! release link), under an output name the script treats as the release
//! binary, with a hot list naming its last function.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAM: &str = r#"
#[inline(never)] fn first_cold() -> u32 { std::hint::black_box(1) }
#[inline(never)] fn second_cold() -> u32 { std::hint::black_box(2) }
#[inline(never)] fn hot() -> u32 { std::hint::black_box(3) }
fn main() { std::process::exit((first_cold() + second_cold() + hot()) as i32); }
"#;

/// Builds PROGRAM as `<dir>/release/deps/autopilot-probe` through the script
/// with `hot_list`; returns the binary.
fn link(dir: &Path, hot_list: &[&str], extra: &[&str]) -> PathBuf {
    let source = dir.join("probe.rs");
    std::fs::write(&source, PROGRAM).unwrap();
    let list = dir.join("hot.txt");
    std::fs::write(&list, hot_list.join("\n")).unwrap();
    let output_dir = dir.join("release/deps");
    std::fs::create_dir_all(&output_dir).unwrap();
    let binary = output_dir.join("autopilot-probe");
    let linker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/link/hot-first-cc");
    common::run_to_success(
        Command::new("rustc")
            .args(["--edition", "2021", "-O"])
            .args(["-C", "symbol-mangling-version=v0"])
            .arg(format!("-Clinker={}", linker.display()))
            .args(extra)
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .env("HOT_FIRST_CC_SYMBOLS", &list),
        "rustc, linking through hot-first-cc",
    );
    binary
}

/// The probe's functions, lowest address first.
fn layout(binary: &Path) -> Vec<String> {
    let listing = Command::new("nm")
        .args(["-n", "-C", "--defined-only"])
        .arg(binary)
        .output()
        .expect("cannot run nm");
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|line| line.split_once(" t ").or_else(|| line.split_once(" T ")))
        .map(|(_, name)| name.to_string())
        .filter(|name| name.starts_with("probe::") && !name.ends_with("::main"))
        .collect()
}

fn exit_code(binary: &Path) -> Option<i32> {
    Command::new(binary)
        .status()
        .expect("the probe runs")
        .code()
}

#[test]
fn listed_functions_are_laid_out_first() {
    let dir = tempfile::tempdir().unwrap();
    let plain = layout(&link(dir.path(), &[], &[]));
    assert_ne!(
        plain.first().map(String::as_str),
        Some("probe::hot"),
        "{plain:?}"
    );

    let ordered_binary = link(dir.path(), &["probe::hot", "probe::second_cold"], &[]);
    let ordered = layout(&ordered_binary);
    assert_eq!(
        ordered,
        ["probe::hot", "probe::second_cold", "probe::first_cold"],
        "without the list: {plain:?}"
    );
    assert_eq!(exit_code(&ordered_binary), Some(6));
}

#[test]
fn a_stripped_link_is_stripped_after_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let binary = link(dir.path(), &["probe::hot"], &["-C", "strip=symbols"]);
    assert_eq!(layout(&binary), Vec::<String>::new(), "symbols left");
    assert_eq!(exit_code(&binary), Some(6));
}
