//! The template lexer: splits the source into text and actions, applies the
//! `{{-`/`-}}` trim markers, drops `{{/* comments */}}`, and tokenizes the
//! inside of each action the way Go's `text/template/parse` lexer does.

use super::TemplateError;

/// A token inside an action. `pos` is the byte offset in the source.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub kind: Tok,
    pub pos: usize,
    /// Whitespace came right before this token (so `$x .F` is two arguments
    /// while `$x.F` is a field access).
    pub spaced: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// `.`
    Dot,
    /// `.Name` (one link of a field chain)
    Field(String),
    /// `$` or `$name`
    Variable(String),
    /// A function name or keyword (`if`, `range`, `end`, `true`, `nil`, ...).
    Ident(String),
    Str(String),
    /// A number literal, as written.
    Number(String),
    /// A character constant such as `'a'`.
    Char(char),
    /// `:=`
    Declare,
    /// `=`
    Assign,
    Pipe,
    LParen,
    RParen,
    Comma,
}

/// One piece of the source: literal text or one action.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Piece {
    Text(String),
    /// The tokens between `{{` and `}}`; `pos` is where `{{` starts.
    Action {
        tokens: Vec<Token>,
        pos: usize,
    },
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

/// Splits `source` into pieces, with trim markers applied and comments removed.
pub(super) fn lex(source: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest_start = 0;
    let mut trim_next_text = false;
    while let Some(found) = source[rest_start..].find(LEFT) {
        let open = rest_start + found;
        let mut inner_start = open + LEFT.len();
        let trim_left = has_trim_marker_after(source, inner_start);
        if trim_left {
            inner_start += 2;
        }
        push_text(
            &mut pieces,
            &source[rest_start..open],
            trim_next_text,
            trim_left,
        );
        let (close, trim_right) = find_close(source, open, inner_start)?;
        let inner_end = if trim_right { close - 2 } else { close };
        let inner = &source[inner_start..inner_end];
        if !is_comment(source, open, inner_start, inner)? {
            let tokens = Lexer::new(source, inner_start, inner_end).tokens()?;
            pieces.push(Piece::Action { tokens, pos: open });
        }
        trim_next_text = trim_right;
        rest_start = close + RIGHT.len();
    }
    push_text(&mut pieces, &source[rest_start..], trim_next_text, false);
    Ok(pieces)
}

/// `{{- ` : a dash followed by whitespace right after the delimiter.
fn has_trim_marker_after(source: &str, at: usize) -> bool {
    let bytes = source.as_bytes();
    bytes.get(at) == Some(&b'-') && bytes.get(at + 1).is_some_and(|b| is_space(*b))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn push_text(pieces: &mut Vec<Piece>, text: &str, trim_start: bool, trim_end: bool) {
    let mut text = text;
    if trim_start {
        text = text.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
    }
    if trim_end {
        text = text.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text.to_string()));
    }
}

/// Finds the `}}` that closes the action opened at `open`, skipping quoted
/// strings and comments. Returns its offset and whether ` -}}` trims.
fn find_close(source: &str, open: usize, from: usize) -> Result<(usize, bool), TemplateError> {
    let bytes = source.as_bytes();
    let mut i = from;
    let unclosed = || TemplateError::new(open, "unclosed action");
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'`' | b'\'' => i = skip_quoted(bytes, i).ok_or_else(unclosed)?,
            b'/' if source[i..].starts_with("/*") => {
                i = source[i + 2..]
                    .find("*/")
                    .map(|n| i + 2 + n + 2)
                    .ok_or_else(|| TemplateError::new(open, "unclosed comment"))?;
            }
            b'}' if source[i..].starts_with(RIGHT) => {
                let trim = i >= from + 2 && bytes[i - 1] == b'-' && is_space(bytes[i - 2]);
                return Ok((i, trim));
            }
            _ => i += 1,
        }
    }
    Err(unclosed())
}

/// The offset just past the quoted literal starting at `start`.
fn skip_quoted(bytes: &[u8], start: usize) -> Option<usize> {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote != b'`' => i += 2,
            b'\n' if quote != b'`' => return None,
            b if b == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Whether the action is a comment. A comment must fill the whole action:
/// `{{/* c */}}` or `{{- /* c */ -}}`.
fn is_comment(
    source: &str,
    open: usize,
    inner_start: usize,
    inner: &str,
) -> Result<bool, TemplateError> {
    let trimmed = inner.trim_matches(|c: char| c.is_ascii() && is_space(c as u8));
    if !trimmed.starts_with("/*") {
        return Ok(false);
    }
    let tight = inner.starts_with("/*") || source[..inner_start].ends_with("- ");
    if !trimmed.ends_with("*/") || trimmed.len() < 4 || !tight {
        return Err(TemplateError::new(
            open,
            "comment ends before closing delimiter",
        ));
    }
    Ok(true)
}

struct Lexer<'a> {
    source: &'a str,
    pos: usize,
    end: usize,
    tokens: Vec<Token>,
}

impl<'a> Lexer<'a> {
    fn new(source: &'a str, start: usize, end: usize) -> Self {
        Lexer {
            source,
            pos: start,
            end,
            tokens: Vec::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.source[self.pos..self.end].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.source[self.pos..self.end].chars().nth(n)
    }

    fn tokens(mut self) -> Result<Vec<Token>, TemplateError> {
        let mut spaced = true;
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
                spaced = true;
                continue;
            }
            let start = self.pos;
            let kind = self.token(c)?;
            self.tokens.push(Token {
                kind,
                pos: start,
                spaced,
            });
            spaced = false;
        }
        Ok(self.tokens)
    }

    fn token(&mut self, c: char) -> Result<Tok, TemplateError> {
        let start = self.pos;
        let single = |lexer: &mut Self, tok| {
            lexer.pos += 1;
            Ok(tok)
        };
        match c {
            '|' => single(self, Tok::Pipe),
            '(' => single(self, Tok::LParen),
            ')' => single(self, Tok::RParen),
            ',' => single(self, Tok::Comma),
            '=' => single(self, Tok::Assign),
            ':' if self.peek_at(1) == Some('=') => {
                self.pos += 2;
                Ok(Tok::Declare)
            }
            '"' => self.quoted_string(),
            '`' => self.raw_string(),
            '\'' => self.char_constant(),
            '$' => {
                self.pos += 1;
                let name = self.word();
                Ok(Tok::Variable(format!("${name}")))
            }
            '.' if self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) => self.number(),
            '.' => {
                self.pos += 1;
                let name = self.word();
                Ok(if name.is_empty() {
                    Tok::Dot
                } else {
                    Tok::Field(name)
                })
            }
            '+' | '-'
                if self
                    .peek_at(1)
                    .is_some_and(|c| c.is_ascii_digit() || c == '.') =>
            {
                self.number()
            }
            c if c.is_ascii_digit() => self.number(),
            c if is_word_char(c) => Ok(Tok::Ident(self.word())),
            c => Err(TemplateError::new(
                start,
                format!("unexpected {c:?} in command"),
            )),
        }
    }

    fn word(&mut self) -> String {
        let rest = &self.source[self.pos..self.end];
        let len = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
        self.pos += len;
        rest[..len].to_string()
    }

    fn number(&mut self) -> Result<Tok, TemplateError> {
        let start = self.pos;
        let rest = &self.source[self.pos..self.end];
        let mut len = 0;
        let bytes = rest.as_bytes();
        while len < bytes.len() {
            let b = bytes[len];
            let sign_in_exponent = (b == b'+' || b == b'-')
                && len > 0
                && matches!(bytes[len - 1], b'e' | b'E' | b'p' | b'P')
                && !rest.starts_with("0x")
                && !rest.starts_with("0X");
            if b.is_ascii_alphanumeric()
                || b == b'.'
                || b == b'_'
                || (len == 0 && (b == b'+' || b == b'-'))
                || sign_in_exponent
            {
                len += 1;
            } else {
                break;
            }
        }
        self.pos += len;
        let text = &rest[..len];
        if super::exec::Number::parse(text).is_none() {
            return Err(TemplateError::new(
                start,
                format!("bad number syntax: {text:?}"),
            ));
        }
        Ok(Tok::Number(text.to_string()))
    }

    fn quoted_string(&mut self) -> Result<Tok, TemplateError> {
        let start = self.pos;
        let end = skip_quoted(self.source.as_bytes(), start)
            .filter(|end| *end <= self.end)
            .ok_or_else(|| TemplateError::new(start, "unterminated quoted string"))?;
        self.pos = end;
        unquote(&self.source[start + 1..end - 1])
            .map(Tok::Str)
            .map_err(|message| TemplateError::new(start, message))
    }

    fn raw_string(&mut self) -> Result<Tok, TemplateError> {
        let start = self.pos;
        let end = skip_quoted(self.source.as_bytes(), start)
            .filter(|end| *end <= self.end)
            .ok_or_else(|| TemplateError::new(start, "unterminated raw quoted string"))?;
        self.pos = end;
        Ok(Tok::Str(self.source[start + 1..end - 1].to_string()))
    }

    fn char_constant(&mut self) -> Result<Tok, TemplateError> {
        let start = self.pos;
        let end = skip_quoted(self.source.as_bytes(), start)
            .filter(|end| *end <= self.end)
            .ok_or_else(|| TemplateError::new(start, "unterminated character constant"))?;
        self.pos = end;
        let text =
            unquote(&self.source[start + 1..end - 1]).map_err(|m| TemplateError::new(start, m))?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(Tok::Char(c)),
            _ => Err(TemplateError::new(start, "malformed character constant")),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Go's `strconv.Unquote` for the body of a double-quoted string.
fn unquote(body: &str) -> Result<String, String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = chars.next().ok_or("invalid syntax: trailing backslash")?;
        let simple = match escaped {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' | '"' | '\'' => Some(escaped),
            _ => None,
        };
        if let Some(simple) = simple {
            out.push(simple);
            continue;
        }
        let digits = match escaped {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            '0'..='7' => 2,
            _ => return Err(format!("invalid escape \\{escaped}")),
        };
        let code: String = chars.by_ref().take(digits).collect();
        let value = if escaped.is_ascii_digit() {
            u32::from_str_radix(&format!("{escaped}{code}"), 8)
        } else {
            u32::from_str_radix(&code, 16)
        }
        .map_err(|_| format!("invalid escape \\{escaped}{code}"))?;
        out.push(
            char::from_u32(value)
                .ok_or_else(|| format!("invalid code point in \\{escaped}{code}"))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<Tok> {
        match lex(&format!("{{{{{source}}}}}")).unwrap().as_slice() {
            [Piece::Action { tokens, .. }] => tokens.iter().map(|t| t.kind.clone()).collect(),
            other => panic!("expected one action, got {other:?}"),
        }
    }

    #[test]
    fn text_and_actions() {
        let pieces = lex("a {{ .B }} c").unwrap();
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[0], Piece::Text("a ".into()));
        assert_eq!(pieces[2], Piece::Text(" c".into()));
    }

    #[test]
    fn trim_markers_eat_surrounding_whitespace() {
        let pieces = lex("a \n {{- .B -}} \n c").unwrap();
        assert_eq!(pieces[0], Piece::Text("a".into()));
        assert_eq!(pieces[2], Piece::Text("c".into()));
        // "{{-3}}" is the number -3, not a trim marker
        assert_eq!(kinds("-3"), [Tok::Number("-3".into())]);
    }

    #[test]
    fn comments_vanish() {
        assert_eq!(
            lex("a{{/* x }} y */}}b").unwrap(),
            [Piece::Text("a".into()), Piece::Text("b".into())]
        );
        assert_eq!(
            lex("a {{- /* x */ -}} b").unwrap(),
            [Piece::Text("a".into()), Piece::Text("b".into())]
        );
        assert!(lex("{{/* x */ .A}}").is_err());
    }

    #[test]
    fn tokens() {
        assert_eq!(
            kinds(r#"$x := .A.B | printf "%d\n" 'c' 0x1F 1.5e3 (len `raw`), $"#),
            [
                Tok::Variable("$x".into()),
                Tok::Declare,
                Tok::Field("A".into()),
                Tok::Field("B".into()),
                Tok::Pipe,
                Tok::Ident("printf".into()),
                Tok::Str("%d\n".into()),
                Tok::Char('c'),
                Tok::Number("0x1F".into()),
                Tok::Number("1.5e3".into()),
                Tok::LParen,
                Tok::Ident("len".into()),
                Tok::Str("raw".into()),
                Tok::RParen,
                Tok::Comma,
                Tok::Variable("$".into()),
            ]
        );
    }

    #[test]
    fn closing_delimiters_inside_strings_do_not_close() {
        assert_eq!(kinds(r#""}}""#), [Tok::Str("}}".into())]);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let error = lex("ab\n{{ .A").unwrap_err();
        assert_eq!(
            (error.offset, error.message.as_str()),
            (3, "unclosed action")
        );
        assert_eq!(lex("{{ 12abc }}").unwrap_err().offset, 3);
        assert_eq!(
            lex("{{ # }}").unwrap_err().message,
            "unexpected '#' in command"
        );
        assert!(lex("{{ \"\\q\" }}").is_err());
    }
}
