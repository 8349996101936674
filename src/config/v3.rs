//! The ContainerPilot 3.x front end: `consul`, `etcd`, `logging`, `jobs`,
//! `watches`, `control`, `telemetry` (and the undocumented top-level
//! `stopTimeout`, which autopilot applies to the wrapped APP) read into the
//! model with every rule ContainerPilot 3.8 enforced, plus the checks
//! docs/design.md, "The 3.x model" adds. It must not know the 2.x keys.

use std::ffi::OsString;
use std::time::Duration;

use serde_json::Value;

use super::address::{check_host_port, check_http_url, Port};
use super::decode::{Object, Result};
use super::error::{did_you_mean, ConfigError};
use super::jobs;
use super::locks::{self, LockCatalog};
use super::model::{
    Frequency, HealthCheck, HealthConfig, JobConfig, JobRole, KvWatchConfig, RenderConfig,
    RenderWait, TelemetryConfig, WatchConfig, When,
};
use super::sections;
use super::Parts;
use crate::events::{EventCode, SIGNAL_EVENT_SOURCES};

pub(crate) const TOP_KEYS: [&str; 9] = [
    "consul",
    "etcd",
    "logging",
    "jobs",
    "watches",
    "locks",
    "control",
    "telemetry",
    "stopTimeout",
];
const JOB_KEYS: [&str; 19] = [
    "name",
    "exec",
    "logging",
    "when",
    "timeout",
    "stopTimeout",
    "restarts",
    "health",
    "port",
    "initial_status",
    "initialStatus",
    "tags",
    "interfaces",
    "consul",
    "stopSignal",
    "killTimeout",
    "restartDelay",
    "primary",
    "render",
];
const WHEN_KEYS: [&str; 5] = ["interval", "source", "once", "each", "timeout"];
const HEALTH_KEYS: [&str; 8] = [
    "exec",
    "http",
    "tcp",
    "interval",
    "ttl",
    "timeout",
    "startPeriod",
    "logging",
];
const RENDER_KEYS: [&str; 3] = ["template", "output", "wait"];
const WATCH_KEYS: [&str; 6] = ["name", "interval", "tag", "dc", "kv", "prefix"];
const TELEMETRY_KEYS: [&str; 4] = ["port", "interfaces", "tags", "metrics"];
const METRIC_KEYS: [&str; 5] = ["namespace", "subsystem", "name", "help", "type"];
/// Jobs may not run more often than this, nor time out sooner.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Reads a 3.x document (already checked to have only [`TOP_KEYS`]).
pub(crate) fn decode(
    root: &Object<'_>,
    app: Option<&[OsString]>,
    warnings: &mut Vec<String>,
) -> Result<Parts> {
    let mut jobs_list = Vec::new();
    let mut named = Vec::new();
    for (path, value) in root.array("jobs")? {
        let job = job(&path, value, warnings)?;
        jobs::add_named(&mut jobs_list, job, &path, &mut named, warnings);
    }
    let (watches, kv_watches) = watches(root)?;
    let telemetry = root.get("telemetry").map(telemetry).transpose()?;
    if let Some(telemetry) = &telemetry {
        let job = jobs::telemetry_job(telemetry);
        jobs::add_named(&mut jobs_list, job, "telemetry", &mut named, warnings);
    }
    if let Some(argv) = app {
        let (stop_signal, kill_timeout) = jobs::app_stop(root.get("stopTimeout"), "stopTimeout")?;
        let mut app_job = jobs::app_job(argv, When::default(), &jobs_list);
        app_job.stop_signal = stop_signal;
        app_job.kill_timeout = kill_timeout;
        jobs_list.push(app_job);
    } else {
        jobs::app_stop(root.get("stopTimeout"), "stopTimeout")?;
    }
    jobs::check_one_primary(&jobs_list)?;
    let catalog = match (root.has("etcd"), root.has("consul")) {
        (true, _) => LockCatalog::Etcd,
        (false, true) => LockCatalog::Consul,
        (false, false) => LockCatalog::None,
    };
    let locks = locks::locks(root.array("locks")?, &jobs_list, catalog)?;
    let other_sources: Vec<String> = (locks.iter().map(|l| format!("lock.{}", l.name)))
        .chain(kv_watches.iter().map(KvWatchConfig::source))
        .collect();
    warnings.extend(jobs::dangling_sources(&jobs_list, &watches, &other_sources));
    Ok(Parts {
        jobs: jobs_list,
        watches,
        kv_watches,
        locks,
        control: root
            .get("control")
            .map(|v| sections::control(v, "control"))
            .transpose()?
            .unwrap_or_default(),
        telemetry,
    })
}

fn job(path: &str, value: &Value, warnings: &mut Vec<String>) -> Result<JobConfig> {
    let object = Object::new(value, path, &JOB_KEYS)?;
    let exec = object.command("exec")?;
    let name = match (object.non_empty_string("name")?, &exec) {
        (Some(name), _) => name,
        (None, Some(argv)) => jobs::program_name(&argv[0]),
        (None, None) => {
            return Err(ConfigError::invalid(
                object.at("name"),
                "required (a job without exec needs a name)",
            ))
        }
    };
    let mut job = JobConfig::with_defaults(&name, JobRole::Plain);
    job.exec = exec;
    job.logging_raw = raw_logging(&object)?;
    let when_object = object.object("when", &WHEN_KEYS)?;
    if let Some(when_object) = &when_object {
        job.when = when(when_object)?;
    }
    let interval = match job.when {
        When::Interval { interval } => Some(interval),
        When::Event { .. } => None,
    };
    let each = when_object.as_ref().is_some_and(|w| w.has("each"));
    job.timeout = at_least(&object, "timeout", MIN_TIMEOUT)?.or(interval);
    job.stop_timeout = object
        .duration("stopTimeout")?
        .unwrap_or(super::model::DEFAULT_STOP_TIMEOUT);
    job.restarts = jobs::restarts(
        object.get("restarts"),
        &object.at("restarts"),
        each,
        interval.is_some(),
    )?;
    job.health = object
        .object("health", &HEALTH_KEYS)?
        .map(|h| health(&h))
        .transpose()?;
    jobs::read_registration(&object, &mut job, warnings)?;
    if let Some(signal) = object.get("stopSignal") {
        job.stop_signal = jobs::signal_number(signal, &object.at("stopSignal"))?;
    }
    job.kill_timeout = object
        .duration("killTimeout")?
        .unwrap_or(jobs::DEFAULT_KILL_TIMEOUT);
    job.restart_delay = object.duration("restartDelay")?.unwrap_or_default();
    job.primary = object.bool("primary")?.unwrap_or(false);
    job.render = object
        .object("render", &RENDER_KEYS)?
        .map(|r| render(&r))
        .transpose()?;
    Ok(job)
}

/// `render: {template, output}` [beyond]: both paths required, and distinct
/// (rendering over its own template would change it on every run).
fn render(object: &Object<'_>) -> Result<RenderConfig> {
    let path = |key: &str| {
        object
            .non_empty_string(key)?
            .map(std::path::PathBuf::from)
            .ok_or_else(|| ConfigError::invalid(object.at(key), "required (a file path)"))
    };
    let render = RenderConfig {
        template: path("template")?,
        output: path("output")?,
        wait: object
            .object("wait", &["min", "max"])?
            .map(|wait| render_wait(&wait))
            .transpose()?,
    };
    if render.template == render.output {
        return Err(ConfigError::invalid(
            object.at("output"),
            "must not be the template itself",
        ));
    }
    Ok(render)
}

/// `render.wait: {min, max}`: `max` defaults to four times `min`, as in
/// consul-template.
fn render_wait(object: &Object<'_>) -> Result<RenderWait> {
    let min = object
        .duration("min")?
        .ok_or_else(|| ConfigError::invalid(object.at("min"), "required (a duration)"))?;
    let max = object.duration("max")?.unwrap_or(min * 4);
    if max < min {
        return Err(ConfigError::invalid(
            object.at("max"),
            "must not be shorter than min",
        ));
    }
    Ok(RenderWait { min, max })
}

fn raw_logging(object: &Object<'_>) -> Result<bool> {
    Ok(match object.object("logging", &["raw"])? {
        Some(logging) => logging.bool("raw")?.unwrap_or(false),
        None => false,
    })
}

/// A duration that, when set (and not zero), must be at least `minimum`.
fn at_least(object: &Object<'_>, key: &str, minimum: Duration) -> Result<Option<Duration>> {
    match object.duration(key)? {
        Some(d) if d < minimum => Err(ConfigError::invalid(
            object.at(key),
            format!("must be at least {minimum:?}, not {d:?}"),
        )),
        other => Ok(other),
    }
}

fn when(object: &Object<'_>) -> Result<When> {
    let interval = object.duration("interval")?;
    let source = object.non_empty_string("source")?;
    let once = object.non_empty_string("once")?;
    let each = object.non_empty_string("each")?;
    if [interval.is_some(), once.is_some(), each.is_some()]
        .into_iter()
        .filter(|x| *x)
        .count()
        > 1
    {
        return Err(ConfigError::invalid(
            object.path(),
            "can have only one of 'interval', 'once' or 'each'",
        ));
    }
    if let Some(interval) = interval {
        if source.is_some() || object.has("timeout") {
            return Err(ConfigError::invalid(
                object.path(),
                "'interval' cannot be combined with 'source' or 'timeout'",
            ));
        }
        if interval < MIN_TIMEOUT {
            return Err(ConfigError::invalid(
                object.at("interval"),
                format!("must be at least {MIN_TIMEOUT:?}"),
            ));
        }
        return Ok(When::Interval { interval });
    }
    let timeout = object.duration("timeout")?.filter(|t| !t.is_zero());
    let (event, frequency) = match (&once, &each) {
        (Some(event), None) => (Some(event), Frequency::Once),
        (None, Some(event)) => (Some(event), Frequency::Each),
        _ => (None, Frequency::Each),
    };
    match (source, event) {
        (Some(source), None) if SIGNAL_EVENT_SOURCES.contains(&source.as_str()) => Ok(When::Event {
            code: EventCode::Signal,
            source,
            frequency: Frequency::Each,
            timeout,
        }),
        (Some(source), Some(_)) if SIGNAL_EVENT_SOURCES.contains(&source.as_str()) => Err(ConfigError::invalid(
            object.path(),
            format!("{source} is a signal: the job runs on every {source}, so leave out 'once'/'each'"),
        )),
        (Some(source), None) => Err(ConfigError::invalid(
            object.path(),
            format!("source {source:?} needs 'once' or 'each' to say which of its events starts the job"),
        )),
        (None, Some(_)) => Err(ConfigError::invalid(object.at("source"), "required with 'once' or 'each'")),
        (None, None) => Err(ConfigError::invalid(object.path(), "needs 'interval', or 'source' with 'once' or 'each'")),
        (Some(source), Some(event)) => {
            let key = if once.is_some() { "once" } else { "each" };
            Ok(When::Event {
                code: event_code(event, &object.at(key))?,
                source,
                frequency,
                timeout,
            })
        }
    }
}

/// An event name a `when` can wait for.
pub(crate) fn event_code(text: &str, path: &str) -> Result<EventCode> {
    text.parse().map_err(|_| {
        let names: Vec<&str> = EventCode::NAMED.iter().map(|c| c.as_str()).collect();
        ConfigError::invalid(
            path,
            format!(
                "{text:?} is not an event: use one of {}{}",
                names.join(", "),
                did_you_mean(text, &names)
            ),
        )
    })
}

fn health(object: &Object<'_>) -> Result<HealthConfig> {
    let interval = whole_seconds(object, "interval")?;
    let ttl = whole_seconds(object, "ttl")?;
    let mut checks = Vec::new();
    if let Some(argv) = object.command("exec")? {
        checks.push(HealthCheck::Exec(argv));
    }
    if let Some(url) = object.non_empty_string("http")? {
        check_http_url(&url, &object.at("http"), true)?;
        checks.push(HealthCheck::Http(url));
    }
    if let Some(address) = object.non_empty_string("tcp")? {
        check_host_port(&address, &object.at("tcp"), Port::Required)?;
        checks.push(HealthCheck::Tcp(address));
    }
    if checks.len() > 1 {
        return Err(ConfigError::invalid(
            object.path(),
            "can have only one of 'exec', 'http' or 'tcp' to check with",
        ));
    }
    // Without a command, ContainerPilot 3 heartbeated the service every interval.
    let check = checks.pop().unwrap_or(HealthCheck::Heartbeat);
    Ok(HealthConfig {
        check,
        interval,
        ttl,
        timeout: Some(check_timeout(object)?.unwrap_or(interval)),
        start_period: object.duration("startPeriod")?.unwrap_or(ttl),
        logging_raw: raw_logging(object)?,
    })
}

/// A health check's own `timeout`, when set and not zero.
pub(crate) fn check_timeout(object: &Object<'_>) -> Result<Option<Duration>> {
    Ok(object.duration("timeout")?.filter(|t| !t.is_zero()))
}

/// `health.interval` and `health.ttl`: required, at least one second.
pub(crate) fn whole_seconds(object: &Object<'_>, key: &str) -> Result<Duration> {
    match object.duration(key)? {
        Some(d) if d >= Duration::from_secs(1) => Ok(d),
        Some(d) if !d.is_zero() => Err(ConfigError::invalid(
            object.at(key),
            format!("must be at least 1s, not {d:?}"),
        )),
        _ => Err(ConfigError::invalid(object.at(key), "must be > 0")),
    }
}

/// `watches`: service watches, and **\[beyond\]** KV watches (with `kv`).
fn watches(root: &Object<'_>) -> Result<(Vec<WatchConfig>, Vec<KvWatchConfig>)> {
    let mut watches: Vec<WatchConfig> = Vec::new();
    let mut kv_watches: Vec<KvWatchConfig> = Vec::new();
    for (path, value) in root.array("watches")? {
        let object = Object::new(value, &path, &WATCH_KEYS)?;
        let name = object
            .non_empty_string("name")?
            .ok_or_else(|| ConfigError::invalid(object.at("name"), "required"))?;
        let taken =
            watches.iter().any(|w| w.name == name) || kv_watches.iter().any(|w| w.name == name);
        if taken {
            return Err(ConfigError::invalid(
                path,
                format!("another watch is already named {name:?}"),
            ));
        }
        if let Some(key) = object.non_empty_string("kv")? {
            kv_watches.push(kv_watch(&object, name, key)?);
            continue;
        }
        if object.has("prefix") {
            return Err(ConfigError::invalid(
                object.at("prefix"),
                "only a KV watch (with `kv`) has a prefix",
            ));
        }
        jobs::check_service_name(&name, &object.at("name"))?;
        watches.push(WatchConfig {
            name,
            interval: whole_seconds(&object, "interval")?,
            tag: object.non_empty_string("tag")?,
            dc: object.non_empty_string("dc")?,
        });
    }
    Ok((watches, kv_watches))
}

/// A KV watch: `kv` and `prefix` exclude the service watch's fields.
fn kv_watch(object: &Object<'_>, name: String, key: String) -> Result<KvWatchConfig> {
    if let Some(field) = ["interval", "tag", "dc"]
        .into_iter()
        .find(|f| object.has(f))
    {
        return Err(ConfigError::invalid(
            object.at(field),
            "a KV watch (with `kv`) follows a key, not a service: it takes only name, kv and prefix",
        ));
    }
    Ok(KvWatchConfig {
        name,
        key,
        prefix: object.bool("prefix")?.unwrap_or(false),
    })
}

fn telemetry(value: &Value) -> Result<TelemetryConfig> {
    let object = Object::new(value, "telemetry", &TELEMETRY_KEYS)?;
    let base = sections::telemetry_base(&object)?;
    let metrics = object
        .array("metrics")?
        .into_iter()
        .map(|(path, value)| sections::metric(&Object::new(value, &path, &METRIC_KEYS)?))
        .collect::<Result<Vec<_>>>()?;
    sections::check_unique_metrics(&metrics, "telemetry.metrics")?;
    Ok(TelemetryConfig {
        port: base.port,
        interfaces: base.interfaces,
        tags: base.tags,
        metrics,
    })
}
