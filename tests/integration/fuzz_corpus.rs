//! The fuzz corpora, replayed on stable Rust in the normal suite: every input
//! under `fuzz/corpus/<target>/` goes through the same driver the cargo-fuzz
//! target runs (`fuzz/drivers/`), so whatever a fuzzing session found and
//! kept stays covered without nightly or cargo-fuzz. New findings are added
//! by running `cargo +nightly fuzz run <target>` and minimizing the corpus
//! (`cargo +nightly fuzz cmin <target>`), see `fuzz/README.md`.

use std::fs;
use std::path::PathBuf;

#[path = "../../fuzz/drivers/config_front_end.rs"]
mod config_front_end;
#[path = "../../fuzz/drivers/control_request.rs"]
mod control_request;

/// The inputs of one target's corpus, in a stable order.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 20, "{} holds too few inputs", dir.display());
    paths
        .into_iter()
        .map(|path| {
            let data = fs::read(&path).expect("a corpus file");
            (path, data)
        })
        .collect()
}

fn replay(target: &str, run: fn(&[u8])) {
    for (path, data) in corpus(target) {
        // A panic names the input, so it can be fed to the fuzz target.
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} failed on {}", path.display());
    }
}

#[test]
fn config_front_end_corpus() {
    replay("config_front_end", config_front_end::run);
}

#[test]
fn control_request_corpus() {
    replay("control_request", control_request::run);
}
