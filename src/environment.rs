//! The environment every spawned process gets.
//!
//! autopilot's own environment at start, plus `CONTAINERPILOT_PID`, plus what
//! the engine publishes while it runs (`CONTAINERPILOT_<JOB>_PID` while a job's
//! process is alive, `CONTAINERPILOT_<JOB>_IP` for registered jobs) and what
//! users set through the control plane (`-putenv`). This module owns that
//! shared table; it must not spawn anything.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// A shared, cheaply cloned environment table.
#[derive(Clone, Debug)]
pub struct Environment {
    vars: Arc<RwLock<BTreeMap<String, String>>>,
}

impl Environment {
    /// autopilot's own environment plus `CONTAINERPILOT_PID`.
    pub fn from_process() -> Environment {
        let mut vars: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        vars.insert("CONTAINERPILOT_PID".into(), std::process::id().to_string());
        Environment {
            vars: Arc::new(RwLock::new(vars)),
        }
    }

    /// Sets `name`, or removes it when `value` is `None`.
    pub fn set(&self, name: &str, value: Option<&str>) {
        let mut vars = self.vars.write().unwrap_or_else(|p| p.into_inner());
        match value {
            Some(value) => vars.insert(name.to_string(), value.to_string()),
            None => vars.remove(name),
        };
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.read().get(name).cloned()
    }

    /// The whole table, for a process about to be spawned.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.read().clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, String>> {
        self.vars.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// `CONTAINERPILOT_<JOB>_<SUFFIX>`: the job name upper-cased, every run of
/// characters other than ASCII letters and digits turned into one `_`, as
/// ContainerPilot named them (`test-Case--now` → `TEST_CASE_NOW`, `x.sh` →
/// `X_SH`), so a shell can read every such variable.
pub fn job_variable(job: &str, suffix: &str) -> String {
    let mut name = String::with_capacity(job.len());
    for c in job.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_uppercase());
        } else if !name.ends_with('_') {
            name.push('_');
        }
    }
    format!("CONTAINERPILOT_{name}_{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_variable_names() {
        assert_eq!(job_variable("my-db", "IP"), "CONTAINERPILOT_MY_DB_IP");
        assert_eq!(job_variable("testpid", "PID"), "CONTAINERPILOT_TESTPID_PID");
        assert_eq!(
            job_variable("test-Case--now", "PID"),
            "CONTAINERPILOT_TEST_CASE_NOW_PID"
        );
        assert_eq!(job_variable("x.sh", "PID"), "CONTAINERPILOT_X_SH_PID");
        assert_eq!(job_variable("a_-b", "IP"), "CONTAINERPILOT_A_B_IP");
    }

    #[test]
    fn set_and_unset() {
        let env = Environment::from_process();
        assert_eq!(
            env.get("CONTAINERPILOT_PID"),
            Some(std::process::id().to_string())
        );
        env.set("AUTOPILOT_TEST_VAR", Some("x"));
        assert_eq!(env.snapshot()["AUTOPILOT_TEST_VAR"], "x");
        env.set("AUTOPILOT_TEST_VAR", None);
        assert_eq!(env.get("AUTOPILOT_TEST_VAR"), None);
    }
}
