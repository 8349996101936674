//! Process metrics under the names Prometheus' process collector uses,
//! read from /proc/self at each scrape.
//!
//! Unlike the `prometheus` crate's `process` feature, CPU time is not
//! rounded down to whole seconds.

use std::fs;

use super::exposition::{Collector, Family, Kind, Series, Value};

const CPU_SECONDS: (&str, &str) = (
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.",
);
const RESIDENT_MEMORY: (&str, &str) = (
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
);
const VIRTUAL_MEMORY: (&str, &str) = (
    "process_virtual_memory_bytes",
    "Virtual memory size in bytes.",
);
const OPEN_FDS: (&str, &str) = ("process_open_fds", "Number of open file descriptors.");
const START_TIME: (&str, &str) = (
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
);

/// Collects this process's CPU time, memory, open descriptors and start
/// time. A value that cannot be read is left out of the scrape.
pub(super) struct ProcessCollector {
    /// Clock ticks per second, the unit of /proc/self/stat's times.
    ticks_per_second: f64,
}

impl ProcessCollector {
    pub(super) fn new() -> Self {
        Self {
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    fn stat_families(&self, stat: &Stat, boot_time: Option<f64>) -> Vec<Family> {
        let ticks = self.ticks_per_second;
        let mut families = vec![
            family(CPU_SECONDS, Kind::Counter, stat.cpu_ticks as f64 / ticks),
            family(RESIDENT_MEMORY, Kind::Gauge, stat.resident_bytes as f64),
            family(VIRTUAL_MEMORY, Kind::Gauge, stat.virtual_bytes as f64),
        ];
        if let Some(boot_time) = boot_time {
            let start_time = boot_time + stat.start_ticks as f64 / ticks;
            families.push(family(START_TIME, Kind::Gauge, start_time));
        }
        families
    }
}

impl Collector for ProcessCollector {
    fn describe(&self) -> Vec<(&str, &str)> {
        vec![
            CPU_SECONDS,
            RESIDENT_MEMORY,
            VIRTUAL_MEMORY,
            OPEN_FDS,
            START_TIME,
        ]
    }

    fn collect(&self) -> Vec<Family> {
        let mut families = Vec::new();
        if let Some(stat) = Stat::read() {
            families.extend(self.stat_families(&stat, boot_time()));
        }
        if let Ok(fds) = fs::read_dir("/proc/self/fd") {
            families.push(family(OPEN_FDS, Kind::Gauge, fds.count() as f64));
        }
        families
    }
}

/// A family of one unlabeled sample.
fn family((name, help): (&str, &str), kind: Kind, value: f64) -> Family {
    Family {
        name: name.to_string(),
        help: help.to_string(),
        kind,
        series: vec![Series {
            labels: Vec::new(),
            value: Value::Single(value),
        }],
    }
}

/// What proc(5) `/proc/self/stat` tells us.
#[derive(Debug, PartialEq)]
struct Stat {
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// Start time after boot, in clock ticks.
    start_ticks: u64,
    virtual_bytes: u64,
    resident_bytes: u64,
}

impl Stat {
    fn read() -> Option<Self> {
        let stat = fs::read_to_string("/proc/self/stat").ok()?;
        let page_size = page_size()?;
        Self::parse(&stat, page_size)
    }

    /// Parses `/proc/[pid]/stat`; fields are numbered from 1 as in proc(5).
    fn parse(stat: &str, page_size: u64) -> Option<Self> {
        // The command name (field 2) is in parentheses and may hold spaces
        // and parentheses itself: the fields we want follow its last `)`.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
        Some(Self {
            cpu_ticks: field(14)? + field(15)?,
            start_ticks: field(22)?,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page_size,
        })
    }
}

/// Seconds since the epoch at boot: the `btime` line of /proc/stat.
fn boot_time() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // Linux's USER_HZ is 100 wherever sysconf could fail.
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn page_size() -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&size| size > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line = "1234 (my (odd) app) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 3 0 987654 104857600 2560 18446744073709551615";
        let stat = Stat::parse(line, 4096).unwrap();
        assert_eq!(
            stat,
            Stat {
                cpu_ticks: 300,
                start_ticks: 987654,
                virtual_bytes: 104_857_600,
                resident_bytes: 2560 * 4096,
            }
        );
    }

    #[test]
    fn truncated_stat_is_not_parsed() {
        assert_eq!(Stat::parse("1 (x) S 1 2 3", 4096), None);
        assert_eq!(Stat::parse("no parenthesis", 4096), None);
    }

    #[test]
    fn start_time_is_boot_time_plus_start_ticks() {
        let collector = ProcessCollector {
            ticks_per_second: 100.0,
        };
        let stat = Stat {
            cpu_ticks: 150,
            start_ticks: 2500,
            virtual_bytes: 1,
            resident_bytes: 1,
        };
        let families = collector.stat_families(&stat, Some(1_000_000.0));
        let value = |name: &str| {
            let family = families.iter().find(|f| f.name == name).unwrap();
            match family.series[0].value {
                Value::Single(value) => value,
                _ => panic!("{name} is not a single value"),
            }
        };
        assert_eq!(value(START_TIME.0), 1_000_025.0);
        assert_eq!(value(CPU_SECONDS.0), 1.5);
        assert!(collector
            .stat_families(&stat, None)
            .iter()
            .all(|f| f.name != START_TIME.0));
    }
}
