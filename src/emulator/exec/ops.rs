//! `operate_job_instance` and `operate_step_instance`: JOB's preconditions (wrong
//! status → 1241003, unknown code → 1241002, repeated start → 1241015) and effects
//! (bkjob-api §9), applied to the instance state; the engine then carries on.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::emulator::app::App;
use crate::emulator::exec::engine::{finish, spawn_drive};
use crate::emulator::model::caller::Caller;
use crate::emulator::model::job_error::{JobError, code};
use crate::emulator::model::jobs::{Batch, JobInstance, Next, StepKind, now_ms};
use crate::job_api::types::{JobOperation, RunStatus, StepOperation, host_status};

/// Applies a job operation.
pub fn operate_job(app: &Arc<App>, job: &Arc<JobInstance>, op_code: i64) -> Result<(), JobError> {
    let op = JobOperation::from_code(op_code).ok_or_else(JobError::illegal_params)?;
    let mut state = job.lock();
    match op {
        JobOperation::Terminate => match state.status {
            RunStatus::WaitingUser => {
                // Nothing is running: the waiting step stops at once.
                let now = now_ms();
                let index = state.current;
                if let Some(step) = state.steps.get_mut(index) {
                    step.status = RunStatus::StopSuccess;
                    step.end_ms = Some(now);
                    step.resume_batch = None;
                }
                finish(app, job.id, &mut state, RunStatus::StopSuccess);
            }
            RunStatus::Running => {
                state.status = RunStatus::Stopping;
                let index = state.current;
                if let Some(step) = state.steps.get_mut(index)
                    && matches!(step.status, RunStatus::Running | RunStatus::RollingWaiting)
                {
                    step.status = RunStatus::Stopping;
                }
                state.cancel.cancel();
                drop(state);
                spawn_drive(app, job);
            }
            _ => return Err(JobError::unsupported_operation()),
        },
        JobOperation::Start => {
            if state.status != RunStatus::Blank || state.next.is_some() || state.driving {
                return Err(JobError::new(
                    code::REPEAT_START_JOB,
                    format!(
                        "Unsupported operation, do not repeat start the job, job_instance_id={}",
                        job.id
                    ),
                ));
            }
            state.next = Some(Next::Start);
            drop(state);
            spawn_drive(app, job);
        }
    }
    Ok(())
}

/// Applies a step operation.
pub fn operate_step(
    app: &Arc<App>,
    job: &Arc<JobInstance>,
    step_instance_id: u64,
    op_code: i64,
    caller: &Caller,
) -> Result<(), JobError> {
    let op = StepOperation::from_code(op_code).ok_or_else(JobError::illegal_params)?;
    let mut state = job.lock();
    let index = state
        .steps
        .iter()
        .position(|s| s.id == step_instance_id)
        .ok_or_else(JobError::step_not_found)?;
    let now = now_ms();
    let step_status = state.steps[index].status;
    let is_confirm = matches!(state.steps[index].kind, StepKind::Confirm(_));
    let unsupported = || Err(JobError::unsupported_operation());
    match op {
        StepOperation::RetryFailed | StepOperation::RetryAll => {
            if is_confirm
                || !matches!(
                    step_status,
                    RunStatus::Fail | RunStatus::Abnormal | RunStatus::StopSuccess
                )
                || !state.status.is_finished()
            {
                return unsupported();
            }
            let all = op == StepOperation::RetryAll;
            let step = &mut state.steps[index];
            step.history.push(step.hosts.clone());
            step.execute_count += 1;
            step.status = RunStatus::Running;
            step.end_ms = None;
            step.start_ms = Some(now);
            step.resume_batch = None;
            // Hosts of the batches reached so far rerun: all of them (op 8) or those
            // that did not succeed (op 2); the others show 3 "succeeded last time".
            let covered: Vec<_> = match &step.batches[..] {
                batches if step.rolling.is_some() => batches
                    .iter()
                    .take(step.batch + 1)
                    .flat_map(|b| match b {
                        Batch::Targets(list) => list.clone(),
                        Batch::Sources(_) => step.targets.iter().map(|h| h.addr.clone()).collect(),
                    })
                    .collect(),
                _ => step.targets.iter().map(|h| h.addr.clone()).collect(),
            };
            let mut rerun = Vec::new();
            for run in &mut step.hosts {
                if !covered.contains(&run.host.addr) {
                    continue;
                }
                if all || !host_status::is_success(run.status) {
                    run.reset();
                    rerun.push(run.host.addr.clone());
                } else {
                    run.status = host_status::LAST_SUCCESS;
                }
            }
            let batch = step.batch;
            resume(
                &mut state,
                index,
                Next::RunBatch {
                    step: index,
                    batch,
                    only: Some(rerun),
                },
            );
        }
        StepOperation::IgnoreError => {
            if is_confirm || !matches!(step_status, RunStatus::Fail | RunStatus::Abnormal) {
                return unsupported();
            }
            let step = &mut state.steps[index];
            step.status = RunStatus::IgnoreError;
            step.end_ms = Some(now);
            resume(&mut state, index, Next::StartStep(index + 1));
        }
        StepOperation::ConfirmContinue => {
            if !is_confirm || step_status != RunStatus::WaitingUser {
                return unsupported();
            }
            if let StepKind::Confirm(confirm) = &state.steps[index].kind
                && !confirm.users.is_empty()
                && !confirm.users.contains(&caller.user)
            {
                return Err(JobError::new(
                    code::NOT_IN_CONFIRM_USER_LIST,
                    format!("User [{}] is not in the confirm user list", caller.user),
                ));
            }
            let step = &mut state.steps[index];
            step.status = RunStatus::Success;
            step.end_ms = Some(now);
            resume(&mut state, index, Next::StartStep(index + 1));
        }
        StepOperation::ConfirmTerminate => {
            if !is_confirm || step_status != RunStatus::WaitingUser {
                return unsupported();
            }
            let step = &mut state.steps[index];
            step.status = RunStatus::ConfirmTerminated;
            step.end_ms = Some(now);
            finish(app, job.id, &mut state, RunStatus::ConfirmTerminated);
            return Ok(());
        }
        StepOperation::ConfirmRestart => {
            if !is_confirm || step_status != RunStatus::ConfirmTerminated {
                return unsupported();
            }
            let step = &mut state.steps[index];
            step.status = RunStatus::WaitingUser;
            step.start_ms = Some(now);
            step.end_ms = None;
            state.status = RunStatus::WaitingUser;
            state.end_ms = None;
            state.current = index;
            return Ok(());
        }
        StepOperation::NextStep => {
            if is_confirm || step_status != RunStatus::StopSuccess {
                return unsupported();
            }
            resume(&mut state, index, Next::StartStep(index + 1));
        }
        StepOperation::Skip => {
            if is_confirm || step_status != RunStatus::Stopping {
                return unsupported();
            }
            // The driver finishes stopping the hosts, then skips instead of stopping.
            state.skip_requested = true;
            return Ok(());
        }
        StepOperation::RollingContinue => {
            let Some(batch) = state.steps[index].resume_batch else {
                return unsupported();
            };
            if step_status != RunStatus::WaitingUser {
                return unsupported();
            }
            let step = &mut state.steps[index];
            step.resume_batch = None;
            step.status = RunStatus::Running;
            resume(
                &mut state,
                index,
                Next::RunBatch {
                    step: index,
                    batch,
                    only: None,
                },
            );
        }
    }
    drop(state);
    spawn_drive(app, job);
    Ok(())
}

/// The job runs again from step `index` with `next`.
fn resume(state: &mut crate::emulator::model::jobs::JobState, index: usize, next: Next) {
    state.status = RunStatus::Running;
    state.end_ms = None;
    state.current = index;
    state.cancel = CancellationToken::new();
    state.next = Some(next);
}
