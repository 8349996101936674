//! The supervisor's picture of the run, for `GET /v3/status` and `--status`.
//!
//! Built only from what jobs report and what the bus carries; it changes
//! nothing.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::discovery::ServiceRegistration;
use crate::events::{Event, EventCode};
use crate::jobs::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum JobState {
    /// Waiting for its `when`, a restart or the next interval.
    Waiting,
    Running,
    Stopping,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Health {
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct JobStatus {
    pub name: String,
    pub state: JobState,
    pub pid: Option<i32>,
    /// Runs after the first one.
    pub restarts: u32,
    pub health: Option<Health>,
    /// Where an advertised job's service is registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip)]
    runs: u32,
}

/// Every job's status, in configuration order.
#[derive(Debug, Default)]
pub(super) struct StatusBoard {
    jobs: Vec<JobStatus>,
}

impl StatusBoard {
    /// A job (re)appears, waiting; `service` is its catalog registration.
    pub(super) fn add(&mut self, name: &str, service: Option<&ServiceRegistration>) {
        self.jobs.retain(|job| job.name != name);
        self.jobs.push(JobStatus {
            name: name.to_string(),
            state: JobState::Waiting,
            pid: None,
            restarts: 0,
            health: None,
            address: service.map(|s| s.address.to_string()),
            port: service.map(|s| s.port),
            runs: 0,
        });
    }

    /// Where a job is registered, after a reload (its state is kept).
    pub(super) fn set_service(&mut self, name: &str, service: Option<&ServiceRegistration>) {
        self.update(name, |status| {
            status.address = service.map(|s| s.address.to_string());
            status.port = service.map(|s| s.port);
        });
    }

    /// A job a reload removed, once it is gone.
    pub(super) fn remove(&mut self, name: &str) {
        self.jobs.retain(|job| job.name != name);
    }

    /// Is this job listed (running or not)?
    pub(super) fn knows(&self, name: &str) -> bool {
        self.jobs.iter().any(|job| job.name == name)
    }

    pub(super) fn on_report(&mut self, report: &Report) {
        match report {
            Report::Started { job, pid, .. } => self.update(job, |status| {
                status.state = JobState::Running;
                status.pid = Some(pid.as_raw());
                status.runs += 1;
                status.restarts = status.runs.saturating_sub(1);
            }),
            // A job with nothing to run (the telemetry service, a
            // registration of an external process) is up while it is advertised.
            Report::Up { job } => self.update(job, |status| status.state = JobState::Running),
            Report::Exited { job, .. } => self.update(job, |status| {
                status.pid = None;
                if status.state == JobState::Running {
                    status.state = JobState::Waiting;
                }
            }),
            Report::Replaced { job } => self.update(job, |status| {
                status.pid = None;
                status.state = JobState::Waiting;
            }),
            Report::Finished { job } => self.update(job, |status| {
                status.pid = None;
                status.state = JobState::Stopped;
            }),
        }
    }

    pub(super) fn on_event(&mut self, event: &Event) {
        let source = &*event.source;
        match event.code {
            EventCode::Healthy => self.update(source, |s| s.health = Some(Health::Healthy)),
            EventCode::Unhealthy => self.update(source, |s| s.health = Some(Health::Unhealthy)),
            // Reports and events reach the supervisor on separate channels:
            // a finished job's late `stopping` must not make it look alive.
            EventCode::Stopping => self.update(source, |s| {
                if s.state != JobState::Stopped {
                    s.state = JobState::Stopping
                }
            }),
            EventCode::Stopped => self.update(source, |s| s.state = JobState::Stopped),
            _ => {}
        }
    }

    #[cfg(test)]
    fn jobs(&self) -> &[JobStatus] {
        &self.jobs
    }

    /// The status document; `watches` maps each watch to its healthy instances.
    pub(super) fn to_json(&self, maintenance: bool, watches: &BTreeMap<String, usize>) -> Value {
        let watches: Vec<Value> = watches
            .iter()
            .map(|(name, instances)| serde_json::json!({ "name": name, "instances": instances }))
            .collect();
        serde_json::json!({
            "jobs": self.jobs,
            "watches": watches,
            "maintenance": maintenance,
        })
    }

    fn update(&mut self, name: &str, change: impl FnOnce(&mut JobStatus)) {
        if let Some(status) = self.jobs.iter_mut().find(|job| job.name == name) {
            change(status);
        }
    }
}

/// ContainerPilot's `/status` document (served on the telemetry port),
/// derived from [`StatusBoard::to_json`]'s: `Version`; `Jobs` (`Name`,
/// `Status`) for jobs without a port and `Services` (`Name`, `Address`,
/// `Port`, `Status`) for advertised ones, each in configuration order;
/// `Watches`, the watched service names. A status is `healthy`,
/// `unhealthy`, `maintenance` or `unknown`, as ContainerPilot named them; a
/// job that finished is `unknown`, as ContainerPilot 3.8 reset it when its
/// last run ended; its telemetry service `containerpilot` is always `healthy`.
/// **\[beyond\]** With `locks`, `Locks` (`Name`, `Holding`, `Since`).
pub(super) fn containerpilot_document(status: &Value) -> Value {
    let maintenance = status["maintenance"] == true;
    let (mut jobs, mut services) = (Vec::new(), Vec::new());
    for job in status["jobs"].as_array().into_iter().flatten() {
        let name = &job["name"];
        let state = if maintenance {
            "maintenance"
        } else if name == crate::config::jobs::TELEMETRY_JOB {
            "healthy"
        } else {
            job["health"].as_str().unwrap_or("unknown")
        };
        match job.get("port") {
            Some(port) => services.push(serde_json::json!({
                "Name": name, "Address": job["address"], "Port": port, "Status": state,
            })),
            None => jobs.push(serde_json::json!({ "Name": name, "Status": state })),
        }
    }
    let watches: Vec<&Value> = status["watches"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|watch| &watch["name"])
        .collect();
    let mut document = serde_json::json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Jobs": jobs,
        "Services": services,
        "Watches": watches,
    });
    // [beyond] Only with `locks` configured, so ContainerPilot's shape is unchanged.
    if let Some(locks) = status["locks"].as_object() {
        let locks: Vec<Value> = locks
            .iter()
            .map(|(name, lock)| {
                serde_json::json!({ "Name": name, "Holding": lock["holding"], "Since": lock["since"] })
            })
            .collect();
        document["Locks"] = Value::Array(locks);
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::JobRole;
    use crate::reaper::ExitStatus;
    use nix::unistd::Pid;

    #[test]
    fn a_late_stopping_does_not_revive_a_finished_job() {
        let mut board = StatusBoard::default();
        board.add("once", None);
        board.add("telemetry", None);
        board.on_report(&Report::Up {
            job: "telemetry".into(),
        });
        board.on_report(&Report::Finished { job: "once".into() });
        board.on_event(&Event::new(EventCode::Stopping, "once"));
        assert_eq!(board.jobs()[0].state, JobState::Stopped);
        assert_eq!(board.jobs()[1].state, JobState::Running);
        assert!(board.knows("once") && !board.knows("other"));
        board.on_report(&Report::Replaced {
            job: "telemetry".into(),
        });
        assert_eq!(board.jobs()[1].state, JobState::Waiting);
    }

    #[test]
    fn follows_a_job_through_its_life() {
        let mut board = StatusBoard::default();
        board.add("app", None);
        let started = Report::Started {
            job: "app".into(),
            role: JobRole::Plain,
            pid: Pid::from_raw(42),
        };
        board.on_report(&started);
        board.on_event(&Event::new(EventCode::Healthy, "app"));
        assert_eq!(board.jobs()[0].state, JobState::Running);
        assert_eq!(board.jobs()[0].pid, Some(42));
        assert_eq!(board.jobs()[0].health, Some(Health::Healthy));
        board.on_report(&Report::Exited {
            job: "app".into(),
            role: JobRole::Plain,
            primary: false,
            status: ExitStatus::Code(1),
            last: false,
        });
        board.on_report(&started);
        assert_eq!(board.jobs()[0].restarts, 1);
        board.on_event(&Event::new(EventCode::Stopping, "app"));
        assert_eq!(board.jobs()[0].state, JobState::Stopping);
        board.on_report(&Report::Finished { job: "app".into() });
        let watches = BTreeMap::from([("db".to_string(), 2)]);
        let json = board.to_json(true, &watches);
        assert_eq!(json["watches"][0]["instances"], 2);
        assert_eq!(json["jobs"][0]["state"], "stopped");
        assert_eq!(json["maintenance"], true);
    }

    #[test]
    fn containerpilot_document_splits_jobs_and_services() {
        let mut board = StatusBoard::default();
        board.add("pre", None);
        board.on_report(&Report::Finished { job: "pre".into() });
        board.add("worker", None);
        let address = "10.0.0.5".parse().unwrap();
        let mut web = crate::config::model::JobConfig::with_defaults("web", JobRole::Plain);
        web.port = Some(80);
        let service = ServiceRegistration::for_job(&web, address, "h").unwrap();
        board.add("web", Some(&service));
        board.on_event(&Event::new(EventCode::Unhealthy, "web"));
        let watches = BTreeMap::from([("db".to_string(), 0)]);
        let document = containerpilot_document(&board.to_json(false, &watches));
        assert_eq!(
            document,
            serde_json::json!({
                "Version": env!("CARGO_PKG_VERSION"),
                "Jobs": [{"Name": "pre", "Status": "unknown"}, {"Name": "worker", "Status": "unknown"}],
                "Services": [{"Name": "web", "Address": "10.0.0.5", "Port": 80, "Status": "unhealthy"}],
                "Watches": ["db"],
            })
        );
        let in_maintenance = containerpilot_document(&board.to_json(true, &watches));
        assert_eq!(in_maintenance["Services"][0]["Status"], "maintenance");
        let mut with_locks = board.to_json(false, &watches);
        with_locks["locks"] = serde_json::json!({"primary": {"holding": false}});
        assert_eq!(
            containerpilot_document(&with_locks)["Locks"],
            serde_json::json!([{"Name": "primary", "Holding": false, "Since": null}])
        );
    }
}
