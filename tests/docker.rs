//! autopilot under a real Docker Engine: images built here, run and stopped
//! with the docker CLI exactly as users do.
//!
//! The PID 1 tests run autopilot under `unshare`, which is close to a
//! container but not one. Only a real engine gives `docker stop` (SIGTERM to
//! PID 1, SIGKILL after the grace period), `docker kill -s`, `docker run -t`,
//! `--user` with `--read-only`, scratch images without /var/run, Docker's own
//! /etc/resolv.conf and name server, and `docker compose`.
//!
//! No image registry is used: every image is built here, on `scratch` with
//! static binaries (autopilot, the Consul double, Debian's busybox-static) or
//! on a Debian base made with debootstrap and `docker import`ed under the
//! name the repository's Dockerfile uses. Base images are tagged and reused
//! (built only when the tag is missing); the images holding autopilot are
//! rebuilt every run (Docker's layer cache makes that cheap). Containers,
//! networks and compose projects a test creates are removed when the test
//! ends, failed or not.
//!
//! Needs a Docker daemon, `file`, busybox-static, debootstrap and
//! docker-compose (or the compose plugin): `.ci/run` installs them and starts
//! the daemon. Timings are printed (`cargo test --test docker -- --nocapture`).

// The integration crate's shared helpers (processes, HTTP, ports).
#[allow(dead_code)]
#[path = "integration/common/mod.rs"]
mod common;
mod docker_support;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use docker_support::catalog::{catalog_state, passing, registered, Consul};
use docker_support::compose::ComposeProject;
use docker_support::images::{busybox_image, image_once, static_binaries, BuildContext};
use docker_support::terminal::{exit_code_of, Terminal};
use docker_support::{unique_name, wait_for, Container, Network};

/// Docker's default grace period of `docker stop`.
const DOCKER_STOP_GRACE: Duration = Duration::from_secs(10);

/// The images of these tests, by tag.
const WRAP_IMAGE: &str = "autopilot-test/wrap";
const CONFIGURED_IMAGE: &str = "autopilot-test/configured";

/// The scripts the single-program tests run as the APP (under /test).
const TEST_SCRIPTS: &[(&str, &str)] = &[
    (
        "exit-on-term.sh",
        "trap 'echo \"app: got TERM\"; exit 42' TERM\n\
         echo \"app: ready\"\n\
         while :; do sleep 0.05; done\n",
    ),
    (
        "ignore-term.sh",
        "trap '' TERM\n\
         echo \"app: ready\"\n\
         while :; do sleep 0.05; done\n",
    ),
    (
        // The APP is this shell; its process group also holds the two members
        // of a pipeline (a pipeline, unlike a background job, keeps SIGQUIT).
        "group.sh",
        "trap 'echo \"app: got HUP\"' HUP\n\
         trap 'echo \"app: got QUIT\"' QUIT\n\
         trap 'echo \"app: got USR1\"' USR1\n\
         sh /test/member.sh first >&2 | sh /test/member.sh second\n",
    ),
    (
        "member.sh",
        "for signal in HUP QUIT USR1; do trap \"echo '$1: got '$signal\" $signal; done\n\
         echo \"$1: ready\"\n\
         while :; do sleep 0.05; done\n",
    ),
    (
        // Reports where it runs, then ends like a shell on Ctrl-C.
        "terminal.sh",
        "set -- $(cat /proc/$$/stat)\n\
         echo \"app: tty $(tty) process group $5 terminal's foreground group $8\"\n\
         trap 'echo \"app: got INT\"; exit 130' INT\n\
         echo \"app: ready\"\n\
         while :; do sleep 0.05; done\n",
    ),
    (
        // Each subshell starts a child and exits at once: the child is
        // re-parented to PID 1, which must reap it when it ends.
        "orphans.sh",
        "for i in 1 2 3 4 5; do\n\
           ( sh -c 'sleep 0.2; read -r _ _ _ parent _ < /proc/$$/stat; echo \"orphan: parent $parent\"' & )\n\
         done\n\
         echo \"app: orphans started\"\n\
         while :; do sleep 0.05; done\n",
    ),
];

/// Tini-style: `ENTRYPOINT ["autopilot", "--"]` on scratch with busybox.
fn wrap_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    image_once(WRAP_IMAGE, &BUILT, || {
        let context = BuildContext::new();
        context.copy(&static_binaries().autopilot, "autopilot");
        for (name, script) in TEST_SCRIPTS {
            context.write(&format!("test/{name}"), script);
        }
        context.build(
            WRAP_IMAGE,
            &format!(
                "FROM {}\n\
                 COPY autopilot /usr/local/bin/autopilot\n\
                 COPY test /test\n\
                 ENTRYPOINT [\"autopilot\", \"--\"]\n",
                busybox_image()
            ),
        );
    })
}

/// The APP of the configured images: says when it starts and when SIGTERM
/// reaches it, then exits 0.
const CONFIGURED_APP: &str = "echo 'app: started'; \
     trap 'echo \"app: got TERM\"; exit 0' TERM; \
     while :; do sleep 0.05; done";

/// A 3.x configuration: preStart, a health-checked service job, preStop and
/// postStop, with Consul reached by name through Docker's DNS.
fn v3_config() -> String {
    format!(
        r#"{{
  consul: "consul:8500",
  jobs: [
    {{ name: "preStart", exec: ["sh", "-c", "echo 'preStart: ran'"] }},
    {{
      name: "web",
      exec: ["sh", "-c", "{app}"],
      when: {{ source: "preStart", once: "exitSuccess" }},
      port: 8080,
      interfaces: ["eth0"],
      health: {{ exec: "true", interval: 1, ttl: 5 }},
    }},
    {{ name: "preStop", exec: ["sh", "-c", "echo 'preStop: ran'"], when: {{ source: "web", once: "stopping" }} }},
    {{ name: "postStop", exec: ["sh", "-c", "echo 'postStop: ran'"], when: {{ source: "web", once: "stopped" }} }},
  ],
}}
"#,
        app = CONFIGURED_APP.replace('"', "\\\"")
    )
}

/// The same in ContainerPilot 2's format; the APP comes from the command line.
const V2_CONFIG: &str = r#"{
  "consul": "consul:8500",
  "preStart": ["sh", "-c", "echo 'preStart: ran'"],
  "preStop": ["sh", "-c", "echo 'preStop: ran'"],
  "postStop": ["sh", "-c", "echo 'postStop: ran'"],
  "services": [
    { "name": "web", "port": 8080, "interfaces": ["eth0"], "health": ["true"], "poll": 1, "ttl": 5 }
  ]
}
"#;

/// `ENTRYPOINT ["autopilot"]` on scratch with busybox, a 3.x configuration
/// named by `CONTAINERPILOT`, a 2.x one beside it, and no /var/run.
fn configured_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    image_once(CONFIGURED_IMAGE, &BUILT, || {
        BuildContext::new()
            .copy(&static_binaries().autopilot, "autopilot")
            .write("etc/autopilot/v3.json5", &v3_config())
            .write("etc/autopilot/v2.json", V2_CONFIG)
            .build(
                CONFIGURED_IMAGE,
                &format!(
                    "FROM {}\n\
                     COPY autopilot /usr/local/bin/autopilot\n\
                     COPY etc /etc\n\
                     ENV CONTAINERPILOT=/etc/autopilot/v3.json5\n\
                     ENTRYPOINT [\"autopilot\"]\n",
                    busybox_image()
                ),
            );
    })
}

// ---- 2. single-program images --------------------------------------------------

/// Starts the wrap image with `ARGS` (docker run options, then the APP).
fn run_wrapped(options: &[&str], app: &[&str]) -> Container {
    let mut args = options.to_vec();
    args.push(wrap_image());
    args.extend_from_slice(app);
    Container::run(&args)
}

#[test]
fn docker_stop_ends_an_app_that_exits_on_sigterm_at_once_with_its_code() {
    let container = run_wrapped(&[], &["sh", "/test/exit-on-term.sh"]);
    container.wait_for_output("app: ready");
    let took = container.stop(&[]);
    println!("docker stop (APP exits on SIGTERM): {took:.2?}");
    assert_eq!(
        container.exit_code(),
        42,
        "the APP's exit code passes through"
    );
    assert!(
        container.logs().contains(&"app: got TERM".to_string()),
        "SIGTERM reached the APP; its output:\n{}",
        container.logs_text()
    );
    assert!(
        took < Duration::from_secs(1),
        "docker stop took {took:?}: the APP exited on SIGTERM, autopilot must not wait"
    );
}

#[test]
fn docker_stop_kills_an_app_that_ignores_sigterm_when_the_grace_period_ends() {
    let container = run_wrapped(&[], &["sh", "/test/ignore-term.sh"]);
    container.wait_for_output("app: ready");
    let took = container.stop(&["--time", "2"]);
    println!("docker stop --time 2 (APP ignores SIGTERM): {took:.2?}");
    assert_eq!(
        container.exit_code(),
        137,
        "Docker's SIGKILL ended the container; its output:\n{}",
        container.logs_text()
    );
    assert!(
        took >= Duration::from_secs(2) && took < DOCKER_STOP_GRACE,
        "docker stop --time 2 took {took:?}"
    );
}

#[test]
fn docker_kill_reaches_the_apps_process_group() {
    let container = run_wrapped(&[], &["sh", "/test/group.sh"]);
    container.wait_for_output("first: ready");
    container.wait_for_output("second: ready");
    for signal in ["HUP", "QUIT", "USR1"] {
        container.kill(signal);
        for member in ["first", "second"] {
            container.wait_for_output(&format!("{member}: got {signal}"));
        }
    }
    container.kill("KILL");
    assert_eq!(container.exit_code(), 137);
}

#[test]
fn docker_run_tty_gives_the_terminal_to_the_app() {
    let container = run_wrapped(&["--tty"], &["sh", "/test/terminal.sh"]);
    container.wait_for_output("app: ready");
    let logs = container.logs();
    let report = logs
        .iter()
        .find_map(|line| line.strip_prefix("app: tty "))
        .unwrap_or_else(|| panic!("no tty report; output:\n{}", container.logs_text()));
    let words: Vec<&str> = report.split_whitespace().collect();
    assert!(
        words[0].starts_with("/dev/pts/"),
        "the APP's stdin is the container's terminal: {report}"
    );
    assert_eq!(
        words[3],
        words.last().copied().unwrap_or_default(),
        "the APP's process group is the terminal's foreground group: {report}"
    );
}

#[test]
fn docker_kill_int_under_a_tty_acts_as_ctrl_c() {
    let container = run_wrapped(&["--tty"], &["sh", "/test/terminal.sh"]);
    container.wait_for_output("app: ready");
    // What Ctrl-C would do: SIGINT to the APP, which decides what it means
    // (a shell, a REPL or a dev server may well go on running).
    container.kill("INT");
    assert_eq!(
        container.exit_code(),
        130,
        "the APP ended on SIGINT as on Ctrl-C; output:\n{}",
        container.logs_text()
    );
    assert!(container.logs().contains(&"app: got INT".to_string()));
}

#[test]
fn ctrl_c_on_docker_run_it_reaches_the_app_through_its_terminal() {
    let name = unique_name("container");
    let _container = Container::adopt(&name);
    let (mut terminal, mut docker_run) = Terminal::attach(
        Command::new("docker")
            .args(["run", "--interactive", "--tty", "--name", &name])
            .args([wrap_image(), "sh", "/test/terminal.sh"]),
    );
    terminal.wait_for("app: ready");
    // The container's terminal turns Ctrl-C into SIGINT for its foreground
    // process group: the APP's, not autopilot's.
    terminal.type_keys(b"\x03");
    let code = exit_code_of(&mut docker_run);
    assert_eq!(
        code,
        Some(130),
        "the APP ended on Ctrl-C; the terminal shows:\n{}",
        terminal.screen()
    );
    assert!(terminal.screen().contains("app: got INT"));
}

#[test]
fn orphans_made_inside_are_reaped() {
    let container = run_wrapped(&[], &["sh", "/test/orphans.sh"]);
    wait_for("five orphans to report and end", || {
        container
            .logs()
            .iter()
            .filter(|line| line.as_str() == "orphan: parent 1")
            .count()
            == 5
    });
    let took = wait_for("no zombie to be left", || {
        // Processes may end while being listed: ignore the ones gone.
        let states = container.exec(&["sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null; true"]);
        states.lines().all(|stat| {
            let fields: Vec<&str> = stat.split_whitespace().collect();
            // state Z, parent PID 1: an orphan autopilot has not reaped
            fields.get(2) != Some(&"Z") || fields.get(3) != Some(&"1")
        })
    });
    println!("orphans reaped within {took:.2?} of their last report");
}

#[test]
fn the_apps_exit_code_drives_dockers_restart_policy() {
    let container = run_wrapped(
        &["--restart", "on-failure:2"],
        &["sh", "-c", "echo 'app: run'; exit 3"],
    );
    wait_for("Docker to restart it twice, then give up", || {
        container.inspect("{{.RestartCount}} {{.State.Status}}") == "2 exited"
    });
    assert_eq!(container.exit_code(), 3);
    let runs = container
        .logs()
        .iter()
        .filter(|line| *line == "app: run")
        .count();
    assert_eq!(runs, 3, "output:\n{}", container.logs_text());
}

#[test]
fn runs_as_a_user_on_a_read_only_root() {
    let container = run_wrapped(
        &["--user", "1000:1000", "--read-only"],
        &[
            "sh",
            "-c",
            "echo \"app: uid $(id -u) gid $(id -g)\"; exit 3",
        ],
    );
    assert_eq!(
        container.exit_code(),
        3,
        "output:\n{}",
        container.logs_text()
    );
    assert_eq!(
        container.logs(),
        vec!["app: uid 1000 gid 1000".to_string()],
        "only the APP's output, no complaint from autopilot"
    );
}

// ---- 3. configured images --------------------------------------------------------

/// Runs the configured image on a network with the Consul double, checks
/// its service registers and passes, stops it with Docker's defaults, and
/// checks the hooks ran in order within the grace period, the service left
/// the catalog, and the control socket it could not create was reported
/// once while everything else ran.
fn run_configured(options: &[&str], args: &[&str]) {
    let network = Network::create();
    let consul = Consul::start(&network);
    let mut run = vec!["--network", network.name.as_str()];
    run.extend_from_slice(options);
    run.push(configured_image());
    run.extend_from_slice(args);
    let container = Container::run(&run);
    let service_id = format!("web-{}", container.hostname());
    let took = wait_for("the service to register and pass", || {
        passing(&consul.state(), "web").contains(&service_id)
    });
    println!("registered and passing after {took:.2?}");
    container.wait_for_output("app: started");

    let took = container.stop(&[]);
    println!("docker stop with the default grace period: {took:.2?}");
    let code = container.exit_code();
    let logs = container.logs();
    let text = container.logs_text();
    assert!(
        took < DOCKER_STOP_GRACE,
        "docker stop took {took:?}:\n{text}"
    );
    assert_eq!(code, 0, "exit code; output:\n{text}");
    let position = |wanted: &str| {
        logs.iter()
            .position(|line| line.ends_with(wanted))
            .unwrap_or_else(|| panic!("no {wanted:?} in the output:\n{text}"))
    };
    let order: Vec<usize> = [
        "preStart: ran",
        "app: started",
        "preStop: ran",
        "app: got TERM",
        "postStop: ran",
    ]
    .iter()
    .map(|line| position(line))
    .collect();
    assert!(
        order.windows(2).all(|pair| pair[0] < pair[1]),
        "hooks out of order ({order:?}):\n{text}"
    );
    let socket_reports = logs
        .iter()
        .filter(|line| line.contains("control socket"))
        .count();
    assert_eq!(
        socket_reports, 1,
        "the unavailable control socket is reported once:\n{text}"
    );
    assert!(
        !registered(&consul.state()).contains(&service_id),
        "the service left the catalog: {}",
        consul.state()
    );
}

#[test]
fn a_3x_configuration_runs_its_hooks_in_order_within_docker_stop() {
    // Scratch: there is no /var/run for the default control socket.
    run_configured(&[], &[]);
}

#[test]
fn a_2x_configuration_runs_its_hooks_in_order_within_docker_stop() {
    // A non-root user: /var/run exists but belongs to root.
    run_configured(
        &["--user", "1000:1000", "--tmpfs", "/var/run:mode=0755"],
        &[
            "-config",
            "/etc/autopilot/v2.json",
            "sh",
            "-c",
            CONFIGURED_APP,
        ],
    );
}

#[test]
fn consul_named_in_etc_hosts_is_found() {
    // On Docker's default bridge a name reaches a container only through its
    // /etc/hosts (`--add-host`, or the legacy `--link`): autopilot must read it.
    let consul = Consul::start_on_default_bridge();
    let host = format!("consul:{}", consul.ip());
    let container = Container::run(&["--add-host", &host, configured_image()]);
    let service_id = format!("web-{}", container.hostname());
    wait_for(
        "the service to register with consul from /etc/hosts",
        || passing(&consul.state(), "web").contains(&service_id),
    );
}

#[test]
fn the_control_socket_works_in_scratch_on_a_tmpfs_the_user_owns() {
    let network = Network::create();
    let _consul = Consul::start(&network);
    let container = Container::run(&[
        "--network",
        &network.name,
        "--user",
        "1000:1000",
        "--tmpfs",
        "/var/run:uid=1000,gid=1000",
        configured_image(),
    ]);
    container.wait_for_output("app: started");
    container.exec(&["autopilot", "-putenv", "DEMO=1"]);
    assert!(
        !container.logs_text().contains("control socket"),
        "no complaint about the control socket:\n{}",
        container.logs_text()
    );
}

// ---- 4. the compose demo ------------------------------------------------------------

/// The hostname of the customers instance that answers one request through
/// nginx on the host's port 8080, as the README's `curl` does.
fn customers_via_nginx() -> Option<String> {
    let address = SocketAddr::from(([127, 0, 0, 1], 8080));
    let (status, body) = common::http::request(address, "GET", "/customers/", "").ok()?;
    let answer: Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
    answer["hostname"].as_str().map(str::to_string)
}

/// nginx.conf as autopilot rendered it in the nginx container.
fn nginx_conf(nginx: &Container) -> String {
    nginx.exec(&["cat", "/run/nginx.conf"])
}

fn upstream(ip: IpAddr) -> String {
    format!("server {ip}:4000;")
}

#[test]
fn the_compose_demo_scales_routes_and_deregisters() {
    let project = ComposeProject::new();
    let started = Instant::now();
    project.run(&["up", "--detach", "--no-build", "--scale", "customers=3"]);
    println!("compose up --scale customers=3: {:.1?}", started.elapsed());
    let customers = project.containers("customers");
    assert_eq!(customers.len(), 3, "three customers containers");
    let [sales, nginx, consul] = ["sales", "nginx", "consul"].map(|service| {
        project
            .containers(service)
            .pop()
            .unwrap_or_else(|| panic!("no {service} container"))
    });
    let catalog = SocketAddr::from(([127, 0, 0, 1], 8500));

    // Every instance registered and passing.
    let expected = |service: &str, containers: &[&Container]| -> BTreeSet<String> {
        containers
            .iter()
            .map(|c| format!("{service}-{}", c.hostname()))
            .collect()
    };
    let all: Vec<&Container> = customers.iter().collect();
    let wanted = [
        ("customers", expected("customers", &all)),
        ("sales", expected("sales", &[&sales])),
        ("nginx", expected("nginx", &[&nginx])),
    ];
    let took = wait_for("every instance to register and pass", || {
        let state = catalog_state(catalog);
        wanted
            .iter()
            .all(|(service, ids)| passing(&state, service) == *ids)
    });
    println!("all five instances passing {took:.1?} after compose up returned");

    // nginx's upstreams list the three, and each answers in turn.
    let ips: Vec<IpAddr> = customers.iter().map(Container::ip).collect();
    wait_for("nginx.conf to list the three customers", || {
        let conf = nginx_conf(&nginx);
        ips.iter().all(|ip| conf.contains(&upstream(*ip)))
    });
    let hostnames: BTreeSet<String> = customers.iter().map(Container::hostname).collect();
    wait_for("requests to go to each customers instance in turn", || {
        let answers: Vec<Option<String>> = (0..6).map(|_| customers_via_nginx()).collect();
        let first_round: BTreeSet<String> = answers[..3].iter().flatten().cloned().collect();
        first_round == hostnames && answers[..3] == answers[3..]
    });

    // `docker stop` of one instance takes it out of nginx within seconds.
    let stopped = &customers[2];
    let stopped_ip = ips[2];
    let stopped_id = format!("customers-{}", stopped.hostname());
    let started = Instant::now();
    stopped.stop(&[]);
    wait_for("the stopped instance to leave nginx.conf", || {
        !nginx_conf(&nginx).contains(&upstream(stopped_ip))
    });
    let took = started.elapsed();
    println!("docker stop of one customers instance: out of nginx's upstreams in {took:.1?}");
    assert!(
        !registered(&catalog_state(catalog)).contains(&stopped_id),
        "the stopped instance left the catalog"
    );
    assert!(took < DOCKER_STOP_GRACE, "took {took:?}");
    let left: BTreeSet<String> = customers[..2].iter().map(Container::hostname).collect();
    wait_for("requests to go to the two instances left", || {
        let answers: BTreeSet<String> = (0..4).filter_map(|_| customers_via_nginx()).collect();
        answers == left
    });

    // `compose down` deregisters everything: the double's request log,
    // followed until the double is removed, shows each deregistration.
    let still = registered(&catalog_state(catalog));
    assert_eq!(still.len(), 4, "two customers, sales and nginx: {still:?}");
    let consul_log = consul.follow_logs();
    project.run(&["down", "--volumes"]);
    let log = consul_log.join().expect("the double's log");
    for id in &still {
        assert!(
            log.iter().any(
                |line| line.contains(&format!("PUT /v1/agent/service/deregister/{id}"))
                    && line.contains("status=200")
            ),
            "{id} was not deregistered at `compose down`; the double's log:\n{}",
            log.join("\n")
        );
    }
}
