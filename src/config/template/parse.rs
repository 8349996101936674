//! The template parser: turns lexed pieces into a tree of nodes, checking at
//! parse time (as Go does) that every function and variable exists and that
//! every `if`/`range`/`with` has its `end`.

use super::exec::Number;
use super::funcs;
use super::lex::{Piece, Tok, Token};
use super::TemplateError;

/// Blocks and parentheses may not nest deeper than this.
const MAX_NESTING: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Text(String),
    Action(Pipeline),
    If(Branch),
    With(Branch),
    Range(Branch),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Branch {
    pub pipe: Pipeline,
    pub list: Vec<Node>,
    pub else_list: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pipeline {
    pub pos: usize,
    /// Variables declared (`:=`) or assigned (`=`) by this pipeline.
    pub vars: Vec<String>,
    pub assign: bool,
    pub commands: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Arg {
    pub pos: usize,
    pub kind: ArgKind,
    /// Fields accessed on the term's value (`$x.A.B`, `(pipe).A`).
    pub chain: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ArgKind {
    /// `.`, or a field chain on dot when `chain` is not empty.
    Dot,
    Variable(String),
    Function(String),
    Str(String),
    Number(Number),
    Bool(bool),
    Nil,
    Pipe(Box<Pipeline>),
}

pub(super) fn parse(pieces: Vec<Piece>) -> Result<Vec<Node>, TemplateError> {
    let mut parser = Parser {
        pieces: pieces.into_iter().peekable(),
        vars: vec!["$".to_string()],
        depth: 0,
    };
    let (list, end) = parser.list()?;
    match end {
        Closer::Eof => Ok(list),
        Closer::End(pos) => Err(TemplateError::new(pos, "unexpected {{end}}")),
        Closer::Else(pos, _) => Err(TemplateError::new(pos, "unexpected {{else}}")),
    }
}

/// What stopped a list of nodes.
enum Closer {
    Eof,
    End(usize),
    /// `{{else}}`, or `{{else if ...}}` with the tokens after `else`.
    Else(usize, Vec<Token>),
}

struct Parser {
    pieces: std::iter::Peekable<std::vec::IntoIter<Piece>>,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    depth: usize,
}

impl Parser {
    fn list(&mut self) -> Result<(Vec<Node>, Closer), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(piece) = self.pieces.next() {
            match piece {
                Piece::Text(text) => nodes.push(Node::Text(text)),
                Piece::Action { tokens, pos } => match self.action(tokens, pos)? {
                    Step::Node(node) => nodes.push(node),
                    Step::Stop(end) => return Ok((nodes, end)),
                },
            }
        }
        Ok((nodes, Closer::Eof))
    }

    fn action(&mut self, tokens: Vec<Token>, pos: usize) -> Result<Step, TemplateError> {
        let keyword = match tokens.first().map(|t| &t.kind) {
            Some(Tok::Ident(word)) => word.as_str(),
            None => return Err(TemplateError::new(pos, "missing value for command")),
            _ => "",
        };
        let at = tokens[0].pos;
        match keyword {
            "end" => {
                expect_alone(&tokens, "end")?;
                Ok(Step::Stop(Closer::End(at)))
            }
            "else" => Ok(Step::Stop(Closer::Else(at, tokens[1..].to_vec()))),
            "if" | "with" | "range" => self.control(keyword, &tokens[1..], at).map(Step::Node),
            "define" | "template" | "block" | "break" | "continue" => Err(TemplateError::new(
                at,
                format!("{{{{{keyword}}}}} is not supported in configuration templates"),
            )),
            _ => Ok(Step::Node(Node::Action(self.pipeline(&tokens, pos, true)?))),
        }
    }

    fn control(
        &mut self,
        keyword: &str,
        tokens: &[Token],
        at: usize,
    ) -> Result<Node, TemplateError> {
        self.enter(at)?;
        let scope = self.vars.len();
        let pipe = self.pipeline(tokens, at, keyword == "range")?;
        let (list, mut end) = self.list()?;
        let mut else_list = Vec::new();
        if let Closer::Else(else_at, rest) = end {
            let else_if =
                matches!(rest.first(), Some(Token { kind: Tok::Ident(w), .. }) if w == "if");
            if else_if && keyword == "if" {
                // {{if a}}x{{else if b}}y{{end}} is {{if a}}x{{else}}{{if b}}y{{end}}{{end}}
                else_list.push(self.control("if", &rest[1..], rest[0].pos)?);
                end = Closer::End(else_at);
            } else {
                if let Some(extra) = rest.first() {
                    return Err(TemplateError::new(
                        extra.pos,
                        "unexpected token after {{else}}",
                    ));
                }
                let (list, after_else) = self.list()?;
                else_list = list;
                end = after_else;
            }
        }
        self.vars.truncate(scope);
        self.depth -= 1;
        let branch = Branch {
            pipe,
            list,
            else_list,
        };
        match end {
            Closer::End(_) => Ok(match keyword {
                "if" => Node::If(branch),
                "with" => Node::With(branch),
                _ => Node::Range(branch),
            }),
            Closer::Else(pos, _) => Err(TemplateError::new(
                pos,
                "expected {{end}}, found another {{else}}",
            )),
            Closer::Eof => Err(TemplateError::new(
                at,
                format!("unexpected EOF: {{{{{keyword}}}}} has no {{{{end}}}}"),
            )),
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(TemplateError::new(at, "template nested too deeply"));
        }
        Ok(())
    }

    /// `[$a[, $b] := | =] command [| command]...`; `two_vars` allows the
    /// two-variable declaration of `range`.
    fn pipeline(
        &mut self,
        tokens: &[Token],
        pos: usize,
        two_vars: bool,
    ) -> Result<Pipeline, TemplateError> {
        let (vars, assign, rest) = self.declarations(tokens, two_vars)?;
        let mut commands = Vec::new();
        let mut cursor = Cursor {
            tokens: rest,
            index: 0,
        };
        if cursor.peek().is_none() {
            return Err(TemplateError::new(pos, "missing value for command"));
        }
        loop {
            commands.push(self.command(&mut cursor)?);
            match cursor.next() {
                None => break,
                Some(Token {
                    kind: Tok::Pipe, ..
                }) => {}
                Some(other) => return Err(unexpected(other, "in command")),
            }
        }
        if !assign {
            self.vars.extend(vars.iter().cloned());
        }
        Ok(Pipeline {
            pos,
            vars,
            assign,
            commands,
        })
    }

    fn declarations<'t>(
        &mut self,
        tokens: &'t [Token],
        two_vars: bool,
    ) -> Result<(Vec<String>, bool, &'t [Token]), TemplateError> {
        let var_at = |i: usize| match tokens.get(i).map(|t| &t.kind) {
            Some(Tok::Variable(name)) => Some(name.clone()),
            _ => None,
        };
        let op_at = |i: usize| tokens.get(i).map(|t| &t.kind);
        if let (Some(first), Some(op @ (Tok::Declare | Tok::Assign))) = (var_at(0), op_at(1)) {
            let assign = *op == Tok::Assign;
            if assign && !self.vars.contains(&first) {
                return Err(TemplateError::new(
                    tokens[0].pos,
                    format!("undefined variable {first:?}"),
                ));
            }
            return Ok((vec![first], assign, &tokens[2..]));
        }
        if two_vars {
            if let (Some(first), Some(Tok::Comma), Some(second), Some(Tok::Declare)) =
                (var_at(0), op_at(1), var_at(2), op_at(3))
            {
                return Ok((vec![first, second], false, &tokens[4..]));
            }
        }
        Ok((Vec::new(), false, tokens))
    }

    fn command(&mut self, cursor: &mut Cursor<'_>) -> Result<Command, TemplateError> {
        let pos = cursor.peek().map_or(0, |t| t.pos);
        let mut args = Vec::new();
        while let Some(token) = cursor.peek() {
            if matches!(token.kind, Tok::Pipe | Tok::RParen) {
                break;
            }
            if !args.is_empty() && !token.spaced && !matches!(token.kind, Tok::LParen) {
                return Err(unexpected(token, "in operand"));
            }
            args.push(self.operand(cursor)?);
        }
        if args.is_empty() {
            return Err(TemplateError::new(pos, "missing value for command"));
        }
        Ok(Command { pos, args })
    }

    fn operand(&mut self, cursor: &mut Cursor<'_>) -> Result<Arg, TemplateError> {
        let token = cursor.next().expect("operand called with a token ahead");
        let pos = token.pos;
        let mut chain = Vec::new();
        let kind = match &token.kind {
            Tok::Dot => ArgKind::Dot,
            Tok::Field(name) => {
                chain.push(name.clone());
                ArgKind::Dot
            }
            Tok::Variable(name) => {
                if !self.vars.contains(name) {
                    return Err(TemplateError::new(
                        pos,
                        format!("undefined variable {name:?}"),
                    ));
                }
                ArgKind::Variable(name.clone())
            }
            Tok::Ident(word) => match word.as_str() {
                "true" => ArgKind::Bool(true),
                "false" => ArgKind::Bool(false),
                "nil" => ArgKind::Nil,
                name if funcs::exists(name) => ArgKind::Function(name.to_string()),
                name => {
                    let why = funcs::unsupported(name).map_or(String::new(), |why| {
                        format!(" (consul-template's {name} is left out: {why})")
                    });
                    return Err(TemplateError::new(
                        pos,
                        format!("function {name:?} not defined{why}"),
                    ));
                }
            },
            Tok::Str(text) => ArgKind::Str(text.clone()),
            Tok::Char(c) => ArgKind::Number(Number::Int(i64::from(u32::from(*c)))),
            Tok::Number(text) => {
                ArgKind::Number(Number::parse(text).expect("the lexer checked the number"))
            }
            Tok::LParen => {
                self.enter(pos)?;
                let inner = self.parenthesized(cursor, pos)?;
                self.depth -= 1;
                ArgKind::Pipe(Box::new(inner))
            }
            _ => return Err(unexpected(token, "in operand")),
        };
        while let Some(Token {
            kind: Tok::Field(name),
            spaced: false,
            ..
        }) = cursor.peek()
        {
            chain.push(name.clone());
            cursor.next();
        }
        if !chain.is_empty()
            && matches!(
                kind,
                ArgKind::Bool(_) | ArgKind::Nil | ArgKind::Str(_) | ArgKind::Number(_)
            )
        {
            return Err(TemplateError::new(
                pos,
                "unexpected field access on a constant",
            ));
        }
        Ok(Arg { pos, kind, chain })
    }

    fn parenthesized(
        &mut self,
        cursor: &mut Cursor<'_>,
        open: usize,
    ) -> Result<Pipeline, TemplateError> {
        let start = cursor.index;
        let mut depth = 1;
        while let Some(token) = cursor.next() {
            match token.kind {
                Tok::LParen => depth += 1,
                Tok::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        let inner = &cursor.tokens[start..cursor.index - 1];
                        return self.pipeline(inner, open, false);
                    }
                }
                _ => {}
            }
        }
        Err(TemplateError::new(open, "unclosed left paren"))
    }
}

enum Step {
    Node(Node),
    Stop(Closer),
}

struct Cursor<'t> {
    tokens: &'t [Token],
    index: usize,
}

impl<'t> Cursor<'t> {
    fn peek(&self) -> Option<&'t Token> {
        self.tokens.get(self.index)
    }

    fn next(&mut self) -> Option<&'t Token> {
        let token = self.tokens.get(self.index);
        self.index += usize::from(token.is_some());
        token
    }
}

fn expect_alone(tokens: &[Token], keyword: &str) -> Result<(), TemplateError> {
    match tokens.get(1) {
        Some(extra) => Err(TemplateError::new(
            extra.pos,
            format!("unexpected token after {{{{{keyword}}}}}"),
        )),
        None => Ok(()),
    }
}

fn unexpected(token: &Token, context: &str) -> TemplateError {
    let shown = match &token.kind {
        Tok::Dot => ".".to_string(),
        Tok::Field(name) => format!(".{name}"),
        Tok::Variable(name) | Tok::Ident(name) | Tok::Number(name) => name.clone(),
        Tok::Str(text) => format!("{text:?}"),
        Tok::Char(c) => format!("{c:?}"),
        Tok::Declare => ":=".into(),
        Tok::Assign => "=".into(),
        Tok::Pipe => "|".into(),
        Tok::LParen => "(".into(),
        Tok::RParen => ")".into(),
        Tok::Comma => ",".into(),
    };
    TemplateError::new(token.pos, format!("unexpected {shown:?} {context}"))
}

#[cfg(test)]
mod tests {
    use super::super::lex::lex;
    use super::*;

    fn parse_source(source: &str) -> Result<Vec<Node>, TemplateError> {
        parse(lex(source)?)
    }

    #[test]
    fn blocks_need_their_end() {
        assert!(parse_source("{{ if .A }}x{{ end }}").is_ok());
        assert_eq!(
            parse_source("{{ if .A }}x").unwrap_err().message,
            "unexpected EOF: {{if}} has no {{end}}"
        );
        assert_eq!(
            parse_source("x{{ end }}").unwrap_err().message,
            "unexpected {{end}}"
        );
        assert!(parse_source("{{ range .A }}{{ else }}{{ else }}{{ end }}").is_err());
    }

    #[test]
    fn else_if_chains_nest() {
        let nodes = parse_source("{{ if .A }}a{{ else if .B }}b{{ else }}c{{ end }}").unwrap();
        let Node::If(outer) = &nodes[0] else {
            panic!("{nodes:?}")
        };
        assert!(matches!(outer.else_list[0], Node::If(_)));
    }

    #[test]
    fn functions_and_variables_must_exist() {
        assert_eq!(
            parse_source("{{ nope 1 }}").unwrap_err().message,
            "function \"nope\" not defined"
        );
        assert_eq!(
            parse_source("{{ $x }}").unwrap_err().message,
            "undefined variable \"$x\""
        );
        assert!(parse_source("{{ $x := 1 }}{{ $x }}").is_ok());
        assert!(parse_source("{{ if 1 }}{{ $x := 1 }}{{ end }}{{ $x }}").is_err());
        assert!(parse_source("{{ range $i, $v := loop 3 }}{{ $i }}{{ $v }}{{ end }}").is_ok());
        assert!(parse_source("{{ $y = 1 }}").is_err());
    }

    #[test]
    fn unsupported_actions_say_so() {
        let message = parse_source("{{ define \"x\" }}{{ end }}")
            .unwrap_err()
            .message;
        assert!(message.contains("not supported"), "{message}");
    }

    #[test]
    fn malformed_pipelines() {
        assert!(parse_source("{{ }}").is_err());
        assert!(parse_source("{{ .A | }}").is_err());
        assert!(parse_source("{{ (len \"a\" }}").is_err());
        assert!(parse_source("{{ len \"a\") }}").is_err());
        assert!(parse_source("{{ \"a\".B }}").is_err());
        let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(
            parse_source(&format!("{{{{ {deep} }}}}"))
                .unwrap_err()
                .message,
            "template nested too deeply"
        );
    }
}
