//! The ContainerPilot 2.x (and Containerbuddy 1.x) front end: translates
//! `preStart`/`onStart`, `preStop`, `postStop`, `stopTimeout`, `services`,
//! `backends`, `coprocesses`, `tasks` and `telemetry.sensors` into the same
//! jobs, watches and metrics the 3.x front end produces (docs/configuration.md, "2.x reference"),
//! so one engine runs both. It must not know the 3.x keys.

use std::ffi::OsString;
use std::time::Duration;

use serde_json::Value;

use super::decode::{Object, Result};
use super::error::ConfigError;
use super::jobs;
use super::model::{
    Frequency, HealthCheck, HealthConfig, JobConfig, JobRole, MetricConfig, Restarts,
    TelemetryConfig, WatchConfig, When,
};
use super::sections;
use super::v3::{check_timeout, whole_seconds};
use super::Parts;
use crate::events::EventCode;

pub(crate) const TOP_KEYS: [&str; 13] = [
    "consul",
    "etcd",
    "logging",
    "preStart",
    "onStart",
    "preStop",
    "postStop",
    "stopTimeout",
    "services",
    "backends",
    "coprocesses",
    "tasks",
    "telemetry",
];
const SERVICE_KEYS: [&str; 11] = [
    "name",
    "port",
    "health",
    "poll",
    "ttl",
    "interfaces",
    "tags",
    "timeout",
    "consul",
    "initial_status",
    "initialStatus",
];
const BACKEND_KEYS: [&str; 6] = ["name", "poll", "tag", "dc", "onChange", "timeout"];
const COPROCESS_KEYS: [&str; 3] = ["name", "command", "restarts"];
const TASK_KEYS: [&str; 4] = ["name", "command", "frequency", "timeout"];
const TELEMETRY_KEYS: [&str; 4] = ["port", "interfaces", "tags", "sensors"];
const SENSOR_KEYS: [&str; 8] = [
    "namespace",
    "subsystem",
    "name",
    "help",
    "type",
    "poll",
    "check",
    "timeout",
];

/// Reads a 2.x document (already checked to have only [`TOP_KEYS`]).
pub(crate) fn decode(
    root: &Object<'_>,
    app: Option<&[OsString]>,
    warnings: &mut Vec<String>,
) -> Result<Parts> {
    if root.has("consul") && root.has("etcd") {
        return Err(ConfigError::invalid(
            "",
            "configure one discovery backend, consul or etcd, not both",
        ));
    }
    let mut jobs_list = Vec::new();
    let mut named = Vec::new();
    for (path, value) in root.array("services")? {
        let job = service(&path, value, warnings)?;
        jobs::add_named(&mut jobs_list, job, &path, &mut named, warnings);
    }
    let pre_start = hooks(root, app, &mut jobs_list, warnings)?;
    let after_pre_start = match &pre_start {
        Some(name) => once(EventCode::ExitSuccess, name),
        None => When::default(),
    };
    let mut watches = Vec::new();
    for (path, value) in root.array("backends")? {
        let (watch, on_change) = backend(&path, value, &jobs_list)?;
        if watches.iter().any(|w: &WatchConfig| w.name == watch.name) {
            return Err(ConfigError::invalid(
                path,
                format!("another backend is already named {:?}", watch.name),
            ));
        }
        watches.push(watch);
        jobs_list.push(on_change);
    }
    for (path, value) in root.array("coprocesses")? {
        let job = coprocess(&path, value, after_pre_start.clone(), &jobs_list)?;
        jobs_list.push(job);
    }
    for (path, value) in root.array("tasks")? {
        let job = task(&path, value, &jobs_list)?;
        jobs_list.push(job);
    }
    let telemetry = root
        .get("telemetry")
        .map(|v| telemetry(v, &mut jobs_list))
        .transpose()?;
    if let Some(telemetry) = &telemetry {
        let job = jobs::telemetry_job(telemetry);
        jobs::add_named(&mut jobs_list, job, "telemetry", &mut named, warnings);
    }
    warnings.extend(jobs::dangling_sources(&jobs_list, &watches, &[]));
    Ok(Parts {
        jobs: jobs_list,
        watches,
        kv_watches: Vec::new(),
        locks: Vec::new(),
        control: Default::default(),
        telemetry,
    })
}

fn once(code: EventCode, source: &str) -> When {
    When::Event {
        code,
        source: source.to_string(),
        frequency: Frequency::Once,
        timeout: None,
    }
}

/// The lifecycle hooks and the APP: `preStart` (or 1.x `onStart`) runs
/// first; the APP starts when it succeeds; `preStop` runs on the APP's
/// `stopping` and `postStop` on its `stopped` (on the global `shutdown`
/// when there is no APP). Returns the preStart job's name.
fn hooks(
    root: &Object<'_>,
    app: Option<&[OsString]>,
    jobs_list: &mut Vec<JobConfig>,
    warnings: &mut Vec<String>,
) -> Result<Option<String>> {
    let pre_start_key = match (root.has("preStart"), root.has("onStart")) {
        (true, true) => {
            warnings.push(
                "both preStart and onStart are set: using preStart, ignoring onStart".to_string(),
            );
            Some("preStart")
        }
        (true, false) => Some("preStart"),
        (false, true) => {
            warnings.push(
                "onStart is deprecated in favor of preStart: running it as preStart".to_string(),
            );
            Some("onStart")
        }
        (false, false) => None,
    };
    let mut pre_start_name = None;
    if let Some(key) = pre_start_key {
        let job = hook(
            root,
            key,
            "preStart",
            JobRole::PreStart,
            When::default(),
            jobs_list,
        )?;
        pre_start_name = Some(job.name.clone());
        jobs_list.push(job);
    }
    let (stop_signal, kill_timeout) = jobs::app_stop(root.get("stopTimeout"), "stopTimeout")?;
    let app_name = app.map(|argv| {
        let when = pre_start_name
            .as_deref()
            .map_or_else(When::default, |name| once(EventCode::ExitSuccess, name));
        let mut job = jobs::app_job(argv, when, jobs_list);
        job.stop_signal = stop_signal;
        job.kill_timeout = kill_timeout;
        let name = job.name.clone();
        jobs_list.push(job);
        name
    });
    let on_app = |code| match &app_name {
        Some(name) => once(code, name),
        None => once(EventCode::Shutdown, super::model::GLOBAL_SOURCE),
    };
    if root.has("preStop") {
        let job = hook(
            root,
            "preStop",
            "preStop",
            JobRole::Plain,
            on_app(EventCode::Stopping),
            jobs_list,
        )?;
        jobs_list.push(job);
    }
    if root.has("postStop") {
        let job = hook(
            root,
            "postStop",
            "postStop",
            JobRole::PostStop,
            on_app(EventCode::Stopped),
            jobs_list,
        )?;
        jobs_list.push(job);
    }
    Ok(pre_start_name)
}

fn hook(
    root: &Object<'_>,
    key: &str,
    name: &str,
    role: JobRole,
    when: When,
    jobs_list: &[JobConfig],
) -> Result<JobConfig> {
    let mut job = JobConfig::with_defaults(&jobs::unique_name(name, jobs_list), role);
    job.exec = root.command(key)?;
    job.when = when;
    Ok(job)
}

fn service(path: &str, value: &Value, warnings: &mut Vec<String>) -> Result<JobConfig> {
    let object = Object::new(value, path, &SERVICE_KEYS)?;
    let name = object
        .non_empty_string("name")?
        .ok_or_else(|| ConfigError::invalid(object.at("name"), "must not be blank"))?;
    jobs::check_service_name(&name, &object.at("name"))?;
    if !matches!(object.int("port")?, Some(port) if port > 0) {
        return Err(ConfigError::invalid(
            object.at("port"),
            "must be > 0: a 2.x service is registered in the catalog on its port",
        ));
    }
    // ContainerPilot 2 heartbeated a service without `health` as always
    // passing, and let a check run as long as it took unless `timeout` is set.
    let check = object
        .command("health")?
        .map_or(HealthCheck::Heartbeat, HealthCheck::Exec);
    let mut job = JobConfig::with_defaults(&name, JobRole::Plain);
    let ttl = whole_seconds(&object, "ttl")?;
    job.health = Some(HealthConfig {
        check,
        interval: whole_seconds(&object, "poll")?,
        ttl,
        timeout: check_timeout(&object)?,
        start_period: ttl,
        logging_raw: false,
    });
    jobs::read_registration(&object, &mut job, warnings)?;
    Ok(job)
}

/// A backend is a watch plus a job running `onChange` on each `changed`.
fn backend(path: &str, value: &Value, jobs_list: &[JobConfig]) -> Result<(WatchConfig, JobConfig)> {
    let object = Object::new(value, path, &BACKEND_KEYS)?;
    let name = object
        .non_empty_string("name")?
        .ok_or_else(|| ConfigError::invalid(object.at("name"), "must not be blank"))?;
    let on_change = object.command("onChange")?.ok_or_else(|| {
        ConfigError::invalid(
            object.at("onChange"),
            "required: the command to run when the backend changes",
        )
    })?;
    let watch = WatchConfig {
        name,
        interval: whole_seconds(&object, "poll")?,
        tag: object.non_empty_string("tag")?,
        dc: object.non_empty_string("dc")?,
    };
    let mut job = JobConfig::with_defaults(
        &jobs::unique_name(&format!("onChange-{}", watch.name), jobs_list),
        JobRole::Plain,
    );
    job.exec = Some(on_change);
    job.when = When::Event {
        code: EventCode::Changed,
        source: watch.source(),
        frequency: Frequency::Each,
        timeout: None,
    };
    job.timeout = object.duration("timeout")?.filter(|t| !t.is_zero());
    Ok((watch, job))
}

/// A job named `name`, or after its command's program.
fn named_command_job(object: &Object<'_>, jobs_list: &[JobConfig]) -> Result<JobConfig> {
    let command = object.command("command")?.ok_or_else(|| {
        ConfigError::invalid(object.at("command"), "required: the command to run")
    })?;
    let name = object
        .non_empty_string("name")?
        .unwrap_or_else(|| jobs::program_name(&command[0]));
    let mut job = JobConfig::with_defaults(&jobs::unique_name(&name, jobs_list), JobRole::Plain);
    job.exec = Some(command);
    Ok(job)
}

fn coprocess(path: &str, value: &Value, when: When, jobs_list: &[JobConfig]) -> Result<JobConfig> {
    let object = Object::new(value, path, &COPROCESS_KEYS)?;
    let mut job = named_command_job(&object, jobs_list)?;
    job.restarts = jobs::restarts(object.get("restarts"), &object.at("restarts"), false, false)?;
    job.when = when;
    Ok(job)
}

fn task(path: &str, value: &Value, jobs_list: &[JobConfig]) -> Result<JobConfig> {
    let object = Object::new(value, path, &TASK_KEYS)?;
    let mut job = named_command_job(&object, jobs_list)?;
    let interval = periodic(&object, "frequency")?;
    job.when = When::Interval { interval };
    job.timeout = Some(
        object
            .duration("timeout")?
            .filter(|t| !t.is_zero())
            .unwrap_or(interval),
    );
    job.restarts = Restarts::Unlimited;
    Ok(job)
}

/// A required period of at least 1 ms.
fn periodic(object: &Object<'_>, key: &str) -> Result<Duration> {
    match object.duration(key)? {
        Some(d) if d >= Duration::from_millis(1) => Ok(d),
        _ => Err(ConfigError::invalid(
            object.at(key),
            "required, and must be at least 1ms",
        )),
    }
}

/// 2.x telemetry: the endpoint plus `sensors`, each a metric and a job
/// that runs `check` every `poll` and records its output.
fn telemetry(value: &Value, jobs_list: &mut Vec<JobConfig>) -> Result<TelemetryConfig> {
    let object = Object::new(value, "telemetry", &TELEMETRY_KEYS)?;
    let base = sections::telemetry_base(&object)?;
    let mut metrics: Vec<MetricConfig> = Vec::new();
    for (path, value) in object.array("sensors")? {
        let sensor = Object::new(value, &path, &SENSOR_KEYS)?;
        let metric = sections::metric(&sensor)?;
        let check = sensor.command("check")?.ok_or_else(|| {
            ConfigError::invalid(
                sensor.at("check"),
                "required: the command whose output is recorded",
            )
        })?;
        let interval = whole_seconds(&sensor, "poll")?;
        let mut job = JobConfig::with_defaults(
            &jobs::unique_name(&metric.full_name, jobs_list),
            JobRole::Sensor {
                metric: metric.full_name.clone(),
            },
        );
        job.exec = Some(check);
        job.when = When::Interval { interval };
        job.timeout = Some(
            sensor
                .duration("timeout")?
                .filter(|t| !t.is_zero())
                .unwrap_or(interval),
        );
        job.restarts = Restarts::Unlimited;
        jobs_list.push(job);
        metrics.push(metric);
    }
    sections::check_unique_metrics(&metrics, "telemetry.sensors")?;
    Ok(TelemetryConfig {
        port: base.port,
        interfaces: base.interfaces,
        tags: base.tags,
        metrics,
    })
}
