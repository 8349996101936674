//! Relaying a job's (or a health check's) stdout and stderr into the log.
//!
//! Non-raw processes get pipes; each pipe is read by its own task until end of
//! file, which may come after the process exits (a grandchild can hold it), so
//! nothing written is ever dropped. Lines are logged at INFO; 2.x configurations
//! log stderr lines at DEBUG, as ContainerPilot 2 did.

use tokio::task::JoinHandle;
use tracing::Level;

use crate::config::model::Format;
use crate::logging::{OutputLabel, OutputRelay, OutputTail};
use crate::process::Process;
use crate::tasks::Tasks;

/// Starts relaying the process's piped output under `label`, optionally
/// keeping the last bytes of both streams in `tail`. Returns the relay tasks;
/// autopilot's exit waits for them (see [`Tasks::track`]), so a hook's last
/// lines are logged even when autopilot exits right after it.
pub(super) fn relay(
    process: &mut Process,
    label: &OutputLabel,
    format: Format,
    tail: Option<&OutputTail>,
    tasks: &Tasks,
) -> Vec<JoinHandle<()>> {
    let stderr_level = match format {
        Format::V2 => Level::DEBUG,
        Format::V3 => Level::INFO,
    };
    let streams = [
        process.stdout.take().map(|pipe| (pipe.into(), Level::INFO)),
        process
            .stderr
            .take()
            .map(|pipe| (pipe.into(), stderr_level)),
    ];
    streams
        .into_iter()
        .flatten()
        .map(|(pipe, level): (std::os::fd::OwnedFd, Level)| {
            let mut relay = OutputRelay::new(label.clone(), level);
            if let Some(tail) = tail {
                relay = relay.with_tail(tail.clone());
            }
            tasks.track(async move {
                if let Err(error) = relay.run(pipe).await {
                    tracing::warn!("{error}");
                }
            })
        })
        .collect()
}
