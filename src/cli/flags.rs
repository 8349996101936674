//! The command line's syntax: the flags, their Go and GNU spellings, the
//! help text and the usage errors (docs/design.md, "Command line").
//!
//! ContainerPilot parsed its flags with Go's `flag` package: `-name`,
//! `--name`, `-name value` and `-name=value`, bool flags take no separate
//! value but accept `-name=false`, and parsing stops at the first argument
//! that is not a flag (the APP: it and its arguments pass through
//! unchanged, whatever their bytes). No argument-parsing crate reads that
//! syntax (clap and lexopt read `-config` as six short flags), so this
//! module does, in about as much code as it took to translate Go's
//! spellings into clap's. The help text and error messages are those
//! autopilot printed while it used clap, so scripts see no change; the
//! checks run in the same order: first every flag before the APP must be
//! defined, then the flags are taken one by one (the first bad one is the
//! error, `-h` prints the help), and last `-json` must come with `-status`.
//!
//! This module owns the syntax only; `cli` acts on the parsed [`Cli`].

use std::ffi::OsString;
use std::fmt;

/// The parsed flags: what each one asked for.
#[derive(Debug, PartialEq)]
pub(crate) struct Cli {
    pub config: Option<String>,
    pub version: bool,
    pub template: bool,
    /// `-out`, with `-template` (`-` for stdout, the default).
    pub out: String,
    pub check: bool,
    pub reload: bool,
    pub ping: bool,
    /// `-maintenance`: `enable` or `disable`.
    pub maintenance: Option<String>,
    pub putenv: Vec<String>,
    pub putmetric: Vec<String>,
    pub status: bool,
    pub json: bool,
    pub signal: Option<String>,
    pub kill_timeout: Option<String>,
    pub stop_signal: Option<String>,
    /// The APP and its arguments, byte for byte.
    pub app: Vec<OsString>,
}

impl Default for Cli {
    fn default() -> Self {
        Self {
            config: None,
            version: false,
            template: false,
            out: "-".to_string(),
            check: false,
            reload: false,
            ping: false,
            maintenance: None,
            putenv: Vec::new(),
            putmetric: Vec::new(),
            status: false,
            json: false,
            signal: None,
            kill_timeout: None,
            stop_signal: None,
            app: Vec::new(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Parsed {
    Run(Box<Cli>),
    /// `-h`, `-help`, `--help`: print [`HELP`] and exit 0.
    Help,
}

/// The two lines every usage error ends with (and the help starts with).
pub(crate) const USAGE: &str =
    "Usage: autopilot [FLAGS] [--] [APP [ARGS...]]\n       autopilot -version";

/// `autopilot -h`, printed to stdout as is.
pub(crate) const HELP: &str = "\
autopilot: a PID 1 supervisor for containers, compatible with ContainerPilot

Usage: autopilot [FLAGS] [--] [APP [ARGS...]]
       autopilot -version

Arguments:
  [APP]...  The APP to wrap, with its arguments (any bytes: they reach the APP unchanged)

Options:
      --config <VALUE>  Configuration: a file path, a file:// URL or an inline JSON5 document (default: env CONTAINERPILOT, then CONTAINERBUDDY)
      --version         Print the version and git hash, then exit
      --template        Render the configuration template, print it, and exit
      --out <FILE>      With -template: where to write the rendered configuration (`-` for stdout) [default: -]
      --check           Validate the configuration, print it normalized as JSON, and exit (0 valid, 2 invalid)
  -h, --help            Print help

Control commands:
      --reload                        Ask the running autopilot to reload its configuration
      --ping                          Check that the running autopilot answers on its control socket
      --maintenance <enable|disable>  Enter or leave maintenance mode (deregisters / re-registers services) [possible values: enable, disable]
      --putenv <K=V>                  Set (K=V) or clear (K) an environment variable for future processes
      --putmetric <K=V>               Record a value into a telemetry metric
      --status                        Show the state of every job and watch
      --json                          With --status: print the raw JSON
      --signal <JOB=SIGNAL>           Send a signal to one job's process group

Stopping the APP:
      --kill-timeout <DURATION>  How long the APP has to exit after its stop signal before it is killed (default 8s without a configuration; env AUTOPILOT_KILL_TIMEOUT)
      --stop-signal <SIGNAL>     The signal that asks the APP to stop (default: the SIGTERM or SIGINT autopilot got, without a configuration; env AUTOPILOT_STOP_SIGNAL)

Flags may be written Go-style (-config FILE, -config=FILE) or GNU-style (--config FILE).
";

/// Every flag, by its long name (the only name: Go has no short flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Flag {
    Config,
    Version,
    Template,
    Out,
    Check,
    Reload,
    Ping,
    Maintenance,
    Putenv,
    Putmetric,
    Status,
    Json,
    Signal,
    KillTimeout,
    StopSignal,
}

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Arity {
    /// A bool: present means true; `=false` (Go's `ParseBool`) means absent.
    Switch,
    /// One value, named in messages by its placeholder.
    Value(&'static str),
    /// A value that may be given again, each adding to the list.
    Repeated(&'static str),
    /// One of a fixed set of values.
    Choice(&'static str, &'static [&'static str]),
}

const MAINTENANCE_CHOICES: &[&str] = &["enable", "disable"];

impl Flag {
    const ALL: [Flag; 15] = [
        Flag::Config,
        Flag::Version,
        Flag::Template,
        Flag::Out,
        Flag::Check,
        Flag::Reload,
        Flag::Ping,
        Flag::Maintenance,
        Flag::Putenv,
        Flag::Putmetric,
        Flag::Status,
        Flag::Json,
        Flag::Signal,
        Flag::KillTimeout,
        Flag::StopSignal,
    ];

    fn name(self) -> &'static str {
        match self {
            Flag::Config => "config",
            Flag::Version => "version",
            Flag::Template => "template",
            Flag::Out => "out",
            Flag::Check => "check",
            Flag::Reload => "reload",
            Flag::Ping => "ping",
            Flag::Maintenance => "maintenance",
            Flag::Putenv => "putenv",
            Flag::Putmetric => "putmetric",
            Flag::Status => "status",
            Flag::Json => "json",
            Flag::Signal => "signal",
            Flag::KillTimeout => "kill-timeout",
            Flag::StopSignal => "stop-signal",
        }
    }

    fn arity(self) -> Arity {
        match self {
            Flag::Config => Arity::Value("VALUE"),
            Flag::Out => Arity::Value("FILE"),
            Flag::Maintenance => Arity::Choice("enable|disable", MAINTENANCE_CHOICES),
            Flag::Putenv | Flag::Putmetric => Arity::Repeated("K=V"),
            Flag::Signal => Arity::Value("JOB=SIGNAL"),
            Flag::KillTimeout => Arity::Value("DURATION"),
            Flag::StopSignal => Arity::Value("SIGNAL"),
            Flag::Version
            | Flag::Template
            | Flag::Check
            | Flag::Reload
            | Flag::Ping
            | Flag::Status
            | Flag::Json => Arity::Switch,
        }
    }

    fn named(name: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|flag| flag.name() == name)
    }
}

/// How messages show a flag: `--json`, `--config <VALUE>`.
impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.arity() {
            Arity::Switch => write!(f, "--{}", self.name()),
            Arity::Value(placeholder)
            | Arity::Repeated(placeholder)
            | Arity::Choice(placeholder, _) => write!(f, "--{} <{placeholder}>", self.name()),
        }
    }
}

/// A command line autopilot cannot make sense of. Printed to stderr as is;
/// autopilot then exits 2.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum UsageError {
    /// Go's own message, for a flag before the APP that is not one of ours.
    #[error("flag provided but not defined: -{name}\n\n{USAGE}")]
    Undefined { name: String },
    #[error(
        "error: unexpected value '{value}' for '--{name}' found; no more were expected{}",
        with_usage()
    )]
    UnexpectedValue { name: &'static str, value: String },
    #[error("error: invalid value '{value}' for '{flag}'{}{}", choices(.flag), with_hint())]
    NotAChoice { flag: Flag, value: String },
    #[error("error: a value is required for '{flag}' but none was supplied{}{}", choices(.flag), with_hint())]
    MissingValue { flag: Flag },
    #[error(
        "error: the argument '{flag}' cannot be used multiple times{}",
        with_usage()
    )]
    Repeated { flag: Flag },
    #[error(
        "error: invalid UTF-8 was detected in one or more arguments{}",
        with_usage()
    )]
    NotUnicode,
    #[error(
        "error: the following required arguments were not provided:\n  --status{}",
        with_usage()
    )]
    JsonWithoutStatus,
}

const HINT: &str = "\n\nFor more information, try '--help'.";

fn with_hint() -> &'static str {
    HINT
}

fn with_usage() -> String {
    format!("\n\n{USAGE}{HINT}")
}

/// The line listing a choice flag's values, or nothing.
fn choices(flag: &Flag) -> String {
    match flag.arity() {
        Arity::Choice(_, values) => format!("\n  [possible values: {}]", values.join(", ")),
        _ => String::new(),
    }
}

/// One flag as written, before it is checked.
#[derive(Debug, PartialEq)]
enum Token {
    /// `-h`, `-help`, `--help`, with whatever followed `=`.
    Help(Option<String>),
    /// A switch set to true.
    On(Flag),
    /// A switch given a value Go's `ParseBool` does not know.
    BadSwitch(&'static str, String),
    /// A flag with its value, or without one when the command line ended or
    /// the next argument is a flag itself.
    Valued(Flag, Option<OsString>),
}

/// Parses the process's arguments (`args[0]` is the program name).
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, UsageError> {
    let (tokens, app) = tokenize(args.into_iter().skip(1))?;
    let mut cli = Cli {
        app,
        ..Cli::default()
    };
    let mut seen = Vec::new();
    for token in tokens {
        match token {
            Token::Help(None) => return Ok(Parsed::Help),
            Token::Help(Some(value)) => {
                return Err(UsageError::UnexpectedValue {
                    name: "help",
                    value,
                })
            }
            Token::BadSwitch(name, value) => {
                return Err(UsageError::UnexpectedValue { name, value })
            }
            Token::On(flag) => {
                once(flag, &mut seen)?;
                cli.set(flag, String::new());
            }
            Token::Valued(flag, value) => {
                let value = value.ok_or(UsageError::MissingValue { flag })?;
                once(flag, &mut seen)?;
                let value = value.into_string().map_err(|_| UsageError::NotUnicode)?;
                if let Arity::Choice(_, values) = flag.arity() {
                    if !values.contains(&value.as_str()) {
                        return Err(UsageError::NotAChoice { flag, value });
                    }
                }
                cli.set(flag, value);
            }
        }
    }
    if cli.json && !cli.status {
        return Err(UsageError::JsonWithoutStatus);
    }
    Ok(Parsed::Run(Box::new(cli)))
}

/// Refuses a second use of a flag that is not [`Arity::Repeated`].
fn once(flag: Flag, seen: &mut Vec<Flag>) -> Result<(), UsageError> {
    if seen.contains(&flag) && !matches!(flag.arity(), Arity::Repeated(_)) {
        return Err(UsageError::Repeated { flag });
    }
    seen.push(flag);
    Ok(())
}

impl Cli {
    /// Records one flag (a switch ignores `value`).
    fn set(&mut self, flag: Flag, value: String) {
        match flag {
            Flag::Config => self.config = Some(value),
            Flag::Version => self.version = true,
            Flag::Template => self.template = true,
            Flag::Out => self.out = value,
            Flag::Check => self.check = true,
            Flag::Reload => self.reload = true,
            Flag::Ping => self.ping = true,
            Flag::Maintenance => self.maintenance = Some(value),
            Flag::Putenv => self.putenv.push(value),
            Flag::Putmetric => self.putmetric.push(value),
            Flag::Status => self.status = true,
            Flag::Json => self.json = true,
            Flag::Signal => self.signal = Some(value),
            Flag::KillTimeout => self.kill_timeout = Some(value),
            Flag::StopSignal => self.stop_signal = Some(value),
        }
    }
}

/// Splits the arguments into the flags and the APP: the APP starts at the
/// first argument that is not a flag, or after `--`. A flag autopilot does
/// not know is an error (as in Go), not the APP.
fn tokenize(
    mut args: impl Iterator<Item = OsString>,
) -> Result<(Vec<Token>, Vec<OsString>), UsageError> {
    let mut tokens = Vec::new();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            if arg.as_encoded_bytes().starts_with(b"-") {
                return Err(UsageError::Undefined {
                    name: arg.to_string_lossy()[1..].to_string(),
                });
            }
            return Ok((tokens, std::iter::once(arg).chain(args).collect()));
        };
        let flag = match text.strip_prefix("--").or_else(|| text.strip_prefix('-')) {
            Some("") if text == "--" => return Ok((tokens, args.collect())),
            Some(flag) if !flag.is_empty() => flag,
            // "-" (an operand) or no dash at all: the APP.
            _ => return Ok((tokens, std::iter::once(arg).chain(args).collect())),
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (flag, None),
        };
        if matches!(name, "h" | "help") {
            tokens.push(Token::Help(value));
            continue;
        }
        let flag = Flag::named(name).ok_or_else(|| UsageError::Undefined {
            name: name.to_string(),
        })?;
        match (flag.arity(), value) {
            (Arity::Switch, None) => tokens.push(Token::On(flag)),
            (Arity::Switch, Some(value)) => match parse_go_bool(&value) {
                Some(true) => tokens.push(Token::On(flag)),
                Some(false) => {}
                None => tokens.push(Token::BadSwitch(flag.name(), value)),
            },
            (_, Some(value)) => tokens.push(Token::Valued(flag, Some(value.into()))),
            (_, None) => {
                let value = args.next();
                // An argument that is a flag of its own is still used up,
                // and the flag is then missing its value.
                let missing = value.as_ref().is_none_or(takes_no_value);
                tokens.push(Token::Valued(flag, value.filter(|_| !missing)));
            }
        }
    }
    Ok((tokens, Vec::new()))
}

/// Whether an argument after `-flag` is not its value but a flag of its own:
/// `--`, `--help`, `-h` or `--` and one of our names (with or without
/// `=...`). Anything else is the value, however it starts (`-config -x`).
fn takes_no_value(arg: &OsString) -> bool {
    let Some(text) = arg.to_str() else {
        return false;
    };
    if let Some(long) = text.strip_prefix("--") {
        let name = long.split_once('=').map_or(long, |(name, _)| name);
        return long.is_empty() || name == "help" || Flag::named(name).is_some();
    }
    text.strip_prefix('-')
        .is_some_and(|short| !short.is_empty() && short.bytes().all(|b| b == b'h'))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::ffi::OsStringExt;

    fn parse_args(args: &[&str]) -> Result<Parsed, UsageError> {
        parse(
            std::iter::once("autopilot")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    fn cli(args: &[&str]) -> Cli {
        match parse_args(args) {
            Ok(Parsed::Run(cli)) => *cli,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        parse_args(args).unwrap_err().to_string()
    }

    #[test]
    fn go_and_gnu_spellings_mean_the_same() {
        for args in [
            &["-config", "x.json", "-template", "-out", "f"][..],
            &["--config", "x.json", "--template", "--out", "f"],
            &["-config=x.json", "-template=true", "--out=f"],
            &[
                "--config=x.json",
                "-template=1",
                "-out",
                "f",
                "-check=false",
            ],
        ] {
            let cli = cli(args);
            assert_eq!(cli.config.as_deref(), Some("x.json"), "{args:?}");
            assert!(cli.template && !cli.check, "{args:?}");
            assert_eq!(cli.out, "f", "{args:?}");
        }
        assert_eq!(cli(&[]).out, "-");
        assert!(!cli(&["-version=false"]).version);
        assert_eq!(cli(&["-putenv", "A=1", "--putenv=B"]).putenv, ["A=1", "B"]);
    }

    #[test]
    fn a_flags_value_may_look_like_a_flag() {
        assert_eq!(cli(&["--config", "-x"]).config.as_deref(), Some("-x"));
        assert_eq!(
            cli(&["-config", "-version"]).config.as_deref(),
            Some("-version")
        );
        assert_eq!(
            cli(&["-config", "--bogus"]).config.as_deref(),
            Some("--bogus")
        );
        assert_eq!(cli(&["-config", "-"]).config.as_deref(), Some("-"));
        for next in ["--version", "--help", "-h", "-hh", "--", "--out=x"] {
            assert_eq!(
                error(&["-config", next, "-version"]),
                "error: a value is required for '--config <VALUE>' but none was supplied\n\n\
                 For more information, try '--help'.",
                "{next}"
            );
        }
    }

    #[test]
    fn app_and_its_arguments_are_untouched() {
        let parsed = cli(&["-config", "c", "nginx", "-version", "-g"]);
        assert_eq!(parsed.app, ["nginx", "-version", "-g"]);
        assert!(!parsed.version);
        assert_eq!(cli(&["--", "-config"]).app, ["-config"]);
        assert_eq!(cli(&["-", "x"]).app, ["-", "x"]);
        assert_eq!(cli(&["--", "--", "x"]).app, ["--", "x"]);
    }

    #[test]
    fn an_app_that_is_not_utf8_is_kept_byte_for_byte() {
        let app = OsString::from_vec(b"/bin/\xffapp".to_vec());
        let arg = OsString::from_vec(b"\xfe".to_vec());
        let args = ["autopilot".into(), app.clone(), arg.clone()];
        let Ok(Parsed::Run(cli)) = parse(args) else {
            panic!("not parsed")
        };
        assert_eq!(cli.app, [app, arg]);
    }

    #[test]
    fn help_comes_in_order_with_errors() {
        for args in [
            &["-h"][..],
            &["--help"],
            &["-help"],
            &["--h"],
            &["-json", "-h"],
        ] {
            assert_eq!(parse_args(args), Ok(Parsed::Help), "{args:?}");
        }
        assert_eq!(
            parse_args(&["-h", "-maintenance", "bogus"]),
            Ok(Parsed::Help)
        );
        assert!(error(&["-maintenance", "bogus", "-h"]).starts_with("error: invalid value"));
        // Every flag is checked to be defined before anything else.
        assert!(error(&["-h", "-bogus"]).starts_with("flag provided but not defined: -bogus"));
    }

    /// The messages autopilot printed when its parser was clap's.
    #[test]
    fn usage_errors_read_as_before() {
        let usage = "\n\nUsage: autopilot [FLAGS] [--] [APP [ARGS...]]\n       autopilot -version";
        let hint = "\n\nFor more information, try '--help'.";
        let cases: [(&[&str], String); 9] = [
            (
                &["-bogus", "true"],
                format!("flag provided but not defined: -bogus{usage}"),
            ),
            (
                &["--bogus=1"],
                format!("flag provided but not defined: -bogus{usage}"),
            ),
            (
                &["-version=maybe"],
                format!(
                    "error: unexpected value 'maybe' for '--version' found; no more were expected{usage}{hint}"
                ),
            ),
            (
                &["-maintenance=bogus"],
                format!(
                    "error: invalid value 'bogus' for '--maintenance <enable|disable>'\n  [possible values: enable, disable]{hint}"
                ),
            ),
            (
                &["--maintenance"],
                format!(
                    "error: a value is required for '--maintenance <enable|disable>' but none was supplied\n  [possible values: enable, disable]{hint}"
                ),
            ),
            (
                &["-json"],
                format!(
                    "error: the following required arguments were not provided:\n  --status{usage}{hint}"
                ),
            ),
            (
                &["-config=a", "-version", "-config=b"],
                format!(
                    "error: the argument '--config <VALUE>' cannot be used multiple times{usage}{hint}"
                ),
            ),
            (
                &["-status", "-status"],
                format!("error: the argument '--status' cannot be used multiple times{usage}{hint}"),
            ),
            (
                &["--help=1"],
                format!(
                    "error: unexpected value '1' for '--help' found; no more were expected{usage}{hint}"
                ),
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(error(args), expected, "{args:?}");
        }
        let not_utf8 = [
            "autopilot".into(),
            "--config".into(),
            OsString::from_vec(vec![0xff]),
        ];
        assert_eq!(
            parse(not_utf8).unwrap_err().to_string(),
            format!("error: invalid UTF-8 was detected in one or more arguments{usage}{hint}")
        );
        let not_utf8_flag = [
            "autopilot".into(),
            OsString::from_vec(b"-conf\xffig".to_vec()),
        ];
        assert_eq!(
            parse(not_utf8_flag).unwrap_err(),
            UsageError::Undefined {
                name: "conf\u{fffd}ig".into()
            }
        );
    }

    #[test]
    fn json_needs_status_unless_switched_off() {
        assert!(cli(&["-status", "-json=1", "-json=0"]).json);
        assert!(!cli(&["-json=false"]).json);
        assert!(cli(&["-json", "-status"]).status);
    }
}
