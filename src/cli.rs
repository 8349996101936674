//! The command line: what the flags ask for, dispatched to the subsystem
//! that does it (the syntax, help and usage errors are [`flags`]). This
//! module must not implement that work.

mod flags;

use std::ffi::OsString;
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

use flags::{Cli, Parsed};

/// Parses the process's arguments, runs what they ask for, and returns the
/// exit code.
pub fn main() -> i32 {
    // Until the supervisor listens, a SIGTERM waits instead of killing us.
    if let Err(error) = signals::hold() {
        crate::complain!("autopilot: cannot hold signals: {error}");
    }
    match flags::parse(std::env::args_os()) {
        Ok(Parsed::Run(cli)) => run(*cli),
        Ok(Parsed::Help) => {
            let _ = std::io::Write::write_all(&mut std::io::stdout(), flags::HELP.as_bytes());
            0
        }
        Err(error) => {
            crate::complain!("{error}");
            2
        }
    }
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
            crate::complain!("{}", flags::USAGE);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
