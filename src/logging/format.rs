//! The three line formats of docs/design.md, "Logging", applied to `tracing`
//! events and to relayed job output; the format can be switched while the
//! logger runs.
//!
//! - `default` — ContainerPilot 3.8's own format: `<RFC3339 UTC time, ns> <message>`.
//!   Structured fields of autopilot's own messages follow as ` key=value`
//!   (logfmt-quoted). A line of job output is `<time> <job> [<pid>] <line>`,
//!   as ContainerPilot 3.8 printed it, so log pipelines built for it keep
//!   working; a health check's line has `check.<job>` where the job goes.
//! - `text` — logfmt as logrus' TextFormatter wrote it:
//!   `time="<RFC3339 UTC, s>" level=info msg=... job=web pid=42`. A value is
//!   quoted unless it consists only of `A-Za-z0-9-._/@^+` (logrus' rule; the
//!   empty value is quoted too); inside quotes `"` `\` and control
//!   characters are backslash-escaped.
//! - `json` — one object per line: `time` (RFC3339 UTC, ns), `level`, `msg`,
//!   then the fields in the order they were given; job output has `job` (or
//!   `check`), `pid` and `stream` (`stdout` or `stderr`).
//!
//! Level names are logrus' (`debug info warning error`), which ContainerPilot
//! users' log filters expect. A field called `time`, `level` or `msg` is
//! renamed `fields.<name>` (as logrus did) so it cannot shadow them.
//!
//! This module only formats; it never decides what is logged or where.
use std::borrow::Cow;
use std::fmt::{self, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use humantime::{format_rfc3339_nanos, format_rfc3339_seconds};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level};

use super::relay::OutputSource;
use crate::config::model::LogFormat;

/// The current format, shared between the formatter and the
/// [`LogHandle`](super::LogHandle) that switches it.
#[derive(Clone)]
pub(super) struct SharedFormat(Arc<AtomicU8>);

impl SharedFormat {
    pub(super) fn new(format: LogFormat) -> SharedFormat {
        SharedFormat(Arc::new(AtomicU8::new(encode(format))))
    }

    pub(super) fn set(&self, format: LogFormat) {
        self.0.store(encode(format), Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> LogFormat {
        match self.0.load(Ordering::Relaxed) {
            0 => LogFormat::Default,
            1 => LogFormat::Text,
            _ => LogFormat::Json,
        }
    }
}

fn encode(format: LogFormat) -> u8 {
    match format {
        LogFormat::Default => 0,
        LogFormat::Text => 1,
        LogFormat::Json => 2,
    }
}

/// Formats `event` as one log line in `format`, appended to `out`. Spans are
/// not rendered: autopilot logs events only.
pub(super) fn format_event(format: LogFormat, event: &Event<'_>, out: &mut String) -> fmt::Result {
    let time = SystemTime::now();
    let level = *event.metadata().level();
    let mut fields = EventFields::default();
    event.record(&mut fields);
    let line = Line {
        time,
        level,
        fields: &fields,
    };
    line.write(format, out)
}

/// A field value, kept typed so JSON gets numbers and booleans.
#[derive(Debug, Clone, PartialEq)]
enum FieldValue {
    Text(String),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
}

/// An event's message and its other fields, in the order given.
#[derive(Debug, Default)]
struct EventFields {
    message: String,
    fields: Vec<(&'static str, FieldValue)>,
}

impl EventFields {
    fn push(&mut self, field: &Field, value: FieldValue) {
        self.fields.push((field.name(), value));
    }
}

fn is_message(field: &Field) -> bool {
    field.name() == "message"
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if is_message(field) {
            self.message.push_str(value);
        } else {
            self.push(field, FieldValue::Text(value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if is_message(field) {
            // Writing into a String cannot fail.
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push(field, FieldValue::Text(format!("{value:?}")));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, FieldValue::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, FieldValue::Uint(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, FieldValue::Float(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, FieldValue::Bool(value));
    }
}

/// Everything one of autopilot's own log lines is made of.
struct Line<'a> {
    time: SystemTime,
    level: Level,
    fields: &'a EventFields,
}

impl Line<'_> {
    fn write(&self, format: LogFormat, out: &mut impl Write) -> fmt::Result {
        match format {
            LogFormat::Default => self.write_default(out),
            LogFormat::Text => self.write_logfmt(out),
            LogFormat::Json => self.write_json(out),
        }
    }

    fn write_default(&self, out: &mut impl Write) -> fmt::Result {
        write!(
            out,
            "{} {}",
            format_rfc3339_nanos(self.time),
            self.fields.message
        )?;
        for (key, value) in &self.fields.fields {
            write!(out, " {key}=")?;
            write_logfmt_value(out, value)?;
        }
        out.write_char('\n')
    }

    fn write_logfmt(&self, out: &mut impl Write) -> fmt::Result {
        // The timestamp always contains ':' and so is always quoted.
        write!(
            out,
            "time=\"{}\" level={} msg=",
            format_rfc3339_seconds(self.time),
            level_name(self.level)
        )?;
        write_logfmt_str(out, &self.fields.message)?;
        for (key, value) in &self.fields.fields {
            write!(out, " {}=", unshadowed_key(key))?;
            write_logfmt_value(out, value)?;
        }
        out.write_char('\n')
    }

    fn write_json(&self, out: &mut impl Write) -> fmt::Result {
        let mut object = Map::new();
        let time = format_rfc3339_nanos(self.time).to_string();
        object.insert("time".to_owned(), Value::String(time));
        object.insert("level".to_owned(), level_name(self.level).into());
        object.insert("msg".to_owned(), self.fields.message.as_str().into());
        for (key, value) in &self.fields.fields {
            object.insert(unshadowed_key(key).into_owned(), json_value(value));
        }
        writeln!(out, "{}", Value::Object(object))
    }
}

/// logrus' level names.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warning",
        Level::ERROR => "error",
    }
}

fn unshadowed_key(key: &str) -> Cow<'_, str> {
    if matches!(key, "time" | "level" | "msg") {
        Cow::Owned(format!("fields.{key}"))
    } else {
        Cow::Borrowed(key)
    }
}

fn json_value(value: &FieldValue) -> Value {
    match value {
        FieldValue::Text(text) => Value::String(text.clone()),
        FieldValue::Int(number) => (*number).into(),
        FieldValue::Uint(number) => (*number).into(),
        // Non-finite floats become `null`: JSON has no NaN.
        FieldValue::Float(number) => (*number).into(),
        FieldValue::Bool(flag) => (*flag).into(),
    }
}

fn write_logfmt_value(out: &mut impl Write, value: &FieldValue) -> fmt::Result {
    match value {
        FieldValue::Text(text) => write_logfmt_str(out, text),
        FieldValue::Int(number) => write!(out, "{number}"),
        FieldValue::Uint(number) => write!(out, "{number}"),
        FieldValue::Float(number) => write!(out, "{number}"),
        FieldValue::Bool(flag) => write!(out, "{flag}"),
    }
}

/// Writes `text` as a logfmt value. Hand-written: logfmt has no maintained
/// Rust encoder, and the rule is a dozen lines.
fn write_logfmt_str(out: &mut impl Write, text: &str) -> fmt::Result {
    if !needs_quoting(text.as_bytes()) {
        return out.write_str(text);
    }
    out.write_char('"')?;
    write_logfmt_escaped(out, text)?;
    out.write_char('"')
}

/// Writes `text` escaped for the inside of a quoted logfmt value, in runs
/// between the characters that need an escape: `"`, `\\` and the control
/// characters (C0, DEL and C1). Scans bytes, not characters: every one of
/// them but C1 is one ASCII byte, and C1 is `0xC2` followed by `0x80..=0x9F`.
fn write_logfmt_escaped(out: &mut impl Write, text: &str) -> fmt::Result {
    let bytes = text.as_bytes();
    let mut run_start = 0;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let (escape, width) = match byte {
            b'"' => ("\\\"", 1),
            b'\\' => ("\\\\", 1),
            b'\n' => ("\\n", 1),
            b'\r' => ("\\r", 1),
            b'\t' => ("\\t", 1),
            0x00..=0x1f | 0x7f => ("", 1),
            0xc2 if matches!(bytes.get(index + 1), Some(0x80..=0x9f)) => ("", 2),
            _ => {
                index += 1;
                continue;
            }
        };
        out.write_str(&text[run_start..index])?;
        let character = &text[index..index + width];
        if escape.is_empty() {
            let code = character.chars().next().map_or(0, u32::from);
            write!(out, "\\u{code:04x}")?;
        } else {
            out.write_str(escape)?;
        }
        index += width;
        run_start = index;
    }
    out.write_str(&text[run_start..])
}

/// logrus' rule: quote unless every byte is one of `A-Za-z0-9-._/@^+`. Bytes
/// that are not UTF-8 (shown as U+FFFD) are outside that set, so the answer is
/// the same for raw bytes and for their lossy decoding.
fn needs_quoting(text: &[u8]) -> bool {
    text.is_empty() || !text.iter().all(|&byte| BARE_LOGFMT[usize::from(byte)])
}

/// The bytes a logfmt value may hold unquoted: one lookup per byte, as
/// logging job output in `text` checks every byte of every line.
static BARE_LOGFMT: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let character = byte as u8;
        table[byte] = character.is_ascii_alphanumeric()
            || matches!(character, b'-' | b'.' | b'_' | b'/' | b'@' | b'^' | b'+');
        byte += 1;
    }
    table
};

/// Calls `write` with each valid UTF-8 run of `bytes` and with U+FFFD for each
/// invalid sequence between them, as `String::from_utf8_lossy` decodes them,
/// without building the decoded string.
fn for_each_lossy_piece(bytes: &[u8], mut write: impl FnMut(&str) -> fmt::Result) -> fmt::Result {
    // Most output is valid UTF-8, which `from_utf8` checks a word at a time.
    if let Ok(text) = std::str::from_utf8(bytes) {
        return write(text);
    }
    for chunk in bytes.utf8_chunks() {
        write(chunk.valid())?;
        if !chunk.invalid().is_empty() {
            write("\u{FFFD}")?;
        }
    }
    Ok(())
}

/// What surrounds each line of job output, formatted once per read of the
/// pipe (the time, the level and the label are the same for all its lines).
/// Each line comes out exactly as [`Line`] would write a message with the
/// label's fields, `default` showing them before the line instead of after
/// (the reference test below compares the two).
pub(super) struct OutputLayout {
    prefix: String,
    encoding: Encoding,
    suffix: String,
}

/// How a line's own bytes are written.
#[derive(Clone, Copy)]
enum Encoding {
    /// As they are (`default`).
    Plain,
    /// As a logfmt value (`text`).
    Logfmt,
    /// As a JSON string (`json`).
    Json,
}

impl OutputLayout {
    pub(super) fn new(format: LogFormat, time: SystemTime, source: &OutputSource) -> OutputLayout {
        let mut layout = OutputLayout {
            prefix: String::new(),
            encoding: Encoding::Plain,
            suffix: String::new(),
        };
        // Writing into a String cannot fail.
        let _ = layout.fill(format, time, source);
        layout
    }

    fn fill(&mut self, format: LogFormat, time: SystemTime, source: &OutputSource) -> fmt::Result {
        let level = level_name(source.level);
        let (key, value) = source.label.field();
        let pid = source.label.pid();
        match format {
            LogFormat::Default => {
                write!(self.prefix, "{} {value} ", format_rfc3339_nanos(time))?;
                if let Some(pid) = pid {
                    write!(self.prefix, "[{pid}] ")?;
                }
            }
            LogFormat::Text => {
                self.encoding = Encoding::Logfmt;
                let time = format_rfc3339_seconds(time);
                write!(self.prefix, "time=\"{time}\" level={level} msg=")?;
                write!(self.suffix, " {key}=")?;
                write_logfmt_str(&mut self.suffix, value)?;
                if let Some(pid) = pid {
                    write!(self.suffix, " pid={pid}")?;
                }
            }
            LogFormat::Json => {
                self.encoding = Encoding::Json;
                let time = format_rfc3339_nanos(time);
                write!(
                    self.prefix,
                    "{{\"time\":\"{time}\",\"level\":\"{level}\",\"msg\":"
                )?;
                write!(self.suffix, ",\"{key}\":")?;
                write_json_str(&mut self.suffix, value)?;
                if let Some(pid) = pid {
                    write!(self.suffix, ",\"pid\":{pid}")?;
                }
                write!(self.suffix, ",\"stream\":\"{}\"}}", source.stream.name())?;
            }
        }
        self.suffix.push('\n');
        Ok(())
    }

    /// Appends `line` (without its newline) as one log line.
    pub(super) fn write_line(&self, out: &mut String, line: &[u8]) {
        out.push_str(&self.prefix);
        // Writing into a String cannot fail.
        let _ = match self.encoding {
            Encoding::Logfmt if !needs_quoting(line) => {
                for_each_lossy_piece(line, |piece| out.write_str(piece))
            }
            Encoding::Plain => for_each_lossy_piece(line, |piece| out.write_str(piece)),
            Encoding::Logfmt => {
                out.push('"');
                let result = for_each_lossy_piece(line, |piece| write_logfmt_escaped(out, piece));
                out.push('"');
                result
            }
            Encoding::Json => {
                out.push('"');
                let result = for_each_lossy_piece(line, |piece| write_json_escaped(out, piece));
                out.push('"');
                result
            }
        };
        out.push_str(&self.suffix);
    }
}

fn write_json_str(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    write_json_escaped(out, text)?;
    out.write_char('"')
}

/// Writes `text` escaped for the inside of a JSON string exactly as
/// serde_json escapes it (`"`, `\\`, and the C0 controls: short escapes where
/// JSON has them, `\u00xx` otherwise). Hand-written because serde_json
/// writes only to `io::Write`, and the log line is built in a `fmt::Write`.
fn write_json_escaped(out: &mut impl Write, text: &str) -> fmt::Result {
    let mut run_start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.write_str(&text[run_start..index])?;
        if escape.is_empty() {
            write!(out, "\\u{byte:04x}")?;
        } else {
            out.write_str(escape)?;
        }
        run_start = index + 1;
    }
    out.write_str(&text[run_start..])
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::relay::{LineSplitter, OutputLabel, OutputStream};
    use super::*;

    fn fields(message: &str, fields: Vec<(&'static str, FieldValue)>) -> EventFields {
        EventFields {
            message: message.to_owned(),
            fields,
        }
    }

    const TIME: Duration = Duration::new(1_700_000_000, 123_456_789);

    fn render(format: LogFormat, level: Level, fields: &EventFields) -> String {
        let line = Line {
            time: UNIX_EPOCH + TIME,
            level,
            fields,
        };
        let mut out = String::new();
        line.write(format, &mut out).unwrap();
        out
    }

    fn job_line() -> EventFields {
        fields("hello world", vec![("job", FieldValue::Text("web".into()))])
    }

    /// The source of the output in the tests: `job=web` (or `check=check.web`)
    /// of process 4242, on stdout or stderr.
    fn source(level: Level, label: &OutputLabel, stream: OutputStream) -> OutputSource {
        OutputSource {
            label: label.clone(),
            stream,
            level,
        }
    }

    /// Job output as the relay formats it: one layout per read of the pipe.
    fn render_output(format: LogFormat, source: &OutputSource, output: &[u8]) -> String {
        let mut splitter = LineSplitter::default();
        let mut out = String::new();
        // Reads as the pipe cuts them, whatever their size.
        for chunk in output.chunks(8 * 1024) {
            let layout = OutputLayout::new(format, UNIX_EPOCH + TIME, source);
            splitter.feed(chunk, &mut |line| layout.write_line(&mut out, line));
        }
        let layout = OutputLayout::new(format, UNIX_EPOCH + TIME, source);
        splitter.finish(&mut |line| layout.write_line(&mut out, line));
        out
    }

    /// The reference: job output formatted the straightforward way, one
    /// message per line, decoded lossily, formatted like every other
    /// message. The label and the pid are its fields (`json` adds the
    /// stream); `default` shows them in front of the line instead.
    fn render_output_line_by_line(
        format: LogFormat,
        source: &OutputSource,
        output: &[u8],
    ) -> String {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::default();
        splitter.feed(output, &mut |line| lines.push(line.to_vec()));
        splitter.finish(&mut |line| lines.push(line.to_vec()));
        let (key, value) = source.label.field();
        let pid = source.label.pid();
        lines
            .iter()
            .map(|line| {
                let line = String::from_utf8_lossy(line);
                let event = match format {
                    LogFormat::Default => {
                        let pid = pid.map_or(String::new(), |pid| format!("[{pid}] "));
                        fields(&format!("{value} {pid}{line}"), vec![])
                    }
                    LogFormat::Text | LogFormat::Json => {
                        let mut label = vec![(key, FieldValue::Text(value.into()))];
                        label.extend(pid.map(|pid| ("pid", FieldValue::Int(pid.into()))));
                        if format == LogFormat::Json {
                            let stream = source.stream.name().into();
                            label.push(("stream", FieldValue::Text(stream)));
                        }
                        fields(&line, label)
                    }
                };
                render(format, source.level, &event)
            })
            .collect()
    }

    fn hostile_output() -> Vec<u8> {
        let mut output = Vec::new();
        output.extend_from_slice(b"plain\nsay \"hi\" back\\slash\n\n");
        output.extend((0u8..0x20).chain([0x7f, b'\n']));
        output.extend_from_slice("caf\u{e9} \u{85}next \u{2028} \u{1F600}\r\n".as_bytes());
        output.extend_from_slice(b"bad \xff\xfe utf8 \xe2\x82 cut\r\n\r\n");
        output.extend_from_slice(b"plain-value_1.2/x@y^z+w\n\xc3\n");
        let pattern = b"ab \"\\\t\xc3\xa9\xff";
        let mut long: Vec<u8> = pattern.iter().copied().cycle().take(200_000).collect();
        long.push(b'\n');
        output.extend_from_slice(&long);
        output.extend_from_slice(b"no final newline \x1b[31m");
        output
    }

    #[test]
    fn batches_format_exactly_as_lines_one_by_one() {
        let output = hostile_output();
        let sources = [
            source(
                Level::INFO,
                &OutputLabel::job("web").with_pid(4242),
                OutputStream::Stdout,
            ),
            source(
                Level::DEBUG,
                &OutputLabel::check("my job").with_pid(7),
                OutputStream::Stderr,
            ),
            source(
                Level::INFO,
                &OutputLabel::job("no pid"),
                OutputStream::Stdout,
            ),
        ];
        for format in [LogFormat::Default, LogFormat::Text, LogFormat::Json] {
            for source in &sources {
                let batched = render_output(format, source, &output);
                let expected = render_output_line_by_line(format, source, &output);
                assert!(batched.lines().count() > 10, "{format:?}");
                assert!(
                    batched == expected,
                    "{format:?} {:?}: batched output differs",
                    source.label
                );
            }
        }
    }

    #[test]
    fn job_output_lines_name_the_job_and_its_process() {
        let web = OutputLabel::job("web").with_pid(4242);
        let check = OutputLabel::check("web").with_pid(7);
        let cases = [
            (
                LogFormat::Default,
                &web,
                "2023-11-14T22:13:20.123456789Z web [4242] hello world\n",
            ),
            (
                LogFormat::Default,
                &check,
                "2023-11-14T22:13:20.123456789Z check.web [7] hello world\n",
            ),
            (
                LogFormat::Text,
                &web,
                "time=\"2023-11-14T22:13:20Z\" level=info msg=\"hello world\" job=web pid=4242\n",
            ),
            (
                LogFormat::Text,
                &check,
                "time=\"2023-11-14T22:13:20Z\" level=info msg=\"hello world\" check=check.web pid=7\n",
            ),
            (
                LogFormat::Json,
                &web,
                "{\"time\":\"2023-11-14T22:13:20.123456789Z\",\"level\":\"info\",\"msg\":\"hello world\",\"job\":\"web\",\"pid\":4242,\"stream\":\"stdout\"}\n",
            ),
        ];
        for (format, label, expected) in cases {
            let source = source(Level::INFO, label, OutputStream::Stdout);
            assert_eq!(render_output(format, &source, b"hello world\n"), expected);
        }
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        let all: String = (0u32..0x800)
            .filter_map(char::from_u32)
            .chain(['\u{2028}', '\u{FFFD}'])
            .collect();
        let mut out = String::new();
        write_json_str(&mut out, &all).unwrap();
        assert_eq!(out, serde_json::to_string(&all).unwrap());
    }

    #[test]
    fn default_format_appends_fields_of_own_messages() {
        let event = fields(
            "job exited",
            vec![
                ("job", FieldValue::Text("web".into())),
                ("code", FieldValue::Int(-1)),
                ("error", FieldValue::Text("no such file".into())),
            ],
        );
        let line = render(LogFormat::Default, Level::WARN, &event);
        assert_eq!(
            line,
            "2023-11-14T22:13:20.123456789Z job exited job=web code=-1 error=\"no such file\"\n"
        );
    }

    #[test]
    fn text_format_is_logfmt() {
        let line = render(LogFormat::Text, Level::INFO, &job_line());
        assert_eq!(
            line,
            "time=\"2023-11-14T22:13:20Z\" level=info msg=\"hello world\" job=web\n"
        );
    }

    #[test]
    fn text_format_names_levels_like_logrus() {
        let event = fields("x", vec![]);
        let names: Vec<String> = [Level::DEBUG, Level::INFO, Level::WARN, Level::ERROR]
            .into_iter()
            .map(|level| render(LogFormat::Text, level, &event))
            .collect();
        let expected = ["debug", "info", "warning", "error"]
            .map(|name| format!("time=\"2023-11-14T22:13:20Z\" level={name} msg=x\n"));
        assert_eq!(names, expected);
    }

    #[test]
    fn logfmt_quotes_and_escapes_what_it_must() {
        let cases = [
            ("plain-value_1.2/x@y^z+w", "plain-value_1.2/x@y^z+w"),
            ("", "\"\""),
            ("a b", "\"a b\""),
            ("k=v", "\"k=v\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("two\nlines\r\tx", "\"two\\nlines\\r\\tx\""),
            ("\u{1b}[31mred", "\"\\u001b[31mred\""),
            ("café", "\"café\""),
        ];
        for (raw, expected) in cases {
            let mut out = String::new();
            write_logfmt_str(&mut out, raw).unwrap();
            assert_eq!(out, expected, "value {raw:?}");
        }
    }

    #[test]
    fn typed_values_are_not_quoted_in_logfmt() {
        let event = fields(
            "m",
            vec![
                ("n", FieldValue::Int(-3)),
                ("u", FieldValue::Uint(7)),
                ("f", FieldValue::Float(1.5)),
                ("b", FieldValue::Bool(true)),
            ],
        );
        let line = render(LogFormat::Text, Level::INFO, &event);
        assert!(line.ends_with(" msg=m n=-3 u=7 f=1.5 b=true\n"), "{line}");
    }

    #[test]
    fn json_format_is_one_valid_object_per_line() {
        let event = fields(
            "say \"hi\"\n\u{1b}",
            vec![
                ("check", FieldValue::Text("check.web".into())),
                ("code", FieldValue::Int(2)),
                ("ok", FieldValue::Bool(false)),
                ("ratio", FieldValue::Float(f64::NAN)),
            ],
        );
        let line = render(LogFormat::Json, Level::ERROR, &event);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "time": "2023-11-14T22:13:20.123456789Z",
                "level": "error",
                "msg": "say \"hi\"\n\u{1b}",
                "check": "check.web",
                "code": 2,
                "ok": false,
                "ratio": null,
            })
        );
        let keys: Vec<&String> = parsed.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["time", "level", "msg", "check", "code", "ok", "ratio"]
        );
    }

    #[test]
    fn fields_cannot_shadow_the_fixed_keys() {
        let event = fields("m", vec![("msg", FieldValue::Text("other".into()))]);
        let json = render(LogFormat::Json, Level::INFO, &event);
        let parsed: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["msg"], "m");
        assert_eq!(parsed["fields.msg"], "other");
        let text = render(LogFormat::Text, Level::INFO, &event);
        assert!(text.ends_with(" msg=m fields.msg=other\n"), "{text}");
    }

    #[test]
    fn the_shared_format_switches() {
        let shared = SharedFormat::new(LogFormat::Default);
        for format in [LogFormat::Json, LogFormat::Text, LogFormat::Default] {
            shared.set(format);
            assert_eq!(shared.get(), format);
        }
    }
}
