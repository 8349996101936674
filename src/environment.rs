//! The environment every spawned process gets.
//!
//! autopilot's own environment at start, plus `CONTAINERPILOT_PID`, plus what
//! the engine publishes while it runs (`CONTAINERPILOT_<JOB>_PID` while a job's
//! process is alive, `CONTAINERPILOT_<JOB>_IP` for registered jobs) and what
//! users set through the control plane (`-putenv`). Names and values are kept
//! as the bytes they were: a variable that is not UTF-8 reaches every child
//! unchanged, and is converted (lossily) only as template data.
//!
//! **\[beyond\]** Beside it, variables scoped to one event source: only the
//! jobs whose `when` names that source get them (a KV watch's values, see
//! `docs/configuration.md`, "KV values in the environment"), and the control
//! plane and configuration templates never see them. This module owns those
//! shared tables; it must not spawn anything.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::model::When;
use crate::config::Env;

/// Every variable, byte for byte, as a child gets it.
pub(crate) type Table = BTreeMap<OsString, OsString>;

/// A shared, cheaply cloned environment table.
#[derive(Clone, Debug)]
pub struct Environment {
    vars: Arc<RwLock<Table>>,
    scoped: Arc<RwLock<BTreeMap<String, Scoped>>>,
}

/// The variables of one event source, and which [`Scope`] wrote them.
#[derive(Debug)]
struct Scoped {
    owner: u64,
    vars: Table,
}

/// The right to set one source's scoped variables; they go when it is dropped.
/// A newer scope of the same source (a watch a reload started again) wins over
/// an older one, whatever order their tasks end in.
#[derive(Debug)]
pub(crate) struct Scope {
    env: Environment,
    source: String,
    owner: u64,
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
            scoped: Arc::default(),
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

    /// The table for a run of a job that starts on `when`: with the variables
    /// scoped to its event source, if any.
    pub(crate) fn snapshot_for(&self, when: &When) -> Table {
        let mut table = self.snapshot();
        if let When::Event { source, .. } = when {
            let scoped = self.scoped.read().unwrap_or_else(|p| p.into_inner());
            if let Some(scoped) = scoped.get(source) {
                table.extend(scoped.vars.clone());
            }
        }
        table
    }

    /// A new scope for `source`'s variables (none set yet).
    pub(crate) fn scope(&self, source: &str) -> Scope {
        static OWNERS: AtomicU64 = AtomicU64::new(0);
        Scope {
            env: self.clone(),
            source: source.to_string(),
            owner: OWNERS.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Scope {
    /// Replaces the source's scoped variables with `vars`, unless a newer scope of
    /// the same source has set them.
    pub(crate) fn set(&self, vars: Table) {
        let mut scoped = self.env.scoped.write().unwrap_or_else(|p| p.into_inner());
        let newer = scoped
            .get(&self.source)
            .is_some_and(|current| current.owner > self.owner);
        if !newer {
            let owner = self.owner;
            scoped.insert(self.source.clone(), Scoped { owner, vars });
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let mut scoped = self.env.scoped.write().unwrap_or_else(|p| p.into_inner());
        if scoped
            .get(&self.source)
            .is_some_and(|c| c.owner == self.owner)
        {
            scoped.remove(&self.source);
        }
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
    format!("CONTAINERPILOT_{}_{suffix}", shell_word(job))
}

/// `text` upper-cased, every run of characters other than ASCII letters and
/// digits turned into one `_`.
pub(crate) fn shell_word(text: &str) -> String {
    let mut word = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_uppercase());
        } else if !word.ends_with('_') {
            word.push('_');
        }
    }
    word
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
    fn scoped_variables_reach_only_jobs_of_their_source_and_the_newest_scope_wins() {
        let env = Environment::from_process();
        let on = |source: &str| When::Event {
            code: crate::events::EventCode::Changed,
            source: source.to_string(),
            frequency: crate::config::model::Frequency::Each,
            timeout: None,
        };
        let value = |when: &When| {
            env.snapshot_for(when)
                .get(&OsString::from("SCOPED"))
                .cloned()
        };
        let old = env.scope("watch.cfg");
        old.set([("SCOPED".into(), "old".into())].into());
        assert_eq!(value(&on("watch.cfg")), Some("old".into()));
        assert_eq!(value(&on("watch.other")), None);
        assert_eq!(value(&When::default()), None);
        assert!(!env.snapshot().contains_key(&OsString::from("SCOPED")));
        // A reload started the watch again: the old task's late write and its
        // end change nothing.
        let new = env.scope("watch.cfg");
        new.set([("SCOPED".into(), "new".into())].into());
        old.set([("SCOPED".into(), "late".into())].into());
        drop(old);
        assert_eq!(value(&on("watch.cfg")), Some("new".into()));
        drop(new);
        assert_eq!(value(&on("watch.cfg")), None);
    }

    #[test]
    fn template_data_is_lossy_and_the_table_is_not() {
        let raw = OsString::from_vec(b"a\xffb".to_vec());
        let table: Table = [(OsString::from("RAW"), raw.clone())].into();
        assert_eq!(template_data(&table)["RAW"], "a\u{fffd}b");
        assert_eq!(table[&OsString::from("RAW")], raw);
    }
}
