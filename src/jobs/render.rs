//! `jobs[].render` [beyond]: what consul-template did beside ContainerPilot,
//! done by the job itself. Before each run the job renders its template
//! (autopilot's Go template engine: the environment as data, ContainerPilot's
//! functions, and consul-template's `service`/`services` over the instances
//! the watches saw last), and replaces the output file atomically when the
//! content differs from what it holds. The caller runs the exec only then.
//!
//! This module owns rendering and writing the file; when to render and what
//! a run means belong to the job ([`super`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::model::RenderConfig;
use crate::config::template::{self, Catalog, ServiceInstance};
use crate::config::{Env, TextPosition};
use crate::discovery::Instance;

/// What a render did to the output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file now holds new content.
    Changed,
    /// The file already held exactly this content; it was not touched.
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
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
}

/// Renders `config.template` with `env` as data and `watched` (watch name →
/// healthy instances) behind `service`/`services`, and writes the result to
/// `config.output` if it differs from what the file holds.
pub fn render(
    config: &RenderConfig,
    env: &Env,
    watched: &BTreeMap<String, Vec<Instance>>,
) -> Result<Outcome, RenderError> {
    let source = fs::read_to_string(&config.template).map_err(|source| RenderError::Read {
        path: config.template.clone(),
        source,
    })?;
    let text = template::render_with_catalog(&source, env, &catalog(watched)).map_err(|error| {
        RenderError::Template {
            path: config.template.clone(),
            position: TextPosition::of_offset(&source, error.offset),
            message: error.message,
        }
    })?;
    if fs::read(&config.output).is_ok_and(|current| current == text.as_bytes()) {
        return Ok(Outcome::Unchanged);
    }
    replace(&config.output, text.as_bytes()).map_err(|source| RenderError::Write {
        path: config.output.clone(),
        source,
    })?;
    Ok(Outcome::Changed)
}

fn catalog(watched: &BTreeMap<String, Vec<Instance>>) -> Catalog {
    watched
        .iter()
        .map(|(name, instances)| {
            let instances = instances
                .iter()
                .map(|instance| ServiceInstance {
                    id: instance.id.clone(),
                    address: instance.address.clone(),
                    port: instance.port,
                })
                .collect();
            (name.clone(), instances)
        })
        .collect()
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
    use std::os::unix::fs::PermissionsExt;

    fn setup(template: &str) -> (tempfile::TempDir, RenderConfig) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("in.ctmpl"), template).unwrap();
        let config = RenderConfig {
            template: dir.path().join("in.ctmpl"),
            output: dir.path().join("out.conf"),
        };
        (dir, config)
    }

    fn watched(ports: &[u16]) -> BTreeMap<String, Vec<Instance>> {
        let instances = ports
            .iter()
            .map(|port| Instance {
                id: format!("web-{port}"),
                address: "127.0.0.1".into(),
                port: *port,
            })
            .collect();
        BTreeMap::from([("web".to_string(), instances)])
    }

    const UPSTREAM: &str =
        "{{ range service \"web\" }}server {{ .Address }}:{{ .Port }};\n{{ end }}";

    #[test]
    fn writes_only_when_the_content_changes() {
        let (dir, config) = setup(UPSTREAM);
        let env = Env::new();
        let render = |ports: &[u16]| render(&config, &env, &watched(ports)).unwrap();
        assert_eq!(render(&[80, 81]), Outcome::Changed);
        assert_eq!(
            fs::read_to_string(&config.output).unwrap(),
            "server 127.0.0.1:80;\nserver 127.0.0.1:81;\n"
        );
        assert_eq!(render(&[80, 81]), Outcome::Unchanged);
        assert_eq!(render(&[80]), Outcome::Changed);
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
    fn a_replaced_file_keeps_its_permissions() {
        let (_dir, config) = setup(UPSTREAM);
        fs::write(&config.output, "old").unwrap();
        fs::set_permissions(&config.output, fs::Permissions::from_mode(0o640)).unwrap();
        render(&config, &Env::new(), &watched(&[80])).unwrap();
        let mode = fs::metadata(&config.output).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn errors_name_the_file_and_the_place() {
        let (_dir, config) = setup("line one\n  {{ service \"db\" }}");
        let error = render(&config, &Env::new(), &watched(&[80])).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("in.ctmpl:2:6:") && text.contains("\"db\" is not watched"),
            "{text}"
        );
        assert!(!config.output.exists(), "nothing is written on error");
        let missing = RenderConfig {
            template: config.template.with_file_name("nope.ctmpl"),
            ..config.clone()
        };
        let text = render(&missing, &Env::new(), &watched(&[]))
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("cannot read the template"), "{text}");
        fs::write(&config.template, UPSTREAM).unwrap();
        let unwritable = RenderConfig {
            output: config.output.join("sub/out"),
            ..config
        };
        let text = render(&unwritable, &Env::new(), &watched(&[80]))
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("cannot write"), "{text}");
    }
}
