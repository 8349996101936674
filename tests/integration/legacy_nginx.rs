//! A legacy application wrapped as PID 1: Debian's nginx, unchanged, run by
//! autopilot in its own PID namespace as it would be in a container. nginx
//! forks workers, writes a pid file, reloads on SIGHUP and stops gracefully on
//! SIGQUIT; autopilot must pass all of that through.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::{free_port, http, wait_until, Autopilot, Mode, Running, Scratch};
use nix::sys::signal::Signal;

/// A site nginx serves from the scratch directory on a loopback port.
struct Site {
    scratch: Scratch,
    port: u16,
}

impl Site {
    fn new() -> Site {
        common::require_program("nginx", "nginx-light");
        let scratch = Scratch::new();
        // nginx's workers run as `nobody`: they must be able to read the site.
        std::fs::set_permissions(scratch.dir(), std::fs::Permissions::from_mode(0o755))
            .expect("open the scratch directory");
        std::fs::create_dir(scratch.path("www")).expect("www");
        let site = Site {
            scratch,
            port: free_port(),
        };
        site.publish("hello from Debian's nginx\n");
        site.scratch.write(
            "nginx.conf",
            &format!(
                "worker_processes 2;\n\
                 pid {dir}/nginx.pid;\n\
                 error_log stderr notice;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  server {{ listen 127.0.0.1:{port}; root {dir}/www; }}\n}}\n",
                dir = site.scratch.dir().display(),
                port = site.port,
            ),
        );
        site
    }

    fn publish(&self, page: &str) {
        self.scratch.write("www/index.html", page);
    }

    /// `nginx -g 'daemon off;'`, as a Dockerfile's CMD runs it.
    fn nginx_command(&self) -> Vec<String> {
        let conf = self.scratch.path("nginx.conf").display().to_string();
        ["nginx", "-c", &conf, "-g", "daemon off;"]
            .map(str::to_string)
            .to_vec()
    }

    fn page(&self) -> Option<String> {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        match http::request(address, "GET", "/", "") {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    }

    fn wait_for_page(&self, page: &str) {
        wait_until(&format!("nginx to serve {page:?}"), || {
            self.page().as_deref() == Some(page)
        });
    }
}

/// nginx's master process: autopilot's child.
fn nginx_master(autopilot: &Running) -> i32 {
    let mut master = None;
    wait_until("nginx's master process", || {
        master = common::procfs::children(autopilot.autopilot_pid())
            .into_iter()
            .find(|&pid| common::procfs::command_name(pid).as_deref() == Some("nginx"));
        master.is_some()
    });
    master.expect("found by wait_until")
}

#[test]
fn nginx_as_the_app_serves_reloads_on_hup_and_stops_on_a_forwarded_quit() {
    let site = Site::new();
    let autopilot = Autopilot::new(Mode::Pid1, site.nginx_command()).start();
    site.wait_for_page("hello from Debian's nginx\n");
    let master = nginx_master(&autopilot);
    assert_eq!(
        common::procfs::children(master).len(),
        2,
        "nginx forked its two workers"
    );

    // `docker kill -s HUP`: forwarded, nginx reloads (new workers).
    let workers_before = common::procfs::children(master);
    site.publish("hello again\n");
    autopilot.signal(Signal::SIGHUP);
    wait_until("nginx to replace its workers after SIGHUP", || {
        let workers = common::procfs::children(master);
        !workers.is_empty() && workers.iter().all(|w| !workers_before.contains(w))
    });
    site.wait_for_page("hello again\n");

    // `docker kill -s QUIT`: forwarded, nginx's graceful stop; its exit
    // code (0) is autopilot's.
    autopilot.signal(Signal::SIGQUIT);
    let finished = autopilot.finish();
    let log = finished.stderr_text();
    assert_eq!(finished.code, 0, "{log}");
    assert!(log.contains("signal 1 (SIGHUP) received"), "{log}");
    assert!(log.contains("signal 3 (SIGQUIT) received"), "{log}");
    assert!(site.page().is_none(), "nginx is gone");
    assert!(!site.scratch.path("nginx.pid").exists(), "nginx cleaned up");
}

#[test]
fn nginx_as_a_job_gets_its_stop_signal_on_docker_stop() {
    let site = Site::new();
    let exec = serde_json::to_string(&site.nginx_command()).expect("argv as JSON");
    let config = site.scratch.config(&format!(
        r#"{{ jobs: [{{
              name: "nginx", exec: {exec}, stopSignal: "SIGQUIT",
              health: {{ http: "http://127.0.0.1:{port}/", interval: 1, ttl: 5 }},
           }}] }}"#,
        port = site.port
    ));
    let autopilot = Autopilot::new(Mode::Pid1, ["-config", &config]).start();
    site.wait_for_page("hello from Debian's nginx\n");
    nginx_master(&autopilot);

    // `docker stop`: SIGTERM to PID 1, which stops nginx with SIGQUIT.
    autopilot.signal(Signal::SIGTERM);
    let finished = autopilot.finish();
    let log = finished.stdout_text();
    assert_eq!(finished.code, 0, "{log}");
    assert!(log.contains("signal 3 (SIGQUIT) received"), "{log}");
    assert!(!log.contains("(SIGTERM) received from"), "{log}");
    assert!(site.page().is_none(), "nginx is gone");
}
