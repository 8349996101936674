//! `jobs[].render` [beyond], end to end: a real autopilot watching a service
//! in the Consul double renders a template from its healthy instances, and
//! runs the job's exec only when the rendered file changed.

use crate::common;

use std::net::SocketAddr;

use common::{http, Autopilot, Mode, Scratch};
use consul_double::{Config, ConsulDouble};
use nix::sys::signal::Signal;

/// A Consul double, and a scratch directory holding `template` as `name`.
fn setup(name: &str, template: &str) -> (ConsulDouble, Scratch) {
    let consul = ConsulDouble::start(Config::default()).expect("consul double");
    let scratch = Scratch::new();
    scratch.write(name, template);
    (consul, scratch)
}

/// A `PUT` to the double's agent API that must succeed.
fn put(consul: SocketAddr, path: &str, body: &str) {
    let (status, answer) = http::request(consul, "PUT", path, body).expect("PUT to the double");
    assert_eq!(status, 200, "PUT {path}: {answer}");
}

fn register(consul: SocketAddr, id: &str, port: u16) {
    let body = format!(
        r#"{{"ID":"{id}","Name":"web","Address":"127.0.0.1","Port":{port},"Check":{{"TTL":"60s","Status":"passing"}}}}"#
    );
    put(consul, "/v1/agent/service/register", &body);
}

fn deregister(consul: SocketAddr, id: &str) {
    put(consul, &format!("/v1/agent/service/deregister/{id}"), "");
}

/// `docker stop`: autopilot must end cleanly.
fn stop(autopilot: common::Running) {
    autopilot.signal(Signal::SIGTERM);
    assert_eq!(autopilot.finish().code, 0);
}

/// autopilot with `config` (plus `consul: CONSUL`) in the scratch
/// directory, talking to `consul`.
fn start(scratch: &Scratch, consul: &ConsulDouble, config: &str) -> common::Running {
    let config = scratch.config(&config.replacen('{', r#"{ consul: "{{ .CONSUL }}","#, 1));
    Autopilot::new(Mode::Subreaper, ["-config", &config])
        .env("CONSUL", &consul.addr().to_string())
        .env("STATE_SUFFIX", "from the environment")
        .current_dir(scratch.dir())
        .start()
}

#[test]
fn the_exec_runs_only_when_the_rendered_file_changed() {
    // Only whether `web` has instances shows in the output: a second
    // instance changes the watch, but not the file.
    let (consul, scratch) = setup(
        "state.ctmpl",
        r#"{{ if service "web" }}up{{ else }}down{{ end }} ({{ .STATE_SUFFIX }})"#,
    );
    register(consul.addr(), "web-a", 8001);
    let autopilot = start(
        &scratch,
        &consul,
        r#"{
          jobs: [
            { name: "reload",
              when: { source: "watch.web", each: "changed" },
              render: { template: "state.ctmpl", output: "state" },
              exec: ["sh", "-c", "echo \"reload $(cat state)\" >> log"] },
            { name: "after", exec: ["sh", "-c", "echo ok >> log"],
              when: { source: "reload", each: "exitSuccess" } },
          ],
          watches: [{ name: "web", interval: 1 }],
        }"#,
    );
    scratch.wait_for_lines(&["reload up (from the environment)", "ok"]);
    register(consul.addr(), "web-b", 8002);
    // The render is unchanged: no exec, but the run still counts as a success.
    scratch.wait_for_lines(&["reload up (from the environment)", "ok", "ok"]);
    deregister(consul.addr(), "web-a");
    scratch.wait_for_lines(&["reload up (from the environment)", "ok", "ok", "ok"]);
    deregister(consul.addr(), "web-b");
    scratch.wait_for_lines(&[
        "reload up (from the environment)",
        "ok",
        "ok",
        "ok",
        "reload down (from the environment)",
        "ok",
    ]);
    assert_eq!(scratch.read("state"), "down (from the environment)");
    stop(autopilot);
}

#[test]
fn upstreams_follow_the_healthy_instances() {
    let (consul, scratch) = setup(
        "upstreams.ctmpl",
        "{{ range services }}upstream {{ .Name }} {\n\
         {{- range service .Name }}\n  server {{ .Address }}:{{ .Port }};{{ end }}\n}\n{{ end }}",
    );
    let autopilot = start(
        &scratch,
        &consul,
        r#"{
          jobs: [{ name: "render", when: { source: "watch.web", each: "changed" },
                   render: { template: "upstreams.ctmpl", output: "upstreams.conf" } }],
          watches: [{ name: "web", interval: 1 }],
        }"#,
    );
    register(consul.addr(), "web-b", 8002);
    register(consul.addr(), "web-a", 8001);
    let both = "upstream web {\n  server 127.0.0.1:8001;\n  server 127.0.0.1:8002;\n}\n";
    common::wait_until("both instances in the upstreams", || {
        scratch.read("upstreams.conf") == both
    });
    // A failing TTL check takes an instance out, as in Consul.
    put(consul.addr(), "/v1/agent/check/fail/service:web-a", "");
    common::wait_until("web-a out of the upstreams", || {
        scratch.read("upstreams.conf") == "upstream web {\n  server 127.0.0.1:8002;\n}\n"
    });
    stop(autopilot);
}

#[test]
fn a_template_error_fails_the_run_and_says_where() {
    let (consul, scratch) = setup(
        "bad.ctmpl",
        "first line\n{{ range service \"db\" }}x{{ end }}",
    );
    register(consul.addr(), "web-a", 8001);
    let autopilot = start(
        &scratch,
        &consul,
        r#"{
          jobs: [
            { name: "render", when: { source: "watch.web", once: "changed" },
              render: { template: "bad.ctmpl", output: "out" },
              exec: ["sh", "-c", "echo ran >> log"] },
            { name: "after", exec: ["sh", "-c", "echo failed >> log"],
              when: { source: "render", once: "exitFailed" } },
          ],
          watches: [{ name: "web", interval: 1 }],
        }"#,
    );
    // Both jobs are complete after one run each: autopilot exits by itself.
    let finished = autopilot.finish();
    assert_eq!(finished.code, 0);
    assert_eq!(scratch.lines(), ["failed"]);
    let output = finished.stdout_text();
    assert!(
        output.contains("bad.ctmpl:2:10: error calling service: \"db\" is not watched"),
        "{output}"
    );
    assert!(!scratch.path("out").exists(), "nothing is written");
}

#[test]
fn a_consul_template_style_nginx_template_renders() {
    // Written in the style of consul-template's nginx examples, which
    // ContainerPilot users rendered with consul-template.
    renders_nginx_upstreams(include_str!("../fixtures/templates/nginx-upstreams.ctmpl"));
}

#[test]
fn containerpilots_own_consul_template_for_nginx_renders_as_it_is() {
    // ContainerPilot 3.8's integration test rendered this with consul-template.
    let Some(corpus) = common::compat_dir() else {
        return;
    };
    let template = std::fs::read_to_string(corpus.join("templates/v3-3.8.0-nginx-consul.ctmpl"))
        .expect("the corpus's nginx template");
    renders_nginx_upstreams(&template);
}

/// Renders `template` with two instances of the watched `web` and none of
/// the watched `db`, and checks nginx's upstream and location for `web`.
fn renders_nginx_upstreams(template: &str) {
    let (consul, scratch) = setup("nginx.ctmpl", template);
    register(consul.addr(), "web-a", 8001);
    register(consul.addr(), "web-b", 8002);
    let autopilot = start(
        &scratch,
        &consul,
        r#"{
          jobs: [{ name: "render", when: { source: "watch.web", each: "changed" },
                   render: { template: "nginx.ctmpl", output: "nginx.conf" } }],
          watches: [{ name: "web", interval: 1 }, { name: "db", interval: 1 }],
        }"#,
    );
    common::wait_until("nginx.conf with both web instances", || {
        let conf = scratch.read("nginx.conf");
        conf.contains("server 127.0.0.1:8001;") && conf.contains("server 127.0.0.1:8002;")
    });
    let conf = scratch.read("nginx.conf");
    for expected in [
        "upstream web {",
        "location = /web {",
        "proxy_pass http://web/;",
        "listen       80;",
    ] {
        assert!(
            conf.contains(expected),
            "{expected:?} missing from:\n{conf}"
        );
    }
    // `db` is watched but has no healthy instance: `if service .Name` skips it.
    assert!(!conf.contains("db") && !conf.contains("{{"), "{conf}");
    stop(autopilot);
}
