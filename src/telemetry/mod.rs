//! Telemetry: the Prometheus metrics autopilot exposes (docs/telemetry.md).
//!
//! [`Metrics`] holds the user's metrics (`telemetry.metrics[]`, and 2.x
//! `telemetry.sensors[]`) next to autopilot's own: `containerpilot_events`,
//! `containerpilot_watch_instances`, `containerpilot_control_http_requests`,
//! **\[beyond\]** the leader locks' `containerpilot_lock_*`, and the process
//! metrics Prometheus' process collector names
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...).
//! [`serve`] answers `GET /metrics` (and ContainerPilot's `GET /status`,
//! from a document the supervisor builds) on a TCP listener the caller bound.
//!
//! This module owns the registry and the exposition. It must not touch jobs,
//! the event bus or the control socket: the supervisor, the bus and the
//! control plane call [`Metrics`] methods, and the caller binds the address.
//!
//! # Faithful to ContainerPilot
//!
//! ContainerPilot registered its metrics with the Go client library
//! (client_golang, 2016) and served the Prometheus text format 0.0.4. We
//! write that format (see [`exposition`](self::exposition)), as the
//! `prometheus` crate, a port of that library, did, so the exposition is
//! the same: a counter configured as `my_counter` is exposed as
//! `my_counter 4`. (OpenMetrics, which the `prometheus-client` crate
//! writes, would expose it as `my_counter_total 4` and break every
//! ContainerPilot user's queries.)
//!
//! - counter: adds (a negative value is an error, where Go panicked);
//!   gauge: sets; histogram: observes into Prometheus' default buckets
//!   (`.005` … `10`); summary: see [`summary`](self::summary) for the
//!   sliding window standing in for client_golang's default objectives.
//! - NaN and ±Inf are refused for every kind (the control plane answers 422).
//! - ContainerPilot joined `namespace`, `subsystem` and `name` with `_`
//!   without skipping empty parts, so a metric configured with only `name`
//!   was addressed as `__name`. We address it by its full name
//!   (`namespace_subsystem_name`, empty parts skipped), and also accept
//!   ContainerPilot's spelling: a name matches when it equals the full name
//!   once its empty `_`-separated parts are dropped.
//! - 2.x sensors: stdout is trimmed and parsed as a float, as ContainerPilot
//!   did (`strings.TrimSpace` + `strconv.ParseFloat`).

mod exposition;
mod process;
mod server;
mod summary;

use std::collections::HashMap;
use std::sync::Arc;

use exposition::{Collector, Histogram, Kind, Labeled, RegistrationError, Registry, Single};

use crate::config::model::{MetricConfig, MetricKind};

pub use server::{serve, StatusQuery, CONTENT_TYPE};

use process::ProcessCollector;
use summary::Summary;

/// Why a value was not recorded, or a metric not registered. The control
/// plane answers 422 with the message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("unknown metric {0:?}")]
    Unknown(String),
    #[error("metric {metric}: {value} is not a finite number")]
    NotFinite { metric: String, value: f64 },
    #[error("counter {metric} cannot decrease: {value} is negative")]
    NegativeCounter { metric: String, value: f64 },
    #[error("metric {metric}: sensor output {output:?} is not a number")]
    NotANumber { metric: String, output: String },
    #[error("metric {metric} cannot be registered: {reason}")]
    Invalid { metric: String, reason: String },
}

/// The internal metrics' names, labels and help are constants, registered
/// once each into a fresh registry.
const VALID_INTERNAL_METRIC: &str = "internal metrics are valid and registered once";

/// The metric registry. Cheap to clone; every clone records into the same
/// metrics.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    /// User metrics by full name.
    instruments: HashMap<String, Instrument>,
    /// [`canonical`] spelling → full name, for ContainerPilot's `__name`.
    aliases: HashMap<String, String>,
    events: Labeled,
    watch_instances: Labeled,
    control_requests: Labeled,
    lock_acquisitions: Labeled,
    lock_losses: Labeled,
    lock_held: Labeled,
}

impl Metrics {
    /// Registers the internal metrics and the user's `configs`. A name that
    /// is not a valid Prometheus name, is used twice (or collides with an
    /// internal metric), or has an empty help text is an error, as it was
    /// for ContainerPilot's Go client.
    pub fn new(configs: &[MetricConfig]) -> Result<Self, MetricError> {
        let mut registry = Registry::default();
        let events = Labeled::new(
            "containerpilot_events",
            "count of ContainerPilot events, partitioned by type and source",
            Kind::Counter,
            &["code", "source"],
        )
        .expect(VALID_INTERNAL_METRIC);
        let watch_instances = Labeled::new(
            "containerpilot_watch_instances",
            "gauge of instances found for each ContainerPilot watch, partitioned by service",
            Kind::Gauge,
            &["service"],
        )
        .expect(VALID_INTERNAL_METRIC);
        let control_requests = Labeled::new(
            "containerpilot_control_http_requests",
            "count of requests to control socket, partitioned by path and HTTP code",
            Kind::Counter,
            &["code", "path"],
        )
        .expect(VALID_INTERNAL_METRIC);
        let lock_acquisitions = Labeled::new(
            "containerpilot_lock_acquisitions",
            "count of leader locks this instance acquired, partitioned by lock",
            Kind::Counter,
            &["lock"],
        )
        .expect(VALID_INTERNAL_METRIC);
        let lock_losses = Labeled::new(
            "containerpilot_lock_losses",
            "count of leader locks this instance lost, partitioned by lock",
            Kind::Counter,
            &["lock"],
        )
        .expect(VALID_INTERNAL_METRIC);
        let lock_held = Labeled::new(
            "containerpilot_lock_held",
            "1 while this instance holds the leader lock, else 0, partitioned by lock",
            Kind::Gauge,
            &["lock"],
        )
        .expect(VALID_INTERNAL_METRIC);
        let internal: [Box<dyn Collector>; 7] = [
            Box::new(events.clone()),
            Box::new(watch_instances.clone()),
            Box::new(control_requests.clone()),
            Box::new(lock_acquisitions.clone()),
            Box::new(lock_losses.clone()),
            Box::new(lock_held.clone()),
            Box::new(ProcessCollector::new()),
        ];
        for collector in internal {
            registry.register(collector).expect(VALID_INTERNAL_METRIC);
        }

        let mut instruments = HashMap::new();
        let mut aliases = HashMap::new();
        for config in configs {
            let invalid = |error: RegistrationError| MetricError::Invalid {
                metric: config.full_name.clone(),
                reason: error.to_string(),
            };
            let instrument = Instrument::build(config).map_err(invalid)?;
            registry.register(instrument.collector()).map_err(invalid)?;
            aliases
                .entry(canonical(&config.full_name))
                .or_insert_with(|| config.full_name.clone());
            instruments.insert(config.full_name.clone(), instrument);
        }

        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                instruments,
                aliases,
                events,
                watch_instances,
                control_requests,
                lock_acquisitions,
                lock_losses,
                lock_held,
            }),
        })
    }

    /// Records `value` into the user metric `name`: a counter adds, a gauge
    /// sets, a histogram or summary observes.
    pub fn record(&self, name: &str, value: f64) -> Result<(), MetricError> {
        self.lookup(name)?.record(name, value)
    }

    /// Checks that `record(name, value)` would succeed, without recording.
    pub fn check(&self, name: &str, value: f64) -> Result<(), MetricError> {
        self.lookup(name)?.validate(name, value)
    }

    /// Records a 2.x sensor's stdout into `metric`: the output is trimmed and
    /// must then be one number.
    pub fn record_sensor_output(&self, metric: &str, stdout: &str) -> Result<(), MetricError> {
        let instrument = self.lookup(metric)?;
        let value = stdout
            .trim()
            .parse::<f64>()
            .map_err(|_| MetricError::NotANumber {
                metric: metric.to_string(),
                output: stdout.to_string(),
            })?;
        instrument.record(metric, value)
    }

    /// Counts one published event (`containerpilot_events{code,source}`).
    pub fn event(&self, code: &str, source: &str) {
        self.inner.events.add(&[code, source], 1.0);
    }

    /// Sets how many instances a watch found
    /// (`containerpilot_watch_instances{service}`).
    pub fn watch_instances(&self, service: &str, instances: usize) {
        self.inner.watch_instances.set(&[service], instances as f64);
    }

    /// Counts one control-plane request
    /// (`containerpilot_control_http_requests{code,path}`). Pass a routed
    /// path, not whatever a client asked for, so the label stays bounded.
    pub fn control_request(&self, code: u16, path: &str) {
        self.inner
            .control_requests
            .add(&[code.to_string().as_str(), path], 1.0);
    }

    /// **\[beyond\]** This instance acquired `lock`
    /// (`containerpilot_lock_acquisitions{lock}`, and held).
    pub fn lock_acquired(&self, lock: &str) {
        self.inner.lock_acquisitions.add(&[lock], 1.0);
        self.lock_held(lock, true);
    }

    /// **\[beyond\]** This instance lost `lock`
    /// (`containerpilot_lock_losses{lock}`, and not held).
    pub fn lock_lost(&self, lock: &str) {
        self.inner.lock_losses.add(&[lock], 1.0);
        self.lock_held(lock, false);
    }

    /// **\[beyond\]** Whether this instance holds `lock`
    /// (`containerpilot_lock_held{lock}` 1 or 0), without counting anything. Also
    /// lists the lock's counters (at 0 until something happens), so that a rate
    /// over them works from the lock's start.
    pub fn lock_held(&self, lock: &str, held: bool) {
        self.inner.lock_acquisitions.add(&[lock], 0.0);
        self.inner.lock_losses.add(&[lock], 0.0);
        let value = if held { 1.0 } else { 0.0 };
        self.inner.lock_held.set(&[lock], value);
    }

    /// All metrics in the Prometheus text exposition format 0.0.4.
    pub fn encode(&self) -> String {
        self.inner.registry.encode()
    }

    fn lookup(&self, name: &str) -> Result<&Instrument, MetricError> {
        let inner = &self.inner;
        inner
            .instruments
            .get(name)
            .or_else(|| {
                let full_name = inner.aliases.get(&canonical(name))?;
                inner.instruments.get(full_name)
            })
            .ok_or_else(|| MetricError::Unknown(name.to_string()))
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.inner.instruments.keys().collect();
        names.sort();
        f.debug_struct("Metrics").field("user", &names).finish()
    }
}

/// `name` with its empty `_`-separated parts dropped: ContainerPilot's
/// `__name` and `ns__name` become `name` and `ns_name`.
fn canonical(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// One user metric.
#[derive(Clone)]
enum Instrument {
    Counter(Single),
    Gauge(Single),
    Histogram(Histogram),
    Summary(Summary),
}

impl Instrument {
    fn build(config: &MetricConfig) -> Result<Self, RegistrationError> {
        let (name, help) = (config.full_name.as_str(), config.help.as_str());
        Ok(match config.kind {
            MetricKind::Counter => Self::Counter(Single::new(name, help, Kind::Counter)?),
            MetricKind::Gauge => Self::Gauge(Single::new(name, help, Kind::Gauge)?),
            MetricKind::Histogram => Self::Histogram(Histogram::new(name, help)?),
            MetricKind::Summary => Self::Summary(Summary::new(name, help)?),
        })
    }

    fn collector(&self) -> Box<dyn Collector> {
        match self {
            Self::Counter(counter) => Box::new(counter.clone()),
            Self::Gauge(gauge) => Box::new(gauge.clone()),
            Self::Histogram(histogram) => Box::new(histogram.clone()),
            Self::Summary(summary) => Box::new(summary.clone()),
        }
    }

    /// `metric` is the name the caller used, for the error message.
    /// Would `value` be accepted?
    fn validate(&self, metric: &str, value: f64) -> Result<(), MetricError> {
        if !value.is_finite() {
            return Err(MetricError::NotFinite {
                metric: metric.to_string(),
                value,
            });
        }
        if matches!(self, Self::Counter(_)) && value < 0.0 {
            return Err(MetricError::NegativeCounter {
                metric: metric.to_string(),
                value,
            });
        }
        Ok(())
    }

    fn record(&self, metric: &str, value: f64) -> Result<(), MetricError> {
        self.validate(metric, value)?;
        match self {
            Self::Counter(counter) => counter.add(value),
            Self::Gauge(gauge) => gauge.set(value),
            Self::Histogram(histogram) => histogram.observe(value),
            Self::Summary(summary) => summary.observe(value),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(full_name: &str, kind: MetricKind) -> MetricConfig {
        MetricConfig {
            full_name: full_name.to_string(),
            help: format!("help for {full_name}"),
            kind,
        }
    }

    fn metrics(configs: &[MetricConfig]) -> Metrics {
        Metrics::new(configs).expect("valid metrics")
    }

    /// The exposition parsed back: `name{labels}` → value, comments skipped.
    fn samples(text: &str) -> HashMap<String, f64> {
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                let value = value.parse().expect("a numeric sample value");
                (series.to_string(), value)
            })
            .collect()
    }

    fn sample(metrics: &Metrics, series: &str) -> Option<f64> {
        samples(&metrics.encode()).get(series).copied()
    }

    #[test]
    fn counter_adds_and_shows_under_its_own_name() {
        let m = metrics(&[metric("my_counter", MetricKind::Counter)]);
        m.record("my_counter", 2.0).unwrap();
        m.record("my_counter", 2.0).unwrap();
        let text = m.encode();
        assert!(text.lines().any(|line| line == "my_counter 4"), "{text}");
        assert!(text.contains("# TYPE my_counter counter\n"), "{text}");
        assert!(text.contains("# HELP my_counter help for my_counter\n"));
    }

    #[test]
    fn gauge_sets() {
        let m = metrics(&[metric("app_queue_depth", MetricKind::Gauge)]);
        m.record("app_queue_depth", 7.0).unwrap();
        m.record("app_queue_depth", -1.5).unwrap();
        assert_eq!(sample(&m, "app_queue_depth"), Some(-1.5));
    }

    #[test]
    fn histogram_observes_into_the_default_buckets() {
        let m = metrics(&[metric("latency", MetricKind::Histogram)]);
        m.record("latency", 0.3).unwrap();
        m.record("latency", 3.0).unwrap();
        let s = samples(&m.encode());
        let bucket = |le: &str| s[&format!("latency_bucket{{le=\"{le}\"}}")];
        assert_eq!(bucket("0.005"), 0.0);
        assert_eq!(bucket("0.25"), 0.0);
        assert_eq!(bucket("0.5"), 1.0);
        assert_eq!(bucket("2.5"), 1.0);
        assert_eq!(bucket("5"), 2.0);
        assert_eq!(bucket("10"), 2.0);
        assert_eq!(bucket("+Inf"), 2.0);
        assert_eq!(s["latency_count"], 2.0);
        assert_eq!(s["latency_sum"], 3.3);
        let buckets = s.keys().filter(|k| k.starts_with("latency_bucket")).count();
        assert_eq!(buckets, exposition::DEFAULT_BUCKETS.len() + 1);
    }

    #[test]
    fn summary_exposes_count_sum_and_quantiles() {
        let m = metrics(&[metric("sizes", MetricKind::Summary)]);
        for value in 1..=100 {
            m.record("sizes", f64::from(value)).unwrap();
        }
        let text = m.encode();
        assert!(text.contains("# TYPE sizes summary\n"), "{text}");
        let s = samples(&text);
        assert_eq!(s["sizes_count"], 100.0);
        assert_eq!(s["sizes_sum"], 5050.0);
        assert_eq!(s["sizes{quantile=\"0.5\"}"], 50.0);
        assert_eq!(s["sizes{quantile=\"0.9\"}"], 90.0);
        assert_eq!(s["sizes{quantile=\"0.99\"}"], 99.0);
    }

    #[test]
    fn bad_values_are_refused_and_change_nothing() {
        let m = metrics(&[
            metric("c", MetricKind::Counter),
            metric("g", MetricKind::Gauge),
            metric("h", MetricKind::Histogram),
        ]);
        m.record("g", 1.0).unwrap();
        assert!(matches!(
            m.record("c", -1.0),
            Err(MetricError::NegativeCounter { .. })
        ));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for name in ["c", "g", "h"] {
                assert!(
                    matches!(m.record(name, bad), Err(MetricError::NotFinite { .. })),
                    "{name} accepted {bad}"
                );
            }
        }
        assert_eq!(sample(&m, "c"), Some(0.0));
        assert_eq!(sample(&m, "g"), Some(1.0));
        assert_eq!(sample(&m, "h_count"), Some(0.0));
    }

    #[test]
    fn unknown_metric_is_an_error_naming_it() {
        let m = metrics(&[metric("known", MetricKind::Gauge)]);
        let error = m.record("unknown", 1.0).unwrap_err();
        assert_eq!(error, MetricError::Unknown("unknown".into()));
        assert_eq!(error.to_string(), "unknown metric \"unknown\"");
    }

    #[test]
    fn metrics_are_found_by_full_name_and_by_containerpilots_spelling() {
        let m = metrics(&[
            metric("only_name", MetricKind::Counter),
            metric("ns_sub_name", MetricKind::Counter),
            metric("ns_name", MetricKind::Counter),
        ]);
        m.record("only_name", 1.0).unwrap();
        m.record("__only_name", 1.0).unwrap();
        m.record("ns_sub_name", 1.0).unwrap();
        m.record("ns__name", 1.0).unwrap();
        assert_eq!(sample(&m, "only_name"), Some(2.0));
        assert_eq!(sample(&m, "ns_sub_name"), Some(1.0));
        assert_eq!(sample(&m, "ns_name"), Some(1.0));
        assert!(m.record("name", 1.0).is_err());
        assert!(m.record("sub_name", 1.0).is_err());
    }

    #[test]
    fn sensor_output_is_trimmed_and_parsed() {
        let m = metrics(&[
            metric("sensor_gauge", MetricKind::Gauge),
            metric("sensor_counter", MetricKind::Counter),
        ]);
        m.record_sensor_output("sensor_gauge", "  42.5\n").unwrap();
        assert_eq!(sample(&m, "sensor_gauge"), Some(42.5));
        m.record_sensor_output("sensor_counter", "3\n").unwrap();
        m.record_sensor_output("sensor_counter", "1e1").unwrap();
        assert_eq!(sample(&m, "sensor_counter"), Some(13.0));

        for output in ["", "\n", "abc", "1 2", "1\n2\n", "4 apples"] {
            assert_eq!(
                m.record_sensor_output("sensor_gauge", output),
                Err(MetricError::NotANumber {
                    metric: "sensor_gauge".into(),
                    output: output.into()
                })
            );
        }
        assert!(matches!(
            m.record_sensor_output("sensor_gauge", "NaN\n"),
            Err(MetricError::NotFinite { .. })
        ));
        assert!(matches!(
            m.record_sensor_output("missing", "1"),
            Err(MetricError::Unknown(_))
        ));
        assert_eq!(sample(&m, "sensor_gauge"), Some(42.5));
    }

    #[test]
    fn internal_metrics_count_events_watches_control_requests_and_locks() {
        let m = metrics(&[]);
        m.event("startup", "global");
        m.event("startup", "global");
        m.event("exitSuccess", "preStart");
        m.watch_instances("backend", 3);
        m.watch_instances("backend", 2);
        m.control_request(200, "/v3/metric");
        m.control_request(422, "/v3/metric");
        m.control_request(422, "/v3/metric");
        m.lock_held("primary", false);
        m.lock_acquired("primary");
        m.lock_lost("primary");
        m.lock_acquired("primary");
        m.lock_held("backup", false);
        let s = samples(&m.encode());
        assert_eq!(
            s[r#"containerpilot_lock_acquisitions{lock="primary"}"#],
            2.0
        );
        assert_eq!(s[r#"containerpilot_lock_losses{lock="primary"}"#], 1.0);
        assert_eq!(s[r#"containerpilot_lock_held{lock="primary"}"#], 1.0);
        assert_eq!(s[r#"containerpilot_lock_acquisitions{lock="backup"}"#], 0.0);
        assert_eq!(s[r#"containerpilot_lock_held{lock="backup"}"#], 0.0);
        assert_eq!(
            s[r#"containerpilot_events{code="startup",source="global"}"#],
            2.0
        );
        assert_eq!(
            s[r#"containerpilot_events{code="exitSuccess",source="preStart"}"#],
            1.0
        );
        assert_eq!(
            s[r#"containerpilot_watch_instances{service="backend"}"#],
            2.0
        );
        assert_eq!(
            s[r#"containerpilot_control_http_requests{code="422",path="/v3/metric"}"#],
            2.0
        );
        assert_eq!(
            s[r#"containerpilot_control_http_requests{code="200",path="/v3/metric"}"#],
            1.0
        );
    }

    #[test]
    fn process_metrics_describe_this_process() {
        let s = samples(&metrics(&[]).encode());
        assert!(s["process_resident_memory_bytes"] > 0.0);
        assert!(s["process_virtual_memory_bytes"] >= s["process_resident_memory_bytes"]);
        assert!(s["process_open_fds"] >= 3.0);
        assert!(s["process_cpu_seconds_total"] >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = s["process_start_time_seconds"];
        assert!(
            started > now - 24.0 * 3600.0 && started <= now + 1.0,
            "{started}"
        );
    }

    #[test]
    fn clones_record_into_the_same_metrics() {
        let m = metrics(&[metric("shared", MetricKind::Counter)]);
        let clone = m.clone();
        std::thread::spawn(move || clone.record("shared", 5.0).unwrap())
            .join()
            .unwrap();
        assert_eq!(sample(&m, "shared"), Some(5.0));
    }

    #[test]
    fn invalid_configs_are_refused() {
        let mut no_help = metric("quiet", MetricKind::Gauge);
        no_help.help.clear();
        let cases = [
            vec![metric("bad-name", MetricKind::Gauge)],
            vec![no_help],
            vec![
                metric("twice", MetricKind::Gauge),
                metric("twice", MetricKind::Counter),
            ],
            vec![metric("containerpilot_events", MetricKind::Counter)],
            vec![metric("process_open_fds", MetricKind::Gauge)],
        ];
        for configs in cases {
            let error = Metrics::new(&configs).unwrap_err();
            assert!(
                matches!(error, MetricError::Invalid { .. }),
                "{configs:?}: {error}"
            );
        }
    }
}
