//! Waiting for a submitted instance to finish: callback and polling side by side.
//!
//! A callback only wakes the waiter early; every decision comes from a status read.
//! Polling follows [`poll::PollSchedule`]. The wait ends when JOB says the job is
//! finished, when it waits for a person, at the runner's deadline, or on cancellation.

pub mod callback;
pub mod mode;
pub mod poll;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::executor::events::Observed;
use crate::job_api::client::{ClientError, JobApi, JobStatusView};
use crate::job_api::types::{JobInstanceId, RunStatus};

pub use callback::{CallbackHub, Waiter};
pub use mode::WaitMode;
pub use poll::PollSchedule;

/// How a wait ended.
#[derive(Debug)]
pub enum WaitEnd {
    /// JOB says the job is finished.
    Finished {
        /// The status that said so.
        status: JobStatusView,
        /// When the finish was observed: the callback's arrival, or the poll's answer.
        observed_at: Instant,
        /// Which of the two.
        via: Observed,
    },
    /// The job waits for a person.
    WaitingUser {
        /// The status that said so.
        status: JobStatusView,
    },
    /// The runner's deadline passed.
    Deadline,
    /// The step was cancelled.
    Cancelled,
    /// Reading the status failed (after the client's retries).
    Error(ClientError),
}

/// Waiting settings.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Callback, poll or both.
    pub mode: WaitMode,
    /// First poll pause.
    pub poll_first: Duration,
    /// Poll growth factor.
    pub poll_factor: f64,
    /// Longest poll pause.
    pub poll_cap: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            mode: WaitMode::Both,
            poll_first: Duration::from_secs(1),
            poll_factor: 1.5,
            poll_cap: Duration::from_secs(15),
        }
    }
}

/// Waits for `job`. `waiter` is its callback registration (none in poll mode);
/// `on_status` sees every status read, for progress.
pub async fn wait_for<A: JobApi>(
    api: &A,
    job: JobInstanceId,
    waiter: Option<&Arc<Waiter>>,
    options: &WaitOptions,
    deadline: Instant,
    cancel: &CancellationToken,
    on_status: &mut (dyn FnMut(&JobStatusView) + Send),
) -> WaitEnd {
    let polling = options.mode != WaitMode::Callback || waiter.is_none();
    let mut schedule = PollSchedule::new(options.poll_first, options.poll_factor, options.poll_cap);
    let mut next_poll = Instant::now() + schedule.next_delay();
    loop {
        let woken_by_callback = tokio::select! {
            biased;
            _ = cancel.cancelled() => return WaitEnd::Cancelled,
            _ = tokio::time::sleep_until(deadline.into()) => return WaitEnd::Deadline,
            _ = async { match waiter { Some(w) => w.notified().await, None => std::future::pending().await } } => true,
            _ = tokio::time::sleep_until(next_poll.into()), if polling => false,
        };
        if !woken_by_callback {
            next_poll = Instant::now() + schedule.next_delay();
        }
        let status = tokio::select! {
            _ = cancel.cancelled() => return WaitEnd::Cancelled,
            status = api.status(job) => status,
        };
        let status = match status {
            Ok(status) => status,
            Err(error) => return WaitEnd::Error(error),
        };
        let answered_at = Instant::now();
        on_status(&status);
        if status.finished {
            let (observed_at, via) =
                match (woken_by_callback, waiter.and_then(|w| w.last_callback_at())) {
                    (true, Some(at)) => (at, Observed::Callback),
                    _ => (answered_at, Observed::Poll),
                };
            return WaitEnd::Finished {
                status,
                observed_at,
                via,
            };
        }
        if status.status == RunStatus::WaitingUser
            || status
                .steps
                .iter()
                .any(|s| s.status == RunStatus::WaitingUser)
        {
            return WaitEnd::WaitingUser { status };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::build::ApiCall;
    use crate::job_api::client::{HostLog, HostResult, SubmitOutcome};
    use crate::job_api::types::Protocol;
    use crate::job_api::types::{JobOperation, StepInstanceId, StepOperation};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Says "running" until `finish_after` reads, then "success".
    struct Scripted {
        reads: AtomicUsize,
        finish_after: usize,
    }

    impl JobApi for Scripted {
        fn protocol(&self) -> Protocol {
            Protocol::V3
        }
        async fn submit(
            &self,
            _: ApiCall,
            _: Option<String>,
        ) -> Result<SubmitOutcome, ClientError> {
            Err(ClientError::Unsupported("submit"))
        }
        async fn status(&self, _: JobInstanceId) -> Result<JobStatusView, ClientError> {
            let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
            let done = n >= self.finish_after;
            Ok(JobStatusView {
                finished: done,
                status: if done {
                    RunStatus::Success
                } else {
                    RunStatus::Running
                },
                steps: vec![],
                job_ms: None,
            })
        }
        async fn logs(
            &self,
            _: JobInstanceId,
            _: StepInstanceId,
            _: Vec<HostResult>,
        ) -> Result<Vec<HostLog>, ClientError> {
            Ok(vec![])
        }
        async fn operate_job(&self, _: JobInstanceId, _: JobOperation) -> Result<(), ClientError> {
            Ok(())
        }
        async fn operate_step(
            &self,
            _: JobInstanceId,
            _: StepInstanceId,
            _: StepOperation,
        ) -> Result<(), ClientError> {
            Ok(())
        }
        fn has_step_operations(&self) -> bool {
            true
        }
    }

    fn fast() -> WaitOptions {
        WaitOptions {
            mode: WaitMode::Both,
            poll_first: Duration::from_millis(5),
            poll_factor: 1.5,
            poll_cap: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn a_callback_triggers_a_read_and_is_credited() {
        let api = Scripted {
            reads: AtomicUsize::new(0),
            finish_after: 1,
        };
        let hub = CallbackHub::new("r");
        let waiter = hub.register(5);
        let options = WaitOptions {
            mode: WaitMode::Callback,
            ..fast()
        };
        waiter.notified_now_for_test();
        let end = wait_for(
            &api,
            JobInstanceId(5),
            Some(&waiter),
            &options,
            Instant::now() + Duration::from_secs(5),
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await;
        assert!(
            matches!(
                end,
                WaitEnd::Finished {
                    via: Observed::Callback,
                    ..
                }
            ),
            "{end:?}"
        );
    }

    #[tokio::test]
    async fn polling_finishes_without_callbacks() {
        let api = Scripted {
            reads: AtomicUsize::new(0),
            finish_after: 3,
        };
        let mut seen = 0;
        let end = wait_for(
            &api,
            JobInstanceId(1),
            None,
            &fast(),
            Instant::now() + Duration::from_secs(5),
            &CancellationToken::new(),
            &mut |_| seen += 1,
        )
        .await;
        assert!(matches!(
            end,
            WaitEnd::Finished {
                via: Observed::Poll,
                ..
            }
        ));
        assert_eq!(seen, 3);
    }

    #[tokio::test]
    async fn deadline_and_cancel_end_the_wait() {
        let api = Scripted {
            reads: AtomicUsize::new(0),
            finish_after: usize::MAX,
        };
        let end = wait_for(
            &api,
            JobInstanceId(1),
            None,
            &fast(),
            Instant::now() + Duration::from_millis(50),
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await;
        assert!(matches!(end, WaitEnd::Deadline));
        let cancel = CancellationToken::new();
        cancel.cancel();
        let end = wait_for(
            &api,
            JobInstanceId(1),
            None,
            &fast(),
            Instant::now() + Duration::from_secs(5),
            &cancel,
            &mut |_| {},
        )
        .await;
        assert!(matches!(end, WaitEnd::Cancelled));
    }
}
