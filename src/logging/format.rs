//! The three line formats of docs/design.md, "Logging", as a `tracing-subscriber` event
//! formatter whose format can be switched while the logger runs.
//!
//! - `default` — ContainerPilot 3's own format: `<RFC3339 UTC time, ns> <message>`.
//!   Structured fields of autopilot's own messages follow as ` key=value`
//!   (logfmt-quoted). Relayed job output (target [`OUTPUT_TARGET`]) is
//!   printed as `<time> <line>` with no fields, exactly as ContainerPilot's
//!   default formatter printed it, so log pipelines built for it keep working;
//!   the `job`/`check` field is visible in `text` and `json`.
//! - `text` — logfmt as logrus' TextFormatter wrote it:
//!   `time="<RFC3339 UTC, s>" level=info msg=... job=web`. A value is quoted
//!   unless it consists only of `A-Za-z0-9-._/@^+` (logrus' rule; the empty
//!   value is quoted too); inside quotes `"` `\` and control characters are
//!   backslash-escaped.
//! - `json` — one object per line: `time`, `level`, `msg`, then the fields
//!   in the order they were given.
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
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::relay::OUTPUT_TARGET;
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

    fn get(&self) -> LogFormat {
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

/// The event formatter installed in the fmt layer.
pub(super) struct EventFormat {
    format: SharedFormat,
}

impl EventFormat {
    pub(super) fn new(format: SharedFormat) -> EventFormat {
        EventFormat { format }
    }
}

impl<S, N> FormatEvent<S, N> for EventFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    /// Spans are not rendered: autopilot logs events only.
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let line = Line {
            time: SystemTime::now(),
            level: *metadata.level(),
            is_job_output: metadata.target() == OUTPUT_TARGET,
            fields: &fields,
        };
        line.write(self.format.get(), &mut writer)
    }
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

/// Everything one log line is made of.
struct Line<'a> {
    time: SystemTime,
    level: Level,
    is_job_output: bool,
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
        if !self.is_job_output {
            for (key, value) in &self.fields.fields {
                write!(out, " {key}=")?;
                write_logfmt_value(out, value)?;
            }
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
        let time = format_rfc3339_seconds(self.time).to_string();
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
    if !needs_quoting(text) {
        return out.write_str(text);
    }
    out.write_char('"')?;
    for character in text.chars() {
        match character {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            control if control.is_control() => write!(out, "\\u{:04x}", u32::from(control))?,
            other => out.write_char(other)?,
        }
    }
    out.write_char('"')
}

fn needs_quoting(text: &str) -> bool {
    text.is_empty()
        || !text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._/@^+".contains(&byte))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn fields(message: &str, fields: Vec<(&'static str, FieldValue)>) -> EventFields {
        EventFields {
            message: message.to_owned(),
            fields,
        }
    }

    fn render(
        format: LogFormat,
        level: Level,
        is_job_output: bool,
        fields: &EventFields,
    ) -> String {
        let line = Line {
            time: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            level,
            is_job_output,
            fields,
        };
        let mut out = String::new();
        line.write(format, &mut out).unwrap();
        out
    }

    fn job_line() -> EventFields {
        fields("hello world", vec![("job", FieldValue::Text("web".into()))])
    }

    #[test]
    fn default_format_is_time_then_message() {
        let line = render(LogFormat::Default, Level::INFO, true, &job_line());
        assert_eq!(line, "2023-11-14T22:13:20.123456789Z hello world\n");
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
        let line = render(LogFormat::Default, Level::WARN, false, &event);
        assert_eq!(
            line,
            "2023-11-14T22:13:20.123456789Z job exited job=web code=-1 error=\"no such file\"\n"
        );
    }

    #[test]
    fn text_format_is_logfmt() {
        let line = render(LogFormat::Text, Level::INFO, true, &job_line());
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
            .map(|level| render(LogFormat::Text, level, false, &event))
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
        let line = render(LogFormat::Text, Level::INFO, false, &event);
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
        let line = render(LogFormat::Json, Level::ERROR, true, &event);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "time": "2023-11-14T22:13:20Z",
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
        let json = render(LogFormat::Json, Level::INFO, false, &event);
        let parsed: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["msg"], "m");
        assert_eq!(parsed["fields.msg"], "other");
        let text = render(LogFormat::Text, Level::INFO, false, &event);
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
