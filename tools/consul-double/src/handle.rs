//! Starting and stopping a double: `ConsulDouble` runs it on its own thread and runtime (for
//! synchronous tests), `AsyncConsulDouble` runs it as tasks of the caller's runtime. Both
//! dereference to `Control` and stop the server when dropped.
//!
//! Owns the lifecycle only.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::control::{Config, Control, Shared};
use crate::error::StartError;
use crate::server;

/// A double running on its own thread with its own single-threaded runtime, usable from
/// plain synchronous code. Dropping it stops the server and joins the thread.
pub struct ConsulDouble {
    control: Control,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl ConsulDouble {
    /// Binds `config.listen` (so the port is taken when this returns) and starts serving.
    pub fn start(config: Config) -> Result<Self, StartError> {
        let addr = config.listen;
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| StartError::Bind { addr, source })?;
        let bound = local_addr(&listener, addr)?;
        listener
            .set_nonblocking(true)
            .map_err(|source| StartError::Bind { addr, source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let control = Control::new(Arc::new(Shared::new(config)), bound);
        let (shutdown, shutdown_signal) = watch::channel(false);
        let serving = control.clone();
        let thread = std::thread::Builder::new()
            .name(format!("consul-double-{}", bound.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => server::run(listener, serving, shutdown_signal).await,
                        Err(error) => tracing::error!(%error, "cannot register the listener"),
                    }
                })
            })
            .map_err(StartError::Runtime)?;
        Ok(ConsulDouble {
            control,
            shutdown,
            thread: Some(thread),
        })
    }

    /// A handle that can move to other threads and outlive this borrow (not the double).
    pub fn control(&self) -> Control {
        self.control.clone()
    }
}

impl Deref for ConsulDouble {
    type Target = Control;

    fn deref(&self) -> &Control {
        &self.control
    }
}

impl Drop for ConsulDouble {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A double running as tasks on the caller's tokio runtime (which needs the `net` and
/// `time` drivers). Dropping it stops the server.
pub struct AsyncConsulDouble {
    control: Control,
    shutdown: watch::Sender<bool>,
}

impl AsyncConsulDouble {
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let control = Control::new(Arc::new(Shared::new(config)), bound);
        let (shutdown, shutdown_signal) = watch::channel(false);
        tokio::spawn(server::run(listener, control.clone(), shutdown_signal));
        Ok(AsyncConsulDouble { control, shutdown })
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }
}

impl Deref for AsyncConsulDouble {
    type Target = Control;

    fn deref(&self) -> &Control {
        &self.control
    }
}

impl Drop for AsyncConsulDouble {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn local_addr(
    listener: &std::net::TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })
}
