//! A gate step's life: wait at the gate (see `executor::gate`), then end as the
//! answer says: approved succeeds; rejected or timed out fails, and the run remembers
//! that a gate stopped it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::ending::Ending;
use super::{JobStepRunner, StepOutput, StepSource};
use crate::compile::condition::{ApproveStep, DEFAULT_GATE_TIMEOUT_SECS};
use crate::executor::events::{GateDecision, Observed, StepRef, StepStatus};
use crate::executor::gate::{self, GateEnd};
use crate::executor::scheduler::StepContext;
use crate::job_api::client::JobApi;

impl<A: JobApi, S: StepSource> JobStepRunner<A, S> {
    /// Waits at an approval gate.
    pub(super) async fn gate(
        &self,
        step_ref: &StepRef,
        approve: &ApproveStep,
        ctx: &StepContext<StepOutput>,
    ) -> Ending {
        let setup = &self.setup;
        let timeout =
            Duration::from_secs(approve.timeout.map_or(DEFAULT_GATE_TIMEOUT_SECS, |t| t.0));
        let end = gate::wait(
            &setup.gates,
            &setup.events,
            &setup.run_id,
            step_ref,
            &approve.message,
            timeout,
            &ctx.control,
        )
        .await;
        let (run, id) = (&setup.run_id, &step_ref.id);
        let mut ending = match end {
            GateEnd::Decided(GateDecision::Approved, _) => Ending {
                status: StepStatus::Succeeded,
                error: None,
                ..Ending::failed(String::new(), 0, None)
            },
            GateEnd::Decided(GateDecision::Rejected, by) => Ending::failed(
                format!("rejected by {}", by.unwrap_or_else(|| "someone".into())),
                0,
                None,
            ),
            GateEnd::Decided(GateDecision::TimedOut, _) => Ending::failed(
                format!(
                    "no approval within {}: `baton approve {run} {id}`, then `baton resume {run}`",
                    humantime::format_duration(timeout)
                ),
                0,
                None,
            ),
            GateEnd::Interrupted => Ending {
                status: StepStatus::Interrupted,
                ..Ending::failed("interrupted while waiting for approval".into(), 0, None)
            },
        };
        if ending.status == StepStatus::Failed {
            self.gate_stopped.store(true, Ordering::SeqCst);
        }
        ending.observed = Some((Instant::now(), Observed::Poll));
        ending
    }
}
