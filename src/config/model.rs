//! The validated configuration model: what the rest of autopilot runs.
//!
//! Both front ends (3.x and 2.x/1.x) produce this one model; nothing downstream
//! knows which file format the user wrote, except through [`Format`] for the few
//! signals whose meaning differs (SIGHUP, SIGUSR1). Every value here is already
//! checked: durations are positive where they must be, names are valid, events
//! exist. This module owns only plain data; it must not read files, render
//! templates or start anything.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::events::EventCode;

/// A command and its arguments, byte for byte: the APP's come from the
/// command line and need not be UTF-8 (see docs/design.md, "Bytes in,
/// bytes out").
pub(crate) type Argv = Vec<OsString>;

/// `--check` prints an argv as strings; bytes that are not UTF-8 show as
/// U+FFFD there, and only there.
fn serialize_argv<S: Serializer>(argv: &Argv, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(argv.iter().map(|arg| arg.to_string_lossy()))
}

fn serialize_optional_argv<S: Serializer>(
    argv: &Option<Argv>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match argv {
        Some(argv) => serialize_argv(argv, serializer),
        None => serializer.serialize_none(),
    }
}

/// Which configuration dialect the user's file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// ContainerPilot 3.x (`jobs`, `watches`, `control`).
    V3,
    /// ContainerPilot 2.x and Containerbuddy 1.x (`services`, `backends`, hooks).
    V2,
}

/// The whole configuration after validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub format: Format,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consul: Option<ConsulConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdConfig>,
    pub logging: LoggingConfig,
    pub jobs: Vec<JobConfig>,
    pub watches: Vec<WatchConfig>,
    /// **\[beyond\]** `watches[]` entries with `kv`: keys of the catalog's KV store.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kv_watches: Vec<KvWatchConfig>,
    /// **\[beyond\]** Leader locks held through the catalog.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<LockConfig>,
    /// The control plane; `None` without a configuration file (tini-style
    /// use), where autopilot serves no socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<ControlConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetryConfig>,
}

/// A `watches[]` entry with `kv` **\[beyond\]**: publishes `changed` under `watch.<name>`
/// when the key's value (with `prefix`, any value or the set of keys under it) changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KvWatchConfig {
    pub name: String,
    pub key: String,
    pub prefix: bool,
}

impl KvWatchConfig {
    /// The event source this watch publishes under.
    pub fn source(&self) -> String {
        format!("watch.{}", self.name)
    }
}

/// One entry of `locks` **\[beyond\]**: a catalog key one instance at a time holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockConfig {
    /// Events come from `lock.<name>`.
    pub name: String,
    pub key: String,
    /// The session (Consul) or lease (etcd) TTL.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Consul's lock-delay after the holder's session is invalidated.
    #[serde(with = "humantime_serde")]
    pub lock_delay: Duration,
    /// The job whose service check the session is tied to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// `consul`: where the agent is and how to talk to it. Environment variables
/// (`CONSUL_HTTP_ADDR`, ...) are applied later by the discovery backend, not here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsulConfig {
    /// `host:port`, without scheme.
    pub address: String,
    /// `http` or `https`.
    pub scheme: String,
    /// The ACL token. Never logged; serialized as `"<redacted>"`.
    #[serde(serialize_with = "redact")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

fn redact<S: serde::Serializer>(token: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match token {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct TlsConfig {
    pub cafile: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    pub clientcert: Option<PathBuf>,
    pub clientkey: Option<PathBuf>,
    pub servername: Option<String>,
    /// Verify the server certificate (default true; ContainerPilot 3 defaulted to false).
    pub verify: bool,
}

/// `etcd` (2.x, and allowed in 3.x files): the etcd v3 backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EtcdConfig {
    /// Base URLs, e.g. `http://etcd:2379`.
    pub endpoints: Vec<String>,
    /// Key prefix, default `/containerpilot`.
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
    Panic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `<RFC3339 time> <message>`
    Default,
    /// logfmt
    Text,
    /// one JSON object per line
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogOutput {
    Stdout,
    Stderr,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggingConfig {
    pub level: LogLevel,
    pub format: LogFormat,
    pub output: LogOutput,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: LogLevel::Info,
            format: LogFormat::Default,
            output: LogOutput::Stdout,
        }
    }
}

/// `control`: the control-plane socket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlConfig {
    pub socket: PathBuf,
    /// True when the user named the socket explicitly: then failing to create
    /// it is an error instead of a warning (docs/control-plane.md).
    pub explicit: bool,
}

pub(crate) const DEFAULT_CONTROL_SOCKET: &str = "/var/run/containerpilot.socket";

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            explicit: false,
        }
    }
}

/// What a job is for. Most jobs are `Plain`; the others carry behaviour that
/// ContainerPilot 2.x attached to particular config keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum JobRole {
    Plain,
    /// The wrapped APP from the command line: inherits stdio, its exit ends
    /// autopilot with its exit code (after postStop), its arguments are
    /// rendered as templates just before each exec.
    App,
    /// 2.x `preStart`: a non-zero exit ends autopilot with that code.
    PreStart,
    /// 2.x `postStop`: a non-zero exit replaces the exit code.
    PostStop,
    /// 2.x `telemetry.sensors[]`: stdout (a number) is recorded into `metric`.
    Sensor {
        metric: String,
    },
    /// The implicit `containerpilot` service that advertises telemetry. It
    /// has no exec and no health check: it is registered with a 15 s TTL
    /// and heartbeated every 5 s while the telemetry endpoint is up.
    Telemetry,
}

/// `jobs[].when`: what starts a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum When {
    /// Run every `interval`, counted from start to start.
    Interval {
        #[serde(with = "humantime_serde")]
        interval: Duration,
    },
    /// Run on an event from `source` (a job name, `watch.<name>`, or the
    /// global source for `startup`/`shutdown`). Signal events (`SIGHUP`,
    /// `SIGUSR2`) always use `Each`.
    Event {
        code: EventCode,
        source: String,
        frequency: Frequency,
        #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
}

/// The source name of events published by autopilot itself (`startup`, `shutdown`).
pub const GLOBAL_SOURCE: &str = "global";

impl Default for When {
    /// ContainerPilot's default: start once on the global `startup` event.
    fn default() -> Self {
        When::Event {
            code: EventCode::Startup,
            source: GLOBAL_SOURCE.to_string(),
            frequency: Frequency::Once,
            timeout: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    Once,
    Each,
}

/// `jobs[].restarts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Restarts {
    Never,
    Unlimited,
    /// Restart at most this many times (`0` is the same as `Never`).
    Count(u32),
}

/// The TTL-check status a service registers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passing,
    Warning,
    Critical,
}

/// How a health check decides.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheck {
    /// Run this argv; exit 0 within the timeout passes.
    Exec(#[serde(serialize_with = "serialize_argv")] Argv),
    /// GET this URL; a 2xx answer within the timeout passes. [beyond]
    Http(String),
    /// Connect to `host:port`; an accepted connection passes. [beyond]
    Tcp(String),
    /// No command: the service is heartbeated as passing every interval and
    /// no `healthy`/`unhealthy` event is published, as ContainerPilot did
    /// for a 3.x `health` without `exec` and a 2.x service without `health`.
    Heartbeat,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthConfig {
    pub check: HealthCheck,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Kill the check after this long. 3.x default: the interval; 2.x
    /// default: none (ContainerPilot 2 let a check run as long as it took).
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Before the first passing check, failing checks publish no
    /// `unhealthy` until this long after the job started (`startPeriod`,
    /// default the `ttl`); the catalog check is critical all the same.
    #[serde(with = "humantime_serde")]
    pub start_period: Duration,
    pub logging_raw: bool,
}

/// `jobs[].consul`: extras passed through to the Consul registration.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobConsulExtras {
    pub enable_tag_override: bool,
    #[serde(with = "humantime_serde")]
    pub deregister_critical_service_after: Option<Duration>,
}

/// One job, after defaults have been applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobConfig {
    /// Unique among the jobs: how `--status`, `-signal` and reload tell them apart.
    pub name: String,
    /// The name the file gave a job whose name another job already had
    /// (ContainerPilot accepted duplicates): such a job runs as `name-2`,
    /// `-3`..., but its events, `CONTAINERPILOT_<JOB>_*` variables and
    /// catalog service use this shared name, as ContainerPilot's did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_name: Option<String>,
    pub role: JobRole,
    /// The argv to run; `None` for a job that only registers an externally run
    /// service (or only reacts to events with nothing to exec).
    #[serde(serialize_with = "serialize_optional_argv")]
    pub exec: Option<Argv>,
    /// Inherit autopilot's stdout/stderr instead of logging lines.
    pub logging_raw: bool,
    pub when: When,
    /// Kill the run (SIGKILL to its process group) after this long.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// How long a stopping job waits for jobs triggered by its `stopping` event.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
    pub restarts: Restarts,
    pub health: Option<HealthConfig>,
    /// Advertise in the catalog on this port (requires `health`, except the telemetry job).
    pub port: Option<u16>,
    pub initial_status: Option<CheckStatus>,
    pub tags: Vec<String>,
    /// IP selection specs (docs/configuration.md, `jobs[]`), default `["eth0:inet", "inet"]`
    /// (what ContainerPilot 3.8's code used; its docs said `["eth0:inet"]`).
    pub interfaces: Vec<String>,
    pub consul: JobConsulExtras,
    /// Signal number sent to stop the process (default SIGTERM). [beyond]
    pub stop_signal: i32,
    /// Grace between `stop_signal` and SIGKILL (default 5 s). [beyond]
    #[serde(with = "humantime_serde")]
    pub kill_timeout: Duration,
    /// Wait before each restart; doubles after failed runs. [beyond]
    #[serde(with = "humantime_serde")]
    pub restart_delay: Duration,
    /// This job's final exit ends autopilot with its exit code. [beyond]
    pub primary: bool,
    /// Render a template from the watched services before each run. [beyond]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub render: Option<RenderConfig>,
}

/// `jobs[].render` [beyond]: before each run the job renders `template`
/// (consul-template's functions over the catalog data the template reads,
/// plus the environment) and replaces `output` with the result; the exec
/// runs only when the content changed, otherwise the run is skipped and
/// counts as a success. Once run, the job runs again whenever that data
/// changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderConfig {
    pub template: PathBuf,
    pub output: PathBuf,
    /// consul-template's quiescence: render again only once the data has
    /// been quiet for `min`, or `max` after the first change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<RenderWait>,
}

/// `render.wait` [beyond].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RenderWait {
    #[serde(with = "humantime_serde")]
    pub min: Duration,
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

/// One watch of a service in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchConfig {
    /// The catalog service name; events are published with source `watch.<name>`.
    pub name: String,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    pub tag: Option<String>,
    pub dc: Option<String>,
}

impl WatchConfig {
    /// The event source this watch publishes under.
    pub fn source(&self) -> String {
        format!("watch.{}", self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricConfig {
    /// `namespace_subsystem_name` with empty parts skipped.
    pub full_name: String,
    pub help: String,
    pub kind: MetricKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryConfig {
    pub port: u16,
    pub interfaces: Vec<String>,
    pub tags: Vec<String>,
    pub metrics: Vec<MetricConfig>,
}

/// The default `stopTimeout` (the wait for preStop hooks) and `killTimeout`
/// (the wait between the stop signal and SIGKILL): 3 s each, not
/// ContainerPilot's 5 s, so that a job's stop (at most 2 s for its services
/// to leave the catalog, then both waits: 8 s) lets postStop hooks start
/// inside `docker stop`'s 10 s (docs/signals-and-exit-codes.md, "The stop
/// budget").
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// The wrapped APP's kill timeout when there is no configuration: as much of
/// Docker's 10 s `docker stop` grace as possible, while leaving autopilot
/// 2 s to kill the APP and exit with its code before Docker kills
/// autopilot (see docs/signals-and-exit-codes.md).
pub const WRAP_KILL_TIMEOUT: Duration = Duration::from_secs(8);

impl JobConfig {
    /// A job with every field at its default: starts once on `startup`, no
    /// exec, never restarts, SIGTERM then SIGKILL after 3 s.
    pub fn with_defaults(name: &str, role: JobRole) -> JobConfig {
        JobConfig {
            name: name.to_string(),
            shared_name: None,
            role,
            exec: None,
            logging_raw: false,
            when: When::default(),
            timeout: None,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            restarts: Restarts::Never,
            health: None,
            port: None,
            initial_status: None,
            tags: Vec::new(),
            interfaces: vec!["eth0:inet".to_string(), "inet".to_string()],
            consul: JobConsulExtras::default(),
            stop_signal: libc::SIGTERM,
            kill_timeout: DEFAULT_STOP_TIMEOUT,
            restart_delay: Duration::ZERO,
            primary: false,
            render: None,
        }
    }

    /// The name the job's events, variables and catalog service use: the
    /// name the file gave it.
    pub fn public_name(&self) -> &str {
        self.shared_name.as_deref().unwrap_or(&self.name)
    }

    /// The wrapped APP from the command line: raw output, stdin, its exit ends
    /// autopilot.
    pub fn app(argv: Argv) -> JobConfig {
        let name = argv
            .first()
            .and_then(|program| program.as_bytes().rsplit(|byte| *byte == b'/').next())
            .filter(|name| !name.is_empty())
            .map_or_else(
                || "app".to_string(),
                |name| String::from_utf8_lossy(name).into_owned(),
            );
        JobConfig {
            exec: Some(argv),
            logging_raw: true,
            ..JobConfig::with_defaults(&name, JobRole::App)
        }
    }
}

impl Config {
    /// No configuration file: just the wrapped APP, tini-style. autopilot
    /// keeps the APP's stdout to itself: only warnings and errors, on stderr.
    pub fn app_only(argv: Argv) -> Config {
        Config {
            format: Format::V3,
            consul: None,
            etcd: None,
            logging: LoggingConfig {
                level: LogLevel::Warn,
                format: LogFormat::Default,
                output: LogOutput::Stderr,
            },
            jobs: vec![JobConfig {
                kill_timeout: WRAP_KILL_TIMEOUT,
                ..JobConfig::app(argv)
            }],
            watches: Vec::new(),
            kv_watches: Vec::new(),
            locks: Vec::new(),
            control: None,
            telemetry: None,
        }
    }
}
