//! Relaying a job's (or a health check's) stdout and stderr into the log.
//!
//! Non-raw processes get pipes; each pipe is read by its own task until end of
//! file, which may come after the process exits (a grandchild can hold it), so
//! nothing written is ever dropped. Lines carry the process id and show level
//! INFO; 2.x configurations show stderr lines at DEBUG, as ContainerPilot 2
//! did. They are logged whatever `logging.level` is (see `logging/relay.rs`).

use tokio::task::JoinHandle;
use tracing::Level;

use crate::config::model::Format;
use crate::logging::{OutputLabel, OutputRelay, OutputStream, OutputTail};
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
    let label = label.clone().with_pid(process.pid().as_raw());
    let streams = [
        (
            process.stdout.take().map(Into::into),
            OutputStream::Stdout,
            Level::INFO,
        ),
        (
            process.stderr.take().map(Into::into),
            OutputStream::Stderr,
            stderr_level,
        ),
    ];
    streams
        .into_iter()
        .filter_map(|(pipe, stream, level)| Some((pipe?, stream, level)))
        .map(|(pipe, stream, level): (std::os::fd::OwnedFd, _, _)| {
            let mut relay = OutputRelay::new(label.clone(), stream, level);
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
