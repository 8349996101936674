//! `jobs[].render` [beyond]: what consul-template did beside ContainerPilot,
//! done by the job itself. Before each run the job renders its template
//! (autopilot's Go template engine: the environment as data, ContainerPilot's
//! and consul-template's functions over the catalog data the template reads)
//! and replaces the output file atomically when the content differs from
//! what it holds. The caller runs the exec only then.
//!
//! A render that reads data not fetched yet waits: the [`follow::Follower`]
//! fetches it and tells the job when it is there (and again whenever it
//! changes), and the job renders then.
//!
//! This module owns rendering and writing the file; when to render and what
//! a run means belong to the job ([`super`]).

mod follow;

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::model::RenderConfig;
use crate::config::template::{self, Catalog, Dependency};
use crate::config::{Env, TextPosition};
use crate::discovery::Discovery;
use crate::tasks::Tasks;

pub(super) use follow::Follower;

/// What a render did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The text differs from the job's previous render (at its first render:
    /// from what the file held), or the file did not hold it: the file now
    /// holds it.
    Changed,
    /// The same text as the job's previous render, and the file holds it.
    Unchanged,
    /// The template reads data that is not there yet: nothing was written.
    Waiting(BTreeSet<Dependency>),
}

#[derive(Debug, thiserror::Error)]
pub(super) enum RenderError {
    #[error("cannot read the template {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("template {path}:{position}: {message}")]
    Template {
        path: PathBuf,
        position: TextPosition,
        message: String,
    },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("template {path} reads the catalog ({first}), but no consul or etcd is configured")]
    NoCatalog { path: PathBuf, first: String },
}

/// A render job's template and the data behind it.
#[derive(Debug)]
pub(super) struct Renderer {
    config: RenderConfig,
    follower: Option<Follower>,
    /// The last render read catalog data (so it may change).
    follows_data: AtomicBool,
    /// The text this job rendered last (before its first render: what the
    /// file held when the job was created). Comparing with it rather than
    /// with the file lets several jobs render one file: each runs its exec
    /// when the text changed for it, whoever wrote the file first.
    last: Mutex<Option<String>>,
}

impl Renderer {
    /// Must be called inside the runtime: the follower is a task.
    pub(super) fn new(
        config: RenderConfig,
        discovery: Option<Arc<Discovery>>,
        tasks: &Tasks,
    ) -> Renderer {
        let follower = discovery.map(|discovery| Follower::start(discovery, config.wait, tasks));
        let held = fs::read_to_string(&config.output).ok();
        Renderer {
            config,
            follower,
            follows_data: AtomicBool::new(false),
            last: Mutex::new(held),
        }
    }

    /// Did the last render read catalog data? The job then stays to render
    /// again when the data changes, even after its last run.
    pub(super) fn follows_data(&self) -> bool {
        self.follows_data.load(Ordering::Relaxed)
    }

    pub(super) fn output(&self) -> &Path {
        &self.config.output
    }

    /// Renders with the data fetched so far, and tells the follower what
    /// the template read.
    pub(super) fn render(&self, env: &Env) -> Result<Outcome, RenderError> {
        let catalog = self
            .follower
            .as_ref()
            .map_or_else(|| Arc::new(Catalog::new()), Follower::catalog);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (outcome, used) = render(&self.config, env, &catalog, &mut last)?;
        self.follows_data.store(!used.is_empty(), Ordering::Relaxed);
        match &self.follower {
            Some(follower) => follower.want(used),
            None => {
                if let Some(first) = used.first() {
                    return Err(RenderError::NoCatalog {
                        path: self.config.template.clone(),
                        first: first.to_string(),
                    });
                }
            }
        }
        Ok(outcome)
    }

    /// Resolves when the data behind the template changed (never without a
    /// catalog).
    pub(super) async fn data_changed(&mut self) {
        match &mut self.follower {
            Some(follower) => follower.changed().await,
            None => std::future::pending().await,
        }
    }
}

/// Renders `config.template` with `env` as data and `catalog` behind
/// consul-template's data functions, and writes the result to
/// `config.output` if it differs from what the file holds. `last` is the
/// text the job had before (`None`: nothing, so any text is new); it becomes
/// this render's. Also gives what the template read.
fn render(
    config: &RenderConfig,
    env: &Env,
    catalog: &Catalog,
    last: &mut Option<String>,
) -> Result<(Outcome, BTreeSet<Dependency>), RenderError> {
    let source = fs::read_to_string(&config.template).map_err(|source| RenderError::Read {
        path: config.template.clone(),
        source,
    })?;
    let rendered = template::render_with_catalog(&source, env, catalog).map_err(|error| {
        RenderError::Template {
            path: config.template.clone(),
            position: TextPosition::of_offset(&source, error.offset),
            message: error.message,
        }
    })?;
    if !rendered.missing.is_empty() {
        return Ok((Outcome::Waiting(rendered.missing), rendered.used));
    }
    let current = fs::read(&config.output).ok();
    let same = last.as_deref() == Some(rendered.text.as_str());
    if current.as_deref() != Some(rendered.text.as_bytes()) {
        replace(&config.output, rendered.text.as_bytes()).map_err(|source| RenderError::Write {
            path: config.output.clone(),
            source,
        })?;
    } else if same {
        *last = Some(rendered.text);
        return Ok((Outcome::Unchanged, rendered.used));
    }
    *last = Some(rendered.text);
    Ok((Outcome::Changed, rendered.used))
}

/// Replaces `path` with `contents` atomically: a reader sees the old file or
/// the new one, never half of it. The new file keeps the old one's
/// permissions (else 0644 less the umask). Written by hand rather than with
/// the `tempfile` crate, whose files are created 0600: a rendered config must
/// stay readable by whoever read the old one.
fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    // Unique per process and per write, in the same directory (a rename is
    // atomic only within one filesystem).
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let temporary = path.with_file_name(format!(
        ".{}.autopilot-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_new(&temporary, contents, fs::metadata(path).ok())
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

fn write_new(path: &Path, contents: &[u8], like: Option<fs::Metadata>) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)?;
    file.write_all(contents)?;
    if let Some(old) = like {
        file.set_permissions(old.permissions())?;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::template::{Fetched, ServiceInstance, ServiceQuery};
    use std::os::unix::fs::PermissionsExt;

    fn setup(template: &str) -> (tempfile::TempDir, RenderConfig) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("in.ctmpl"), template).unwrap();
        let config = RenderConfig {
            template: dir.path().join("in.ctmpl"),
            output: dir.path().join("out.conf"),
            wait: None,
        };
        (dir, config)
    }

    fn web() -> Dependency {
        Dependency::Service(ServiceQuery::parse("web").unwrap())
    }

    fn catalog(ports: &[u16]) -> Catalog {
        let instances = ports
            .iter()
            .map(|port| ServiceInstance {
                id: format!("web-{port}"),
                address: "127.0.0.1".into(),
                port: *port,
                status: "passing".into(),
                ..ServiceInstance::default()
            })
            .collect();
        Catalog::from([(web(), Fetched::Instances(instances))])
    }

    /// A render by a job created when the output held what it holds now.
    fn outcome(config: &RenderConfig, ports: &[u16]) -> Outcome {
        let mut last = fs::read_to_string(&config.output).ok();
        render(config, &Env::new(), &catalog(ports), &mut last)
            .unwrap()
            .0
    }

    const UPSTREAM: &str =
        "{{ range service \"web\" }}server {{ .Address }}:{{ .Port }};\n{{ end }}";

    #[test]
    fn writes_only_when_the_content_changes() {
        let (dir, config) = setup(UPSTREAM);
        assert_eq!(outcome(&config, &[80, 81]), Outcome::Changed);
        assert_eq!(
            fs::read_to_string(&config.output).unwrap(),
            "server 127.0.0.1:80;\nserver 127.0.0.1:81;\n"
        );
        assert_eq!(outcome(&config, &[80, 81]), Outcome::Unchanged);
        assert_eq!(outcome(&config, &[80]), Outcome::Changed);
        assert_eq!(
            fs::read_to_string(&config.output).unwrap(),
            "server 127.0.0.1:80;\n"
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
    }

    #[test]
    fn data_not_fetched_yet_holds_the_render_back() {
        let (_dir, config) = setup(UPSTREAM);
        let (outcome, used) = render(&config, &Env::new(), &Catalog::new(), &mut None).unwrap();
        assert_eq!(outcome, Outcome::Waiting(BTreeSet::from([web()])));
        assert_eq!(used, BTreeSet::from([web()]));
        assert!(!config.output.exists(), "nothing is written while waiting");
    }

    #[tokio::test]
    async fn without_a_catalog_data_functions_are_an_error() {
        let (_dir, config) = setup(UPSTREAM);
        let renderer = Renderer::new(config, None, &Tasks::default());
        let text = renderer.render(&Env::new()).unwrap_err().to_string();
        assert!(text.contains("no consul or etcd is configured"), "{text}");
    }

    #[test]
    fn each_job_compares_with_its_own_previous_render() {
        let (_dir, config) = setup(UPSTREAM);
        let held = |config: &RenderConfig| fs::read_to_string(&config.output).ok();
        let render_as = |last: &mut Option<String>, ports: &[u16]| {
            render(&config, &Env::new(), &catalog(ports), last)
                .unwrap()
                .0
        };
        // Two jobs created before the file exists.
        let (mut first, mut second) = (None, None);
        assert_eq!(render_as(&mut first, &[80]), Outcome::Changed);
        // The file already holds this text, but it is new to the second job.
        assert_eq!(render_as(&mut second, &[80]), Outcome::Changed);
        assert_eq!(render_as(&mut second, &[80]), Outcome::Unchanged);
        assert_eq!(render_as(&mut first, &[80, 81]), Outcome::Changed);
        assert_eq!(render_as(&mut second, &[80, 81]), Outcome::Changed);
        // A job created once the file exists starts from what it holds.
        let mut third = held(&config);
        assert_eq!(render_as(&mut third, &[80, 81]), Outcome::Unchanged);
        fs::write(&config.output, "edited by hand").unwrap();
        assert_eq!(
            render_as(&mut third, &[80, 81]),
            Outcome::Changed,
            "the file is restored"
        );
        assert_eq!(
            held(&config).as_deref(),
            Some("server 127.0.0.1:80;\nserver 127.0.0.1:81;\n")
        );
    }

    #[test]
    fn a_replaced_file_keeps_its_permissions() {
        let (_dir, config) = setup(UPSTREAM);
        fs::write(&config.output, "old").unwrap();
        fs::set_permissions(&config.output, fs::Permissions::from_mode(0o640)).unwrap();
        outcome(&config, &[80]);
        let mode = fs::metadata(&config.output).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn errors_name_the_file_and_the_place() {
        let (_dir, config) = setup("line one\n  {{ service \"db|bogus\" }}");
        let error = render(&config, &Env::new(), &catalog(&[80]), &mut None).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("in.ctmpl:2:6:") && text.contains("invalid filter: \"bogus\""),
            "{text}"
        );
        assert!(!config.output.exists(), "nothing is written on error");
        let missing = RenderConfig {
            template: config.template.with_file_name("nope.ctmpl"),
            ..config.clone()
        };
        let text = render(&missing, &Env::new(), &catalog(&[]), &mut None)
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("cannot read the template"), "{text}");
        fs::write(&config.template, UPSTREAM).unwrap();
        let unwritable = RenderConfig {
            output: config.output.join("sub/out"),
            ..config
        };
        let text = render(&unwritable, &Env::new(), &catalog(&[80]), &mut None)
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("cannot write"), "{text}");
    }
}
