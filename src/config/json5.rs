//! JSON5 parsing of the rendered configuration text.
//!
//! The `json5` crate does the parsing; this module adds what users see when
//! it fails (line, column, the quoted line and a hint) and a nesting limit,
//! because the crate parses recursively and a hostile document of a million
//! `[` would otherwise overflow the stack. It owns nothing else.

use serde_json::Value;

use super::error::{ConfigError, Origin, Snippet, TextPosition};

/// Deeper nesting than this is rejected (serde_json's own limit).
pub(crate) const MAX_DEPTH: usize = 128;

/// Parses `text` (already rendered) as JSON5. `rendered` says whether the
/// template changed the original text, which error messages mention.
pub(crate) fn parse(text: &str, origin: &Origin, rendered: bool) -> Result<Value, ConfigError> {
    let error = |at: TextPosition, message: String| ConfigError::Parse {
        origin: origin.clone(),
        at,
        message,
        snippet: Snippet::new(text, at),
        rendered,
    };
    if let Some(offset) = too_deep(text) {
        return Err(error(
            TextPosition::of_offset(text, offset),
            format!("nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    json5::from_str::<Value>(text).map_err(|e| {
        let at = e.position().map_or_else(
            || TextPosition::of_offset(text, text.len()),
            |p| TextPosition {
                line: p.line + 1,
                column: p.column + 1,
            },
        );
        error(at, describe(&e))
    })
}

/// The crate's message without its own position suffix, plus a hint for the
/// most common mistake.
fn describe(error: &json5::Error) -> String {
    match error.code() {
        Some(json5::ErrorCode::ExpectedComma) => {
            "expected a comma (is one missing at the end of the previous value?)".to_string()
        }
        Some(json5::ErrorCode::ExpectedValue) => {
            "expected a value (strings need quotes; is there a stray comma?)".to_string()
        }
        Some(code) => code.to_string(),
        None => {
            let text = error.to_string();
            match text.rfind(" at line ") {
                Some(end) => text[..end].to_string(),
                None => text,
            }
        }
    }
}

/// The byte offset of the first bracket that nests deeper than [`MAX_DEPTH`],
/// skipping strings and comments.
fn too_deep(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            quote @ (b'"' | b'\'') => i = skip_string(bytes, i + 1, quote),
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 1);
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the closing quote of a string that starts at `start`.
fn skip_string(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    while i < bytes.len() && bytes[i] != quote {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_inline(text: &str) -> Result<Value, ConfigError> {
        parse(text, &Origin::Inline, false)
    }

    #[test]
    fn reads_json5() {
        let value = parse_inline("// c\n{a: 1, 'b': [\"x\",], /* c */ c: 0x10,}").unwrap();
        assert_eq!(value, serde_json::json!({"a": 1, "b": ["x"], "c": 16}));
    }

    #[test]
    fn errors_give_line_column_and_the_line() {
        let text = "{\n  exec: \"/bin/task.sh\"\n  restarts: \"unlimited\",\n}";
        let message = parse_inline(text).unwrap_err().to_string();
        assert!(
            message.starts_with("config error: inline config:3:3: expected a comma"),
            "{message}"
        );
        assert!(
            message.contains("    3 |   restarts: \"unlimited\",\n      |   ^"),
            "{message}"
        );
    }

    #[test]
    fn unquoted_values_point_at_the_value() {
        let message = parse_inline("{\n  consul: consul:8500,\n}")
            .unwrap_err()
            .to_string();
        assert!(message.contains(":2:11: expected a value"), "{message}");
    }

    #[test]
    fn rendered_text_is_mentioned() {
        let error = parse("{", &Origin::Inline, true).unwrap_err().to_string();
        assert!(error.contains("rendered text"), "{error}");
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing() {
        let deep = "[".repeat(100_000);
        let message = parse_inline(&deep).unwrap_err().to_string();
        assert!(message.contains("nested more than 128 levels"), "{message}");
        let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_inline(&fine).is_ok());
        let in_string = format!("[\"{}\"]", "[".repeat(1000));
        assert!(parse_inline(&in_string).is_ok());
    }
}
