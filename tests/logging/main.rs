//! The tests of the log subscriber and of the job output relay, in-process.
//! A binary of their own: each test installs a thread-local subscriber, which
//! must not share a process with tests that install a global one
//! (`discovery_consul`'s capture, `logging_global`).

mod support;

mod output;
mod relay;
