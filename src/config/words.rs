//! Splitting a command string into argv words like a POSIX shell does.
//!
//! Quotes and backslashes are honoured (`sh -c 'a b'` is three words), but
//! nothing is expanded and no shell runs. Hand-written because the `shlex`
//! crate treats a word starting with `#` as a comment and drops the rest of
//! the line, which would silently change commands ContainerPilot ran as
//! written (`--color #fff`). This module owns only the splitting.

/// Why a command string could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SplitError {
    #[error("unterminated {0} quote")]
    UnterminatedQuote(&'static str),
    #[error("ends with a lone backslash")]
    TrailingBackslash,
}

/// Splits `command` into words: whitespace separates words; `'...'` is
/// literal; inside `"..."` a backslash escapes only `$`, `` ` ``, `"`, `\`
/// and newline; elsewhere a backslash escapes any character.
pub(crate) fn split(command: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err(SplitError::UnterminatedQuote("single")),
                    }
                }
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                read_double_quoted(&mut chars, current)?;
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(SplitError::TrailingBackslash),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

fn read_double_quoted(chars: &mut std::str::Chars<'_>, out: &mut String) -> Result<(), SplitError> {
    loop {
        match chars.next() {
            Some('"') => return Ok(()),
            Some('\\') => match chars.next() {
                Some('\n') => {}
                Some(c @ ('$' | '`' | '"' | '\\')) => out.push(c),
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None => return Err(SplitError::UnterminatedQuote("double")),
            },
            Some(c) => out.push(c),
            None => return Err(SplitError::UnterminatedQuote("double")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        split(s).unwrap()
    }

    #[test]
    fn plain_words_split_on_whitespace() {
        assert_eq!(
            words("/bin/to/preStart.sh arg1 arg2"),
            ["/bin/to/preStart.sh", "arg1", "arg2"]
        );
        assert_eq!(words("  a \t b\n"), ["a", "b"]);
        assert!(words("   ").is_empty());
    }

    #[test]
    fn quotes_keep_words_whole() {
        assert_eq!(words("sh -c 'a b'"), ["sh", "-c", "a b"]);
        assert_eq!(words(r#"echo "x \"y\" \n $z""#), ["echo", r#"x "y" \n $z"#]);
        assert_eq!(words(r"a\ b c"), ["a b", "c"]);
        assert_eq!(words("''"), [""]);
        assert_eq!(words("a'b'\"c\"d"), ["abcd"]);
    }

    #[test]
    fn hash_is_not_a_comment() {
        assert_eq!(words("paint --color #fff"), ["paint", "--color", "#fff"]);
    }

    #[test]
    fn broken_quoting_is_an_error() {
        assert_eq!(split("a 'b"), Err(SplitError::UnterminatedQuote("single")));
        assert_eq!(split("a \"b"), Err(SplitError::UnterminatedQuote("double")));
        assert_eq!(split("a \\"), Err(SplitError::TrailingBackslash));
    }
}
