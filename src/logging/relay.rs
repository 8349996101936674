//! The job output relay (docs/design.md, "PID 1 duties"): reads a child's stdout or stderr
//! pipe and logs it line by line, each line labelled with the job (or
//! `check.<job>`), the process id and, in `json`, the stream.
//!
//! Job output is the application's, not autopilot's diagnostics: it is logged
//! whatever `logging.level` is (docs/configuration.md, "logging"). Its level
//! (INFO; DEBUG for 2.x stderr) is only shown, never used to filter.
//!
//! Throughput: all whole lines of one read of the pipe are formatted into one
//! buffer and written with one `write()` (see `format.rs` and
//! `subscriber.rs`); the format is looked up once per read, and no line is
//! copied before it is formatted.
//!
//! Guarantees: every byte read is logged, in order. A final line without a
//! newline is logged at end of file; a trailing `\r` is dropped (as
//! ContainerPilot's line scanner did); a line longer than
//! [`MAX_LINE_BYTES`] is logged in pieces of at most that size, cut where no
//! UTF-8 character is split; bytes that are not UTF-8 are logged lossily
//! (U+FFFD). The relay runs until end of file, i.e. until the last process
//! holding the pipe's write end (the child, or a grandchild that inherited it)
//! has closed it — not until the child exits.
//!
//! Optionally the raw output is also teed into an [`OutputTail`] that keeps
//! the last [`TAIL_BYTES`] (a health check's output becomes the catalog
//! check's Output).
//!
//! The relay never spawns, waits for or signals processes.
use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::net::unix::pipe;
use tracing::Level;

use super::subscriber::{log_output, EmitLine};
use super::LoggingError;

/// The longest piece of a line logged as one log line.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// How much output an [`OutputTail`] keeps.
pub const TAIL_BYTES: usize = 4 * 1024;
/// Bytes read from the pipe at once (a stack buffer, see `pump`).
const READ_CHUNK_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelField {
    Job,
    Check,
}

/// Where relayed lines come from: the job (or check) and its process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLabel {
    field: LabelField,
    value: String,
    pid: Option<i32>,
}

impl OutputLabel {
    /// `job=<name>`: output of a job's exec (or a 2.x coprocess, task, hook).
    pub fn job(name: &str) -> OutputLabel {
        OutputLabel {
            field: LabelField::Job,
            value: name.to_owned(),
            pid: None,
        }
    }

    /// `check=check.<job name>`: output of a job's health check.
    pub fn check(job_name: &str) -> OutputLabel {
        OutputLabel {
            field: LabelField::Check,
            value: format!("check.{job_name}"),
            pid: None,
        }
    }

    /// The same label for the lines of process `pid`.
    pub fn with_pid(self, pid: i32) -> OutputLabel {
        OutputLabel {
            pid: Some(pid),
            ..self
        }
    }

    /// The field name (`job` or `check`) and its value.
    pub(super) fn field(&self) -> (&'static str, &str) {
        let name = match self.field {
            LabelField::Job => "job",
            LabelField::Check => "check",
        };
        (name, &self.value)
    }

    pub(super) fn pid(&self) -> Option<i32> {
        self.pid
    }
}

/// Which of a process's pipes a relay reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub(super) fn name(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// The last [`TAIL_BYTES`] of output, shared between the relays feeding it
/// (give one tail to both the stdout and the stderr relay to capture both)
/// and whoever reads it. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct OutputTail(Arc<Mutex<TailBuffer>>);

#[derive(Debug, Default)]
struct TailBuffer {
    bytes: VecDeque<u8>,
    truncated: bool,
}

impl OutputTail {
    pub fn new() -> OutputTail {
        OutputTail::default()
    }

    /// The kept output, decoded lossily. When older output was discarded, a
    /// character cut in half by that is dropped rather than shown as U+FFFD.
    pub fn text(&self) -> String {
        let tail = self.lock();
        let bytes: Vec<u8> = tail.bytes.iter().copied().collect();
        let cut_character = if tail.truncated {
            bytes
                .iter()
                .take(3)
                .take_while(|&&byte| is_continuation(byte))
                .count()
        } else {
            0
        };
        String::from_utf8_lossy(&bytes[cut_character..]).into_owned()
    }

    fn push(&self, output: &[u8]) {
        let mut tail = self.lock();
        let output = &output[output.len().saturating_sub(TAIL_BYTES)..];
        let excess = (tail.bytes.len() + output.len()).saturating_sub(TAIL_BYTES);
        if excess > 0 {
            tail.bytes.drain(..excess);
            tail.truncated = true;
        }
        tail.bytes.extend(output);
    }

    fn lock(&self) -> MutexGuard<'_, TailBuffer> {
        // Pushing bytes cannot leave the buffer inconsistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Relays one pipe into the log.
#[derive(Debug, Clone)]
pub struct OutputRelay {
    source: OutputSource,
    tail: Option<OutputTail>,
}

/// What every line of one relay is logged with.
#[derive(Debug, Clone)]
pub(super) struct OutputSource {
    pub(super) label: OutputLabel,
    pub(super) stream: OutputStream,
    /// Shown, not filtered on (see the module doc).
    pub(super) level: Level,
}

impl OutputRelay {
    /// A relay logging each line of `stream` with `label`, shown at `level`
    /// (INFO for job output; DEBUG for 2.x stderr).
    pub fn new(label: OutputLabel, stream: OutputStream, level: Level) -> OutputRelay {
        OutputRelay {
            source: OutputSource {
                label,
                stream,
                level,
            },
            tail: None,
        }
    }

    /// Also keeps the last [`TAIL_BYTES`] of the raw output in `tail`.
    pub fn with_tail(self, tail: OutputTail) -> OutputRelay {
        OutputRelay {
            tail: Some(tail),
            ..self
        }
    }

    /// Reads `pipe` (the read end of a child's stdout or stderr, e.g. a
    /// `std::process::ChildStdout`) until end of file, logging every line.
    /// Must run inside a tokio runtime with IO enabled. On a read error the
    /// output read so far is still logged, then the error is returned.
    pub async fn run(self, pipe: impl Into<OwnedFd>) -> Result<(), LoggingError> {
        let mut receiver =
            pipe::Receiver::from_owned_fd(pipe.into()).map_err(LoggingError::ReadOutput)?;
        let mut splitter = LineSplitter::default();
        let result = self.pump(&mut receiver, &mut splitter).await;
        log_output(&self.source, &mut |emit| splitter.finish(emit));
        result.map_err(LoggingError::ReadOutput)
    }

    async fn pump(
        &self,
        receiver: &mut pipe::Receiver,
        splitter: &mut LineSplitter,
    ) -> io::Result<()> {
        loop {
            receiver.readable().await?;
            // The buffer lives only between two waits, on the stack of this
            // poll, not in the task: a job that writes nothing (most of them,
            // most of the time) holds no read buffer at all.
            let mut chunk = [0; READ_CHUNK_BYTES];
            let read = match receiver.try_read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(error) => return Err(error),
            };
            let chunk = &chunk[..read];
            if let Some(tail) = &self.tail {
                tail.push(chunk);
            }
            log_output(&self.source, &mut |emit| splitter.feed(chunk, emit));
        }
    }
}

/// Splits a byte stream into lines of at most [`MAX_LINE_BYTES`], whatever
/// the chunk boundaries. Holds at most that many bytes of an unfinished line.
#[derive(Debug, Default)]
pub(super) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Emits every line (or full-size piece of a line) `chunk` completes.
    pub(super) fn feed(&mut self, mut chunk: &[u8], emit: &mut EmitLine<'_>) {
        while !chunk.is_empty() {
            let room = MAX_LINE_BYTES - self.pending.len();
            // One byte past the room: a newline right after a full piece
            // ends the line instead of starting an empty one.
            let window = &chunk[..chunk.len().min(room + 1)];
            if let Some(newline) = window.iter().position(|&byte| byte == b'\n') {
                self.complete_line(&chunk[..newline], emit);
                chunk = &chunk[newline + 1..];
            } else if chunk.len() > room {
                self.pending.extend_from_slice(&chunk[..room]);
                self.emit_piece(emit);
                chunk = &chunk[room..];
            } else {
                self.pending.extend_from_slice(chunk);
                return;
            }
        }
    }

    /// Emits what is left of an unfinished last line, if anything.
    pub(super) fn finish(&mut self, emit: &mut EmitLine<'_>) {
        if !self.pending.is_empty() {
            emit(without_carriage_return(&self.pending));
            self.pending.clear();
        }
    }

    fn complete_line(&mut self, end_of_line: &[u8], emit: &mut EmitLine<'_>) {
        if self.pending.is_empty() {
            emit(without_carriage_return(end_of_line));
        } else {
            self.pending.extend_from_slice(end_of_line);
            emit(without_carriage_return(&self.pending));
            self.pending.clear();
        }
    }

    /// `pending` is full and the line goes on: emit a piece of it.
    fn emit_piece(&mut self, emit: &mut EmitLine<'_>) {
        let cut = utf8_cut(&self.pending);
        emit(&self.pending[..cut]);
        self.pending.drain(..cut);
    }
}

fn without_carriage_return(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Where to cut `piece` so that a UTF-8 character at its end is not split:
/// before an incomplete sequence at the end, otherwise at the end.
fn utf8_cut(piece: &[u8]) -> usize {
    let last_start = (piece.len().saturating_sub(3)..piece.len())
        .rev()
        .find(|&index| !is_continuation(piece[index]));
    match last_start {
        Some(start) if start > 0 && is_incomplete_character(&piece[start..]) => start,
        _ => piece.len(),
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

fn is_incomplete_character(bytes: &[u8]) -> bool {
    matches!(std::str::from_utf8(bytes), Err(error) if error.error_len().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::default();
        let mut emit = |line: &[u8]| lines.push(line.to_vec());
        for chunk in chunks {
            splitter.feed(chunk, &mut emit);
        }
        splitter.finish(&mut emit);
        lines
    }

    #[test]
    fn lines_survive_any_chunking() {
        let expected: Vec<Vec<u8>> = vec![b"one".to_vec(), b"".to_vec(), b"three".to_vec()];
        assert_eq!(split(&[b"one\n\nthree\n"]), expected);
        assert_eq!(split(&[b"o", b"ne\n", b"\nthr", b"ee\n"]), expected);
        assert_eq!(
            split(&[b"one\n\nthree"]),
            expected,
            "unterminated last line"
        );
    }

    #[test]
    fn carriage_returns_before_newlines_are_dropped() {
        assert_eq!(split(&[b"a\r\nb\r"]), vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn a_line_of_exactly_the_maximum_is_one_line() {
        let line = vec![b'x'; MAX_LINE_BYTES];
        assert_eq!(
            split(&[&line, b"\n", b"y\n"]),
            vec![line.clone(), b"y".to_vec()]
        );
        let mut whole = line.clone();
        whole.push(b'\n');
        assert_eq!(split(&[&whole]), vec![line]);
    }

    #[test]
    fn long_lines_are_cut_into_pieces() {
        let line = vec![b'x'; 2 * MAX_LINE_BYTES + 5];
        let sizes: Vec<usize> = split(&[&line[..100], &line[100..], b"\n"])
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [MAX_LINE_BYTES, MAX_LINE_BYTES, 5]);
    }

    #[test]
    fn pieces_do_not_split_characters() {
        let mut line = vec![b'x'; MAX_LINE_BYTES - 1];
        line.extend_from_slice("é and more".as_bytes());
        let pieces = split(&[&line]);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].len(), MAX_LINE_BYTES - 1);
        assert_eq!(pieces[1], "é and more".as_bytes());
    }

    #[test]
    fn invalid_bytes_at_a_cut_are_cut_as_they_come() {
        let line = vec![0xff; MAX_LINE_BYTES + 1];
        let sizes: Vec<usize> = split(&[&line]).iter().map(Vec::len).collect();
        assert_eq!(sizes, [MAX_LINE_BYTES, 1]);
    }

    #[test]
    fn the_tail_keeps_the_last_bytes() {
        let tail = OutputTail::new();
        tail.push(b"short");
        assert_eq!(tail.text(), "short");
        let long: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        tail.push(&long);
        tail.push(b"!");
        let mut expected = long[long.len() - TAIL_BYTES + 1..].to_vec();
        expected.push(b'!');
        assert_eq!(tail.text().as_bytes(), expected);
    }

    #[test]
    fn the_tail_drops_a_character_cut_by_truncation() {
        let tail = OutputTail::new();
        tail.push("é".as_bytes());
        tail.push(&vec![b'z'; TAIL_BYTES - 1]);
        assert_eq!(tail.text(), "z".repeat(TAIL_BYTES - 1));
    }

    #[test]
    fn labels_name_jobs_and_checks() {
        assert_eq!(OutputLabel::job("web").field(), ("job", "web"));
        assert_eq!(OutputLabel::check("web").field(), ("check", "check.web"));
        assert_eq!(OutputLabel::job("web").with_pid(42).pid(), Some(42));
    }
}
