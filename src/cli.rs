//! The command line: ContainerPilot's Go-style flags, parsed with clap.
//!
//! Go's `flag` package accepts `-name`, `--name`, `-name value` and
//! `-name=value`, and stops at the first argument that is not a flag; bool
//! flags take no separate value but accept `-name=false`. Clap speaks GNU
//! (`--name`), so [`normalize`] first rewrites the Go spellings of *our* long
//! flags into GNU ones, using clap's own flag table, and leaves everything
//! from the APP onwards untouched. This module owns argument parsing and
//! dispatch to the subsystem that does the work; it must not implement that work.

use clap::{ArgAction, CommandFactory, Parser};

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::duration::{self, DurationError};
use crate::config::model::{Config, ControlConfig, JobRole};
use crate::config::{self, ConfigError, Source};
use crate::control::client::{self, Command as ClientCommand};
use crate::logging;
use crate::signals;
use crate::supervisor::{self, Reloader, StopRequests};

/// autopilot: a PID 1 supervisor for containers, compatible with ContainerPilot.
#[derive(Debug, Parser)]
#[command(
    name = "autopilot",
    disable_version_flag = true,
    override_usage = "autopilot [FLAGS] [--] [APP [ARGS...]]\n       autopilot -version",
    after_help = "Flags may be written Go-style (-config FILE, -config=FILE) or GNU-style (--config FILE)."
)]
pub(crate) struct Cli {
    /// Configuration: a file path, a file:// URL or an inline JSON5 document
    /// (default: env CONTAINERPILOT, then CONTAINERBUDDY).
    #[arg(long, value_name = "VALUE")]
    pub config: Option<String>,

    /// Print the version and git hash, then exit.
    #[arg(long)]
    pub version: bool,

    /// Render the configuration template, print it, and exit.
    #[arg(long)]
    pub template: bool,

    /// With -template: where to write the rendered configuration
    /// (`-` for stdout).
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub out: String,

    /// Validate the configuration, print it normalized as JSON, and exit
    /// (0 valid, 2 invalid).
    #[arg(long)]
    pub check: bool,

    /// Ask the running autopilot to reload its configuration.
    #[arg(long, help_heading = "Control commands")]
    pub reload: bool,

    /// Check that the running autopilot answers on its control socket.
    #[arg(long, help_heading = "Control commands")]
    pub ping: bool,

    /// Enter or leave maintenance mode (deregisters / re-registers services).
    #[arg(long, value_name = "enable|disable", value_parser = ["enable", "disable"], help_heading = "Control commands")]
    pub maintenance: Option<String>,

    /// Set (K=V) or clear (K) an environment variable for future processes.
    #[arg(long, value_name = "K=V", help_heading = "Control commands")]
    pub putenv: Vec<String>,

    /// Record a value into a telemetry metric.
    #[arg(long, value_name = "K=V", help_heading = "Control commands")]
    pub putmetric: Vec<String>,

    /// Show the state of every job and watch.
    #[arg(long, help_heading = "Control commands")]
    pub status: bool,

    /// With --status: print the raw JSON.
    #[arg(long, requires = "status", help_heading = "Control commands")]
    pub json: bool,

    /// Send a signal to one job's process group.
    #[arg(long, value_name = "JOB=SIGNAL", help_heading = "Control commands")]
    pub signal: Option<String>,

    /// How long the APP has to exit after its stop signal before it is
    /// killed (default 8s without a configuration; env AUTOPILOT_KILL_TIMEOUT).
    #[arg(long, value_name = "DURATION", help_heading = "Stopping the APP")]
    pub kill_timeout: Option<String>,

    /// The signal that asks the APP to stop (default: the SIGTERM or SIGINT
    /// autopilot got, without a configuration; env AUTOPILOT_STOP_SIGNAL).
    #[arg(long, value_name = "SIGNAL", help_heading = "Stopping the APP")]
    pub stop_signal: Option<String>,

    /// The APP to wrap, with its arguments (any bytes: they reach the APP
    /// unchanged).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "APP"
    )]
    pub app: Vec<OsString>,
}

/// Parses the process's arguments, runs what they ask for, and returns the
/// exit code.
pub fn main() -> i32 {
    // Until the supervisor listens, a SIGTERM waits instead of killing us.
    if let Err(error) = signals::hold() {
        crate::complain!("autopilot: cannot hold signals: {error}");
    }
    let args = match normalize(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(message) => {
            crate::complain!("{message}\n\n{}", Cli::command().render_usage());
            return 2;
        }
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let code = error.exit_code();
            let _ = error.print();
            return code;
        }
    };
    run(cli)
}

fn run(cli: Cli) -> i32 {
    if cli.version {
        crate::say!("Version: {}", env!("CARGO_PKG_VERSION"));
        crate::say!("GitHash: {}", env!("AUTOPILOT_GIT_HASH"));
        return 0;
    }
    let source = config::locate(cli.config.as_deref());
    let app = (!cli.app.is_empty()).then(|| cli.app.clone());
    if cli.template {
        return render_config(source.as_ref(), &cli.out);
    }
    if cli.check {
        return check_config(source.as_ref(), app.as_deref(), &cli);
    }
    if let Some(command) = control_command(&cli) {
        // A client command must stay interruptible with Ctrl-C.
        let _ = signals::release();
        return match control_socket(source.as_ref()) {
            Ok(socket) => client::run(command, &socket),
            Err(error) => {
                crate::complain!("autopilot: cannot find the control socket: {error}");
                1
            }
        };
    }
    let stop = match stop_settings(&cli) {
        Ok(stop) => stop,
        Err(code) => return code,
    };
    let (mut config, warnings) = match (&source, app) {
        (Some(source), app) => {
            match config::load_with_env(source, app.as_deref(), &config::process_env()) {
                Ok(loaded) => (loaded.config, loaded.warnings),
                Err(error) => {
                    crate::complain!("{error}");
                    return 2;
                }
            }
        }
        (None, Some(app)) => (Config::app_only(app), Vec::new()),
        (None, None) => {
            crate::complain!("{}", Cli::command().render_usage());
            crate::complain!("autopilot: nothing to run: give an APP or a configuration (-config)");
            return 2;
        }
    };
    let requests = match stop.apply(&mut config, source.is_none()) {
        Ok(requests) => requests,
        Err(error) => {
            crate::complain!("autopilot: {error}");
            return 2;
        }
    };
    if let Some(value) = &cli.config {
        export_config_source(value);
    }
    match logging::init(&config.logging) {
        Ok(log) => {
            for warning in warnings {
                tracing::warn!("config: {warning}");
            }
            config::log_loaded(&config);
            supervisor::run(config, source.map(|s| reloader(s, cli.app)), log, requests)
        }
        Err(error) => {
            crate::complain!("autopilot: {error}");
            1
        }
    }
}

/// Puts the `-config` value into autopilot's environment as
/// `CONTAINERPILOT` (a file as an absolute path), so every job inherits it
/// and a client command it runs (`autopilot -putenv`, `-putmetric`,
/// `-ping`...) reads the same configuration and so reaches this
/// autopilot's control socket, not the default one.
fn export_config_source(value: &str) {
    let value = match Source::from_value(value) {
        Source::File(path) => std::path::absolute(&path).unwrap_or(path).into_os_string(),
        Source::Inline(text) => text.into(),
    };
    // Sound: autopilot is still single-threaded here (the runtime and its
    // tasks start later, in the supervisor), so nothing reads the
    // environment concurrently.
    std::env::set_var("CONTAINERPILOT", value);
}

/// Re-reads `source` (with the same APP) when a reload is asked for,
/// rendered with the environment it is given.
fn reloader(source: Source, app: Vec<OsString>) -> Reloader {
    Box::new(move |env| {
        let app = (!app.is_empty()).then_some(app.as_slice());
        let loaded = config::load_with_env(&source, app, env).map_err(|error| error.to_string())?;
        for warning in &loaded.warnings {
            tracing::warn!("config: {warning}");
        }
        Ok(loaded.config)
    })
}

/// `-template [-out FILE]`: prints (or writes) the rendered configuration.
fn render_config(source: Option<&Source>, out: &str) -> i32 {
    let Some(source) = source else {
        crate::complain!("autopilot: -template needs a configuration (-config or CONTAINERPILOT)");
        return 2;
    };
    let rendered = match config::render_source(source, &config::process_env()) {
        Ok(rendered) => rendered,
        Err(error) => {
            crate::complain!("{error}");
            return 2;
        }
    };
    let written = match out {
        "-" => std::io::Write::write_all(&mut std::io::stdout(), rendered.as_bytes()),
        path => std::fs::write(path.strip_prefix("file://").unwrap_or(path), rendered),
    };
    match written {
        Ok(()) => 0,
        Err(error) => {
            crate::complain!(
                "autopilot: cannot write the rendered configuration to {out}: {error}"
            );
            1
        }
    }
}

/// `--check`: validates and prints the normalized configuration as JSON;
/// warnings go to stderr. Exits 0 when valid, 2 when not.
fn check_config(source: Option<&Source>, app: Option<&[OsString]>, cli: &Cli) -> i32 {
    let Some(source) = source else {
        crate::complain!("autopilot: --check needs a configuration (-config or CONTAINERPILOT)");
        return 2;
    };
    let stop = match stop_settings(cli) {
        Ok(stop) => stop,
        Err(code) => return code,
    };
    let loaded =
        config::load_with_env(source, app, &config::process_env()).and_then(|mut loaded| {
            stop.apply(&mut loaded.config, false)
                .map_err(|error| ConfigError::invalid("command line", error.to_string()))?;
            Ok(loaded)
        });
    match loaded {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                crate::complain!("autopilot: warning: {warning}");
            }
            match serde_json::to_string_pretty(&loaded.config) {
                Ok(json) => {
                    crate::say!("{json}");
                    0
                }
                Err(error) => {
                    crate::complain!("autopilot: cannot print the configuration: {error}");
                    1
                }
            }
        }
        Err(error) => {
            crate::complain!("{error}");
            2
        }
    }
}

/// The APP's stop settings, or the exit code once a bad one was reported.
fn stop_settings(cli: &Cli) -> Result<AppStop, i32> {
    AppStop::from_cli(cli).map_err(|error| {
        crate::complain!("autopilot: {error}");
        2
    })
}

/// A bad `-kill-timeout`/`-stop-signal` or environment variable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StopFlagError {
    #[error("{origin}: {source}")]
    Duration {
        origin: String,
        source: DurationError,
    },
    #[error("{origin}: {value:?} is not a signal (for example SIGTERM, QUIT or 3)")]
    Signal { origin: String, value: String },
    #[error("{origin}: the value is not UTF-8")]
    NotUnicode { origin: String },
    #[error("-{flag} sets how the APP given on the command line stops, and there is none")]
    NoApp { flag: &'static str },
}

/// How the APP given on the command line stops, from `-stop-signal` and
/// `-kill-timeout` or, without the flag, `AUTOPILOT_STOP_SIGNAL` and
/// `AUTOPILOT_KILL_TIMEOUT` (the flag wins).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct AppStop {
    pub signal: Option<Setting<Signal>>,
    pub kill_timeout: Option<Setting<Duration>>,
}

/// A value and whether it came from a flag (which is an error without an
/// APP; a variable is then ignored, as it may be set for a whole image).
#[derive(Debug, PartialEq)]
pub(crate) struct Setting<T> {
    pub value: T,
    pub from_flag: bool,
}

const STOP_SIGNAL_VARIABLE: &str = "AUTOPILOT_STOP_SIGNAL";
const KILL_TIMEOUT_VARIABLE: &str = "AUTOPILOT_KILL_TIMEOUT";

impl AppStop {
    pub(crate) fn from_cli(cli: &Cli) -> Result<AppStop, StopFlagError> {
        AppStop::parse(
            (
                cli.stop_signal.as_deref(),
                std::env::var_os(STOP_SIGNAL_VARIABLE),
            ),
            (
                cli.kill_timeout.as_deref(),
                std::env::var_os(KILL_TIMEOUT_VARIABLE),
            ),
        )
    }

    /// Each pair is the flag's value and the variable's.
    fn parse(
        signal: (Option<&str>, Option<OsString>),
        kill_timeout: (Option<&str>, Option<OsString>),
    ) -> Result<AppStop, StopFlagError> {
        let signal = setting(
            signal,
            "stop-signal",
            STOP_SIGNAL_VARIABLE,
            |origin, text| {
                config::jobs::parse_signal(text).ok_or_else(|| StopFlagError::Signal {
                    origin,
                    value: text.to_string(),
                })
            },
        )?;
        let kill_timeout = setting(
            kill_timeout,
            "kill-timeout",
            KILL_TIMEOUT_VARIABLE,
            |origin, text| {
                duration::parse_timeout(text)
                    .map_err(|source| StopFlagError::Duration { origin, source })
            },
        )?;
        Ok(AppStop {
            signal,
            kill_timeout,
        })
    }

    /// Applies the settings to the APP's job and says how stop requests
    /// reach it: passed on as they came in wrap mode (no configuration)
    /// unless a stop signal is set, ContainerPilot's way with a configuration.
    pub(crate) fn apply(
        self,
        config: &mut Config,
        wrap_mode: bool,
    ) -> Result<StopRequests, StopFlagError> {
        let requests = match (wrap_mode, &self.signal) {
            (true, signal) => StopRequests::Passed {
                signal: signal.as_ref().map(|signal| signal.value),
            },
            (false, _) => StopRequests::Graceful,
        };
        let Some(app) = config.jobs.iter_mut().find(|job| job.role == JobRole::App) else {
            return match (&self.signal, &self.kill_timeout) {
                (
                    Some(Setting {
                        from_flag: true, ..
                    }),
                    _,
                ) => Err(StopFlagError::NoApp {
                    flag: "stop-signal",
                }),
                (
                    _,
                    Some(Setting {
                        from_flag: true, ..
                    }),
                ) => Err(StopFlagError::NoApp {
                    flag: "kill-timeout",
                }),
                _ => Ok(requests),
            };
        };
        if let Some(signal) = self.signal {
            app.stop_signal = signal.value as i32;
        }
        if let Some(kill_timeout) = self.kill_timeout {
            app.kill_timeout = kill_timeout.value;
        }
        Ok(requests)
    }
}

/// The flag's value if given, else the variable's, parsed by `parse` (which
/// gets the origin to name in its error).
fn setting<T>(
    (flag_value, variable_value): (Option<&str>, Option<OsString>),
    flag: &str,
    variable: &str,
    parse: impl Fn(String, &str) -> Result<T, StopFlagError>,
) -> Result<Option<Setting<T>>, StopFlagError> {
    if let Some(text) = flag_value {
        let value = parse(format!("-{flag}"), text)?;
        return Ok(Some(Setting {
            value,
            from_flag: true,
        }));
    }
    let Some(raw) = variable_value else {
        return Ok(None);
    };
    let origin = format!("environment variable {variable}");
    let text = raw.into_string().map_err(|_| StopFlagError::NotUnicode {
        origin: origin.clone(),
    })?;
    let value = parse(origin, &text)?;
    Ok(Some(Setting {
        value,
        from_flag: false,
    }))
}

/// The control-plane client command the flags ask for, if any.
fn control_command(cli: &Cli) -> Option<ClientCommand> {
    if cli.ping {
        Some(ClientCommand::Ping)
    } else if cli.reload {
        Some(ClientCommand::Reload)
    } else if let Some(switch) = &cli.maintenance {
        Some(ClientCommand::Maintenance(switch == "enable"))
    } else if !cli.putenv.is_empty() {
        Some(ClientCommand::PutEnv(cli.putenv.clone()))
    } else if !cli.putmetric.is_empty() {
        Some(ClientCommand::PutMetric(cli.putmetric.clone()))
    } else if cli.status {
        Some(ClientCommand::Status { json: cli.json })
    } else {
        cli.signal.clone().map(ClientCommand::Signal)
    }
}

/// The socket the client commands talk to: the configuration's
/// `control.socket` when there is a configuration, else the default. A
/// configuration that cannot be loaded is an error, as in ContainerPilot:
/// falling back to the default path would hide the real problem (for
/// `-reload` after a bad edit, the error in the file) behind "cannot reach".
fn control_socket(source: Option<&Source>) -> Result<PathBuf, config::ConfigError> {
    let Some(source) = source else {
        return Ok(ControlConfig::default().socket);
    };
    let loaded = config::load_with_env(source, None, &config::process_env())?;
    Ok(loaded.config.control.unwrap_or_default().socket)
}

/// Rewrites Go-style long flags (`-config x`, `-version`, `-template=false`)
/// into the GNU forms clap parses (`--config x`, `--version`, nothing).
/// Stops at `--` or at the first argument that is not a flag: that is the APP,
/// and it and its arguments are passed through unchanged, whatever their
/// bytes. A flag autopilot does not know is an error (as in Go), not the APP.
pub(crate) fn normalize(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let command = Cli::command();
    let mut out: Vec<OsString> = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    out.extend(args.next()); // the program name
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            if arg.as_bytes().starts_with(b"-") {
                let flag = arg.to_string_lossy();
                return Err(format!("flag provided but not defined: {flag}"));
            }
            out.push(arg);
            break; // the APP, which needs no UTF-8
        };
        let Some(flag) = text.strip_prefix("--").or_else(|| text.strip_prefix('-')) else {
            out.push(arg);
            break; // the APP
        };
        if flag.is_empty() {
            out.push(arg); // "--" (end of flags) or "-" (an operand)
            break;
        }
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (flag, None),
        };
        let Some(spec) = command.get_arguments().find(|a| a.get_long() == Some(name)) else {
            if matches!(name, "h" | "help") {
                out.push(arg);
                continue;
            }
            return Err(format!("flag provided but not defined: -{name}"));
        };
        let is_switch = matches!(spec.get_action(), ArgAction::SetTrue);
        match (is_switch, value) {
            (true, Some(value)) => match parse_go_bool(value) {
                Some(true) => out.push(format!("--{name}").into()),
                Some(false) => {}
                None => out.push(format!("--{name}={value}").into()), // clap explains the error
            },
            (true, None) => out.push(format!("--{name}").into()),
            (false, Some(value)) => out.push(format!("--{name}={value}").into()),
            (false, None) => {
                out.push(format!("--{name}").into());
                out.extend(args.next()); // its value, whatever it looks like
            }
        }
    }
    out.extend(args);
    Ok(out)
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

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn norm(args: &[&str]) -> Vec<OsString> {
        let mut all = os(&["autopilot"]);
        all.extend(os(args));
        normalize(all).unwrap()[1..].to_vec()
    }

    #[test]
    fn go_style_flags_become_gnu() {
        assert_eq!(norm(&["-config", "x.json"]), ["--config", "x.json"]);
        assert_eq!(norm(&["-config=x.json"]), ["--config=x.json"]);
        assert_eq!(norm(&["--config", "-x"]), ["--config", "-x"]);
        assert_eq!(norm(&["-version"]), ["--version"]);
        assert_eq!(norm(&["-version=true"]), ["--version"]);
        assert!(norm(&["-version=false"]).is_empty());
        assert_eq!(
            norm(&["-config", "c", "-template", "-out", "f"]),
            ["--config", "c", "--template", "--out", "f"]
        );
        assert_eq!(norm(&["--check", "-config=c"]), ["--check", "--config=c"]);
    }

    #[test]
    fn app_and_its_arguments_are_untouched() {
        assert_eq!(
            norm(&["-config", "c", "nginx", "-version", "-g"]),
            ["--config", "c", "nginx", "-version", "-g"]
        );
        assert_eq!(norm(&["--", "-config"]), ["--", "-config"]);
        assert_eq!(norm(&["sh", "-c", "exit 3"]), ["sh", "-c", "exit 3"]);
    }

    #[test]
    fn unknown_flags_are_errors_not_the_app() {
        assert_eq!(
            normalize(os(&["autopilot", "-bogus", "true"])),
            Err("flag provided but not defined: -bogus".to_string())
        );
        assert!(normalize(os(&["autopilot", "-h"])).is_ok());
        let not_utf8 = OsString::from_vec(b"-conf\xffig".to_vec());
        assert_eq!(
            normalize(vec!["autopilot".into(), not_utf8]),
            Err("flag provided but not defined: -conf\u{fffd}ig".to_string())
        );
    }

    #[test]
    fn parses_after_normalizing() {
        let args = normalize(os(&[
            "autopilot",
            "-config=/etc/cp.json",
            "/bin/app",
            "-config",
            "-x",
        ]))
        .unwrap();
        let cli = Cli::try_parse_from(args).unwrap();
        assert_eq!(cli.config.as_deref(), Some("/etc/cp.json"));
        assert_eq!(cli.app, ["/bin/app", "-config", "-x"]);
    }

    #[test]
    fn double_dash_separates_app_that_looks_like_a_flag() {
        let cli =
            Cli::try_parse_from(normalize(os(&["autopilot", "--", "-weird"])).unwrap()).unwrap();
        assert_eq!(cli.app, ["-weird"]);
    }

    #[test]
    fn stop_flags_win_over_their_variables() {
        let stop = AppStop::parse(
            (Some("QUIT"), Some("USR1".into())),
            (None, Some("30".into())),
        )
        .unwrap();
        assert_eq!(
            stop,
            AppStop {
                signal: Some(Setting {
                    value: Signal::SIGQUIT,
                    from_flag: true
                }),
                kill_timeout: Some(Setting {
                    value: Duration::from_secs(30),
                    from_flag: false
                }),
            }
        );
    }

    #[test]
    fn wrap_mode_passes_requests_on_unless_a_stop_signal_is_set() {
        let app = || Config::app_only(vec!["app".into()]);
        let mut config = app();
        let requests = AppStop::default().apply(&mut config, true).unwrap();
        assert_eq!(requests, StopRequests::Passed { signal: None });
        assert_eq!(
            config.jobs[0].kill_timeout,
            config::model::WRAP_KILL_TIMEOUT
        );
        let mut config = app();
        let stop = AppStop::parse((Some("HUP"), None), (Some("1m"), None)).unwrap();
        let requests = stop.apply(&mut config, true).unwrap();
        let hup = Some(Signal::SIGHUP);
        assert_eq!(requests, StopRequests::Passed { signal: hup });
        assert_eq!(config.jobs[0].stop_signal, libc::SIGHUP);
        assert_eq!(config.jobs[0].kill_timeout, Duration::from_secs(60));
    }

    #[test]
    fn stop_flags_without_an_app_are_refused_but_variables_ignored() {
        let mut config = Config::app_only(vec!["app".into()]);
        config.jobs.clear();
        let flag = AppStop::parse((None, None), (Some("1s"), None)).unwrap();
        assert!(matches!(
            flag.apply(&mut config, false),
            Err(StopFlagError::NoApp {
                flag: "kill-timeout"
            })
        ));
        let variable = AppStop::parse((None, Some("TERM".into())), (None, None)).unwrap();
        assert_eq!(
            variable.apply(&mut config, false).unwrap(),
            StopRequests::Graceful
        );
    }

    #[test]
    fn an_app_that_is_not_utf8_is_kept_byte_for_byte() {
        let app = OsString::from_vec(b"/bin/\xffapp".to_vec());
        let arg = OsString::from_vec(b"\xfe".to_vec());
        let args = normalize(vec!["autopilot".into(), app.clone(), arg.clone()]).unwrap();
        let cli = Cli::try_parse_from(args).unwrap();
        assert_eq!(cli.app, [app, arg]);
    }
}
