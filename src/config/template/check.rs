//! The static check of a template (`--check` of `jobs[].render`): what Go
//! finds when it parses (unknown functions, unbalanced blocks, undefined
//! variables) plus what would otherwise fail only when the template runs:
//! wrong argument counts, and service queries or datacenters written as
//! literals that consul-template's syntax refuses.

use super::catalog::{services_dc, ServiceQuery};
use super::funcs;
use super::parse::{Arg, ArgKind, Node, Pipeline};
use super::TemplateError;

/// A call of one of consul-template's catalog or KV functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DataCall {
    pub name: String,
    /// The byte offset of the call in the source.
    pub offset: usize,
}

/// Checks every call in `nodes`; gives the calls that read the catalog.
pub(super) fn check(nodes: &[Node]) -> Result<Vec<DataCall>, TemplateError> {
    let mut calls = Vec::new();
    list(nodes, &mut calls)?;
    Ok(calls)
}

fn list(nodes: &[Node], calls: &mut Vec<DataCall>) -> Result<(), TemplateError> {
    nodes.iter().try_for_each(|node| match node {
        Node::Text(_) => Ok(()),
        Node::Action(pipe) => pipeline(pipe, calls),
        Node::If(branch) | Node::With(branch) | Node::Range(branch) => {
            pipeline(&branch.pipe, calls)?;
            list(&branch.list, calls)?;
            list(&branch.else_list, calls)
        }
    })
}

fn pipeline(pipe: &Pipeline, calls: &mut Vec<DataCall>) -> Result<(), TemplateError> {
    for (position, command) in pipe.commands.iter().enumerate() {
        let (first, rest) = command
            .args
            .split_first()
            .expect("the parser refuses empty commands");
        rest.iter().try_for_each(|arg| operand(arg, calls))?;
        match &first.kind {
            // A method call (`scratch.Set "k" v`): the function gets no arguments.
            ArgKind::Function(_) if !first.chain.is_empty() => operand(first, calls)?,
            ArgKind::Function(name) => {
                let piped = usize::from(position > 0);
                call(name, rest, rest.len() + piped, first.pos, calls)?;
            }
            _ => operand(first, calls)?,
        }
    }
    Ok(())
}

/// An argument: a function named as an operand is called with none.
fn operand(arg: &Arg, calls: &mut Vec<DataCall>) -> Result<(), TemplateError> {
    match &arg.kind {
        ArgKind::Function(name) => call(name, &[], 0, arg.pos, calls),
        ArgKind::Pipe(pipe) => pipeline(pipe, calls),
        _ => Ok(()),
    }
}

fn call(
    name: &str,
    args: &[Arg],
    count: usize,
    pos: usize,
    calls: &mut Vec<DataCall>,
) -> Result<(), TemplateError> {
    funcs::check_count(name, count).map_err(|message| TemplateError::new(pos, message))?;
    if funcs::reads_catalog(name) {
        calls.push(DataCall {
            name: name.to_string(),
            offset: pos,
        });
    }
    let literals: Option<Vec<&str>> = args
        .iter()
        .map(|arg| match (&arg.kind, arg.chain.is_empty()) {
            (ArgKind::Str(text), true) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    // Only calls whose every argument is a literal can be judged before they run.
    let (Some(literals), true) = (literals, args.len() == count) else {
        return Ok(());
    };
    let checked = match name {
        "service" => ServiceQuery::parse(&literals.join("|")).map(drop),
        "services" => literals
            .first()
            .map_or(Ok(()), |dc| services_dc(dc).map(drop)),
        _ => Ok(()),
    };
    checked.map_err(|message| {
        let at = args.first().map_or(pos, |arg| arg.pos);
        TemplateError::new(at, format!("error calling {name}: {message}"))
    })
}
