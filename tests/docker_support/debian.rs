//! The demo images' Debian base without a registry: debootstrap from the
//! Debian mirror this machine's apt uses, then `docker import`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use super::docker_ok;
use super::images::base_image;
use crate::common;

/// The Dockerfile's base for the demo images, made here with debootstrap.
const DEBIAN_IMAGE: &str = "debian:bookworm-slim";
const DEBIAN_SUITE: &str = "bookworm";

/// `debian:bookworm-slim`, the demo images' base, made with debootstrap
/// from the Debian mirror this machine's apt uses, and `docker import`ed.
pub(crate) fn debian_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    base_image(DEBIAN_IMAGE, &BUILT, || {
        let mirror = apt_mirror();
        let root = tempfile::tempdir().expect("a directory for debootstrap");
        let started = Instant::now();
        common::run_to_success(
            Command::new("debootstrap")
                .args(["--variant=minbase", DEBIAN_SUITE])
                .arg(root.path())
                .arg(&mirror),
            "debootstrap (apt-get install debootstrap)",
        );
        let archive = tempfile::NamedTempFile::new().expect("a file for the archive");
        common::run_to_success(
            Command::new("tar")
                .arg("--directory")
                .arg(root.path())
                .arg("--create")
                .arg("--file")
                .arg(archive.path())
                .arg("."),
            "tar of the debootstrapped tree",
        );
        let archive = archive.path().to_str().expect("a UTF-8 temporary path");
        docker_ok(&["import", archive, DEBIAN_IMAGE]);
        println!(
            "{DEBIAN_IMAGE}: made with debootstrap in {:.0?}",
            started.elapsed()
        );
    })
}

/// The Debian archive this machine's apt installs from (its first source for
/// this release), from /etc/apt/sources.list or /etc/apt/sources.list.d/.
pub(crate) fn apt_mirror() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let codename = release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .unwrap_or(DEBIAN_SUITE)
        .trim_matches('"')
        .to_string();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    files
        .iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(file).ok()?;
            match file.extension().and_then(|e| e.to_str()) {
                Some("sources") => deb822_mirror(&text, &codename),
                Some("list") => one_line_mirror(&text, &codename),
                _ => None,
            }
        })
        .next()
        .unwrap_or_else(|| {
            panic!("no apt source for Debian {codename} in /etc/apt: debootstrap needs a mirror")
        })
}

/// `deb URI SUITE COMPONENTS` lines (`deb [options] ...` too).
pub(crate) fn one_line_mirror(text: &str, codename: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line
            .split_whitespace()
            .filter(|word| !(word.starts_with('[') || word.ends_with(']')));
        (words.next() == Some("deb"))
            .then(|| (words.next(), words.next()))
            .and_then(|(uri, suite)| (suite == Some(codename)).then_some(uri?.to_string()))
    })
}

/// deb822 stanzas (`Types: deb`, `URIs: ...`, `Suites: ...`).
pub(crate) fn deb822_mirror(text: &str, codename: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let is_deb = field("Types")?.split_whitespace().any(|t| t == "deb");
        let has_suite = field("Suites")?.split_whitespace().any(|s| s == codename);
        (is_deb && has_suite)
            .then(|| field("URIs")?.split_whitespace().next().map(str::to_string))?
    })
}
