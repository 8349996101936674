//! The engine's rules on paused time: every job here runs through a scripted
//! spawner, and every instant is exact (milliseconds after `startup`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use nix::unistd::Pid;

use super::*;
use crate::config::model::JobConfig;
use crate::process::SpawnError;
use crate::shutdown::Shutdown;

/// How a scripted run behaves.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Exits with `code` after `after`; any signal but SIGKILL ends it at once (143).
    Exit { after: Duration, code: i32 },
    /// Runs until killed; ignores SIGTERM (only SIGKILL ends it).
    Stubborn,
}

fn exits(after_ms: u64, code: i32) -> Script {
    Script::Exit {
        after: Duration::from_millis(after_ms),
        code,
    }
}

const FOREVER: Script = Script::Exit {
    after: Duration::from_secs(1_000_000),
    code: 0,
};

/// A spawner that records when each run started and plays its job's script.
struct Scripted {
    epoch: Instant,
    scripts: BTreeMap<String, Script>,
    started: Arc<Mutex<Vec<(u64, String, String)>>>,
}

impl Spawner for Scripted {
    fn spawn(&self, job: &str, _: &JobRole, spec: SpawnSpec) -> Result<Box<dyn Child>, SpawnError> {
        let mut started = self.started.lock().unwrap();
        let argv: Vec<_> = spec.argv.iter().map(|arg| arg.to_string_lossy()).collect();
        started.push((ms_since(self.epoch), job.to_string(), argv.join(" ")));
        let (signals, received) = watch::channel(None);
        Ok(Box::new(FakeChild {
            pid: Pid::from_raw(1000 + started.len() as i32),
            script: self.scripts.get(job).copied().unwrap_or(FOREVER),
            started: Instant::now(),
            signals,
            received,
        }))
    }
}

struct FakeChild {
    pid: Pid,
    script: Script,
    started: Instant,
    signals: watch::Sender<Option<Signal>>,
    received: watch::Receiver<Option<Signal>>,
}

impl Child for FakeChild {
    fn pid(&self) -> Pid {
        self.pid
    }

    fn signal_group(&self, signal: Signal) {
        self.signals.send_replace(Some(signal));
    }

    fn wait(&mut self) -> BoxFuture<'_, ExitStatus> {
        let script = self.script;
        let started = self.started;
        let mut received = self.received.clone();
        Box::pin(async move {
            let fatal = move |signal: &Option<Signal>| {
                matches!(
                    (script, signal),
                    (_, Some(Signal::SIGKILL)) | (Script::Exit { .. }, Some(_))
                )
            };
            let exit = match script {
                Script::Exit { after, code } => Some((started + after, code)),
                Script::Stubborn => None,
            };
            tokio::select! {
                Ok(signal) = received.wait_for(fatal) => ExitStatus::Signal(signal.unwrap() as i32),
                code = sleep_then(exit) => ExitStatus::Code(code),
            }
        })
    }
}

async fn sleep_then(exit: Option<(Instant, i32)>) -> i32 {
    match exit {
        Some((at, code)) => {
            tokio::time::sleep_until(at).await;
            code
        }
        None => std::future::pending().await,
    }
}

fn ms_since(epoch: Instant) -> u64 {
    (Instant::now() - epoch).as_millis() as u64
}

/// Jobs on a bus, and what happened to them.
struct Engine {
    epoch: Instant,
    bus: Bus,
    shared: Shared,
    started: Arc<Mutex<Vec<(u64, String, String)>>>,
    events: Arc<Mutex<Vec<(u64, String)>>>,
    reports: mpsc::UnboundedReceiver<Report>,
    shutdown: Shutdown,
    handles: BTreeMap<String, Handle>,
}

impl Engine {
    fn new(scripts: &[(&str, Script)]) -> Engine {
        let epoch = Instant::now();
        let bus = Bus::default();
        let started = Arc::new(Mutex::new(Vec::new()));
        let (reports_sender, reports) = mpsc::unbounded_channel();
        let shutdown = Shutdown::new(bus.clone());
        let shared = Shared {
            spawner: Arc::new(Scripted {
                epoch,
                scripts: scripts
                    .iter()
                    .map(|(job, script)| (job.to_string(), *script))
                    .collect(),
                started: started.clone(),
            }),
            reaper: Reaper::default(),
            tasks: Tasks::default(),
            bus: bus.clone(),
            env: Environment::from_process(),
            reports: reports_sender,
            stop: shutdown.follower(),
            format: Format::V3,
            maintenance: watch::channel(false).1,
            in_catalog: InCatalog::default(),
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut subscription = bus.subscribe();
        let recorded = events.clone();
        tokio::spawn(async move {
            while let Some(event) = subscription.recv().await {
                recorded
                    .lock()
                    .unwrap()
                    .push((ms_since(epoch), event.to_string()));
            }
        });
        Engine {
            epoch,
            bus,
            shared,
            started,
            events,
            reports,
            shutdown,
            handles: BTreeMap::new(),
        }
    }

    fn run(&mut self, jobs: &[JobConfig]) {
        for job in jobs {
            let spec = JobSpec {
                dependents: stopping_dependents(&job.name, jobs),
                advertisement: None,
                discovery: None,
                config: job.clone(),
            };
            let handle = spawn(spec, self.shared.clone(), Start::Waiting);
            self.handles.insert(job.name.clone(), handle);
        }
        self.publish(EventCode::Startup, GLOBAL_SOURCE);
    }

    fn publish(&self, code: EventCode, source: &str) {
        self.bus.publish(Event::new(code, source));
    }

    /// Begins the shutdown as the supervisor does.
    fn shut_down(&self) {
        self.shutdown.begin(None);
    }

    async fn until(&self, ms: u64) {
        tokio::time::sleep_until(self.epoch + Duration::from_millis(ms)).await;
    }

    /// Waits (on paused time) until `job` reports it finished.
    async fn finished(&mut self, job: &str) {
        while let Some(report) = self.reports.recv().await {
            if report == (Report::Finished { job: job.into() }) {
                return;
            }
        }
        panic!("the reports ended before {job} finished");
    }

    fn starts(&self, job: &str) -> Vec<u64> {
        self.runs(job).into_iter().map(|(at, _)| at).collect()
    }

    /// When each run of `job` started, and its command line.
    fn runs(&self, job: &str) -> Vec<(u64, String)> {
        let started = self.started.lock().unwrap();
        started
            .iter()
            .filter(|(_, name, _)| name == job)
            .map(|(at, _, argv)| (*at, argv.clone()))
            .collect()
    }

    /// Every event so far, as `ms source.code`.
    fn events(&self) -> Vec<String> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .map(|(at, event)| format!("{at} {event}"))
            .collect()
    }

    fn events_of(&self, source: &str) -> Vec<String> {
        let prefix = format!("{source}.");
        self.events()
            .into_iter()
            .filter(|line| {
                line.split_once(' ')
                    .is_some_and(|(_, e)| e.starts_with(&prefix))
            })
            .collect()
    }
}

fn job(name: &str, when: When) -> JobConfig {
    JobConfig {
        when,
        exec: Some(vec!["run".into(), name.into()]),
        ..JobConfig::with_defaults(name, JobRole::Plain)
    }
}

fn on(code: EventCode, source: &str, frequency: Frequency) -> When {
    When::Event {
        code,
        source: source.into(),
        frequency,
        timeout: None,
    }
}

fn every(ms: u64) -> When {
    When::Interval {
        interval: Duration::from_millis(ms),
    }
}

#[test]
fn hooks_and_dependents() {
    let jobs = vec![
        job("app", When::default()),
        job("preStop", on(EventCode::Stopping, "app", Frequency::Once)),
        job("postStop", on(EventCode::Stopped, "app", Frequency::Once)),
    ];
    assert!(!is_shutdown_hook(&jobs[0]));
    assert!(is_shutdown_hook(&jobs[1]));
    assert!(is_shutdown_hook(&jobs[2]));
    assert_eq!(stopping_dependents("app", &jobs), ["preStop"]);
    assert!(stopping_dependents("preStop", &jobs).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failing_job_restarts_as_often_as_allowed_after_its_growing_delay() {
    let mut engine = Engine::new(&[("worker", exits(100, 1))]);
    let worker = JobConfig {
        restarts: Restarts::Count(3),
        restart_delay: Duration::from_millis(1000),
        ..job("worker", When::default())
    };
    engine.run(&[worker]);
    engine.finished("worker").await;
    // Runs of 100 ms, then delays of 1 s, 2 s, 4 s (doubling after failures).
    assert_eq!(engine.starts("worker"), [0, 1100, 3200, 7300]);
    let events = engine.events_of("worker");
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(events[3], "7400 worker.exitFailed");
    assert_eq!(events[4..], ["7400 worker.stopping", "7400 worker.stopped"]);
}

#[tokio::test(start_paused = true)]
async fn an_interval_job_runs_every_interval_from_startup() {
    let mut engine = Engine::new(&[("tick", exits(10, 0))]);
    let tick = JobConfig {
        restarts: Restarts::Count(2),
        ..job("tick", every(500))
    };
    engine.run(&[tick]);
    engine.finished("tick").await;
    assert_eq!(engine.starts("tick"), [500, 1000, 1500]);
}

#[tokio::test(start_paused = true)]
async fn an_overrunning_interval_run_is_killed_and_the_next_starts_at_the_tick() {
    let mut engine = Engine::new(&[("slow", Script::Stubborn)]);
    // The timeout defaults to the interval, as the configuration sets it.
    let slow = JobConfig {
        timeout: Some(Duration::from_millis(500)),
        restarts: Restarts::Unlimited,
        ..job("slow", every(500))
    };
    engine.run(&[slow]);
    engine.until(2600).await;
    assert_eq!(engine.starts("slow"), [500, 1000, 1500, 2000, 2500]);
    assert_eq!(
        engine.events_of("slow")[..3],
        [
            "1000 slow.exitFailed",
            "1500 slow.exitFailed",
            "2000 slow.exitFailed"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_outliving_its_timeout_is_killed() {
    let mut engine = Engine::new(&[("hang", Script::Stubborn)]);
    let hang = JobConfig {
        timeout: Some(Duration::from_millis(300)),
        ..job("hang", When::default())
    };
    engine.run(&[hang]);
    engine.finished("hang").await;
    assert_eq!(
        engine.events_of("hang"),
        [
            "300 hang.exitFailed",
            "300 hang.stopping",
            "300 hang.stopped"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn when_timeout_publishes_timer_expired_and_others_can_hook_it() {
    let mut engine = Engine::new(&[("fallback", exits(10, 0))]);
    let waiting = JobConfig {
        when: When::Event {
            code: EventCode::Healthy,
            source: "db".into(),
            frequency: Frequency::Once,
            timeout: Some(Duration::from_millis(700)),
        },
        ..job("waiting", When::default())
    };
    let fallback = job(
        "fallback",
        on(EventCode::TimerExpired, "waiting", Frequency::Once),
    );
    engine.run(&[waiting, fallback]);
    engine.finished("fallback").await;
    assert!(engine.starts("waiting").is_empty());
    assert_eq!(
        engine.events_of("waiting"),
        [
            "700 waiting.timerExpired",
            "700 waiting.stopping",
            "700 waiting.stopped"
        ]
    );
    assert_eq!(engine.starts("fallback"), [700]);
}

#[tokio::test(start_paused = true)]
async fn once_runs_for_the_first_event_and_each_for_every_event_while_idle() {
    let mut engine = Engine::new(&[("once", exits(50, 0)), ("each", exits(50, 0))]);
    engine.run(&[
        job("once", on(EventCode::Changed, "watch.db", Frequency::Once)),
        job("each", on(EventCode::Changed, "watch.db", Frequency::Each)),
    ]);
    for at in [100, 120, 300, 600] {
        engine.until(at).await;
        engine.publish(EventCode::Changed, "watch.db");
    }
    engine.until(1000).await;
    assert_eq!(engine.starts("once"), [100]);
    // The event at 120 ms came while the run of 100 ms was still going.
    assert_eq!(engine.starts("each"), [100, 300, 600]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_a_job_with_its_signal_then_kills_it_after_the_kill_timeout() {
    let mut engine = Engine::new(&[("stubborn", Script::Stubborn)]);
    let stubborn = JobConfig {
        kill_timeout: Duration::from_millis(800),
        ..job("stubborn", When::default())
    };
    engine.run(&[stubborn]);
    engine.until(1000).await;
    engine.shut_down();
    engine.finished("stubborn").await;
    assert_eq!(
        engine.events_of("stubborn"),
        [
            "1000 stubborn.stopping",
            "1800 stubborn.exitFailed",
            "1800 stubborn.stopped"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_hook_runs_before_its_job_is_signalled_within_its_budget() {
    let mut engine = Engine::new(&[("app", FOREVER), ("preStop", Script::Stubborn)]);
    let app = JobConfig {
        stop_timeout: Duration::from_secs(6),
        ..job("app", When::default())
    };
    engine.run(&[
        app,
        job("preStop", on(EventCode::Stopping, "app", Frequency::Once)),
    ]);
    engine.until(100).await;
    engine.shut_down();
    engine.finished("app").await;
    // The app waits for its preStop up to its stopTimeout (6 s here); the
    // hook is killed at the shutdown budget of 5 s.
    assert_eq!(engine.starts("preStop"), [100]);
    let events = engine.events();
    let position = |line: &str| events.iter().position(|e| e == line);
    let hook_ended = position("5100 preStop.stopped").expect("preStop stopped at 5.1 s");
    let app_exit = position("5100 app.exitFailed").expect("app stopped at 5.1 s");
    assert!(hook_ended < app_exit, "{events:?}");
    assert_eq!(engine.events_of("preStop")[0], "5100 preStop.exitFailed");
}

#[tokio::test(start_paused = true)]
async fn a_replaced_job_whose_event_already_happened_starts_again_at_once_without_hooks() {
    let mut engine = Engine::new(&[("preStart", exits(10, 0)), ("app", FOREVER)]);
    let app = job(
        "app",
        on(EventCode::ExitSuccess, "preStart", Frequency::Once),
    );
    engine.run(&[
        job("preStart", When::default()),
        app.clone(),
        job("preStop", on(EventCode::Stopping, "app", Frequency::Once)),
    ]);
    engine.until(1000).await;
    let changed = JobConfig {
        exec: Some(vec!["run".into(), "app".into(), "--new".into()]),
        ..app
    };
    let spec = JobSpec {
        config: changed,
        dependents: vec!["preStop".into()],
        advertisement: None,
        discovery: None,
    };
    assert!(engine.handles["app"].replace(spec, Start::AlreadyTriggered));
    engine.until(2000).await;
    assert_eq!(
        engine.starts("app"),
        [10, 1000],
        "stopped with SIGTERM, started again"
    );
    assert!(engine.starts("preStop").is_empty(), "no stop hook ran");
    assert!(
        engine.events_of("app").is_empty(),
        "{:?}",
        engine.events_of("app")
    );
}

#[tokio::test(start_paused = true)]
async fn hooks_give_up_once_every_regular_job_is_done() {
    let mut engine = Engine::new(&[]);
    engine.run(&[job(
        "postStop",
        on(EventCode::Stopped, "nobody", Frequency::Once),
    )]);
    engine.until(100).await;
    engine.shut_down();
    engine.until(200).await;
    engine.shutdown.drain();
    engine.finished("postStop").await;
    assert!(engine.starts("postStop").is_empty());
    assert_eq!(ms_since(engine.epoch), 200);
}

#[tokio::test(start_paused = true)]
async fn a_stop_hook_added_by_a_reload_is_waited_for() {
    let mut engine = Engine::new(&[("app", FOREVER), ("preStop", exits(300, 0))]);
    let app = job("app", When::default());
    engine.run(std::slice::from_ref(&app));
    engine.until(100).await;
    let hook = job("preStop", on(EventCode::Stopping, "app", Frequency::Once));
    let hook_spec = JobSpec {
        config: hook,
        dependents: Vec::new(),
        advertisement: None,
        discovery: None,
    };
    let _hook = spawn(hook_spec, engine.shared.clone(), Start::Waiting);
    engine.handles["app"].refresh(JobSpec {
        config: app,
        dependents: vec!["preStop".into()],
        advertisement: None,
        discovery: None,
    });
    engine.until(200).await;
    engine.shut_down();
    engine.finished("app").await;
    assert_eq!(engine.starts("app"), [0], "the app kept its process");
    assert_eq!(
        engine.events_of("app"),
        ["200 app.stopping", "500 app.exitFailed", "500 app.stopped"],
        "the app waited for the preStop run (200 → 500 ms)"
    );
}

/// `job` with its exec changed to `run <job> <version>`, as a reload gives it.
fn changed(job: &JobConfig, version: &str) -> JobSpec {
    JobSpec {
        config: JobConfig {
            exec: Some(vec!["run".into(), job.name.clone().into(), version.into()]),
            ..job.clone()
        },
        dependents: Vec::new(),
        advertisement: None,
        discovery: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_changed_while_waiting_to_restart_restarts_with_its_new_configuration() {
    let mut engine = Engine::new(&[("worker", exits(100, 1))]);
    let worker = JobConfig {
        restarts: Restarts::Count(1),
        restart_delay: Duration::from_millis(1000),
        ..job("worker", When::default())
    };
    engine.run(std::slice::from_ref(&worker));
    engine.until(500).await;
    let replaced =
        engine.handles["worker"].replace(changed(&worker, "v2"), Start::AlreadyTriggered);
    assert!(replaced, "the job's task takes the new configuration");
    engine.until(5000).await;
    assert_eq!(
        engine.runs("worker"),
        [
            (0, "run worker".to_string()),
            (500, "run worker v2".to_string()),
            (1600, "run worker v2".to_string()),
        ],
        "the pending restart of the old configuration is dropped; the new one has its whole budget"
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_changed_while_stopping_starts_again_with_its_new_configuration() {
    let mut engine = Engine::new(&[("once", exits(100, 0)), ("preStop", exits(500, 0))]);
    let once = job("once", When::default());
    engine.run(&[
        once.clone(),
        job("preStop", on(EventCode::Stopping, "once", Frequency::Once)),
    ]);
    // `once` ran its one run (0-100 ms) and is stopping: it waits for its
    // preStop (100-600 ms). The reload reaches it then.
    engine.until(300).await;
    let replaced = engine.handles["once"].replace(changed(&once, "v2"), Start::AlreadyTriggered);
    assert!(replaced, "an order sent while stopping is read at the end");
    engine.finished("once").await;
    assert_eq!(
        engine.runs("once"),
        [
            (0, "run once".to_string()),
            (600, "run once v2".to_string())
        ]
    );
    assert_eq!(
        ms_since(engine.epoch),
        700,
        "the new run went through its own end"
    );
    assert!(
        !engine.handles["once"].replace(changed(&once, "v3"), Start::AlreadyTriggered),
        "a task that ended takes no more orders: the supervisor starts the job afresh"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hook_on_shutdown_runs_when_the_stop_begins_and_a_second_request_kills_it() {
    let mut engine = Engine::new(&[("app", FOREVER), ("onShutdown", Script::Stubborn)]);
    engine.run(&[
        job("app", When::default()),
        job(
            "onShutdown",
            on(EventCode::Shutdown, GLOBAL_SOURCE, Frequency::Once),
        ),
    ]);
    engine.until(100).await;
    engine.shut_down();
    engine.finished("app").await;
    engine.until(300).await;
    assert_eq!(engine.starts("onShutdown"), [100]);
    engine.shutdown.hurry();
    engine.finished("onShutdown").await;
    assert_eq!(
        ms_since(engine.epoch),
        300,
        "killed at once, not at its budget"
    );
    let shutdowns = engine
        .events()
        .into_iter()
        .filter(|e| e.ends_with("global.shutdown"));
    assert_eq!(shutdowns.collect::<Vec<_>>(), ["100 global.shutdown"]);
    assert_eq!(
        engine.events_of("app"),
        ["100 app.stopping", "100 app.exitFailed", "100 app.stopped"],
        "the regular job stopped on the stop's first stage"
    );
    assert_eq!(
        engine.events_of("onShutdown")[0],
        "300 onShutdown.exitFailed"
    );
}
