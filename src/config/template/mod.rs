//! Go `text/template` rendering over the environment, as ContainerPilot does
//! it for configuration files and for the wrapped APP's arguments.
//!
//! Data is the environment as a `map[string]string` rendered with
//! `missingkey=zero`, so `{{ .UNSET }}` prints nothing. Functions: Go's
//! builtins (`and or not len index print printf println html js urlquery eq
//! ne lt le gt ge call`) and ContainerPilot's `default env split join
//! replaceAll regexReplaceAll loop`. `{{-`/`-}}` trimming, comments,
//! `if`/`else if`/`else`, `range` (with one or two variables), `with`,
//! variables (`:=` and `=`) and parenthesised pipelines all work.
//! `define`/`template`/`block` are refused with a clear error (ContainerPilot
//! rendered one anonymous template, so a config could never use them
//! usefully), as are `break`/`continue` (ContainerPilot's Go 1.9 had none).
//!
//! Why not the `gtmpl` crate (0.7, evaluated): it renders a missing key as
//! `<no value>` where Go prints an empty string for a `map[string]string`,
//! pads `printf "%05d"` with spaces instead of zeros, and reports errors
//! with a wrong line number and no column. ContainerPilot users rely on
//! exactly these (unset variables are everywhere in real configs), so this
//! module is a small engine of its own, tested function by function.
//!
//! The same engine renders the templates of `jobs[].render` [beyond], with
//! consul-template's functions: its helpers ([`helpers`], usable in every
//! template) and its data functions over the catalog ([`catalog`], render
//! templates only). [`check`] is what `--check` runs on render templates.
//!
//! Rendering is bounded (steps, output size, `loop` length, nesting), so no
//! input can hang or exhaust memory. This module owns the template language
//! only; it must not read files or know about the configuration schema.

mod catalog;
mod check;
#[cfg(test)]
mod consul_tests;
mod encode;
mod exec;
mod fmt;
mod funcs;
mod helpers;
mod lex;
mod methods;
mod parse;
mod timefmt;

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

pub(crate) use catalog::{Catalog, CatalogService, KeyPair, ServiceInstance};
pub use catalog::{Dependency, Fetched, ServiceQuery};
pub(crate) use check::DataCall;

/// The data a template sees: variable name → value.
pub type Env = BTreeMap<String, String>;

/// A template that failed to parse or execute; `offset` is the byte offset
/// in the source where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl TemplateError {
    fn new(offset: usize, message: impl Into<String>) -> TemplateError {
        TemplateError {
            offset,
            message: message.into(),
        }
    }
}

/// Renders `source` with `env` as its data.
pub(crate) fn render(source: &str, env: &Env) -> Result<String, TemplateError> {
    render_source(source, env, None)
}

/// A render template's output and what it read from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    pub text: String,
    /// Everything the template read.
    pub used: BTreeSet<Dependency>,
    /// What it read that `catalog` does not hold yet (or, for `key`, that
    /// does not exist): the text is not final while this is not empty.
    pub missing: BTreeSet<Dependency>,
}

/// Renders `source` with `env` as its data and `catalog` behind
/// consul-template's data functions (the templates of `jobs[].render`).
pub(crate) fn render_with_catalog(
    source: &str,
    env: &Env,
    catalog: &Catalog,
) -> Result<Rendered, TemplateError> {
    let reader = catalog::Reader::new(catalog);
    let text = render_source(source, env, Some(&reader))?;
    let (used, missing) = reader.into_dependencies();
    Ok(Rendered {
        text,
        used,
        missing,
    })
}

/// Parses `source` and checks every call in it (function names, argument
/// counts, literal service queries) without running it; gives the calls
/// that read the catalog.
pub(crate) fn check(source: &str) -> Result<Vec<DataCall>, TemplateError> {
    check::check(&parse::parse(lex::lex(source)?)?)
}

fn render_source(
    source: &str,
    env: &Env,
    catalog: Option<&catalog::Reader<'_>>,
) -> Result<String, TemplateError> {
    if !source.contains("{{") {
        return Ok(source.to_string());
    }
    let nodes = parse::parse(lex::lex(source)?)?;
    exec::execute(&nodes, Rc::new(env.clone()), catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        [
            ("NAME", "web"),
            ("PORT", "8080"),
            ("LIST", " a,b,c "),
            ("EMPTY", ""),
            ("COUNT", "3"),
            ("EQUALS", "a=b"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn r(source: &str) -> String {
        render(source, &env()).unwrap_or_else(|e| panic!("{source:?} failed: {e} at {}", e.offset))
    }

    fn err(source: &str) -> TemplateError {
        render(source, &env()).expect_err(source)
    }

    #[test]
    fn plain_text_passes_through() {
        assert_eq!(r("no actions { } here"), "no actions { } here");
        assert_eq!(r(""), "");
    }

    #[test]
    fn environment_fields() {
        assert_eq!(r("{{.NAME}}:{{ .PORT }}"), "web:8080");
        assert_eq!(r("[{{ .UNSET }}]"), "[]");
        assert_eq!(r("{{ .EQUALS }}"), "a=b");
        assert_eq!(r("{{ len . }}"), "6");
        assert_eq!(r("{{ $.NAME }}"), "web");
        assert!(err("{{ .NAME.X }}")
            .message
            .contains("can't evaluate field X in type string"));
    }

    #[test]
    fn trimming() {
        assert_eq!(r("a  {{- .NAME -}}  b"), "awebb");
        assert_eq!(
            r("[\n  {{- range loop 2 }}\n  x{{ end }}\n]"),
            "[\n  x\n  x\n]"
        );
    }

    #[test]
    fn conditionals() {
        assert_eq!(r("{{ if .NAME }}y{{ else }}n{{ end }}"), "y");
        assert_eq!(r("{{ if .UNSET }}y{{ else }}n{{ end }}"), "n");
        assert_eq!(
            r("{{ if .UNSET }}a{{ else if .NAME }}b{{ else }}c{{ end }}"),
            "b"
        );
        assert_eq!(r("{{ if eq .PORT \"8080\" }}std{{ end }}"), "std");
        assert_eq!(r("{{ with .NAME }}<{{ . }}>{{ end }}"), "<web>");
        assert_eq!(r("{{ with .UNSET }}x{{ else }}none{{ end }}"), "none");
    }

    #[test]
    fn variables() {
        assert_eq!(
            r("{{ $x := .NAME }}{{ $x }}-{{ $x = \"y\" }}{{ $x }}"),
            "web-y"
        );
        assert_eq!(
            r("{{ range $i, $v := split \",\" \"a,b\" }}{{ $i }}={{ $v }};{{ end }}"),
            "0=a;1=b;"
        );
        assert_eq!(
            r("{{ range $v := loop 2 }}{{ $v }}{{ $.NAME }}{{ end }}"),
            "0web1web"
        );
    }

    #[test]
    fn range_over_collections() {
        assert_eq!(r("{{ range loop 3 }}{{ . }}{{ end }}"), "012");
        assert_eq!(
            r("{{ range split \",\" .UNSET }}x{{ else }}empty{{ end }}"),
            "empty"
        );
        assert_eq!(
            r("{{ range $k, $v := . }}{{ if eq $k \"COUNT\" }}{{ $v }}{{ end }}{{ end }}"),
            "3"
        );
        assert!(err("{{ range 5 }}{{ end }}")
            .message
            .contains("range can't iterate over 5"));
    }

    #[test]
    fn function_default() {
        assert_eq!(r("{{ .UNSET | default \"x\" }}"), "x");
        assert_eq!(r("{{ .NAME | default \"x\" }}"), "web");
        assert_eq!(r("{{ .UNSET | default 10 }}"), "10");
        assert_eq!(r("{{ default \"x\" 5 }}"), "x");
        assert_eq!(
            err("{{ default \"x\" }}").message,
            "wrong number of args for default: want 2 got 1"
        );
    }

    #[test]
    fn function_env() {
        assert_eq!(r("{{ env \"NAME\" }}{{ env \"UNSET\" }}"), "web");
        assert_eq!(r("{{ env (printf \"%s\" \"PORT\") }}"), "8080");
        assert!(err("{{ env 5 }}")
            .message
            .contains("expected string; got int"));
    }

    #[test]
    fn function_split_and_join() {
        assert_eq!(r("{{ split \",\" .LIST }}"), "[a b c]");
        assert_eq!(r("{{ .LIST | split \",\" | join \";\" }}"), "a;b;c");
        assert_eq!(r("{{ len (split \",\" \"\") }}"), "0");
        assert_eq!(r("{{ join \",\" (split \",\" \"\") }}"), "");
        assert!(err("{{ join \",\" (loop 2) }}")
            .message
            .contains("expected []string; got []int"));
    }

    #[test]
    fn function_replace_all() {
        assert_eq!(r("{{ replaceAll \".\" \"-\" \"a.b.c\" }}"), "a-b-c");
        assert_eq!(r("{{ .NAME | replaceAll \"w\" \"W\" }}"), "Web");
    }

    #[test]
    fn function_regex_replace_all() {
        assert_eq!(
            r("{{ regexReplaceAll \"[0-9]+\" \"N\" \"a1b22\" }}"),
            "aNbN"
        );
        assert_eq!(
            r("{{ regexReplaceAll \"(a)(b)\" \"$2$1\" \"abab\" }}"),
            "baba"
        );
        assert!(err("{{ regexReplaceAll \"(\" \"\" \"x\" }}")
            .message
            .starts_with("error calling regexReplaceAll: error parsing regexp"));
    }

    #[test]
    fn function_loop() {
        assert_eq!(r("{{ loop 3 }}"), "[0 1 2]");
        assert_eq!(r("{{ loop 5 8 }}"), "[5 6 7]");
        assert_eq!(r("{{ loop 5 1 }}"), "[5 4 3 2]");
        assert_eq!(r("{{ loop .COUNT }}"), "[0 1 2]");
        assert_eq!(r("{{ loop 0 }}"), "[]");
        assert!(err("{{ loop 1 2 3 }}")
            .message
            .contains("expected 1 or 2, but got 3"));
        assert!(err("{{ loop \"x\" }}")
            .message
            .contains("strconv.Atoi: parsing \"x\""));
        assert!(err("{{ loop 1.5 }}").message.contains("float64, not int"));
        assert!(err("{{ loop 100000000 }}").message.contains("longer than"));
    }

    #[test]
    fn builtin_logic() {
        assert_eq!(
            r("{{ and 1 0 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 5 }}"),
            "0 2  5"
        );
        assert_eq!(r("{{ not .UNSET }} {{ not 1 }}"), "true false");
    }

    #[test]
    fn builtin_comparisons() {
        assert_eq!(r("{{ eq 1 2 1 }} {{ ne \"a\" \"b\" }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}"), "true true true true true false");
        assert_eq!(
            err("{{ eq .PORT 8080 }}").message,
            "error calling eq: incompatible types for comparison"
        );
        assert!(err("{{ lt true false }}")
            .message
            .contains("invalid type for comparison"));
    }

    #[test]
    fn builtin_len_and_index() {
        assert_eq!(r("{{ len .NAME }} {{ len (loop 4) }}"), "3 4");
        assert_eq!(r("{{ index . \"NAME\" }}|{{ index . \"UNSET\" }}|{{ index (loop 3 6) 1 }}|{{ index \"AB\" 1 }}"), "web||4|66");
        assert!(err("{{ index (loop 2) 5 }}")
            .message
            .contains("index out of range: 5"));
        assert!(err("{{ len 5 }}").message.contains("len of type int"));
    }

    #[test]
    fn builtin_printing() {
        assert_eq!(r("{{ print 1 2 \"x\" }}"), "1 2x");
        assert_eq!(r("{{ println \"a\" 1 }}"), "a 1\n");
        assert_eq!(r("{{ printf \"%05d-%s\" 42 .NAME }}"), "00042-web");
        assert_eq!(
            r("{{ 3 }} {{ 1.5 }} {{ 1e3 }} {{ true }} {{ 'a' }} {{ \"s\" }}"),
            "3 1.5 1000 true 97 s"
        );
    }

    #[test]
    fn builtin_escapers() {
        assert_eq!(
            r("{{ html \"<a href='x'>&\" }}"),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
        assert_eq!(r("{{ js \"it's <b>\" }}"), "it\\'s \\u003Cb\\u003E");
        assert_eq!(r("{{ urlquery \"a b&c/d\" }}"), "a+b%26c%2Fd");
    }

    #[test]
    fn call_has_nothing_to_call() {
        assert!(err("{{ call 1 }}").message.contains("not a function"));
    }

    #[test]
    fn parenthesised_pipelines_and_chains() {
        assert_eq!(r("{{ (len .NAME) }}"), "3");
        assert_eq!(r("{{ (.).NAME }}"), "web");
        assert_eq!(r("{{ printf \"%d\" (len (split \",\" .LIST)) }}"), "3");
    }

    #[test]
    fn errors_carry_offsets() {
        let error = err("ab\n  {{ nope }}");
        assert_eq!(
            (error.offset, error.message.as_str()),
            (8, "function \"nope\" not defined")
        );
        let error = err("{{ .NAME }}{{ len 5 }}");
        assert_eq!(error.offset, 14);
        assert_eq!(
            err("{{ 5 6 }}").message,
            "can't give argument to non-function a value"
        );
        assert_eq!(
            err("{{ .NAME 6 }}").message,
            "can't give argument to non-function .NAME"
        );
        assert_eq!(err("{{ nil }}").message, "nil is not a command");
    }

    #[test]
    fn runaway_templates_are_stopped() {
        let message =
            err("{{ range loop 100000 }}{{ range loop 100000 }}x{{ end }}{{ end }}").message;
        assert!(
            message.contains("too long") || message.contains("larger than"),
            "{message}"
        );
    }

    #[test]
    fn compat_loop_env_watches_fragment() {
        let source = "  watches: [\n    {{ range $i := loop 0 5 -}}{{ if (env (printf \"SERVICE_NAME_%d\" $i)) -}}\n    {\n      name: \"{{ (env (printf \"SERVICE_NAME_%d\" $i)) }}\",\n      interval: {{ (env (printf \"SERVICE_INTERVAL_%d\" $i)) | default 10 }}\n    },\n    {{- end }}{{- end }}\n  ],";
        let mut env = Env::new();
        assert_eq!(render(source, &env).unwrap(), "  watches: [\n    \n  ],");
        env.insert("SERVICE_NAME_1".into(), "svc-a".into());
        env.insert("SERVICE_INTERVAL_1".into(), "5".into());
        assert_eq!(
            render(source, &env).unwrap(),
            "  watches: [\n    {\n      name: \"svc-a\",\n      interval: 5\n    },\n  ],"
        );
    }
}
