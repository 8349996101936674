//! The `tracing` subscriber: decides which events are logged (the level
//! filter) and hands each one to `format.rs`, then to the sink, in one write.
//! Relayed job output reaches the same format and sink through
//! [`log_output`], past the level filter (`relay.rs` says why).
//!
//! Hand-written rather than tracing-subscriber's registry, reload and fmt
//! layers: autopilot records no spans and needs one level switch, one format
//! and one output, and a relayed batch of job output must reach the sink as
//! one buffer. It owns the per-thread formatting buffer; it never formats
//! (`format.rs`) and never opens outputs (`sink.rs`).
use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use super::format::{format_event, OutputLayout, SharedFormat};
use super::relay::OutputSource;
use super::sink::SharedSink;
use crate::config::model::LogLevel;

/// What a thread keeps of its formatting buffer between events: a burst of
/// short output lines may grow it far beyond, but not for good.
const KEPT_BUFFER_BYTES: usize = 64 * 1024;

thread_local! {
    static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `write` with this thread's formatting buffer, empty, then trims the
/// buffer back to [`KEPT_BUFFER_BYTES`].
fn with_buffer(write: impl FnOnce(&mut String)) {
    BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            write(&mut buffer);
            if buffer.capacity() > KEPT_BUFFER_BYTES {
                buffer.clear();
                buffer.shrink_to(KEPT_BUFFER_BYTES);
            }
        }
        // Logging while another line is formatted on this thread.
        Err(_) => write(&mut String::new()),
    });
}

/// Takes lines of job output, each without its newline.
pub(super) type EmitLine<'a> = dyn FnMut(&[u8]) + 'a;
/// Hands a batch of lines to the [`EmitLine`] it is given.
pub(super) type FeedLines<'a> = dyn FnMut(&mut EmitLine<'_>) + 'a;

/// Logs the lines `feed` emits (it is called once) as job output of
/// `source`, formatted by the current logger into one buffer and written
/// with one write. Without a logger, the lines are consumed and dropped.
pub(super) fn log_output(source: &OutputSource, feed: &mut FeedLines<'_>) {
    tracing::dispatcher::get_default(|dispatch| match dispatch.downcast_ref::<LogSubscriber>() {
        Some(subscriber) => subscriber.write_output(source, feed),
        None => feed(&mut |_| {}),
    });
}

/// The configured level, shared between the subscriber and the
/// [`LogHandle`](super::LogHandle) that changes it.
#[derive(Debug)]
pub(super) struct SharedLevel(AtomicU8);

impl SharedLevel {
    pub(super) fn new(level: LogLevel) -> SharedLevel {
        SharedLevel(AtomicU8::new(encode(level)))
    }

    /// Changes the level; `tracing`'s cached per-callsite decisions are
    /// recomputed, so events that were off come on and the other way round.
    pub(super) fn set(&self, level: LogLevel) {
        self.0.store(encode(level), Ordering::Relaxed);
        tracing::callsite::rebuild_interest_cache();
    }

    fn filter(&self) -> LevelFilter {
        match self.0.load(Ordering::Relaxed) {
            0 => LevelFilter::ERROR,
            1 => LevelFilter::WARN,
            2 => LevelFilter::INFO,
            _ => LevelFilter::DEBUG,
        }
    }
}

/// `FATAL` and `PANIC` (logrus levels ContainerPilot accepted) filter like
/// `ERROR`.
fn encode(level: LogLevel) -> u8 {
    match level {
        LogLevel::Error | LogLevel::Fatal | LogLevel::Panic => 0,
        LogLevel::Warn => 1,
        LogLevel::Info => 2,
        LogLevel::Debug => 3,
    }
}

/// The configured level applies to autopilot's own lines; the libraries
/// underneath (HTTP, TLS) speak only at WARN and above, so `level: "DEBUG"`
/// shows autopilot's events, not every connection.
fn enables(filter: LevelFilter, target: &str, level: Level) -> bool {
    let crate_name = env!("CARGO_CRATE_NAME");
    let ours = target
        .strip_prefix(crate_name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"));
    let limit = if ours {
        filter
    } else {
        filter.min(LevelFilter::WARN)
    };
    level <= limit
}

pub(super) struct LogSubscriber {
    pub(super) level: Arc<SharedLevel>,
    pub(super) format: SharedFormat,
    pub(super) sink: SharedSink,
}

impl LogSubscriber {
    fn write_output(&self, source: &OutputSource, feed: &mut FeedLines<'_>) {
        with_buffer(|buffer| {
            let layout = OutputLayout::new(self.format.get(), SystemTime::now(), source);
            feed(&mut |line| layout.write_line(buffer, line));
            if !buffer.is_empty() {
                self.sink.write_all(buffer.as_bytes());
            }
        });
    }
}

impl Subscriber for LogSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        enables(self.level.filter(), metadata.target(), *metadata.level())
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.level.filter())
    }

    fn event(&self, event: &Event<'_>) {
        with_buffer(|buffer| {
            // A value whose `Display` fails leaves a partial line: drop it.
            if format_event(self.format.get(), event, buffer).is_ok() {
                self.sink.write_all(buffer.as_bytes());
            }
        });
    }

    /// Spans are not recorded: every span gets the same id.
    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_underneath_speak_only_at_warn() {
        let debug = LevelFilter::DEBUG;
        assert!(enables(debug, "autopilot::jobs", Level::DEBUG));
        assert!(enables(debug, "autopilot", Level::DEBUG));
        assert!(!enables(debug, "autopilotx", Level::DEBUG));
        assert!(!enables(debug, "hyper_util::client", Level::DEBUG));
        assert!(enables(debug, "hyper", Level::WARN));
        let error = LevelFilter::ERROR;
        assert!(!enables(error, "hyper", Level::WARN));
        assert!(!enables(error, "autopilot::jobs", Level::WARN));
        assert!(enables(error, "autopilot::jobs", Level::ERROR));
    }

    #[test]
    fn fatal_and_panic_filter_like_error() {
        for level in [LogLevel::Error, LogLevel::Fatal, LogLevel::Panic] {
            assert_eq!(SharedLevel::new(level).filter(), LevelFilter::ERROR);
        }
        assert_eq!(
            SharedLevel::new(LogLevel::Debug).filter(),
            LevelFilter::DEBUG
        );
    }
}
