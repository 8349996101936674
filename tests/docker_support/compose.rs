//! The repository's docker-compose.yml brought up for real, with the Consul
//! double standing in for Consul through an override file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::images::{consul_double_image, demo_images};
use super::{docker, unique_name, Container};
use crate::common;

/// `docker compose` where the plugin exists, else Debian's `docker-compose`.
pub(crate) fn compose_command() -> Command {
    static PLUGIN: OnceLock<bool> = OnceLock::new();
    let plugin = *PLUGIN.get_or_init(|| docker(&["compose", "version"]).status.success());
    if plugin {
        let mut command = Command::new("docker");
        command.arg("compose");
        command
    } else {
        Command::new("docker-compose")
    }
}

/// An override of the repository's docker-compose.yml: the Consul double
/// stands in for Consul (no registry holds Consul's image here) and the demo
/// images are the ones built beforehand; the user's file keeps Consul's image.
pub(crate) fn compose_override() -> String {
    let [backend, nginx] = demo_images();
    format!(
        r#"services:
  consul:
    image: {consul}
    command: ["--listen", "0.0.0.0:8500"]
  customers:
    image: {backend}
  sales:
    image: {backend}
  nginx:
    image: {nginx}
"#,
        consul = consul_double_image(),
    )
}

/// The demo brought up by compose; `down` when dropped.
pub(crate) struct ComposeProject {
    name: String,
    override_file: tempfile::NamedTempFile,
}

impl ComposeProject {
    pub(crate) fn new() -> ComposeProject {
        let override_file = tempfile::Builder::new()
            .suffix(".yml")
            .tempfile()
            .expect("a temporary compose override");
        std::fs::write(override_file.path(), compose_override()).expect("write the override");
        ComposeProject {
            name: unique_name("demo"),
            override_file,
        }
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = compose_command();
        command
            .current_dir(repository)
            .args(["--project-name", &self.name, "--file"])
            .arg(repository.join("docker-compose.yml"))
            .arg("--file")
            .arg(self.override_file.path())
            .args(args)
            .stdin(Stdio::null());
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> String {
        let output = common::run_to_success(
            &mut self.command(args),
            &format!("compose {}", args.join(" ")),
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    /// The containers of one service.
    pub(crate) fn containers(&self, service: &str) -> Vec<Container> {
        self.run(&["ps", "-q", service])
            .lines()
            .map(Container::adopt)
            .collect()
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = self
            .command(&["down", "--volumes", "--remove-orphans"])
            .output();
    }
}
