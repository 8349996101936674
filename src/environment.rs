//! The environment every spawned process gets.
//!
//! autopilot's own environment at start, plus `CONTAINERPILOT_PID`, plus what
//! the engine publishes while it runs (`CONTAINERPILOT_<JOB>_PID` while a job's
//! process is alive, `CONTAINERPILOT_<JOB>_IP` for registered jobs) and what
//! users set through the control plane (`-putenv`). Names and values are kept
//! as the bytes they were: a variable that is not UTF-8 reaches every child
//! unchanged, and is converted (lossily) only as template data. This module
//! owns that shared table; it must not spawn anything.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::{Arc, RwLock};

use crate::config::Env;

/// Every variable, byte for byte, as a child gets it.
pub(crate) type Table = BTreeMap<OsString, OsString>;

/// A shared, cheaply cloned environment table.
#[derive(Clone, Debug)]
pub struct Environment {
    vars: Arc<RwLock<Table>>,
}

impl Environment {
    /// autopilot's own environment plus `CONTAINERPILOT_PID`.
    pub fn from_process() -> Environment {
        let mut vars: Table = std::env::vars_os().collect();
        vars.insert(
            "CONTAINERPILOT_PID".into(),
            std::process::id().to_string().into(),
        );
        Environment {
            vars: Arc::new(RwLock::new(vars)),
        }
    }

    /// Sets `name`, or removes it when `value` is `None`.
    pub fn set(&self, name: &str, value: Option<&str>) {
        let mut vars = self.vars.write().unwrap_or_else(|p| p.into_inner());
        match value {
            Some(value) => vars.insert(name.into(), value.into()),
            None => vars.remove(std::ffi::OsStr::new(name)),
        };
    }

    /// The whole table, for a process about to be spawned.
    pub fn snapshot(&self) -> Table {
        self.vars.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `table` as template data: bytes that are not UTF-8 become U+FFFD.
pub(crate) fn template_data(table: &Table) -> Env {
    table
        .iter()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// `CONTAINERPILOT_<JOB>_<SUFFIX>`: the job name upper-cased, every run of
/// characters other than ASCII letters and digits turned into one `_`, as
/// ContainerPilot named them (`test-Case--now` → `TEST_CASE_NOW`, `x.sh` →
/// `X_SH`), so a shell can read every such variable.
pub(crate) fn job_variable(job: &str, suffix: &str) -> String {
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
    use std::os::unix::ffi::OsStringExt;

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
        let pid = std::process::id().to_string();
        assert_eq!(env.snapshot()[&OsString::from("CONTAINERPILOT_PID")], *pid);
        env.set("AUTOPILOT_TEST_VAR", Some("x"));
        assert_eq!(env.snapshot()[&OsString::from("AUTOPILOT_TEST_VAR")], "x");
        env.set("AUTOPILOT_TEST_VAR", None);
        assert!(!env
            .snapshot()
            .contains_key(&OsString::from("AUTOPILOT_TEST_VAR")));
    }

    #[test]
    fn template_data_is_lossy_and_the_table_is_not() {
        let raw = OsString::from_vec(b"a\xffb".to_vec());
        let table: Table = [(OsString::from("RAW"), raw.clone())].into();
        assert_eq!(template_data(&table)["RAW"], "a\u{fffd}b");
        assert_eq!(table[&OsString::from("RAW")], raw);
    }
}
