//! A job waiting for a person (JOB status 7): the `ConfirmPolicy` of the run, and how
//! a step confirms a manual step or a rolling batch, or refuses and terminates the job.

use std::sync::Arc;
use std::time::Duration;

use super::{Ending, JobStepRunner, StepSource};
use crate::executor::events::{RunEvent, StepRef, StepStatus};
use crate::executor::prompt::Prompter;
use crate::executor::scheduler::RunControl;
use crate::job_api::client::{JobApi, JobStatusView};
use crate::job_api::types::{JobInstanceId, RunStatus, StepOperation, step_type};

/// What to do when JOB waits for a person.
#[derive(Clone)]
pub enum ConfirmPolicy {
    /// `--yes`: confirm.
    Yes,
    /// Ask (on the terminal in `baton run`).
    Ask(Arc<dyn Prompter>),
    /// No TTY and no `--yes`: fail the step.
    Refuse,
}

impl<A: JobApi, S: StepSource> JobStepRunner<A, S> {
    /// Handles status 7: confirm (op 6 for a manual step, 13 for a rolling batch) or
    /// fail, terminating the instance (op 1) so nothing is left waiting in JOB.
    pub(super) async fn confirm(
        &self,
        step_ref: &StepRef,
        job: JobInstanceId,
        status: &JobStatusView,
        control: &RunControl,
    ) -> Result<(), Ending> {
        let setup = &self.setup;
        let Some(waiting) = status
            .steps
            .iter()
            .find(|s| s.status == RunStatus::WaitingUser)
        else {
            // The job says 7 but no step does yet; read again shortly.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(());
        };
        let manual = waiting.step_type == Some(step_type::MANUAL_CONFIRM);
        let (op, prompt) = if manual {
            (
                StepOperation::ConfirmContinue,
                format!("job {job} waits for a manual confirmation"),
            )
        } else {
            let batch = waiting
                .batch
                .map(|(k, n)| format!(" (batch {k}/{n} done)"))
                .unwrap_or_default();
            (
                StepOperation::RollingContinue,
                format!("job {job} waits to start the next rolling batch{batch}"),
            )
        };
        let (confirmed, action) = match &setup.confirm {
            ConfirmPolicy::Yes => (true, "confirmed (--yes)"),
            ConfirmPolicy::Refuse => (
                false,
                "not confirmed: no terminal to ask on; pass --yes to confirm automatically",
            ),
            ConfirmPolicy::Ask(prompter) => {
                // One question at a time, however many steps wait.
                let guard = tokio::select! {
                    guard = self.prompt_lock.lock() => Some(guard),
                    _ = control.abort.cancelled() => None,
                };
                let answer = match guard {
                    None => None,
                    Some(_guard) => {
                        let question =
                            format!("baton: step {}: {prompt}. Continue? [y/N] ", step_ref.id);
                        let prompter = Arc::clone(prompter);
                        let asking =
                            tokio::task::spawn_blocking(move || prompter.confirm(&question));
                        // An interrupt must not wait for an answer; the blocked read is
                        // abandoned (the process exits soon after).
                        tokio::select! {
                            answer = asking => Some(answer.unwrap_or(false)),
                            _ = control.abort.cancelled() => None,
                        }
                    }
                };
                match answer {
                    Some(true) => (true, "confirmed"),
                    Some(false) => (false, "refused at the prompt"),
                    None => {
                        let what = if control.should_leave_running() {
                            format!("left job {job} running (--detach)")
                        } else {
                            self.terminate(job).await
                        };
                        let mut ending = Ending::failed(
                            format!("interrupted while asking: {prompt}; {what}"),
                            0,
                            Some(job),
                        );
                        ending.status = StepStatus::Interrupted;
                        return Err(ending);
                    }
                }
            }
        };
        setup.events.emit(RunEvent::StepWaitingUser {
            step: step_ref.clone(),
            job_instance_id: job,
            prompt: prompt.clone(),
            action: action.into(),
        });
        if !confirmed {
            let outcome = self.terminate(job).await;
            return Err(Ending::failed(
                format!("waited for confirmation ({prompt}): {action}; {outcome}"),
                0,
                Some(job),
            ));
        }
        match setup
            .api
            .operate_step(job, waiting.step_instance_id, op)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                self.record_fatal(&e);
                Err(Ending::failed(
                    format!("{prompt}: confirming failed: {e}"),
                    0,
                    Some(job),
                ))
            }
        }
    }
}
