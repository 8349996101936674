//! The `autopilot` binary: everything lives in the library; this only hands
//! the process's exit code back to the OS.
fn main() {
    std::process::exit(autopilot::main());
}

/// Records the signal state autopilot inherited before the Rust runtime
/// starts (it ignores SIGPIPE first thing), so that the APP gets it back.
#[used]
#[link_section = ".init_array"]
static RECORD_INHERITED_SIGNALS: extern "C" fn() = autopilot::record_inherited;
