//! `jobs[].render` [beyond], end to end: a real autopilot renders templates
//! from what they read in the Consul double (services, KV keys and trees),
//! with or without a watch, runs the job's exec only when the rendered file
//! changed, and `--check` refuses broken templates before anything starts.
//! The fixture templates in `tests/fixtures/render/` (modelled on the
//! Autopilot Pattern images' nginx, haproxy, wordpress and kafka templates)
//! render to their expected outputs.

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
        .env("BROKER", "kafka-1")
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
        // A query built at run time: only rendering can find it malformed.
        "first line\n{{ range service (print \"db|\" \"bogus\") }}x{{ end }}",
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
        output.contains(
            "bad.ctmpl:2:10: error calling service: health.service: invalid filter: \"bogus\" in \"db|bogus\""
        ),
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

/// Registers `id` of service `name` at `address:port` with a TTL check in `status`.
fn register_instance(
    consul: SocketAddr,
    (name, id, address, port): (&str, &str, &str, u16),
    tags: &[&str],
    status: &str,
) {
    let body = serde_json::json!({
        "ID": id, "Name": name, "Address": address, "Port": port, "Tags": tags,
        "Meta": { "version": id.rsplit('-').next() },
        "Check": { "TTL": "600s", "Status": status },
    });
    put(consul, "/v1/agent/service/register", &body.to_string());
}

fn put_key(consul: SocketAddr, key: &str, value: &str) {
    put(consul, &format!("/v1/kv/{key}"), value);
}

/// The line where the wordpress fixture prints `timestamp` (RFC 3339 in UTC,
/// `2006-01-02T15:04:05Z`) reads `<timestamp>` instead of the time.
fn without_timestamps(text: &str) -> String {
    const PREFIX: &str = "// Rendered at ";
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| match line.strip_prefix(PREFIX) {
            Some(time)
                if time.len() == 21 && time.ends_with("Z.") && time.as_bytes()[10] == b'T' =>
            {
                format!("{PREFIX}<timestamp>.")
            }
            _ => line.to_string(),
        })
        .collect();
    lines.join("\n")
}

#[test]
fn fixture_templates_render_to_their_expected_outputs() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render");
    let names = ["nginx", "haproxy", "wordpress", "kafka"];
    let consul = ConsulDouble::start(Config::default()).expect("consul double");
    let scratch = Scratch::new();
    for name in names {
        let template = std::fs::read_to_string(fixtures.join(format!("{name}.ctmpl"))).unwrap();
        scratch.write(&format!("{name}.ctmpl"), &template);
    }
    let addr = consul.addr();
    // Two instances of each service: (service, ID, address, port), tags, status.
    type Instance<'a> = ((&'a str, &'a str, &'a str, u16), &'a [&'a str], &'a str);
    let instances: [Instance; 11] = [
        (("app", "app-1", "10.0.1.1", 8000), &["web"], "passing"),
        (
            ("app", "app-2", "10.0.1.2", 8000),
            &["web", "canary"],
            "passing",
        ),
        (
            ("db-internal", "db-internal-1", "10.0.9.1", 5432),
            &[],
            "passing",
        ),
        (
            ("api", "api-1", "10.0.2.1", 9000),
            &["blue", "green"],
            "passing",
        ),
        (("api", "api-2", "10.0.2.2", 9000), &["green"], "warning"),
        (
            ("mysql-primary", "mysql-1", "10.0.3.1", 3306),
            &[],
            "passing",
        ),
        (
            ("mysql-primary", "mysql-2", "10.0.3.2", 3306),
            &[],
            "critical",
        ),
        (
            ("memcached", "memcached-1", "10.0.4.1", 11211),
            &[],
            "passing",
        ),
        (
            ("memcached", "memcached-2", "10.0.4.2", 11211),
            &[],
            "passing",
        ),
        (("zookeeper", "zk-2", "10.0.5.2", 2181), &[], "passing"),
        (("zookeeper", "zk-1", "10.0.5.1", 2181), &[], "passing"),
    ];
    for (instance, tags, status) in instances {
        register_instance(addr, instance, tags, status);
    }
    for (key, value) in [
        ("nginx/acme/domain", "example.com"),
        ("nginx/acme/ready", "true"),
        ("nginx/acme/challenge/token", "tok3n"),
        ("nginx/acme/challenge/thumbprint", "thumb"),
        ("haproxy/maxconn", "4096"),
        ("wordpress/db/user", "wp"),
        ("wordpress/salts/auth_key", "a1"),
        ("wordpress/salts/secure_auth_key", "b2"),
        ("wordpress/salts/nested/ignored", "ls lists one level"),
        ("kafka/brokers/kafka-1/id", "7"),
        ("kafka/config/log/retention/hours", "72"),
        ("kafka/config/num/partitions", "3"),
        ("kafka/topics", r#"["orders","payments"]"#),
    ] {
        put_key(addr, key, value);
    }
    let jobs: Vec<String> = names
        .iter()
        .map(|name| format!(r#"{{ name: "{name}", render: {{ template: "{name}.ctmpl", output: "{name}.out" }} }}"#))
        .collect();
    let autopilot = start(
        &scratch,
        &consul,
        &format!("{{ jobs: [{}] }}", jobs.join(",")),
    );
    for name in names {
        let expected = std::fs::read_to_string(fixtures.join(format!("{name}.expected"))).unwrap();
        let output = || without_timestamps(&scratch.read(&format!("{name}.out")));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while output() != expected && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(output(), expected, "{name}");
    }
    stop(autopilot);
}

#[test]
fn kv_keys_render_without_any_watch_and_an_absent_key_holds_the_render_back() {
    let (consul, scratch) = setup(
        "app.ctmpl",
        r#"mode={{ key "app/mode" }} level={{ keyOrDefault "app/level" "info" }}"#,
    );
    let autopilot = start(
        &scratch,
        &consul,
        r#"{
          jobs: [
            { name: "config", render: { template: "app.ctmpl", output: "app.conf" },
              exec: ["sh", "-c", "echo \"reload $(cat app.conf)\" >> log"] },
            { name: "after", exec: ["sh", "-c", "echo after >> log"],
              when: { source: "config", once: "exitSuccess" } },
          ],
        }"#,
    );
    // `key` of an absent key waits for it: no file, no exec, no exitSuccess yet.
    consul
        .wait_for_request(std::time::Duration::from_secs(10), |r| {
            r.path == "/v1/kv/app/mode" && r.blocked
        })
        .expect("a blocking read of the absent key");
    assert!(!scratch.path("app.conf").exists());
    assert!(!scratch.path("log").exists());
    put_key(consul.addr(), "app/mode", "fast");
    scratch.wait_for_lines(&["reload mode=fast level=info", "after"]);
    put_key(consul.addr(), "app/level", "debug");
    scratch.wait_for_lines(&[
        "reload mode=fast level=info",
        "after",
        "reload mode=fast level=debug",
    ]);
    // A write that changes nothing the template reads runs nothing.
    put_key(consul.addr(), "app/unrelated", "x");
    put_key(consul.addr(), "app/level", "debug");
    put_key(consul.addr(), "app/mode", "slow");
    scratch.wait_for_lines(&[
        "reload mode=fast level=info",
        "after",
        "reload mode=fast level=debug",
        "reload mode=slow level=debug",
    ]);
    stop(autopilot);
}

#[test]
fn services_render_without_a_watch_with_filters_and_tags() {
    let (consul, scratch) = setup(
        "lb.ctmpl",
        r#"{{ range service "api|passing,warning" }}{{ .ID }}:{{ .Status }}:{{ .Tags }} {{ end }}"#,
    );
    let addr = consul.addr();
    register_instance(
        addr,
        ("api", "api-1", "10.0.2.1", 9000),
        &["b", "a"],
        "passing",
    );
    let autopilot = start(
        &scratch,
        &consul,
        r#"{ jobs: [{ name: "lb", render: { template: "lb.ctmpl", output: "lb.conf" } }] }"#,
    );
    common::wait_until("api-1 rendered", || {
        scratch.read("lb.conf") == "api-1:passing:[a b] "
    });
    register_instance(addr, ("api", "api-2", "10.0.2.2", 9000), &[], "warning");
    common::wait_until("api-2 rendered", || {
        scratch.read("lb.conf") == "api-1:passing:[a b] api-2:warning:[] "
    });
    put(addr, "/v1/agent/check/fail/service:api-1", "");
    common::wait_until("api-1 gone", || {
        scratch.read("lb.conf") == "api-2:warning:[] "
    });
    // Without `passing` alone, the filter is applied to every instance Consul lists.
    let query = consul
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/health/service/api")
        .expect("a health query");
    assert!(query.query_values("passing").is_empty(), "{query:?}");
    stop(autopilot);
}

#[test]
fn check_refuses_broken_templates_with_file_line_and_column() {
    let scratch = Scratch::new();
    let consul = r#"consul: "localhost:8500""#;
    for (backend, template, expected) in [
        (consul, "a\n  {{ secret \"x\" }}", "bad.ctmpl:2:6: template: function \"secret\" not defined (consul-template's secret is left out: Vault is not supported)"),
        (consul, "{{ key \"a\" \"b\" }}", "bad.ctmpl:1:4: template: wrong number of args for key: want 1 got 2"),
        (consul, "{{ range service \"web|ok\" }}{{ end }}", "bad.ctmpl:1:18: template: error calling service: health.service: invalid filter: \"ok\" in \"web|ok\""),
        (consul, "{{ if key \"a\" }}", "bad.ctmpl:1:4: template: unexpected EOF: {{if}} has no {{end}}"),
        ("logging: {}", "x{{ service \"web\" }}", "bad.ctmpl:1:5: template: service reads the catalog, but neither consul nor etcd is configured"),
        (r#"etcd: { endpoints: ["http://127.0.0.1:2379"] }"#, "{{ service \"web\" }}{{ tree \"a\" }}", "bad.ctmpl:1:23: template: tree reads the catalog, but etcd holds only service registrations: only `service` reads it"),
    ] {
        scratch.write("bad.ctmpl", template);
        let config = scratch.config(&format!(
            r#"{{ {backend}, jobs: [{{ name: "r", render: {{ template: "bad.ctmpl", output: "out" }} }}] }}"#
        ));
        let finished = Autopilot::new(Mode::Subreaper, ["--check", "-config", &config])
            .current_dir(scratch.dir())
            .run();
        assert_eq!(finished.code, 2, "{template:?}");
        let stderr = finished.stderr_text();
        assert!(stderr.contains(expected), "{template:?}: {stderr}");
    }
}
