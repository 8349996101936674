//! Configuration errors, and how they show the user where the problem is.
//!
//! Every error Displays as one `config error: ...` line; errors tied to a
//! place in the text (template and JSON5 errors) add the offending line,
//! the line before it, and a caret under the column. This module owns the
//! error type and its presentation; it must not decide what is valid.

use std::fmt;
use std::path::PathBuf;

/// Where the configuration text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Inline,
    /// The wrapped APP's argument at this index (0 is the program).
    AppArgument(usize),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Inline => f.write_str("inline config"),
            Origin::AppArgument(index) => write!(f, "APP argument {index}"),
        }
    }
}

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPosition {
    pub line: usize,
    pub column: usize,
}

impl TextPosition {
    /// The position of byte `offset` in `text` (clamped to the text).
    pub fn of_offset(text: &str, offset: usize) -> TextPosition {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        TextPosition {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for TextPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The lines around a position, with a caret under the column:
///
/// ```text
///    10 |       exec: "/bin/run/some/task.sh"
///    11 |       restarts: "unlimited",
///       |       ^
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet(String);

impl Snippet {
    pub fn new(text: &str, at: TextPosition) -> Snippet {
        let lines: Vec<&str> = text.split('\n').collect();
        let mut out = String::new();
        let index = at.line.saturating_sub(1).min(lines.len().saturating_sub(1));
        for number in index.saturating_sub(1)..=index {
            let line = lines.get(number).copied().unwrap_or("");
            out.push_str(&format!(
                "{:>5} | {}\n",
                number + 1,
                line.trim_end_matches('\r')
            ));
        }
        // Repeat tabs from the quoted line so the caret lines up under it.
        let line = lines.get(index).copied().unwrap_or("");
        let padding: String = line
            .chars()
            .take(at.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!("{:>5} | {padding}^", ""));
        Snippet(out)
    }
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything that can make a configuration unusable. Nothing is started
/// when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config error: cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Go template could not be parsed or executed.
    #[error("config error: {origin}:{at}: template: {message}\n{snippet}")]
    Template {
        origin: Origin,
        at: TextPosition,
        message: String,
        snippet: Snippet,
    },
    /// The rendered text is not JSON5.
    #[error("config error: {origin}:{at}: {message}{}\n{snippet}", rendered_note(*.rendered))]
    Parse {
        origin: Origin,
        at: TextPosition,
        message: String,
        snippet: Snippet,
        /// The template changed the text, so positions refer to the rendered
        /// text (which `-template` prints).
        rendered: bool,
    },
    /// The configuration parsed but breaks a rule. `path` is like
    /// `jobs[2] "app".health.ttl`; empty for the document itself.
    #[error("config error: {}{message}", path_prefix(path))]
    Invalid { path: String, message: String },
}

fn rendered_note(rendered: bool) -> &'static str {
    if rendered {
        " (in the rendered text: see `autopilot -template`)"
    } else {
        ""
    }
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

impl ConfigError {
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The candidate closest to `word` (ignoring case), if it is close enough to
/// be a plausible typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .iter()
        .map(|candidate| {
            (
                strsim::osa_distance(&word, &candidate.to_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, candidate)| {
            *distance < candidate.len()
                && *distance < word.len().max(1)
                && *distance <= (candidate.len() / 3).max(2)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// `" (did you mean \"x\"?)"` when there is a close candidate, else nothing.
pub(crate) fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    closest(word, candidates)
        .map(|candidate| format!(" (did you mean {candidate:?}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_characters() {
        let text = "ab\nçd\n";
        assert_eq!(
            TextPosition::of_offset(text, 0),
            TextPosition { line: 1, column: 1 }
        );
        assert_eq!(
            TextPosition::of_offset(text, 3),
            TextPosition { line: 2, column: 1 }
        );
        // 'd' comes after the two-byte 'ç'
        assert_eq!(
            TextPosition::of_offset(text, 5),
            TextPosition { line: 2, column: 2 }
        );
        assert_eq!(
            TextPosition::of_offset(text, 99),
            TextPosition { line: 3, column: 1 }
        );
    }

    #[test]
    fn snippet_quotes_the_line_and_points_at_the_column() {
        let text = "{\n  a: 1\n  b: 2\n}";
        let snippet = Snippet::new(text, TextPosition { line: 3, column: 3 });
        assert_eq!(
            snippet.to_string(),
            "    2 |   a: 1\n    3 |   b: 2\n      |   ^"
        );
        let tabbed = Snippet::new("\tx", TextPosition { line: 1, column: 2 });
        assert_eq!(tabbed.to_string(), "    1 | \tx\n      | \t^");
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["ttl", "interval", "timeout", "exec", "restarts", "jobs"];
        assert_eq!(closest("tll", &keys), Some("ttl"));
        assert_eq!(closest("restart", &keys), Some("restarts"));
        assert_eq!(closest("job", &keys), Some("jobs"));
        assert_eq!(closest("Interval", &keys), Some("interval"));
        assert_eq!(closest("zzzzzz", &keys), None);
        assert_eq!(did_you_mean("x", &keys), "");
    }

    #[test]
    fn invalid_errors_name_the_path() {
        let error = ConfigError::invalid("jobs[2] \"app\".health.ttl", "must be > 0");
        assert_eq!(
            error.to_string(),
            "config error: jobs[2] \"app\".health.ttl: must be > 0"
        );
        let top = ConfigError::invalid("", "unknown key \"job\"");
        assert_eq!(top.to_string(), "config error: unknown key \"job\"");
    }
}
