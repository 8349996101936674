//! Warnings about a valid configuration that will probably not do what its
//! author wants: a TTL shorter than the check interval, a `port` with no
//! catalog to advertise it in, a health check command that is not on PATH.
//! They are logged at WARN when autopilot starts (and printed by `--check`),
//! never errors: ContainerPilot accepted all of these, and a command missing
//! at check time may be installed by a preStart job. This module only reads
//! the model; it must not change it.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::model::{Config, HealthCheck, JobConfig, JobRole};
use crate::process;

/// Every warning for `config`; `path` is the `PATH` health checks will be
/// looked up in (`None`: not set, no lookup).
pub(crate) fn warnings(config: &Config, path: Option<&str>) -> Vec<String> {
    let has_catalog = config.consul.is_some() || config.etcd.is_some();
    config
        .jobs
        .iter()
        .flat_map(|job| {
            [
                short_ttl(job),
                unadvertised_port(job, has_catalog),
                missing_check_command(job, path),
            ]
        })
        .flatten()
        .collect()
}

/// A TTL below the interval lets the catalog check expire between two
/// heartbeats: the service flaps to critical however healthy it is.
fn short_ttl(job: &JobConfig) -> Option<String> {
    let health = job.health.as_ref()?;
    (job.port.is_some() && health.ttl < health.interval).then(|| {
        format!(
            "job {:?}: health.ttl ({}s) is shorter than health.interval ({}s): the catalog will mark the service critical between two checks",
            job.name,
            health.ttl.as_secs(),
            health.interval.as_secs()
        )
    })
}

fn unadvertised_port(job: &JobConfig, has_catalog: bool) -> Option<String> {
    let port = job.port?;
    (!has_catalog && job.role != JobRole::Telemetry).then(|| {
        format!(
            "job {:?} has port {port} but no catalog (consul or etcd) is configured: it is not advertised",
            job.name
        )
    })
}

fn missing_check_command(job: &JobConfig, path: Option<&str>) -> Option<String> {
    let Some(HealthCheck::Exec(argv)) = job.health.as_ref().map(|h| &h.check) else {
        return None;
    };
    let program = argv.first()?;
    let has_slash = program.as_bytes().contains(&b'/');
    // The lookup the start itself makes (execvp's rules).
    let found = process::program_candidates(program, path.map(str::as_bytes))
        .iter()
        .any(|candidate| is_executable(candidate));
    (!found).then(|| {
        format!(
            "job {:?}: health check command {:?} is not {} on this machine: every check will fail until it is installed",
            job.name,
            program.to_string_lossy(),
            if has_slash { "an executable file" } else { "found on PATH" }
        )
    })
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{ConsulConfig, HealthConfig};
    use std::time::Duration;

    fn advertised(check: HealthCheck, interval: u64, ttl: u64) -> JobConfig {
        let mut job = JobConfig::with_defaults("web", JobRole::Plain);
        job.port = Some(80);
        job.health = Some(HealthConfig {
            check,
            interval: Duration::from_secs(interval),
            ttl: Duration::from_secs(ttl),
            timeout: None,
            start_period: Duration::from_secs(ttl),
            logging_raw: false,
        });
        job
    }

    fn config(jobs: Vec<JobConfig>, catalog: bool) -> Config {
        let mut config = Config::app_only(vec!["app".into()]);
        config.jobs = jobs;
        config.consul = catalog.then(|| ConsulConfig {
            address: "consul:8500".into(),
            scheme: "http".into(),
            token: None,
            tls: None,
        });
        config
    }

    #[test]
    fn a_ttl_below_the_interval_warns() {
        let warnings = warnings(
            &config(vec![advertised(HealthCheck::Heartbeat, 10, 5)], true),
            None,
        );
        assert_eq!(warnings, ["job \"web\": health.ttl (5s) is shorter than health.interval (10s): the catalog will mark the service critical between two checks"]);
        let fine = config(vec![advertised(HealthCheck::Heartbeat, 10, 10)], true);
        assert!(super::warnings(&fine, None).is_empty());
    }

    #[test]
    fn a_port_without_a_catalog_warns() {
        let warnings = warnings(
            &config(vec![advertised(HealthCheck::Heartbeat, 1, 5)], false),
            None,
        );
        assert_eq!(
            warnings,
            ["job \"web\" has port 80 but no catalog (consul or etcd) is configured: it is not advertised"]
        );
    }

    #[test]
    fn a_check_command_missing_from_path_warns() {
        let check = |argv: &[&str]| {
            let job = advertised(
                HealthCheck::Exec(argv.iter().map(Into::into).collect()),
                1,
                5,
            );
            warnings(&config(vec![job], true), Some("/nonexistent:/bin:/usr/bin"))
        };
        assert!(check(&["sh", "-c", "true"]).is_empty());
        assert!(check(&["/bin/sh"]).is_empty());
        assert_eq!(check(&["no-such-checker"]), ["job \"web\": health check command \"no-such-checker\" is not found on PATH on this machine: every check will fail until it is installed"]);
        assert!(check(&["/nonexistent/curl"])[0].contains("is not an executable file"));
    }
}
