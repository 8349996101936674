//! Robustness of the job output relay at volume (docs/design.md, "PID 1 duties"):
//! a non-raw job writes 100 MiB of lines of varied lengths, some longer than
//! 64 KiB, and exits without a final newline. Every line must reach
//! autopilot's log, in order and whole; a long line arrives as consecutive
//! pieces of 64 KiB and a last, shorter piece.
//!
//! The payload is rebuilt from a deterministic generator instead of being
//! kept in memory, and the log (a file, in the `default` format:
//! `<time> <job> [<pid>] <line>`) is read as a stream.

use crate::common;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};

use autopilot::testing::logging::MAX_LINE_BYTES;
use common::{Autopilot, Mode, Scratch};

/// How much the job writes.
const PAYLOAD_BYTES: usize = 100 << 20;
/// Lengths of the long lines, around and beyond the 64 KiB piece size.
const LONG_LINES: [usize; 6] = [
    MAX_LINE_BYTES - 1,
    MAX_LINE_BYTES,
    MAX_LINE_BYTES + 1,
    2 * MAX_LINE_BYTES,
    2 * MAX_LINE_BYTES + 1,
    300_000,
];
/// The last line has no newline and is itself longer than one piece.
const LAST_LINE: usize = MAX_LINE_BYTES + 4_464;
/// The bytes payload lines are made of. autopilot's own log messages always
/// contain a space, which tells them apart.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";

/// The payload, line by line: each line starts with its number, so a line
/// out of place or missing is seen, then goes on with pseudo-random bytes.
struct Payload {
    filler: Vec<u8>,
}

impl Payload {
    fn new() -> Payload {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let filler = (0..4 * LONG_LINES[5])
            .map(|_| ALPHABET[(next_random(&mut state) % ALPHABET.len() as u64) as usize])
            .collect();
        Payload { filler }
    }

    /// Lines (without their newline) until [`PAYLOAD_BYTES`] are reached;
    /// the last one is [`LAST_LINE`] long and written without a newline.
    fn lines(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        let mut written = 0;
        let mut number = 0;
        std::iter::from_fn(move || {
            if written >= PAYLOAD_BYTES {
                return None;
            }
            number += 1;
            let mut length = line_length(number);
            if written + length + 1 >= PAYLOAD_BYTES {
                length = LAST_LINE;
            }
            written += length + 1;
            Some(self.line(number, length))
        })
    }

    fn line(&self, number: usize, length: usize) -> Vec<u8> {
        let mut line = format!("{number}-").into_bytes();
        let start = (number * 7_919) % (self.filler.len() - length);
        line.extend_from_slice(&self.filler[start..start + length]);
        line.truncate(length);
        line
    }

    fn write_to(&self, path: &std::path::Path) {
        let mut file = BufWriter::new(File::create(path).expect("payload file"));
        let mut lines = self.lines().peekable();
        while let Some(line) = lines.next() {
            file.write_all(&line).unwrap();
            if lines.peek().is_some() {
                file.write_all(b"\n").unwrap();
            }
        }
        file.flush().unwrap();
    }

    /// What the log must show: every line cut into pieces of at most 64 KiB
    /// (an empty line is one empty message).
    fn expected_messages(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.lines().flat_map(|line| {
            if line.is_empty() {
                vec![line]
            } else {
                line.chunks(MAX_LINE_BYTES).map(<[u8]>::to_vec).collect()
            }
        })
    }
}

/// Mostly short lines, some empty, one in 997 long.
fn line_length(number: usize) -> usize {
    let mut state = number as u64;
    let random = next_random(&mut state);
    if number.is_multiple_of(997) {
        LONG_LINES[(random % LONG_LINES.len() as u64) as usize]
    } else if random.is_multiple_of(50) {
        0
    } else {
        (random % 400) as usize
    }
}

/// splitmix64.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The line of job `payload`'s output a `default`-format log line shows
/// (what follows `<time> payload [<pid>] `), or `None` for autopilot's own
/// lines.
fn payload_line(line: &[u8]) -> Option<&[u8]> {
    let mut parts = line.splitn(4, |&byte| byte == b' ');
    let (_time, job, pid, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let is_pid = pid.len() > 2
        && pid.starts_with(b"[")
        && pid.ends_with(b"]")
        && pid[1..pid.len() - 1].iter().all(u8::is_ascii_digit);
    (job == b"payload" && is_pid && rest.iter().all(|byte| ALPHABET.contains(byte))).then_some(rest)
}

#[test]
fn hundred_mib_of_job_output_is_logged_whole_and_in_order() {
    let scratch = Scratch::new();
    let payload = Payload::new();
    payload.write_to(&scratch.path("payload"));
    let log_path = scratch.path("autopilot.log");
    let config = scratch.config(&format!(
        r#"{{
          logging: {{ output: {log:?} }},
          jobs: [{{ name: "payload", exec: ["cat", "payload"] }}],
        }}"#,
        log = log_path.display().to_string(),
    ));
    let finished = Autopilot::new(Mode::Subreaper, ["-config", &config])
        .current_dir(scratch.dir())
        .run();
    assert_eq!(finished.code, 0, "{}", finished.stderr_text());

    let mut expected = payload.expected_messages().enumerate();
    let mut own_lines = Vec::new();
    let mut log = BufReader::new(File::open(&log_path).expect("the log file"));
    let mut line = Vec::new();
    while log.read_until(b'\n', &mut line).expect("read the log") > 0 {
        let text = line.strip_suffix(b"\n").expect("every log line is whole");
        if let Some(logged) = payload_line(text) {
            let Some((index, wanted)) = expected.next() else {
                panic!("more output logged than the job wrote");
            };
            assert!(
                logged == wanted.as_slice(),
                "message {index}: logged {} bytes starting {:?}, expected {} bytes starting {:?}",
                logged.len(),
                String::from_utf8_lossy(&logged[..logged.len().min(40)]),
                wanted.len(),
                String::from_utf8_lossy(&wanted[..wanted.len().min(40)]),
            );
        } else {
            own_lines.push(String::from_utf8_lossy(text).into_owned());
        }
        line.clear();
    }
    if let Some((index, _)) = expected.next() {
        panic!("the log ends before message {index}; autopilot's own lines: {own_lines:#?}");
    }
    assert!(
        own_lines.len() < 20,
        "autopilot's own lines should be few: {own_lines:#?}"
    );
}
