//! Building jobs: the defaults every job starts from, the rules both
//! formats share (service names, `restarts`, `initial_status`, stop
//! signals), the wrapped APP's job and the implicit telemetry job.

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use super::decode::{self, Object, Result};
use super::error::ConfigError;
use super::model::{
    CheckStatus, JobConfig, JobConsulExtras, JobRole, Restarts, TelemetryConfig, WatchConfig, When,
    DEFAULT_STOP_TIMEOUT, GLOBAL_SOURCE,
};
use super::sections::one_of;
use crate::discovery::interfaces::InterfaceSpec;
use crate::events::EventCode;

/// Where a job's IP comes from when the config does not say: ContainerPilot
/// 3.8 tried `eth0:inet`, then the first non-loopback IPv4 (so its code
/// behaved, whatever its docs said: only `eth0:inet`).
pub(crate) const DEFAULT_INTERFACES: [&str; 2] = ["eth0:inet", "inet"];
/// The default `killTimeout`, and the 2.x APP's `stopTimeout` (see
/// [`DEFAULT_STOP_TIMEOUT`] for the budget).
pub(crate) const DEFAULT_KILL_TIMEOUT: Duration = DEFAULT_STOP_TIMEOUT;
/// The name of the implicit job that advertises the telemetry endpoint.
pub(crate) const TELEMETRY_JOB: &str = "containerpilot";

/// Names registered in the catalog must be DNS-friendly:
/// `^[a-z][a-zA-Z0-9\-]+$` (ContainerPilot's rule, at least two characters).
pub(crate) fn check_service_name(name: &str, path: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            path,
            format!("{name:?} cannot be registered in the catalog: a service name starts with a lowercase letter, then letters, digits or '-' (at least 2 characters)"),
        ))
    }
}

/// The name a job gets from its program: the last part of its path.
pub(crate) fn program_name(program: &OsStr) -> String {
    JobConfig::app(vec![program.to_owned()]).name
}

/// `wanted`, or `wanted-2`, `wanted-3`... whichever no job has yet.
pub(crate) fn unique_name(wanted: &str, jobs: &[JobConfig]) -> String {
    let taken = |name: &str| jobs.iter().any(|job| job.name == name);
    if !taken(wanted) {
        return wanted.to_string();
    }
    (2..)
        .map(|n| format!("{wanted}-{n}"))
        .find(|name| !taken(name))
        .expect("some suffix is free")
}

/// The wrapped APP from the command line. `argv` stays unrendered: the
/// engine renders it with `render_args` just before each exec.
pub(crate) fn app_job(argv: &[OsString], when: When, jobs: &[JobConfig]) -> JobConfig {
    let mut job = JobConfig::app(argv.to_vec());
    job.name = unique_name(&job.name, jobs);
    job.when = when;
    job
}

/// The implicit `containerpilot` job that advertises the telemetry endpoint
/// (ContainerPilot registered it with a 15 s TTL and a 5 s heartbeat; it
/// has no exec and no health check of its own).
pub(crate) fn telemetry_job(telemetry: &TelemetryConfig) -> JobConfig {
    let mut job = JobConfig::with_defaults(TELEMETRY_JOB, JobRole::Telemetry);
    job.port = Some(telemetry.port);
    job.interfaces = telemetry.interfaces.clone();
    job.tags = telemetry.tags.clone();
    job
}

/// The catalog registration fields both formats share: `port` (0 or absent:
/// not registered; otherwise a health check and a catalog-safe name are
/// required), `initial_status`, `tags`, `interfaces` (a string or an
/// array) and `consul` extras.
pub(crate) fn read_registration(
    object: &Object<'_>,
    job: &mut JobConfig,
    warnings: &mut Vec<String>,
) -> Result<()> {
    job.port = match object.int("port")? {
        None | Some(0) => None,
        Some(port) => Some(u16::try_from(port).map_err(|_| {
            ConfigError::invalid(
                object.at("port"),
                format!("{port} is not a TCP port (1-65535)"),
            )
        })?),
    };
    if job.port.is_some() {
        if job.health.is_none() && job.name != TELEMETRY_JOB {
            return Err(ConfigError::invalid(
                object.at("port"),
                "a job with a port needs a health check (health: {exec, interval, ttl}) to be advertised",
            ));
        }
        check_service_name(&job.name, &object.at("name"))?;
    }
    job.initial_status = initial_status(object, job.port.is_some(), warnings)?;
    job.tags = object.strings("tags")?.unwrap_or_default();
    if let Some(interfaces) = object.string_or_strings("interfaces")? {
        check_interfaces(&interfaces, &object.at("interfaces"))?;
        job.interfaces = interfaces;
    }
    if let Some(consul) = object.object(
        "consul",
        &["enableTagOverride", "deregisterCriticalServiceAfter"],
    )? {
        job.consul = JobConsulExtras {
            enable_tag_override: consul.bool("enableTagOverride")?.unwrap_or(false),
            deregister_critical_service_after: consul.duration("deregisterCriticalServiceAfter")?,
        };
    }
    Ok(())
}

/// Each interface spec must parse (`eth0`, `eth0:inet6`, `eth0[1]`, a CIDR
/// network, `inet`, `inet6`, `static:<ip>`): run time would refuse it. Which
/// interfaces exist is only known at run time, on the container's host.
pub(crate) fn check_interfaces(specs: &[String], path: &str) -> Result<()> {
    for (index, spec) in specs.iter().enumerate() {
        if let Err(error) = spec.parse::<InterfaceSpec>() {
            return Err(ConfigError::invalid(
                format!("{path}[{index}]"),
                error.to_string(),
            ));
        }
    }
    Ok(())
}

/// `initial_status` (or `initialStatus`, the spelling ContainerPilot's docs
/// used). Like ContainerPilot, it is only checked for advertised jobs; on
/// others it is ignored with a warning.
fn initial_status(
    object: &Object<'_>,
    advertised: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<CheckStatus>> {
    let key = match (object.has("initial_status"), object.has("initialStatus")) {
        (true, true) => {
            return Err(ConfigError::invalid(
                object.path(),
                "give initial_status or initialStatus, not both",
            ));
        }
        (true, false) => "initial_status",
        (false, true) => "initialStatus",
        (false, false) => return Ok(None),
    };
    let Some(text) = object.non_empty_string(key)? else {
        return Ok(None);
    };
    if !advertised {
        warnings.push(format!(
            "{}: ignored, the job has no port so it is never registered",
            object.at(key)
        ));
        return Ok(None);
    }
    check_status(&text, &object.at(key)).map(Some)
}

/// `restarts`: `"unlimited"`, `"never"`, or a count (number or numeric
/// string). Absent: unlimited for interval jobs, never otherwise.
/// `"unlimited"` with `when.each` is an error (every event would start
/// another process that never stops).
pub(crate) fn restarts(
    value: Option<&Value>,
    path: &str,
    each: bool,
    interval: bool,
) -> Result<Restarts> {
    let form = || "must be \"unlimited\", \"never\" or a whole number ≥ 0".to_string();
    let count = |n: i64| match u32::try_from(n) {
        Ok(0) => Ok(Restarts::Never),
        Ok(n) => Ok(Restarts::Count(n)),
        Err(_) => Err(ConfigError::invalid(path, format!("{}, not {n}", form()))),
    };
    match value {
        None if interval => Ok(Restarts::Unlimited),
        None => Ok(Restarts::Never),
        Some(Value::String(text)) if text == "unlimited" => {
            if each {
                return Err(ConfigError::invalid(
                    path,
                    "\"unlimited\" cannot be used with when.each: every event would start another process that is restarted forever",
                ));
            }
            Ok(Restarts::Unlimited)
        }
        Some(Value::String(text)) if text == "never" => Ok(Restarts::Never),
        Some(Value::String(text)) => match text.parse::<i64>() {
            Ok(n) => count(n),
            Err(_) => Err(ConfigError::invalid(
                path,
                format!("{}, not {text:?}", form()),
            )),
        },
        Some(number @ Value::Number(_)) => count(decode::int(number, path)?),
        Some(_) => Err(ConfigError::invalid(path, form())),
    }
}

/// `initial_status`: `passing`, `warning` or `critical`.
pub(crate) fn check_status(text: &str, path: &str) -> Result<CheckStatus> {
    match text {
        "passing" => Ok(CheckStatus::Passing),
        "warning" => Ok(CheckStatus::Warning),
        "critical" => Ok(CheckStatus::Critical),
        _ => Err(one_of(path, text, &["passing", "warning", "critical"])),
    }
}

/// A signal by name (`"SIGQUIT"`, `"QUIT"`) or number.
pub(crate) fn signal_number(value: &Value, path: &str) -> Result<i32> {
    let text = decode::string(value, path)?;
    parse_signal(&text).map(|s| s as i32).ok_or_else(|| {
        ConfigError::invalid(
            path,
            format!("{text:?} is not a signal (for example \"SIGTERM\" or \"SIGQUIT\")"),
        )
    })
}

/// A signal by name, with or without `SIG`, any case (`"SIGQUIT"`,
/// `"quit"`), or by number.
pub(crate) fn parse_signal(text: &str) -> Option<Signal> {
    match text.parse::<i32>() {
        Ok(number) => Signal::try_from(number).ok(),
        Err(_) => {
            let upper = text.to_ascii_uppercase();
            let name = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            name.parse::<Signal>().ok()
        }
    }
}

/// The APP's stop: top-level `stopTimeout` in seconds (default 3; `0`
/// also means the default, as ContainerPilot read it; `-1` kills at once with
/// SIGKILL). Returns the stop signal and the grace before SIGKILL.
pub(crate) fn app_stop(value: Option<&Value>, path: &str) -> Result<(i32, Duration)> {
    let Some(value) = value else {
        return Ok((Signal::SIGTERM as i32, DEFAULT_KILL_TIMEOUT));
    };
    if matches!(value, Value::Number(_) | Value::String(_))
        && decode::int(value, path).ok() == Some(-1)
    {
        return Ok((Signal::SIGKILL as i32, Duration::ZERO));
    }
    let grace = decode::duration_value(value, path)?
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_KILL_TIMEOUT);
    Ok((Signal::SIGTERM as i32, grace))
}

/// Adds a job the user named. ContainerPilot checked no uniqueness, and
/// files in use rely on it, so a name already taken is a warning naming both
/// entries, not an error: the job runs as `name-2` (see
/// [`JobConfig::shared_name`]) and speaks under the shared name. `path`
/// names the entry; `entries` remembers each earlier named entry's name and
/// path.
pub(crate) fn add_named(
    jobs: &mut Vec<JobConfig>,
    mut job: JobConfig,
    path: &str,
    entries: &mut Vec<(String, String)>,
    warnings: &mut Vec<String>,
) {
    let earlier = entries.iter().find(|(name, _)| *name == job.name);
    if earlier.is_some() || jobs.iter().any(|other| other.name == job.name) {
        let unique = unique_name(&job.name, jobs);
        let first = earlier.map_or("an earlier job", |(_, first)| first.as_str());
        warnings.push(format!(
            "{path}: {first} has the same name {:?}; ContainerPilot ran both, and so does autopilot: this one runs as {unique:?} (--status, -signal) and publishes its events, variables and catalog service as {:?}",
            job.name, job.name
        ));
        job.shared_name = Some(std::mem::replace(&mut job.name, unique));
    }
    entries.push((job.public_name().to_string(), path.to_string()));
    jobs.push(job);
}

/// Warnings for `when.source`s that name no job, watch or lock: the job can
/// never start (ContainerPilot accepted this silently). `other_sources` are the
/// sources of locks and KV watches (`lock.<name>`, `watch.<name>`).
pub(crate) fn dangling_sources(
    jobs: &[JobConfig],
    watches: &[WatchConfig],
    other_sources: &[String],
) -> Vec<String> {
    jobs.iter()
        .filter_map(|job| match &job.when {
            When::Event { code, source, .. } if *code != EventCode::Signal && source != GLOBAL_SOURCE => {
                let known = other_sources.contains(source)
                    || match source.strip_prefix("watch.") {
                        Some(watch) => watches.iter().any(|w| w.name == watch),
                        None => jobs.iter().any(|j| j.public_name() == source),
                    };
                (!known).then(|| format!("job {:?} waits for {code} from {source:?}, but no job, watch or lock has that name: it will never start", job.name))
            }
            _ => None,
        })
        .collect()
}

/// At most one job may be `primary`.
pub(crate) fn check_one_primary(jobs: &[JobConfig]) -> Result<()> {
    let primaries: Vec<&str> = jobs
        .iter()
        .filter(|j| j.primary)
        .map(|j| j.name.as_str())
        .collect();
    if primaries.len() > 1 {
        return Err(ConfigError::invalid(
            "jobs",
            format!(
                "only one job can be primary, but {} are: {}",
                primaries.len(),
                primaries.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_names() {
        for good in ["app", "my-app2", "preStart", "ab"] {
            assert!(check_service_name(good, "p").is_ok(), "{good}");
        }
        for bad in ["", "a", "App", "1app", "my_app", "my.app"] {
            assert!(check_service_name(bad, "p").is_err(), "{bad}");
        }
    }

    #[test]
    fn program_names_and_uniqueness() {
        assert_eq!(program_name("/usr/sbin/nginx".as_ref()), "nginx");
        assert_eq!(program_name("node".as_ref()), "node");
        assert_eq!(program_name("/".as_ref()), "app");
        let jobs = vec![
            JobConfig::with_defaults("nginx", JobRole::Plain),
            JobConfig::with_defaults("nginx-2", JobRole::Plain),
        ];
        assert_eq!(unique_name("nginx", &jobs), "nginx-3");
        assert_eq!(unique_name("app", &jobs), "app");
    }

    #[test]
    fn restarts_forms() {
        let r = |v: Value| restarts(Some(&v), "jobs[0].restarts", false, false);
        assert_eq!(r(json!("unlimited")).unwrap(), Restarts::Unlimited);
        assert_eq!(r(json!("never")).unwrap(), Restarts::Never);
        assert_eq!(r(json!("5")).unwrap(), Restarts::Count(5));
        assert_eq!(r(json!(3)).unwrap(), Restarts::Count(3));
        assert_eq!(r(json!(1.7)).unwrap(), Restarts::Count(1));
        assert_eq!(r(json!(0)).unwrap(), Restarts::Never);
        for bad in [
            json!(-1),
            json!("-1"),
            json!("often"),
            json!(true),
            json!([1]),
        ] {
            assert!(r(bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(
            restarts(None, "r", false, true).unwrap(),
            Restarts::Unlimited
        );
        assert_eq!(restarts(None, "r", false, false).unwrap(), Restarts::Never);
        let error = restarts(Some(&json!("unlimited")), "jobs[0].restarts", true, false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot be used with when.each"), "{error}");
    }

    #[test]
    fn app_stop_timeouts() {
        let stop = |v: Value| app_stop(Some(&v), "stopTimeout").unwrap();
        assert_eq!(
            app_stop(None, "s").unwrap(),
            (Signal::SIGTERM as i32, DEFAULT_KILL_TIMEOUT)
        );
        assert_eq!(
            stop(json!(10)),
            (Signal::SIGTERM as i32, Duration::from_secs(10))
        );
        assert_eq!(
            stop(json!(0)),
            (Signal::SIGTERM as i32, DEFAULT_KILL_TIMEOUT)
        );
        assert_eq!(stop(json!(-1)), (Signal::SIGKILL as i32, Duration::ZERO));
        assert_eq!(stop(json!("-1")), (Signal::SIGKILL as i32, Duration::ZERO));
        assert!(app_stop(Some(&json!(-2)), "s").is_err());
    }

    #[test]
    fn dangling_sources_warn() {
        let mut waiting = JobConfig::with_defaults("b", JobRole::Plain);
        waiting.when = When::Event {
            code: EventCode::Healthy,
            source: "nope".into(),
            frequency: crate::config::model::Frequency::Once,
            timeout: None,
        };
        let warnings = dangling_sources(
            &[JobConfig::with_defaults("a", JobRole::Plain), waiting],
            &[],
            &[],
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("\"nope\""), "{warnings:?}");
    }

    #[test]
    fn statuses_and_signals() {
        assert_eq!(check_status("warning", "s").unwrap(), CheckStatus::Warning);
        assert!(check_status("invalid-value", "s").is_err());
        assert_eq!(
            signal_number(&json!("SIGQUIT"), "s").unwrap(),
            Signal::SIGQUIT as i32
        );
        assert_eq!(
            signal_number(&json!("hup"), "s").unwrap(),
            Signal::SIGHUP as i32
        );
        assert_eq!(signal_number(&json!(9), "s").unwrap(), 9);
        assert!(signal_number(&json!("SIGNOPE"), "s").is_err());
    }
}
