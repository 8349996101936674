//! autopilot: a PID 1 supervisor for containers, and a drop-in replacement for
//! ContainerPilot 2.x and 3.x.
//!
//! # Architecture
//!
//! One module per concern; each module's doc says what it owns and what it must
//! not touch. `docs/design.md` draws the runtime picture (tasks, channels, how
//! a stop and a reload travel) and states the behaviour rules the code cites.
//!
//! A stop travels one way (docs/design.md, "How a stop travels"): whatever
//! starts it (a signal, the APP's exit, a failed preStart, the primary
//! job's end), the [`supervisor`] releases the leader locks and begins the
//! run's [`shutdown`]; every job follows its stages (stopping, drained,
//! hurried) and the `shutdown` event reaches the hooks that wait for it.
//! When the last job has reported its end, the supervisor cancels the run's
//! [`tasks`] and returns the exit code.
//!
//! - [`cli`]: argument parsing (Go-style `-flag` and GNU `--flag`) and dispatch.
//! - [`config`]: reading, rendering (Go templates), parsing (JSON5) and
//!   validating configuration into one model, for both file formats.
//! - [`reaper`]: the only caller of `waitpid(-1)`; hands our children's exit
//!   statuses to whoever spawned them and silently reaps orphans.
//! - [`process`]: spawning processes in their own process group, signalling
//!   and stopping groups.
//! - [`signals`]: turning POSIX signals into a stream the supervisor consumes,
//!   and handing the APP the signal dispositions and mask autopilot inherited.
//! - [`job_control`]: the terminal and Ctrl-Z/`fg` when run from a shell.
//! - [`supervisor`]: the top-level run loop: start jobs, give signals their
//!   meaning, answer the control plane, shut down, compute the exit code.
//! - [`console`]: printing to stdout/stderr without ever panicking.
//! - [`control`]: the control plane: HTTP over a unix socket, server and client.
//! - [`http_client`]: the HTTP client (connections, TLS, timeouts, URLs) of
//!   the catalogs and `http` health checks.
//! - [`http_server`]: the bounded HTTP/1.1 accept loop both servers share.
//! - [`events`]: the event vocabulary and the ordered event bus.
//! - [`failure_streak`]: the rate limit of failure lines that recur.
//! - [`jobs`]: one job's lifecycle (when → run → restart → stop) and its
//!   health checks.
//! - [`discovery`]: the service catalogs (Consul, etcd), watch logic and IP
//!   selection.
//! - [`watches`]: following services in the catalog and publishing changes.
//! - [`kv_watches`]: **\[beyond\]** following KV keys, publishing changes,
//!   and handing small values to the jobs they start.
//! - [`locks`]: **\[beyond\]** leader locks: `acquired` / `lost` events,
//!   their status and metrics, following a reload, and their release on
//!   shutdown.
//! - [`environment`]: the environment table every spawned process gets.
//! - [`logging`]: the log subscriber (formats, output, reopen) and the relay
//!   of job output into log lines.
//! - [`telemetry`]: the Prometheus metrics and the `/metrics` endpoint.
//! - [`shutdown`]: how a stop travels: the stages of the run's shutdown,
//!   moved by the supervisor and followed by every job.
//! - [`tasks`]: background tasks under one cancellation tree and tracker.
#![warn(unreachable_pub)]
mod cli;
mod config;
mod console;
mod control;
mod discovery;
mod environment;
mod events;
mod failure_streak;
mod http_client;
mod http_server;
mod job_control;
mod jobs;
mod kv_watches;
mod locks;
mod logging;
mod process;
mod reaper;
mod shutdown;
mod signals;
mod supervisor;
mod tasks;
mod telemetry;
mod watches;

/// The whole program: parses the arguments, runs what they ask for, and
/// returns the exit code. The library's one interface; `src/main.rs` calls it.
pub use cli::main;

/// Called by `src/main.rs` from `.init_array`, before the Rust runtime
/// changes any signal disposition.
#[doc(hidden)]
pub use signals::record_inherited;

/// What the integration tests (`tests/`) and the fuzz drivers (`fuzz/`)
/// reach inside the crate, under the same paths as inside it. Not an
/// interface: it changes whenever the code does.
#[doc(hidden)]
pub mod testing {
    pub mod config {
        pub use crate::config::{load_str, render_args, Config, Env, Format, Loaded, Origin};
        pub mod template {
            pub use crate::config::template::{Dependency, Fetched, ServiceQuery};
        }
        pub mod model {
            pub use crate::config::model::{
                CheckStatus, EtcdConfig, Frequency, HealthCheck, JobConfig, JobRole, LogFormat,
                LogLevel, LogOutput, LoggingConfig, MetricConfig, MetricKind, Restarts, TlsConfig,
                WatchConfig, When, DEFAULT_STOP_TIMEOUT, GLOBAL_SOURCE, WRAP_KILL_TIMEOUT,
            };
        }
    }
    pub mod control {
        pub use crate::control::{serve_connection, Api, Request, SignalOutcome};
    }
    pub mod discovery {
        pub use crate::discovery::{
            ConsulSettings, Discovery, DiscoveryError, HealthyInstances, Instance,
            ServiceRegistration, Transport, MAX_CHECK_OUTPUT,
        };
        pub mod lock {
            pub use crate::discovery::lock::{LockEvent, LockSpec};
        }
        pub mod consul {
            pub use crate::discovery::consul::{BasicAuth, Secret};
        }
        pub mod interfaces {
            pub use crate::discovery::interfaces::{find_ip, InterfaceError};
        }
        pub mod watch {
            pub use crate::discovery::watch::WatchState;
        }
    }
    pub mod environment {
        pub use crate::environment::Environment;
    }
    pub mod events {
        pub use crate::events::EventCode;
    }
    pub mod logging {
        pub use crate::logging::{
            build_dispatch, init, LogHandle, LoggingError, OutputLabel, OutputRelay, OutputStream,
            OutputTail, MAX_LINE_BYTES, TAIL_BYTES,
        };
    }
    pub mod supervisor {
        pub use crate::supervisor::SHUTDOWN_SIGNAL_BURST;
    }
    pub mod telemetry {
        pub use crate::telemetry::{serve, Metrics, StatusQuery, CONTENT_TYPE};
    }
    pub mod tasks {
        pub use crate::tasks::Tasks;
    }
}
