//! The `autopilot` binary: everything lives in the library; this only hands
//! the process's exit code back to the OS.
fn main() {
    std::process::exit(autopilot::main());
}
