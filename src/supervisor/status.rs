//! The supervisor's picture of the run, for `GET /v3/status` and `--status`.
//!
//! Built only from what jobs report and what the bus carries; it changes
//! nothing.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::events::{Event, EventCode};
use crate::jobs::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its `when`, a restart or the next interval.
    Waiting,
    Running,
    Stopping,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub name: String,
    pub state: JobState,
    pub pid: Option<i32>,
    /// Runs after the first one.
    pub restarts: u32,
    pub health: Option<Health>,
    #[serde(skip)]
    runs: u32,
}

/// Every job's status, in configuration order.
#[derive(Debug, Default)]
pub struct StatusBoard {
    jobs: Vec<JobStatus>,
}

impl StatusBoard {
    /// A job (re)appears, waiting.
    pub fn add(&mut self, name: &str) {
        self.jobs.retain(|job| job.name != name);
        self.jobs.push(JobStatus {
            name: name.to_string(),
            state: JobState::Waiting,
            pid: None,
            restarts: 0,
            health: None,
            runs: 0,
        });
    }

    /// A job a reload removed, once it is gone.
    pub fn remove(&mut self, name: &str) {
        self.jobs.retain(|job| job.name != name);
    }

    /// Is this job listed (running or not)?
    pub fn knows(&self, name: &str) -> bool {
        self.jobs.iter().any(|job| job.name == name)
    }

    pub fn on_report(&mut self, report: &Report) {
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

    pub fn on_event(&mut self, event: &Event) {
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
    pub fn to_json(&self, maintenance: bool, watches: &BTreeMap<String, usize>) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::JobRole;
    use crate::reaper::ExitStatus;
    use nix::unistd::Pid;

    #[test]
    fn a_late_stopping_does_not_revive_a_finished_job() {
        let mut board = StatusBoard::default();
        board.add("once");
        board.add("telemetry");
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
        board.add("app");
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
}
