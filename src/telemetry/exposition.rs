//! The metric kinds and the Prometheus text exposition format 0.0.4
//! (docs/telemetry.md), written directly.
//!
//! Hand-written rather than the `prometheus` crate: autopilot needs four
//! metric kinds, a registry that refuses bad and duplicate names, and the
//! text format, which the crate brought with a protobuf-shaped data model,
//! parking_lot and lazy_static (about 50 KB of the static binary,
//! bench/README.md). The output is the crate's, byte for byte: families
//! sorted by name, empty ones left out, series sorted by their label
//! values, numbers as Rust prints them (`4`, `0.5`, `NaN`).
//!
//! This module owns the data model and the text; which metrics exist is
//! the parent module's business.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// What the exposition calls each kind (`# TYPE name counter`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// One metric family at one scrape.
pub(super) struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub series: Vec<Series>,
}

/// One series of a family: its label pairs (in the family's label order)
/// and its value.
pub(super) struct Series {
    pub labels: Vec<(String, String)>,
    pub value: Value,
}

pub(super) enum Value {
    /// A counter's or a gauge's value.
    Single(f64),
    /// Cumulative counts per upper bound (`+Inf` is added), sum, count.
    Histogram {
        buckets: Vec<(f64, u64)>,
        sum: f64,
        count: u64,
    },
    /// Value per quantile, sum, count.
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: u64,
    },
}

/// A source of metric families (a metric, or a set of them read at each
/// scrape).
pub(super) trait Collector: Send + Sync {
    /// The names and help texts of the families it produces.
    fn describe(&self) -> Vec<(&str, &str)>;
    fn collect(&self) -> Vec<Family>;
}

/// Why a metric cannot be registered; the messages are those of the
/// `prometheus` crate autopilot used before.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(super) enum RegistrationError {
    #[error("Error: empty help string")]
    EmptyHelp,
    #[error("Error: '{0}' is not a valid metric name")]
    InvalidName(String),
    #[error("Duplicate metrics collector registration attempted")]
    Duplicate,
}

/// The collectors to scrape.
#[derive(Default)]
pub(super) struct Registry {
    collectors: Vec<Box<dyn Collector>>,
}

impl Registry {
    pub(super) fn register(
        &mut self,
        collector: Box<dyn Collector>,
    ) -> Result<(), RegistrationError> {
        for (name, help) in collector.describe() {
            check(name, help)?;
            let taken = self
                .collectors
                .iter()
                .flat_map(|other| other.describe())
                .any(|(other, _)| other == name);
            if taken {
                return Err(RegistrationError::Duplicate);
            }
        }
        self.collectors.push(collector);
        Ok(())
    }

    /// Every family with at least one series, in the text format.
    pub(super) fn encode(&self) -> String {
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        for family in self.collectors.iter().flat_map(|c| c.collect()) {
            if !family.series.is_empty() {
                families.insert(family.name.clone(), family);
            }
        }
        let mut text = String::new();
        for family in families.values_mut() {
            family.series.sort_by(|a, b| {
                let values = |series: &Series| {
                    series
                        .labels
                        .iter()
                        .map(|(_, v)| v.clone())
                        .collect::<Vec<_>>()
                };
                (a.labels.len(), values(a)).cmp(&(b.labels.len(), values(b)))
            });
            write_family(&mut text, family);
        }
        text
    }
}

/// A name and help text the exposition can carry.
fn check(name: &str, help: &str) -> Result<(), RegistrationError> {
    if help.is_empty() {
        return Err(RegistrationError::EmptyHelp);
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return Err(RegistrationError::InvalidName(name.to_string()));
    }
    Ok(())
}

fn write_family(text: &mut String, family: &Family) {
    let name = &family.name;
    let _ = writeln!(text, "# HELP {name} {}", escape(&family.help, false));
    let _ = writeln!(text, "# TYPE {name} {}", family.kind.name());
    for series in &family.series {
        let labels = &series.labels;
        let (points, sum, count) = match &series.value {
            Value::Single(value) => {
                sample(text, name, "", labels, None, *value);
                continue;
            }
            Value::Histogram {
                buckets,
                sum,
                count,
            } => {
                let mut points: Vec<_> = buckets
                    .iter()
                    .map(|(bound, cumulative)| {
                        ("_bucket", ("le", bound.to_string()), *cumulative as f64)
                    })
                    .collect();
                points.push(("_bucket", ("le", "+Inf".to_string()), *count as f64));
                (points, sum, count)
            }
            Value::Summary {
                quantiles,
                sum,
                count,
            } => {
                let points = quantiles
                    .iter()
                    .map(|(quantile, value)| ("", ("quantile", quantile.to_string()), *value))
                    .collect();
                (points, sum, count)
            }
        };
        for (suffix, label, value) in points {
            sample(text, name, suffix, labels, Some(label), value);
        }
        sample(text, name, "_sum", labels, None, *sum);
        sample(text, name, "_count", labels, None, *count as f64);
    }
}

/// `name_suffix{labels} value`
fn sample(
    text: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(String, String)],
    extra: Option<(&str, String)>,
    value: f64,
) {
    text.push_str(name);
    text.push_str(suffix);
    let pairs = labels
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .chain(extra.as_ref().map(|(name, value)| (*name, value.as_str())));
    let mut separator = '{';
    for (label, value) in pairs {
        let _ = write!(text, "{separator}{label}=\"{}\"", escape(value, true));
        separator = ',';
    }
    if separator == ',' {
        text.push('}');
    }
    let _ = writeln!(text, " {value}");
}

/// Backslashes and newlines escaped (and double quotes, in label values).
fn escape(text: &str, quotes: bool) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '"' if quotes => escaped.push_str("\\\""),
            c => escaped.push(c),
        }
    }
    escaped
}

/// An `f64` updated without a lock.
#[derive(Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    fn add(&self, delta: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + delta).to_bits())
            });
    }
}

/// A family's name, help and kind.
pub(super) struct Desc {
    name: String,
    help: String,
    kind: Kind,
}

impl Desc {
    pub(super) fn new(name: &str, help: &str, kind: Kind) -> Result<Arc<Desc>, RegistrationError> {
        check(name, help)?;
        Ok(Arc::new(Desc {
            name: name.to_string(),
            help: help.to_string(),
            kind,
        }))
    }

    /// For [`Collector::describe`].
    pub(super) fn describe(&self) -> Vec<(&str, &str)> {
        vec![(&self.name, &self.help)]
    }

    pub(super) fn family(&self, series: Vec<Series>) -> Family {
        Family {
            name: self.name.clone(),
            help: self.help.clone(),
            kind: self.kind,
            series,
        }
    }
}

/// A counter or a gauge without labels. Clones share the value.
#[derive(Clone)]
pub(super) struct Single {
    desc: Arc<Desc>,
    value: Arc<AtomicF64>,
}

impl Single {
    /// `kind` is [`Kind::Counter`] or [`Kind::Gauge`].
    pub(super) fn new(name: &str, help: &str, kind: Kind) -> Result<Self, RegistrationError> {
        Ok(Self {
            desc: Desc::new(name, help, kind)?,
            value: Arc::default(),
        })
    }

    pub(super) fn add(&self, delta: f64) {
        self.value.add(delta);
    }

    pub(super) fn set(&self, value: f64) {
        self.value.set(value);
    }
}

impl Collector for Single {
    fn describe(&self) -> Vec<(&str, &str)> {
        self.desc.describe()
    }

    fn collect(&self) -> Vec<Family> {
        let series = Series {
            labels: Vec::new(),
            value: Value::Single(self.value.get()),
        };
        vec![self.desc.family(vec![series])]
    }
}

/// Counters or gauges by label values (`containerpilot_events{code,source}`).
/// Clones share the values.
#[derive(Clone)]
pub(super) struct Labeled {
    desc: Arc<Desc>,
    labels: &'static [&'static str],
    values: Arc<Mutex<BTreeMap<Vec<String>, f64>>>,
}

impl Labeled {
    /// `kind` is [`Kind::Counter`] or [`Kind::Gauge`]; `labels` are the
    /// label names, in the order the values are given.
    pub(super) fn new(
        name: &str,
        help: &str,
        kind: Kind,
        labels: &'static [&'static str],
    ) -> Result<Self, RegistrationError> {
        Ok(Self {
            desc: Desc::new(name, help, kind)?,
            labels,
            values: Arc::default(),
        })
    }

    pub(super) fn add(&self, label_values: &[&str], delta: f64) {
        self.update(label_values, |value| *value += delta);
    }

    pub(super) fn set(&self, label_values: &[&str], value: f64) {
        self.update(label_values, |current| *current = value);
    }

    fn update(&self, label_values: &[&str], change: impl FnOnce(&mut f64)) {
        let key = label_values.iter().map(|value| value.to_string()).collect();
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        change(values.entry(key).or_default());
    }
}

impl Collector for Labeled {
    fn describe(&self) -> Vec<(&str, &str)> {
        self.desc.describe()
    }

    fn collect(&self) -> Vec<Family> {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let series = values
            .iter()
            .map(|(label_values, value)| {
                let mut labels: Vec<(String, String)> = self
                    .labels
                    .iter()
                    .map(|name| name.to_string())
                    .zip(label_values.iter().cloned())
                    .collect();
                labels.sort();
                Series {
                    labels,
                    value: Value::Single(*value),
                }
            })
            .collect();
        vec![self.desc.family(series)]
    }
}

/// client_golang's (and the `prometheus` crate's) default buckets.
pub(super) const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram over [`DEFAULT_BUCKETS`]. Clones observe into the same one.
#[derive(Clone)]
pub(super) struct Histogram {
    desc: Arc<Desc>,
    state: Arc<Mutex<HistogramState>>,
}

#[derive(Default)]
struct HistogramState {
    /// Observations per bucket (not cumulative).
    counts: [u64; DEFAULT_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub(super) fn new(name: &str, help: &str) -> Result<Self, RegistrationError> {
        Ok(Self {
            desc: Desc::new(name, help, Kind::Histogram)?,
            state: Arc::default(),
        })
    }

    pub(super) fn observe(&self, value: f64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = DEFAULT_BUCKETS.iter().position(|&bound| value <= bound) {
            state.counts[bucket] += 1;
        }
        state.sum += value;
        state.count += 1;
    }
}

impl Collector for Histogram {
    fn describe(&self) -> Vec<(&str, &str)> {
        self.desc.describe()
    }

    fn collect(&self) -> Vec<Family> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut cumulative = 0;
        let buckets = DEFAULT_BUCKETS
            .iter()
            .zip(state.counts)
            .map(|(&bound, count)| {
                cumulative += count;
                (bound, cumulative)
            })
            .collect();
        let series = Series {
            labels: Vec::new(),
            value: Value::Histogram {
                buckets,
                sum: state.sum,
                count: state.count,
            },
        };
        vec![self.desc.family(vec![series])]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_sorted_escaped_and_leaves_empty_families_out() {
        let mut registry = Registry::default();
        let events = Labeled::new(
            "b_events",
            "line\\one\nline two",
            Kind::Counter,
            &["code", "source"],
        )
        .unwrap();
        let empty = Labeled::new("c_empty", "nothing yet", Kind::Gauge, &["x"]).unwrap();
        let single = Single::new("a_gauge", "a gauge", Kind::Gauge).unwrap();
        registry.register(Box::new(events.clone())).unwrap();
        registry.register(Box::new(empty)).unwrap();
        registry.register(Box::new(single.clone())).unwrap();
        events.add(&["z", "q\"uote"], 1.0);
        events.add(&["a", "x"], 2.5);
        single.set(-0.5);
        assert_eq!(
            registry.encode(),
            "# HELP a_gauge a gauge\n# TYPE a_gauge gauge\na_gauge -0.5\n\
             # HELP b_events line\\\\one\\nline two\n# TYPE b_events counter\n\
             b_events{code=\"a\",source=\"x\"} 2.5\n\
             b_events{code=\"z\",source=\"q\\\"uote\"} 1\n"
        );
    }

    #[test]
    fn bad_names_help_and_duplicates_are_refused() {
        assert_eq!(
            Single::new("bad-name", "h", Kind::Gauge).err(),
            Some(RegistrationError::InvalidName("bad-name".into()))
        );
        assert!(Single::new("9lives", "h", Kind::Gauge).is_err());
        assert_eq!(
            Single::new("quiet", "", Kind::Gauge).err(),
            Some(RegistrationError::EmptyHelp)
        );
        assert!(Single::new("ns:sub_name", "h", Kind::Gauge).is_ok());
        let mut registry = Registry::default();
        let twice = Single::new("twice", "h", Kind::Counter).unwrap();
        registry.register(Box::new(twice.clone())).unwrap();
        assert_eq!(
            registry.register(Box::new(twice)),
            Err(RegistrationError::Duplicate)
        );
    }
}
