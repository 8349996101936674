//! Each validation rule and translation of the configuration front end,
//! through the crate (`autopilot::testing::config::load_str`).

use std::time::Duration;

use autopilot::testing::config::model::{
    CheckStatus, Frequency, HealthCheck, JobConfig, JobRole, LogLevel, MetricKind, Restarts, When,
    GLOBAL_SOURCE,
};
use autopilot::testing::config::{load_str, Config, Env, Format, Loaded, Origin};
use autopilot::testing::events::EventCode;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_with(text: &str, app: Option<&[&str]>, env: &Env) -> Result<Loaded, String> {
    let app: Option<Vec<std::ffi::OsString>> =
        app.map(|argv| argv.iter().map(Into::into).collect());
    load_str(text, &Origin::Inline, app.as_deref(), env).map_err(|e| e.to_string())
}

fn load(text: &str) -> Config {
    load_with(text, None, &Env::new())
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

fn error(text: &str) -> String {
    load_with(text, None, &Env::new()).expect_err(text)
}

fn job<'c>(config: &'c Config, name: &str) -> &'c JobConfig {
    config
        .jobs
        .iter()
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no job {name}: {:?}", config.jobs))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn job_defaults() {
    let config = load("{jobs: [{name: 'a', exec: 'run it'}]}");
    let a = job(&config, "a");
    assert_eq!(
        a.exec.as_deref(),
        Some(&["run", "it"].map(std::ffi::OsString::from)[..])
    );
    assert_eq!(a.when, When::default());
    assert_eq!(
        (a.restarts, a.timeout, a.stop_timeout, a.kill_timeout),
        (Restarts::Never, None, secs(3), secs(3)),
        "3 s each: the stop budget (docs/signals-and-exit-codes.md)"
    );
    assert_eq!(
        (a.stop_signal, a.restart_delay, a.primary, a.logging_raw),
        (15, Duration::ZERO, false, false)
    );
    assert_eq!(a.interfaces, ["eth0:inet", "inet"]);
    assert_eq!(
        config.control.as_ref().unwrap().socket.to_str(),
        Some("/var/run/containerpilot.socket")
    );
    assert_eq!(config.format, Format::V3);
}

#[test]
fn job_name_defaults_to_the_program_and_is_otherwise_required() {
    let config = load("{jobs: [{exec: ['/usr/bin/consul', 'agent']}]}");
    assert_eq!(config.jobs[0].name, "consul");
    assert_eq!(
        error("{jobs: [{port: 80}]}"),
        "config error: jobs[0].name: required (a job without exec needs a name)"
    );
}

#[test]
fn duplicate_job_names_load_with_a_warning_naming_both_entries() {
    let loaded = load_with(
        "{jobs: [{name: 'a', exec: 'x'}, {name: 'a', exec: 'y'}, {name: 'b', exec: 'z', when: {source: 'a', once: 'exitSuccess'}}]}",
        None,
        &Env::new(),
    )
    .unwrap();
    let names: Vec<(&str, &str)> = loaded
        .config
        .jobs
        .iter()
        .map(|j| (j.name.as_str(), j.public_name()))
        .collect();
    assert_eq!(names, [("a", "a"), ("a-2", "a"), ("b", "b")]);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = &loaded.warnings[0];
    assert!(
        warning.starts_with("jobs[1] \"a\": jobs[0] \"a\" has the same name \"a\"")
            && warning.contains("runs as \"a-2\""),
        "{warning}"
    );
}

#[test]
fn duplicate_2x_service_names_load_with_a_warning() {
    let loaded = load_with(
        r#"{"consul": "c:8500", "services": [
            {"name": "nginx", "port": 80, "health": "true", "poll": 10, "ttl": 25},
            {"name": "nginx", "port": 443, "health": "true", "poll": 10, "ttl": 25}]}"#,
        None,
        &Env::new(),
    )
    .unwrap();
    let second = job(&loaded.config, "nginx-2");
    assert_eq!((second.public_name(), second.port), ("nginx", Some(443)));
    assert!(
        loaded.warnings[0]
            .starts_with("services[1] \"nginx\": services[0] \"nginx\" has the same name"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn registered_names_must_suit_the_catalog() {
    let health = "health: {exec: 'true', interval: 1, ttl: 5}";
    assert!(error(&format!(
        "{{jobs: [{{name: 'My_App', port: 80, {health}}}]}}"
    ))
    .contains("jobs[0] \"My_App\".name: \"My_App\" cannot be registered"));
    // unregistered jobs may be named freely
    load("{jobs: [{name: 'My_App', exec: 'x'}]}");
}

#[test]
fn when_interval_once_each_are_exclusive() {
    let message =
        error("{jobs: [{name: 'a', exec: 'x', when: {interval: '1s', once: 'startup'}}]}");
    assert_eq!(
        message,
        "config error: jobs[0] \"a\".when: can have only one of 'interval', 'once' or 'each'"
    );
    assert!(error(
        "{jobs: [{name: 'a', exec: 'x', when: {source: 'b', once: 'healthy', each: 'healthy'}}]}"
    )
    .contains("only one of"));
    assert!(
        error("{jobs: [{name: 'a', exec: 'x', when: {interval: '1s', source: 'b'}}]}")
            .contains("cannot be combined")
    );
}

#[test]
fn when_events() {
    let config = load("{jobs: [{name: 'a', exec: 'x', when: {source: 'b', once: 'exitSuccess', timeout: '60s'}}, {name: 'b', exec: 'y'}]}");
    let expected = When::Event {
        code: EventCode::ExitSuccess,
        source: "b".into(),
        frequency: Frequency::Once,
        timeout: Some(secs(60)),
    };
    assert_eq!(job(&config, "a").when, expected);
    // Every name ContainerPilot 3 accepts in `when`.
    for name in [
        "exitSuccess",
        "exitFailed",
        "stopping",
        "stopped",
        "healthy",
        "unhealthy",
        "changed",
        "timerExpired",
        "enterMaintenance",
        "exitMaintenance",
        "error",
        "quit",
        "startup",
        "shutdown",
    ] {
        let config = load(&format!(
            "{{jobs: [{{name: 'a', exec: 'x', when: {{source: 'b', each: '{name}'}}}}, {{name: 'b', exec: 'y'}}]}}"
        ));
        let When::Event { code, .. } = &job(&config, "a").when else {
            panic!("{name}: not an event")
        };
        assert_eq!(code.as_str(), name);
    }
    let message = error("{jobs: [{name: 'a', exec: 'x', when: {source: 'b', once: 'bogus'}}]}");
    assert!(
        message.starts_with("config error: jobs[0] \"a\".when.once: \"bogus\" is not an event"),
        "{message}"
    );
    assert!(
        error("{jobs: [{name: 'a', exec: 'x', when: {source: 'b', once: 'healty'}}]}")
            .contains("did you mean \"healthy\"")
    );
    assert!(
        error("{jobs: [{name: 'a', exec: 'x', when: {source: 'b'}}]}")
            .contains("needs 'once' or 'each'")
    );
    assert!(
        error("{jobs: [{name: 'a', exec: 'x', when: {once: 'startup'}}]}")
            .contains("when.source: required")
    );
    assert!(error("{jobs: [{name: 'a', exec: 'x', when: {}}]}").contains("needs 'interval'"));
}

#[test]
fn signal_sources_run_on_every_signal() {
    let config = load("{jobs: [{name: 'a', exec: 'x', when: {source: 'SIGHUP'}}]}");
    let expected = When::Event {
        code: EventCode::Signal,
        source: "SIGHUP".into(),
        frequency: Frequency::Each,
        timeout: None,
    };
    assert_eq!(config.jobs[0].when, expected);
    assert!(
        error("{jobs: [{name: 'a', exec: 'x', when: {source: 'SIGUSR2', each: 'changed'}}]}")
            .contains("is a signal")
    );
}

#[test]
fn interval_jobs_default_timeout_and_restarts() {
    let config = load("{jobs: [{name: 't', exec: 'x', when: {interval: 1}}, {name: 'u', exec: 'x', timeout: '100ms', when: {interval: '500ms'}}]}");
    let t = job(&config, "t");
    assert_eq!(
        (t.when.clone(), t.timeout, t.restarts),
        (
            When::Interval { interval: secs(1) },
            Some(secs(1)),
            Restarts::Unlimited
        )
    );
    assert_eq!(job(&config, "u").timeout, Some(Duration::from_millis(100)));
    assert!(
        error("{jobs: [{name: 't', exec: 'x', when: {interval: '100us'}}]}")
            .contains("at least 1ms")
    );
    assert!(error("{jobs: [{name: 't', exec: 'x', timeout: '0'}]}")
        .contains("timeout: must be at least 1ms"));
}

#[test]
fn restarts_forms_and_unlimited_with_each() {
    let config = load("{jobs: [{name: 'a', exec: 'x', restarts: '5'}, {name: 'b', exec: 'x', restarts: 1}, {name: 'c', exec: 'x', restarts: 'unlimited'}]}");
    assert_eq!(job(&config, "a").restarts, Restarts::Count(5));
    assert_eq!(job(&config, "b").restarts, Restarts::Count(1));
    assert_eq!(job(&config, "c").restarts, Restarts::Unlimited);
    let message = error("{jobs: [{name: 'a', exec: 'x', restarts: 'unlimited', when: {source: 'watch.w', each: 'changed'}}], watches: [{name: 'w', interval: 5}]}");
    assert!(
        message.starts_with(
            "config error: jobs[0] \"a\".restarts: \"unlimited\" cannot be used with when.each"
        ),
        "{message}"
    );
    assert!(
        error("{jobs: [{name: 'a', exec: 'x', restarts: -1}]}").contains("jobs[0] \"a\".restarts")
    );
}

#[test]
fn health_interval_and_ttl_must_be_positive() {
    let base = |health: &str| {
        format!("{{jobs: [{{name: 'app', exec: 'x', port: 80, health: {health}}}]}}")
    };
    assert_eq!(
        error(&base("{exec: 'true', ttl: 5}")),
        "config error: jobs[0] \"app\".health.interval: must be > 0"
    );
    assert_eq!(
        error(&base("{exec: 'true', interval: 5}")),
        "config error: jobs[0] \"app\".health.ttl: must be > 0"
    );
    assert_eq!(
        error(&base("{exec: 'true', interval: 5, ttl: 0}")),
        "config error: jobs[0] \"app\".health.ttl: must be > 0"
    );
    assert!(error(&base("{exec: 'true', interval: '500ms', ttl: 5}")).contains("at least 1s"));
    assert!(
        error(&base("{exec: 'true', tcp: 'h:1', interval: 5, ttl: 5}"))
            .contains("can have only one of 'exec', 'http' or 'tcp'")
    );
}

#[test]
fn health_without_a_command_only_heartbeats_as_in_containerpilot_3() {
    let config =
        load("{jobs: [{name: 'app', exec: 'x', port: 80, health: {interval: 5, ttl: 10}}]}");
    let health = job(&config, "app").health.as_ref().unwrap();
    assert_eq!(
        (&health.check, health.interval, health.ttl),
        (&HealthCheck::Heartbeat, secs(5), secs(10))
    );
}

#[test]
fn malformed_addresses_are_refused_with_the_field_named() {
    assert_eq!(
        error("{consul: '127.0.0.1:99999', jobs: []}"),
        "config error: consul: \"127.0.0.1:99999\" is not a valid address: port \"99999\" is not a TCP port (1-65535)"
    );
    assert!(error("{consul: 'http//bad address', jobs: []}")
        .starts_with("config error: consul: \"http//bad address\" is not a valid address: \"http//bad address\" is not a host name"));
    assert!(error("{consul: {address: 'consul:8500:1'}, jobs: []}")
        .starts_with("config error: consul.address: \"consul:8500:1\" is not a valid address"));
    assert!(
        error("{etcd: {endpoints: ['http://etcd:2379', 'http://etcd:0']}, jobs: []}")
            .starts_with("config error: etcd.endpoints: \"http://etcd:0\" is not a valid URL")
    );
    let health = |check: &str| {
        error(&format!(
            "{{jobs: [{{name: 'app', port: 80, health: {{{check}, interval: 1, ttl: 5}}}}]}}"
        ))
    };
    assert!(health("http: 'localhost/health'").contains("health.http: \"localhost/health\" is not a valid URL: it must start with http:// or https://"));
    assert!(health("tcp: 'localhost'")
        .contains("health.tcp: \"localhost\" is not a valid address: the port is missing"));
    for good in ["consul:8500", "https://[::1]:8501", "10.0.0.1"] {
        load(&format!("{{consul: '{good}', jobs: []}}"));
    }
}

#[test]
fn interface_specs_must_be_interface_names() {
    let with = |interfaces: &str| {
        error(&format!(
            "{{jobs: [{{name: 'app', port: 80, interfaces: {interfaces}, health: {{exec: 'true', interval: 1, ttl: 5}}}}]}}"
        ))
    };
    assert!(
        with("['eth0', '127.0.0.1']").starts_with(
            "config error: jobs[0] \"app\".interfaces[1]: invalid interface spec \"127.0.0.1\": an IP address is not an interface name"
        ),
        "{}",
        with("['eth0', '127.0.0.1']")
    );
    assert!(with("['!']")
        .contains("interfaces[0]: invalid interface spec \"!\": not an interface name"));
    assert!(error("{telemetry: {interfaces: ['eth0:inet7']}}")
        .contains("telemetry.interfaces[0]: invalid interface spec"));
    load("{jobs: [{name: 'app', port: 80, interfaces: ['eth0.100', 'br-1a2b[1]', 'static:127.0.0.1', '10.0.0.0/8', 'inet6'], health: {exec: 'true', interval: 1, ttl: 5}}]}");
}

#[test]
fn health_timeout_defaults_to_the_interval_and_accepts_numeric_strings() {
    let config = load("{jobs: [{name: 'app', port: 80, health: {exec: ['/bin/check', 'B'], interval: 10, ttl: '103'}}, {name: 'web', port: 81, health: {http: 'http://localhost/', interval: 5, ttl: 10, timeout: '2s'}}]}");
    let app = job(&config, "app").health.as_ref().unwrap();
    assert_eq!(
        (app.interval, app.ttl, app.timeout),
        (secs(10), secs(103), Some(secs(10)))
    );
    assert_eq!(
        app.check,
        HealthCheck::Exec(vec!["/bin/check".into(), "B".into()])
    );
    let web = job(&config, "web").health.as_ref().unwrap();
    assert_eq!(
        (web.check.clone(), web.timeout),
        (HealthCheck::Http("http://localhost/".into()), Some(secs(2)))
    );
}

#[test]
fn health_start_period_defaults_to_the_ttl_and_must_be_a_duration() {
    let config = load("{jobs: [{name: 'a', health: {exec: 'true', interval: 1, ttl: 7}}, {name: 'b', health: {exec: 'true', interval: 1, ttl: 7, startPeriod: '30s'}}, {name: 'c', health: {exec: 'true', interval: 1, ttl: 7, startPeriod: 0}}]}");
    let start_period = |name| job(&config, name).health.as_ref().unwrap().start_period;
    assert_eq!(
        (start_period("a"), start_period("b"), start_period("c")),
        (secs(7), secs(30), secs(0))
    );
    for bad in ["-1", "'soon'"] {
        let text = format!(
            "{{jobs: [{{name: 'app', health: {{exec: 'true', interval: 1, ttl: 5, startPeriod: {bad}}}}}]}}"
        );
        assert!(
            error(&text).starts_with("config error: jobs[0] \"app\".health.startPeriod: "),
            "{bad}: {}",
            error(&text)
        );
    }
}

#[test]
fn port_requires_health() {
    assert_eq!(
        error("{jobs: [{name: 'myjob', exec: 'x', port: 8080}]}"),
        "config error: jobs[0] \"myjob\".port: a job with a port needs a health check (health: {exec, interval, ttl}) to be advertised"
    );
    // an unset template variable renders port as "", which is no port
    load("{jobs: [{name: 'myjob', exec: 'x', port: ''}]}");
}

#[test]
fn initial_status_values_and_spellings() {
    let health = "health: {exec: 'true', interval: 1, ttl: 5}";
    let config = load(&format!("{{jobs: [{{name: 'svc-a', port: 80, initial_status: 'warning', {health}}}, {{name: 'svc-b', port: 81, initialStatus: 'critical', {health}}}]}}"));
    assert_eq!(
        job(&config, "svc-a").initial_status,
        Some(CheckStatus::Warning)
    );
    assert_eq!(
        job(&config, "svc-b").initial_status,
        Some(CheckStatus::Critical)
    );
    assert!(error(&format!(
        "{{jobs: [{{name: 'svc-a', port: 80, initial_status: 'bad', {health}}}]}}"
    ))
    .contains("initial_status: \"bad\" is not one of"));
    // not validated without a port (as ContainerPilot), but a warning says it is ignored
    let loaded = load_with(
        "{jobs: [{name: 'b', exec: 'x', initial_status: 'invalid-value'}]}",
        None,
        &Env::new(),
    )
    .unwrap();
    assert_eq!(loaded.config.jobs[0].initial_status, None);
    assert!(
        loaded.warnings[0].contains("ignored"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn durations_and_consul_extras() {
    let health = "health: {exec: 'true', interval: 1, ttl: 5}";
    let config = load(&format!("{{jobs: [{{name: 'svc-a', port: 80, {health}, consul: {{enableTagOverride: 'true', deregisterCriticalServiceAfter: '10m'}}, stopTimeout: '10s', killTimeout: '0', restartDelay: 2, stopSignal: 'SIGQUIT'}}]}}"));
    let a = job(&config, "svc-a");
    assert!(a.consul.enable_tag_override);
    assert_eq!(a.consul.deregister_critical_service_after, Some(secs(600)));
    assert_eq!(
        (
            a.stop_timeout,
            a.kill_timeout,
            a.restart_delay,
            a.stop_signal
        ),
        (secs(10), Duration::ZERO, secs(2), 3)
    );
    assert_eq!(
        error(&format!("{{jobs: [{{name: 'svc-a', port: 80, {health}, consul: {{deregisterCriticalServiceAfter: 'nope'}}}}]}}")),
        "config error: jobs[0] \"svc-a\".consul.deregisterCriticalServiceAfter: time: invalid duration \"nope\""
    );
    assert!(error(&format!(
        "{{jobs: [{{name: 'svc-a', port: 80, {health}, consul: {{enableTagOverride: 'nope'}}}}]}}"
    ))
    .contains("must be true or false"));
}

#[test]
fn at_most_one_primary() {
    assert!(error(
        "{jobs: [{name: 'a', exec: 'x', primary: true}, {name: 'b', exec: 'y', primary: 'true'}]}"
    )
    .contains("only one job can be primary"));
}

#[test]
fn unknown_keys_suggest_known_ones() {
    assert_eq!(
        error("{job: {}}"),
        "config error: unknown key \"job\" (did you mean \"jobs\"?)"
    );
    assert_eq!(
        error("{jobs: [{name: 'a', exec: 'x', restart: 'never'}]}"),
        "config error: jobs[0] \"a\": unknown key \"restart\" (did you mean \"restarts\"?)"
    );
    assert!(error("{watches: [{name: 'ab', interval: 5, tags: 'x'}]}")
        .contains("unknown key \"tags\" (did you mean \"tag\"?)"));
}

#[test]
fn watches() {
    let config = load("{watches: [{name: 'upstreamA', interval: 11, tag: 'dev'}, {name: 'upstreamB', interval: '79', dc: 'us-east-1'}]}");
    assert_eq!(config.watches[0].source(), "watch.upstreamA");
    assert_eq!(
        (config.watches[1].interval, config.watches[1].dc.as_deref()),
        (secs(79), Some("us-east-1"))
    );
    assert_eq!(
        error("{watches: [{name: 'ab'}]}"),
        "config error: watches[0] \"ab\".interval: must be > 0"
    );
    assert!(
        error("{watches: [{name: 'ab', interval: 1}, {name: 'ab', interval: 2}]}")
            .contains("another watch")
    );
}

#[test]
fn telemetry_adds_the_containerpilot_job() {
    let config = load("{telemetry: {port: 9000, interfaces: ['inet'], tags: ['dev'], metrics: [{namespace: 'org', subsystem: 'app', name: 'zed', help: 'h', type: 'gauge'}]}}");
    let telemetry = config.telemetry.as_ref().unwrap();
    assert_eq!(
        (
            telemetry.metrics[0].full_name.as_str(),
            telemetry.metrics[0].kind
        ),
        ("org_app_zed", MetricKind::Gauge)
    );
    let endpoint = job(&config, "containerpilot");
    assert_eq!(
        (endpoint.role.clone(), endpoint.port, endpoint.exec.clone()),
        (JobRole::Telemetry, Some(9000), None)
    );
    assert_eq!(endpoint.tags, ["dev"]);
    assert!(error("{telemetry: {interfaces: 'eth0'}}")
        .contains("telemetry.interfaces: must be an array, not a string"));
    assert!(
        error("{telemetry: {metrics: [{name: 'x', type: 'meter'}]}}")
            .contains("telemetry.metrics[0] \"x\".type: \"meter\" is not one of")
    );
}

#[test]
fn logging_and_consul_sections() {
    let config = load("{consul: 'https://consul:8500', logging: {level: 'DEBUG', format: 'text'}}");
    let consul = config.consul.unwrap();
    assert_eq!(
        (consul.address.as_str(), consul.scheme.as_str()),
        ("consul:8500", "https")
    );
    assert_eq!(config.logging.level, LogLevel::Debug);
}

#[test]
fn the_token_never_appears_in_the_printed_config() {
    let config = load("{consul: {address: 'c:8500', token: 'secret-token'}}");
    let json = serde_json::to_string(&config).unwrap();
    assert!(
        !json.contains("secret-token") && json.contains("<redacted>"),
        "{json}"
    );
}

#[test]
fn the_app_becomes_a_job() {
    let loaded = load_with(
        "{jobs: [{name: 'nginx', exec: 'x'}], stopTimeout: -1}",
        Some(&["/usr/sbin/nginx", "-g", "{{ .X }}"]),
        &Env::new(),
    )
    .unwrap();
    let app = loaded
        .config
        .jobs
        .iter()
        .find(|j| j.role == JobRole::App)
        .unwrap();
    assert_eq!(app.name, "nginx-2");
    assert_eq!(
        app.exec.as_deref().unwrap(),
        ["/usr/sbin/nginx", "-g", "{{ .X }}"]
    );
    assert!(app.logging_raw);
    assert_eq!((app.stop_signal, app.kill_timeout), (9, Duration::ZERO));
}

#[test]
fn mixing_formats_is_an_error() {
    let message = error("{jobs: [], services: []}");
    assert!(
        message.contains("mixes ContainerPilot 3 keys (jobs) with 2.x keys (services)"),
        "{message}"
    );
}

#[test]
fn v2_translation() {
    let text = r#"{
      "consul": "consul:8500",
      "preStart": "/bin/pre {{ .ARG }}",
      "preStop": "/bin/prestop",
      "postStop": ["/bin/poststop"],
      "stopTimeout": 7,
      "services": [{"name": "app", "port": 80, "health": "/bin/check", "poll": 10, "ttl": 30, "timeout": "2s"}],
      "backends": [{"name": "db", "poll": 7, "onChange": "/bin/reload", "tag": "primary"}],
      "coprocesses": [{"command": ["/bin/sidecar", "x"], "restarts": "unlimited"}],
      "tasks": [{"name": "task", "command": "/bin/task", "frequency": "1500ms"}],
      "telemetry": {"port": 9090, "sensors": [{"namespace": "ns", "name": "m", "help": "h", "type": "counter", "poll": 5, "check": ["/bin/sensor"]}]}
    }"#;
    let loaded = load_with(text, Some(&["/bin/app"]), &env(&[("ARG", "on")])).unwrap();
    let config = &loaded.config;
    assert_eq!(config.format, Format::V2);
    let once = |code, source: &str| When::Event {
        code,
        source: source.into(),
        frequency: Frequency::Once,
        timeout: None,
    };
    let pre_start = job(config, "preStart");
    assert_eq!(
        (pre_start.role.clone(), pre_start.exec.clone().unwrap()),
        (JobRole::PreStart, vec!["/bin/pre".into(), "on".into()])
    );
    let app = job(config, "app-2");
    assert_eq!(
        (app.role.clone(), app.when.clone(), app.kill_timeout),
        (
            JobRole::App,
            once(EventCode::ExitSuccess, "preStart"),
            secs(7)
        )
    );
    assert_eq!(
        job(config, "preStop").when,
        once(EventCode::Stopping, "app-2")
    );
    assert_eq!(
        (
            job(config, "postStop").role.clone(),
            job(config, "postStop").when.clone()
        ),
        (JobRole::PostStop, once(EventCode::Stopped, "app-2"))
    );
    let service = job(config, "app");
    let health = service.health.as_ref().unwrap();
    assert_eq!(
        (
            service.exec.clone(),
            service.port,
            health.interval,
            health.ttl,
            health.timeout
        ),
        (None, Some(80), secs(10), secs(30), Some(secs(2)))
    );
    assert_eq!(
        (
            config.watches[0].name.as_str(),
            config.watches[0].interval,
            config.watches[0].tag.as_deref()
        ),
        ("db", secs(7), Some("primary"))
    );
    let on_change = job(config, "onChange-db");
    assert_eq!(
        on_change.when,
        When::Event {
            code: EventCode::Changed,
            source: "watch.db".into(),
            frequency: Frequency::Each,
            timeout: None
        }
    );
    let sidecar = job(config, "sidecar");
    assert_eq!(
        (sidecar.restarts, sidecar.when.clone()),
        (
            Restarts::Unlimited,
            once(EventCode::ExitSuccess, "preStart")
        )
    );
    let task = job(config, "task");
    assert_eq!(
        (task.when.clone(), task.timeout, task.restarts),
        (
            When::Interval {
                interval: Duration::from_millis(1500)
            },
            Some(Duration::from_millis(1500)),
            Restarts::Unlimited
        )
    );
    let sensor = job(config, "ns_m");
    assert_eq!(
        (sensor.role.clone(), sensor.when.clone()),
        (
            JobRole::Sensor {
                metric: "ns_m".into()
            },
            When::Interval { interval: secs(5) }
        )
    );
    assert_eq!(job(config, "containerpilot").port, Some(9090));
}

#[test]
fn v2_hooks_without_an_app_run_at_shutdown() {
    let config = load(r#"{"consul": "c:8500", "preStop": "/bin/a", "postStop": "/bin/b"}"#);
    let shutdown = When::Event {
        code: EventCode::Shutdown,
        source: GLOBAL_SOURCE.into(),
        frequency: Frequency::Once,
        timeout: None,
    };
    assert_eq!(job(&config, "preStop").when, shutdown);
    assert_eq!(job(&config, "postStop").when, shutdown);
    assert!(config.jobs.iter().all(|j| j.role != JobRole::App));
}

#[test]
fn v2_stop_timeout_minus_one_kills_at_once() {
    let loaded = load_with(
        r#"{"consul": "c:8500", "stopTimeout": -1}"#,
        Some(&["app"]),
        &Env::new(),
    )
    .unwrap();
    assert_eq!(
        (
            loaded.config.jobs[0].stop_signal,
            loaded.config.jobs[0].kill_timeout
        ),
        (9, Duration::ZERO)
    );
}

#[test]
fn v2_on_start_is_pre_start_with_a_warning() {
    let loaded = load_with(
        r#"{"consul": "c:8500", "onStart": "/bin/x"}"#,
        None,
        &Env::new(),
    )
    .unwrap();
    assert_eq!(loaded.config.jobs[0].role, JobRole::PreStart);
    assert!(loaded.warnings[0].contains("deprecated"));
    let both = load_with(
        r#"{"consul": "c:8500", "preStart": "/bin/p", "onStart": "/bin/o"}"#,
        None,
        &Env::new(),
    )
    .unwrap();
    assert_eq!(both.config.jobs[0].exec.as_deref().unwrap(), ["/bin/p"]);
    assert!(both.warnings[0].contains("ignoring onStart"));
}

#[test]
fn v2_rules() {
    assert_eq!(
        error(r#"{"consul": "c", "backends": [{"name": "", "poll": 7, "onChange": "x"}]}"#),
        "config error: backends[0].name: must not be blank"
    );
    assert!(
        error(r#"{"consul": "c", "backends": [{"name": "b", "poll": 7}]}"#)
            .contains("backends[0] \"b\".onChange: required")
    );
    assert!(error(
        r#"{"consul": "c", "services": [{"name": "app", "health": "x", "poll": 10, "ttl": 30}]}"#
    )
    .contains("services[0] \"app\".port: must be > 0"));
    assert!(error(
        r#"{"consul": "c", "services": [{"name": "app", "port": 0, "health": "x", "poll": 10, "ttl": 30}]}"#
    )
    .contains("services[0] \"app\".port: must be > 0"));
    assert!(error(
        r#"{"consul": "c", "services": [{"name": "app", "port": 80, "health": "x", "poll": 0, "ttl": 30}]}"#
    )
    .contains("poll: must be > 0"));
    let service = |extra: &str| {
        load(&format!(
            r#"{{"consul": "c", "services": [{{"name": "app", "port": 80, "poll": 10, "ttl": 30{extra}}}]}}"#
        ))
        .jobs[0]
        .health
        .clone()
        .unwrap()
    };
    let without_health = service("");
    assert_eq!(
        (without_health.check, without_health.timeout),
        (HealthCheck::Heartbeat, None)
    );
    let slow = service(r#", "health": "mongo --eval 1""#);
    assert_eq!(slow.timeout, None, "2.x checks have no timeout by default");
    assert_eq!(
        service(r#", "health": "x", "timeout": "3s""#).timeout,
        Some(secs(3))
    );
    assert!(error(r#"{"consul": "c", "tasks": [{"command": "x"}]}"#)
        .contains("tasks[0].frequency: required"));
    assert!(
        error(r#"{"consul": "c", "etcd": {"endpoints": "http://e:2379"}, "services": []}"#)
            .contains("not both")
    );
    assert!(
        error(r#"{"consul": "c", "etcd": {"endpoints": "http://e:2379"}, "jobs": []}"#)
            .contains("not both")
    );
    assert!(error(r#"{"consul": "c", "telemetry": {"sensors": [{"name": "s", "type": "counter", "poll": 1}]}}"#).contains("check: required"));
}

#[test]
fn v2_etcd() {
    let config = load(r#"{"etcd": {"endpoints": "http://etcd:4001"}, "services": []}"#);
    let etcd = config.etcd.unwrap();
    assert_eq!(
        (etcd.endpoints, etcd.prefix.as_str()),
        (vec!["http://etcd:4001".to_string()], "/containerpilot")
    );
}

#[test]
fn templates_render_before_parsing_and_errors_have_positions() {
    let config = load_with(
        "{jobs: [{name: '{{ .NAME | default \"x\" }}', exec: 'run'}]}",
        None,
        &env(&[("NAME", "svc")]),
    )
    .unwrap()
    .config;
    assert_eq!(config.jobs[0].name, "svc");
    let message = load_with("{\n  jobs: [{{ nope }}]\n}", None, &Env::new()).unwrap_err();
    assert!(
        message.starts_with(
            "config error: inline config:2:13: template: function \"nope\" not defined"
        ),
        "{message}"
    );
    assert!(
        message.contains("    2 |   jobs: [{{ nope }}]\n      |             ^"),
        "{message}"
    );
}

#[test]
fn the_document_must_be_an_object() {
    assert!(error("[1, 2]").contains("must be an object"));
    assert!(error("").contains("inline config:1:1"));
}

#[test]
fn render_reads_template_and_output() {
    let config = load(
        "{jobs: [{name: 'reload', exec: 'nginx -s reload', \
           when: {source: 'watch.web', each: 'changed'}, \
           render: {template: '/etc/nginx/up.ctmpl', output: '/etc/nginx/up.conf'}}], \
          watches: [{name: 'web', interval: 1}]}",
    );
    let render = job(&config, "reload").render.as_ref().expect("render");
    assert_eq!(
        (render.template.to_str(), render.output.to_str()),
        (Some("/etc/nginx/up.ctmpl"), Some("/etc/nginx/up.conf"))
    );
    assert_eq!(
        job(&load("{jobs: [{name: 'a', exec: 'x'}]}"), "a").render,
        None
    );
}

#[test]
fn render_rules() {
    let render = |body: &str| {
        error(&format!(
            "{{jobs: [{{name: 'a', exec: 'x', render: {body}}}]}}"
        ))
    };
    assert!(
        render("{template: 't'}").contains("jobs[0] \"a\".render.output: required"),
        "{}",
        render("{template: 't'}")
    );
    assert!(render("{output: 'o', template: ''}").contains("render.template: required"));
    assert!(
        render("{template: 'same', output: 'same'}").contains("must not be the template itself")
    );
    let unknown = render("{template: 't', output: 'o', command: 'x'}");
    assert!(unknown.contains("unknown key \"command\""), "{unknown}");
    assert!(render("'t'").contains("render: must be an object"));
}

#[test]
fn render_wait_is_min_and_max_with_max_four_times_min_by_default() {
    let wait = |body: &str| {
        let config = load(&format!(
            "{{jobs: [{{name: 'a', render: {{template: 't', output: 'o', wait: {body}}}}}]}}"
        ));
        let wait = job(&config, "a").render.as_ref().unwrap().wait.unwrap();
        (wait.min.as_secs(), wait.max.as_secs())
    };
    assert_eq!(wait("{min: '2s'}"), (2, 8));
    assert_eq!(wait("{min: 1, max: '3s'}"), (1, 3));
    let error = |body: &str| {
        error(&format!(
            "{{jobs: [{{name: 'a', render: {{template: 't', output: 'o', wait: {body}}}}}]}}"
        ))
    };
    assert!(error("{max: '1s'}").contains("render.wait.min: required"));
    assert!(
        error("{min: '5s', max: '1s'}").contains("render.wait.max: must not be shorter than min")
    );
    assert!(error("{min: '1s', quiet: 1}").contains("unknown key \"quiet\""));
}

#[test]
fn metrics_the_registry_would_refuse_fail_at_load_time() {
    let metric = |name: &str, help: &str| {
        format!("{{telemetry: {{metrics: [{{name: '{name}', help: '{help}', type: 'counter'}}]}}}}")
    };
    assert!(
        error(&metric("my_counter", ""))
            .starts_with("config error: telemetry.metrics: metric my_counter cannot be registered"),
        "{}",
        error(&metric("my_counter", ""))
    );
    assert!(error(&metric("containerpilot_events", "mine")).starts_with(
        "config error: telemetry.metrics: metric containerpilot_events cannot be registered"
    ));
    load(&metric("my_counter", "help"));
}

#[test]
fn kv_watches_take_a_key_or_a_prefix_and_nothing_of_a_service_watch() {
    let config = load(
        r#"{consul: "c:8500", watches: [{name: "cfg", kv: "app/config"}, {name: "all", kv: "app/", prefix: true}, {name: "db", interval: 5}],
            jobs: [{name: "r", exec: "r", when: {source: "watch.cfg", each: "changed"}}]}"#,
    );
    assert_eq!(config.kv_watches.len(), 2);
    assert!(!config.kv_watches[0].prefix && config.kv_watches[1].prefix);
    assert_eq!(config.watches.len(), 1);
    let loaded = load_with(
        r#"{consul: "c:8500", watches: [{name: "cfg", kv: "k"}], jobs: [{name: "r", exec: "r", when: {source: "watch.cfg", each: "changed"}}]}"#,
        None,
        &Env::new(),
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    for (text, field) in [
        (
            r#"{watches: [{name: "cfg", kv: "k", interval: 5}]}"#,
            ".interval",
        ),
        (r#"{watches: [{name: "cfg", kv: "k", tag: "t"}]}"#, ".tag"),
        (
            r#"{watches: [{name: "db", interval: 5, prefix: true}]}"#,
            ".prefix",
        ),
        (
            r#"{watches: [{name: "db", interval: 5}, {name: "db", kv: "k"}]}"#,
            "already named",
        ),
    ] {
        let message = error(text);
        assert!(message.contains(field), "{text}: {message}");
    }
}
