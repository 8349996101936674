//! autopilot: a PID 1 supervisor for containers, and a drop-in replacement for
//! ContainerPilot 2.x and 3.x.
//!
//! # Architecture
//!
//! One module per concern; each module's doc says what it owns and what it must
//! not touch.
//!
//! - [`cli`]: argument parsing (Go-style `-flag` and GNU `--flag`) and dispatch.
//! - [`config`]: reading, rendering (Go templates), parsing (JSON5) and
//!   validating configuration into one model, for both file formats.
//! - [`reaper`]: the only caller of `waitpid(-1)`; hands our children's exit
//!   statuses to whoever spawned them and silently reaps orphans.
//! - [`process`]: spawning processes in their own process group, signalling
//!   and stopping groups.
//! - [`signals`]: turning POSIX signals into a stream the supervisor consumes.
//! - [`supervisor`]: the top-level run loop: start jobs, give signals their
//!   meaning, answer the control plane, shut down, compute the exit code.
//! - [`console`]: printing to stdout/stderr without ever panicking.
//! - [`control`]: the control plane: HTTP over a unix socket, server and client.
//! - [`http_server`]: the bounded HTTP/1.1 accept loop both servers share.
//! - [`events`]: the event vocabulary and the ordered event bus.
//! - [`jobs`]: one job's lifecycle (when → run → restart → stop) and its
//!   health checks.
//! - [`discovery`]: the service catalogs (Consul, etcd), watch logic and IP
//!   selection.
//! - [`watches`]: following services in the catalog and publishing changes.
//! - [`environment`]: the environment table every spawned process gets.
//! - [`logging`]: the log subscriber (formats, output, reopen) and the relay
//!   of job output into log lines.
//! - [`telemetry`]: the Prometheus metrics and the `/metrics` endpoint.
pub mod cli;
pub mod config;
pub mod console;
pub mod control;
pub mod discovery;
pub mod environment;
pub mod events;
pub mod http_server;
pub mod jobs;
pub mod kv_watches;
pub mod locks;
pub mod logging;
pub mod process;
pub mod reaper;
pub mod signals;
pub mod supervisor;
pub mod telemetry;
pub mod watches;
