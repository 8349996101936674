//! Go's `fmt` printing for template values: what `{{ .X }}` prints, and the
//! `print`, `println` and `printf` functions (verbs `v s q d b o O x X c U
//! e E f F g G t T %`, flags `+ - # space 0`, width, precision and `*`, and
//! Go's `%!d(string=x)` / `%!d(MISSING)` / `%!(EXTRA ...)` markers). Not
//! supported: explicit argument indexes (`%[1]d`) and hexadecimal floats.

use super::exec::Value;

/// What an action prints for its value (a nil value prints `<no value>`).
pub(super) fn print_value(value: &Value) -> String {
    match value {
        Value::Nil => "<no value>".to_string(),
        other => plain(other),
    }
}

/// Go's `%v` without flags.
fn plain(value: &Value) -> String {
    format_value(value, 'v', &Spec::default())
}

/// `fmt.Sprint`: a space between operands when neither is a string.
pub(super) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::Str(_));
        if i > 0 && !is_string && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&nil_or_plain(arg));
    }
    out
}

/// `fmt.Sprintln`: spaces between all operands and a final newline.
pub(super) fn sprintln(args: &[Value]) -> String {
    let mut out = args.iter().map(nil_or_plain).collect::<Vec<_>>().join(" ");
    out.push('\n');
    out
}

fn nil_or_plain(value: &Value) -> String {
    match value {
        Value::Nil => "<nil>".to_string(),
        other => plain(other),
    }
}

/// Go refuses widths and precisions beyond a million.
const MAX_WIDTH: usize = 1_000_000;

#[derive(Debug, Default, Clone)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// `fmt.Sprintf`.
pub(super) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next_arg = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        let width = read_count(&mut chars, args, &mut next_arg);
        let precision = if chars.peek() == Some(&'.') {
            chars.next();
            Some(read_count(&mut chars, args, &mut next_arg).unwrap_or(Ok(0)))
        } else {
            None
        };
        match width {
            Some(Ok(width)) if width <= MAX_WIDTH => spec.width = Some(width),
            Some(_) => out.push_str("%!(BADWIDTH)"),
            None => {}
        }
        match precision {
            Some(Ok(precision)) if precision <= MAX_WIDTH => spec.precision = Some(precision),
            Some(_) => out.push_str("%!(BADPREC)"),
            None => {}
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next_arg) {
            Some(arg) => {
                next_arg += 1;
                out.push_str(&format_value(arg, verb, &spec));
            }
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
    }
    if next_arg < args.len() {
        let extra: Vec<String> = args[next_arg..]
            .iter()
            .map(|arg| format!("{}={}", arg.type_name(), nil_or_plain(arg)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// A width or precision: digits, or `*` taking an int argument. `Err` is a
/// bad `*` argument.
fn read_count(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    args: &[Value],
    next_arg: &mut usize,
) -> Option<Result<usize, ()>> {
    if chars.peek() == Some(&'*') {
        chars.next();
        let arg = args.get(*next_arg);
        *next_arg += 1;
        return Some(match arg {
            Some(Value::Int(n)) => usize::try_from(*n).map_err(|_| ()),
            _ => Err(()),
        });
    }
    let mut count: Option<usize> = None;
    while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        count = Some(
            count
                .unwrap_or(0)
                .saturating_mul(10)
                .saturating_add(digit as usize),
        );
    }
    count.map(Ok)
}

fn format_value(value: &Value, verb: char, spec: &Spec) -> String {
    if verb == 'T' {
        return pad(value.type_name(), spec, false);
    }
    match value {
        Value::List(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|item| format_value(item, verb, spec))
                .collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Map(_) | Value::Dict(_) => {
            let parts: Vec<String> = value
                .entries()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        format_value(&Value::Str(k), verb, spec),
                        format_value(&v, verb, spec)
                    )
                })
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        // The scratch pad is a pointer to a struct holding a map.
        Value::Scratch(pad) => {
            let map = Value::Dict(std::rc::Rc::new(pad.borrow().clone()));
            format!("&{{{}}}", format_value(&map, verb, spec))
        }
        // Go prints a pointer to a struct as `&{field field ...}`.
        Value::Record(record) => {
            let parts: Vec<String> = record
                .fields
                .iter()
                .map(|(_, field)| format_value(field, verb, spec))
                .collect();
            format!("&{{{}}}", parts.join(" "))
        }
        Value::Nil if verb == 'v' => pad("<nil>".to_string(), spec, false),
        Value::Nil => format!("%!{verb}(<nil>)"),
        Value::Bool(b) if matches!(verb, 'v' | 't') => pad(b.to_string(), spec, false),
        Value::Int(i) => format_int(*i, verb, spec),
        Value::Float(f) => format_float(*f, verb, spec),
        Value::Str(s) => format_str(s, verb, spec),
        other => bad_verb(other, verb),
    }
}

fn bad_verb(value: &Value, verb: char) -> String {
    format!("%!{verb}({}={})", value.type_name(), nil_or_plain(value))
}

fn format_str(s: &str, verb: char, spec: &Spec) -> String {
    match verb {
        'v' | 's' => {
            let text = match spec.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            pad(text, spec, false)
        }
        'q' if spec.sharp
            && !s.contains('`')
            && !s.chars().any(|c| c.is_control() && c != '\t') =>
        {
            pad(format!("`{s}`"), spec, false)
        }
        'q' => pad(go_quote(s, '"'), spec, false),
        'x' | 'X' => {
            let hex: String = s
                .bytes()
                .map(|b| {
                    if verb == 'x' {
                        format!("{b:02x}")
                    } else {
                        format!("{b:02X}")
                    }
                })
                .collect();
            pad(hex, spec, false)
        }
        _ => bad_verb(&Value::Str(s.to_string()), verb),
    }
}

fn format_int(i: i64, verb: char, spec: &Spec) -> String {
    let magnitude = i.unsigned_abs();
    let (digits, prefix) = match verb {
        'v' | 'd' => (magnitude.to_string(), ""),
        'b' => (format!("{magnitude:b}"), if spec.sharp { "0b" } else { "" }),
        'o' => (format!("{magnitude:o}"), if spec.sharp { "0" } else { "" }),
        'O' => (format!("{magnitude:o}"), "0o"),
        'x' => (format!("{magnitude:x}"), if spec.sharp { "0x" } else { "" }),
        'X' => (format!("{magnitude:X}"), if spec.sharp { "0X" } else { "" }),
        'c' => return pad(char_of(i).to_string(), spec, false),
        'q' => return pad(go_quote(&char_of(i).to_string(), '\''), spec, false),
        'U' => {
            let mut text = format!("U+{magnitude:04X}");
            if spec.sharp {
                text.push_str(&format!(" '{}'", char_of(i)));
            }
            return pad(text, spec, false);
        }
        _ => return bad_verb(&Value::Int(i), verb),
    };
    let digits = match spec.precision {
        Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
        Some(0) if i == 0 => String::new(),
        _ => digits,
    };
    let sign = sign_of(i < 0, spec);
    pad_number(
        sign,
        prefix,
        digits,
        &Spec {
            zero: spec.zero && spec.precision.is_none(),
            ..spec.clone()
        },
    )
}

fn char_of(i: i64) -> char {
    u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{FFFD}')
}

fn sign_of(negative: bool, spec: &Spec) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn format_float(f: f64, verb: char, spec: &Spec) -> String {
    if !f.is_finite() {
        let text = if f.is_nan() {
            "NaN".to_string()
        } else {
            format!(
                "{}Inf",
                if f < 0.0 {
                    "-"
                } else if spec.plus {
                    "+"
                } else {
                    ""
                }
            )
        };
        return pad(
            text,
            &Spec {
                zero: false,
                ..spec.clone()
            },
            false,
        );
    }
    let magnitude = f.abs();
    let body = match verb {
        'v' | 'g' | 'G' => float_g(magnitude, spec.precision, verb == 'G'),
        'e' | 'E' => float_e(magnitude, spec.precision.unwrap_or(6), verb == 'E'),
        'f' | 'F' => format!("{:.*}", spec.precision.unwrap_or(6), magnitude),
        _ => return bad_verb(&Value::Float(f), verb),
    };
    pad_number(sign_of(f.is_sign_negative(), spec), "", body, spec)
}

/// `%e` with `precision` digits after the point and a two-digit exponent.
fn float_e(f: f64, precision: usize, upper: bool) -> String {
    let text = format!("{f:.precision$e}");
    let (mantissa, exponent) = text.split_once('e').expect("Rust's {:e} has an exponent");
    exponent_form(
        mantissa,
        exponent.parse().expect("Rust's exponent is an integer"),
        upper,
    )
}

fn exponent_form(mantissa: &str, exponent: i32, upper: bool) -> String {
    let e = if upper { 'E' } else { 'e' };
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}{e}{sign}{:02}", exponent.unsigned_abs())
}

/// Go's `%g`: shortest digits (or `precision` significant digits), in
/// exponent form when the exponent is < -4 or >= the precision (6 for
/// shortest), without trailing zeros.
fn float_g(f: f64, precision: Option<usize>, upper: bool) -> String {
    let rounded = match precision {
        Some(p) => format!("{:.*e}", p.max(1) - 1, f),
        None => format!("{f:e}"),
    };
    let (mantissa, exponent) = rounded
        .split_once('e')
        .expect("Rust's {:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("Rust's exponent is an integer");
    let digits = mantissa.replace('.', "");
    let digits = digits.trim_end_matches('0');
    let significant = digits.len().max(1);
    let decimal_point = exponent + 1;
    let exponent_limit = match precision {
        None => 6,
        Some(p) if p > significant && significant as i32 >= decimal_point => significant as i32,
        Some(p) => p.max(1) as i32,
    };
    if exponent < -4 || exponent >= exponent_limit {
        let mantissa = match digits.len() {
            0 | 1 => digits.chars().next().unwrap_or('0').to_string(),
            _ => format!("{}.{}", &digits[..1], &digits[1..]),
        };
        return exponent_form(&mantissa, exponent, upper);
    }
    let decimals = (significant as i32 - decimal_point).max(0) as usize;
    format!("{f:.decimals$}")
}

fn pad(text: String, spec: &Spec, numeric_zero: bool) -> String {
    let Some(width) = spec.width else { return text };
    let len = text.chars().count();
    if len >= width {
        return text;
    }
    let fill = width - len;
    if spec.minus {
        format!("{text}{}", " ".repeat(fill))
    } else if numeric_zero {
        format!("{}{text}", "0".repeat(fill))
    } else {
        format!("{}{text}", " ".repeat(fill))
    }
}

/// Pads a number; with the `0` flag the zeros go between sign and digits.
fn pad_number(sign: &str, prefix: &str, digits: String, spec: &Spec) -> String {
    if spec.zero && !spec.minus {
        let head = format!("{sign}{prefix}");
        let inner = Spec {
            width: spec.width.map(|w| w.saturating_sub(head.len())),
            ..spec.clone()
        };
        return format!("{head}{}", pad(digits, &inner, true));
    }
    pad(format!("{sign}{prefix}{digits}"), spec, false)
}

/// Go's `strconv.Quote` (and `QuoteRune` with `'`).
fn go_quote(s: &str, quote: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() && (c as u32) <= 0xFFFF => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\U{:08x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::Str(text.to_string())
    }

    #[test]
    fn values_print_like_go() {
        assert_eq!(print_value(&Value::Nil), "<no value>");
        assert_eq!(print_value(&Value::Float(1.0)), "1");
        assert_eq!(print_value(&Value::Float(1.5)), "1.5");
        assert_eq!(print_value(&Value::Float(1e6)), "1e+06");
        assert_eq!(print_value(&Value::Float(123456.0)), "123456");
        assert_eq!(print_value(&Value::Float(0.0001)), "0.0001");
        assert_eq!(print_value(&Value::Float(0.00001)), "1e-05");
        assert_eq!(
            print_value(&Value::List(vec![Value::Int(0), Value::Int(1)])),
            "[0 1]"
        );
        assert_eq!(print_value(&Value::List(vec![s("a"), s("b")])), "[a b]");
    }

    #[test]
    fn sprint_spaces_between_non_strings() {
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2)]), "1 2");
        assert_eq!(sprint(&[s("a"), Value::Int(1), s("b")]), "a1b");
        assert_eq!(sprint(&[s("a"), s("b")]), "ab");
        assert_eq!(sprintln(&[s("a"), Value::Int(1)]), "a 1\n");
    }

    #[test]
    fn printf_verbs_and_flags() {
        let cases: &[(&str, Vec<Value>, &str)] = &[
            ("%05d", vec![Value::Int(3)], "00003"),
            ("%-4d|", vec![Value::Int(3)], "3   |"),
            ("%+d %+d", vec![Value::Int(3), Value::Int(-3)], "+3 -3"),
            (
                "%x %X %#x %o %b",
                vec![
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(5),
                ],
                "ff FF 0xff 10 101",
            ),
            ("%s-%v", vec![s("a"), s("b")], "a-b"),
            ("%q", vec![s("a\"b\n")], "\"a\\\"b\\n\""),
            (
                "%5s|%-5s|%.2s",
                vec![s("ab"), s("ab"), s("abc")],
                "   ab|ab   |ab",
            ),
            ("%c %U", vec![Value::Int(65), Value::Int(65)], "A U+0041"),
            (
                "%.2f %e %g %G",
                vec![
                    Value::Float(3.14659),
                    Value::Float(1234.5),
                    Value::Float(0.5),
                    Value::Float(1e-7),
                ],
                "3.15 1.234500e+03 0.5 1E-07",
            ),
            (
                "%.3g %.3g",
                vec![Value::Float(1234.0), Value::Float(1.0)],
                "1.23e+03 1",
            ),
            (
                "%t %v",
                vec![Value::Bool(true), Value::Bool(false)],
                "true false",
            ),
            ("%T %T", vec![s("x"), Value::Int(1)], "string int"),
            ("100%%", vec![], "100%"),
            ("%*d", vec![Value::Int(4), Value::Int(7)], "   7"),
            ("%08.3f", vec![Value::Float(-3.14659)], "-003.147"),
        ];
        for (format, args, want) in cases {
            assert_eq!(sprintf(format, args), *want, "{format}");
        }
    }

    #[test]
    fn printf_reports_mistakes_like_go() {
        assert_eq!(sprintf("%d", &[s("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%d %d", &[Value::Int(1)]), "1 %!d(MISSING)");
        assert_eq!(
            sprintf("%d", &[Value::Int(1), s("x")]),
            "1%!(EXTRA string=x)"
        );
        assert_eq!(sprintf("%z", &[Value::Int(1)]), "%!z(int=1)");
        assert_eq!(sprintf("%", &[]), "%!(NOVERB)");
        assert_eq!(sprintf("%2000000d", &[Value::Int(1)]), "%!(BADWIDTH)1");
        assert_eq!(sprintf("%d", &[Value::Nil]), "%!d(<nil>)");
    }
}
