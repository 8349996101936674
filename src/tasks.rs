//! The background tasks of a run, under one cancellation tree and one tracker.
//!
//! Every task a configuration starts beside the jobs (watches, the telemetry
//! server, health checks) is spawned here with a token that is a child of the
//! run's root: cancelling the token retires that one task (a reload removed
//! its watch, a job withdrew from the catalog), cancelling the root retires
//! them all at exit, and the tracker says when they are gone. Tasks that
//! must finish their work rather than be cut short (relaying a process's
//! last output lines) are tracked without a token, and the exit waits for
//! them, within [`EXIT_DRAIN`]. This module owns that mechanism; it must not
//! know what the tasks do.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the exit waits for tracked tasks to finish (a grandchild that
/// keeps a job's output pipe open must not hold autopilot up).
pub(crate) const EXIT_DRAIN: Duration = Duration::from_secs(1);

/// Where background tasks run; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    root: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    /// Runs `task` until it ends or the returned token (or the root) is
    /// cancelled.
    pub(crate) fn spawn(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> CancellationToken {
        let stop = self.root.child_token();
        let cancelled = stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = cancelled.cancelled() => {}
                _ = task => {}
            }
        });
        stop
    }

    /// Runs `task` to its end (no token cancels it); the exit waits for it.
    pub(crate) fn track<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Cancels every cancellable task and waits until all tasks have ended,
    /// tracked ones for at most [`EXIT_DRAIN`].
    pub(crate) async fn shut_down(&self) {
        self.tracker.close();
        self.root.cancel();
        if tokio::time::timeout(EXIT_DRAIN, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::debug!("output still open after {EXIT_DRAIN:?}; exiting anyway");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// True while the task holding it has not been dropped.
    struct Alive(Arc<AtomicBool>);

    impl Drop for Alive {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }

    fn forever(tasks: &Tasks) -> (CancellationToken, Arc<AtomicBool>) {
        let alive = Arc::new(AtomicBool::new(true));
        let held = Alive(alive.clone());
        let stop = tasks.spawn(async move {
            let _held = held;
            std::future::pending::<()>().await
        });
        (stop, alive)
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_retires_its_task_and_the_root_retires_all() {
        let tasks = Tasks::default();
        let (first, first_alive) = forever(&tasks);
        let (_second, second_alive) = forever(&tasks);
        first.cancel();
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert!(!first_alive.load(Ordering::SeqCst));
        assert!(second_alive.load(Ordering::SeqCst));
        tasks.shut_down().await;
        assert!(!second_alive.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn the_exit_waits_for_tracked_tasks_within_its_bound() {
        let tasks = Tasks::default();
        let done = Arc::new(AtomicBool::new(false));
        let finished = done.clone();
        tasks.track(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            finished.store(true, Ordering::SeqCst);
        });
        tasks.track(std::future::pending::<()>());
        let start = tokio::time::Instant::now();
        tasks.shut_down().await;
        assert!(done.load(Ordering::SeqCst), "the short task finished");
        assert_eq!(
            start.elapsed(),
            EXIT_DRAIN,
            "the endless one was given up on"
        );
    }
}
