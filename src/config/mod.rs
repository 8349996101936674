//! Configuration: from the user's text to a validated [`model::Config`].
//!
//! Owns the whole front end: locating the source (`-config`, `CONTAINERPILOT`,
//! `CONTAINERBUDDY`), Go text/template rendering over the environment, JSON5
//! parsing, format detection (3.x vs 2.x/1.x), lenient decoding, validation and
//! the 2.x → 3.x translation. It must not start processes or open sockets:
//! every error is found here, before anything runs.
pub mod duration;
pub mod error;
pub mod json5;
pub mod model;
pub mod template;
pub mod words;
