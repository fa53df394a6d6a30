//! One step's life: decide (`when:`), render, build the protocol request, add the
//! unique task name and the callback URL, submit, wait, read per-host results, fetch
//! the logs that matter, extract outputs, and retry or give up.
//! `JobStepRunner` drives it (`run_step`, `drive`, `await_finish`); what it reads and
//! sends along the way lives in the files beside it, one concept each.
//!
//! JOB status 3 is success; 6 ("error ignored") counts only with `ignore_errors: true`;
//! 7 waits for a person (confirmed with `--yes` or on a TTY, else the step fails);
//! 2, 10 and 15 are still running. Retries use "retry failed hosts" where the protocol
//! has step operations (v2, v3), else a fresh submission under a new task name. A
//! runner-side deadline terminates the instance. On cancellation the instance is
//! terminated, unless the run was interrupted with `--detach`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::events::{
    self, EventSink, NotRunReason, Observed, RunEvent, StepFinished, StepRef, StepStatus,
};
use super::gate::GatePolicy;
use super::scheduler::{StepContext, StepEnd, StepRunner};
use super::wait::{self, CallbackHub, WaitEnd, WaitMode, WaitOptions};
use crate::compile::ResolvedStep;
use crate::job_api::client::{ClientError, JobApi, JobStatusView};
use crate::job_api::types::{JobInstanceId, JobOperation, RunStatus, StepOperation};
pub use crate::mask::Masker;

mod approval;
mod confirm;
mod decide;
mod ending;
mod job_vars;
mod outputs;
mod progress;
mod results;
mod source;
mod task_name;

pub use confirm::ConfirmPolicy;
pub use decide::StepRecord;
use ending::Ending;
pub use outputs::extract_outputs;
pub use progress::progress_of;
use progress::{failed_steps, retry_taken};
pub use source::{RenderInput, StepSource};
use task_name::decorate;
pub use task_name::task_name;

/// What a succeeded step hands to later steps (`steps.<id>.*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutput {
    /// Step id.
    pub id: String,
    /// Its last job instance.
    pub job_instance_id: Option<JobInstanceId>,
    /// `success`, `skipped`, …
    pub status: String,
    /// Extracted outputs (raw values: later steps need them unmasked).
    pub outputs: BTreeMap<String, String>,
    /// A job plan's exported global variables (raw values).
    pub vars: BTreeMap<String, String>,
}

/// Things shared by every step of a run.
pub struct StepRunnerSetup<A: JobApi, S: StepSource> {
    /// The JOB client.
    pub api: Arc<A>,
    /// The plan.
    pub source: Arc<S>,
    /// Event sink.
    pub events: EventSink,
    /// Run id.
    pub run_id: String,
    /// Callback hub (absent in poll mode).
    pub hub: Option<Arc<CallbackHub>>,
    /// Public base URL of the callback receiver.
    pub callback_base: Option<String>,
    /// Waiting settings.
    pub wait: WaitOptions,
    /// Manual confirmations.
    pub confirm: ConfirmPolicy,
    /// Masks secrets in everything emitted; learns each sensitive step's rendered
    /// parameters as it is rendered.
    pub masker: Masker,
    /// How approval gates are answered.
    pub gates: GatePolicy,
}

/// Where a resumed step picks up (see [`JobStepRunner::with_resume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeFrom {
    /// An instance an earlier session submitted and did not see finish: wait for it
    /// instead of submitting again.
    pub attach: Option<JobInstanceId>,
    /// The attempt number of the attached instance, or of the first new submission.
    /// Later than any attempt the journal saw, so task names stay unique.
    pub attempt: u32,
}

/// Runs plan steps against JOB.
pub struct JobStepRunner<A: JobApi, S: StepSource> {
    setup: StepRunnerSetup<A, S>,
    /// Resumed steps by index; absent for a fresh run.
    resume: BTreeMap<usize, ResumeFrom>,
    /// The first infrastructure error (unreachable, auth refused): the run exits 3.
    fatal: Mutex<Option<ClientError>>,
    /// Whether a step ended `unknown` (the run exits 4).
    in_doubt: AtomicBool,
    /// Whether a gate was rejected or timed out.
    gate_stopped: AtomicBool,
    /// Serializes terminal prompts between parallel steps.
    prompt_lock: tokio::sync::Mutex<()>,
    /// How every step that ended so far ended, with its hosts, for later steps'
    /// conditions and drawn targets; seeded from the journal on resume.
    records: Mutex<BTreeMap<usize, StepRecord>>,
}

impl<A: JobApi, S: StepSource> JobStepRunner<A, S> {
    /// A runner.
    pub fn new(setup: StepRunnerSetup<A, S>) -> Self {
        JobStepRunner {
            setup,
            resume: BTreeMap::new(),
            fatal: Mutex::new(None),
            in_doubt: AtomicBool::new(false),
            gate_stopped: AtomicBool::new(false),
            prompt_lock: tokio::sync::Mutex::new(()),
            records: Mutex::new(BTreeMap::new()),
        }
    }

    /// How steps of an earlier session ended, for conditions and drawn targets.
    pub fn with_records(self, records: BTreeMap<usize, StepRecord>) -> Self {
        if let Ok(mut mine) = self.records.lock() {
            *mine = records;
        }
        self
    }

    /// The same runner continuing an earlier session: listed steps re-attach to their
    /// in-flight instance or number their attempts after the journal's.
    pub fn with_resume(mut self, resume: BTreeMap<usize, ResumeFrom>) -> Self {
        self.resume = resume;
        self
    }

    /// The infrastructure error that ended the run, if any.
    pub fn fatal_error(&self) -> Option<ClientError> {
        self.fatal.lock().ok().and_then(|g| g.clone())
    }

    /// Whether a gate of this session was rejected or timed out.
    pub fn has_gates_stopped(&self) -> bool {
        self.gate_stopped.load(Ordering::SeqCst)
    }

    /// Whether a step of this session ended in doubt.
    pub fn has_steps_in_doubt(&self) -> bool {
        self.in_doubt.load(Ordering::SeqCst)
    }

    fn record_fatal(&self, error: &ClientError) {
        if error.is_infrastructure()
            && let Ok(mut fatal) = self.fatal.lock()
            && fatal.is_none()
        {
            *fatal = Some(error.clone());
        }
    }
}

/// The state of one attempt loop.
struct Attempt {
    number: u32,
    job: JobInstanceId,
}

impl<A: JobApi, S: StepSource> StepRunner for JobStepRunner<A, S> {
    type Output = StepOutput;

    async fn run(
        self: Arc<Self>,
        index: usize,
        ctx: StepContext<StepOutput>,
    ) -> StepEnd<StepOutput> {
        self.run_step(index, ctx).await
    }
}

impl<A: JobApi, S: StepSource> JobStepRunner<A, S> {
    async fn run_step(&self, index: usize, ctx: StepContext<StepOutput>) -> StepEnd<StepOutput> {
        let setup = &self.setup;
        let Some(id) = setup.source.step_id(index) else {
            return StepEnd::Failed;
        };
        let step_ref = StepRef {
            index,
            id: id.to_owned(),
        };
        setup.events.emit(RunEvent::StepStarted {
            step: step_ref.clone(),
            at: events::now(),
        });
        let input = RenderInput {
            run_id: &setup.run_id,
            results: &ctx.upstream,
        };
        let started = Instant::now();
        let drawn = match self.decide(&step_ref, &ctx) {
            Ok(drawn) => drawn,
            Err(reason) => {
                setup.events.emit(RunEvent::StepNotRun {
                    step: step_ref,
                    reason,
                });
                return StepEnd::Skipped;
            }
        };
        let ending = match setup.source.when(index, &input) {
            Ok(false) => {
                setup.events.emit(RunEvent::StepNotRun {
                    step: step_ref,
                    reason: NotRunReason::WhenFalse,
                });
                return StepEnd::Skipped;
            }
            Err(e) => Ending::failed(format!("cannot evaluate `when`: {e}"), 0, None),
            Ok(true) => match setup.source.render(index, &input) {
                Err(e) => Ending::failed(format!("cannot render the step: {e}"), 0, None),
                Ok(mut resolved) => {
                    // Before any event can carry them (a log that echoes `$1`).
                    setup.masker.learn_step(&resolved.step);
                    if let Some(targets) = drawn {
                        resolved.step.targets = Some(targets);
                    }
                    match &resolved.step.approve {
                        Some(approve) => self.gate(&step_ref, approve, &ctx).await,
                        None => self.drive(&step_ref, &resolved, &ctx).await,
                    }
                }
            },
        };
        let observed_at = ending
            .observed
            .map(|(at, _)| at)
            .unwrap_or_else(Instant::now);
        let duration = observed_at.saturating_duration_since(started);
        let masker = &setup.masker;
        let finished = StepFinished {
            status: ending.status,
            job_status: ending.job_status,
            job_instance_id: ending.job,
            attempts: ending.attempts,
            hosts: ending
                .hosts
                .into_iter()
                .map(|mut h| {
                    h.log_tail = h.log_tail.map(|t| masker.mask(&t));
                    h
                })
                .collect(),
            // Exported job variables are shown beside the outputs as `vars.<name>`.
            outputs: ending
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), masker.mask(v)))
                .chain(
                    ending
                        .vars
                        .iter()
                        .map(|(k, v)| (format!("vars.{k}"), masker.mask(v))),
                )
                .collect(),
            host_outputs: ending
                .host_outputs
                .iter()
                .map(|(h, m)| {
                    (
                        h.clone(),
                        m.iter().map(|(k, v)| (k.clone(), masker.mask(v))).collect(),
                    )
                })
                .collect(),
            error: ending.error.map(|e| masker.mask(&e)),
            duration,
            observed: ending.observed.map(|(_, via)| via),
            job_ms: ending.job_ms,
        };
        let status = finished.status;
        if let Ok(mut records) = self.records.lock() {
            records.insert(
                index,
                StepRecord::of(
                    status,
                    &finished.hosts,
                    &ending.outputs,
                    ending.job.map(|j| j.0),
                ),
            );
        }
        setup.events.emit(RunEvent::StepFinished {
            step: step_ref.clone(),
            outcome: Box::new(finished),
            at: events::now(),
        });
        match status {
            StepStatus::Succeeded => StepEnd::Succeeded {
                output: StepOutput {
                    id: step_ref.id,
                    job_instance_id: ending.job,
                    status: "success".into(),
                    outputs: ending.outputs,
                    vars: ending.vars,
                },
                observed_at,
            },
            StepStatus::Interrupted => StepEnd::Interrupted,
            StepStatus::Unknown => {
                self.in_doubt.store(true, Ordering::SeqCst);
                StepEnd::Failed
            }
            StepStatus::Failed | StepStatus::NotRun => StepEnd::Failed,
        }
    }

    /// Submit, wait, classify, retry.
    async fn drive(
        &self,
        step_ref: &StepRef,
        resolved: &ResolvedStep,
        ctx: &StepContext<StepOutput>,
    ) -> Ending {
        let setup = &self.setup;
        let protocol = setup.api.protocol();
        let settings = &resolved.settings;
        let retries = settings.retries;
        let retry_delay = settings.retry_delay;
        let wait_timeout = settings.wait_timeout;
        let ignore_errors = settings.ignore_errors;
        let want_all_logs = !resolved.step.outputs.is_empty();
        let prefix = settings.task_name_prefix.clone();

        let base_call = match setup.source.build(protocol, resolved) {
            Ok(call) => call,
            Err(e) => {
                return Ending::failed(
                    format!("cannot build the {protocol} request: {e}"),
                    0,
                    None,
                );
            }
        };
        let callback_url = match (&setup.hub, &setup.callback_base, setup.wait.mode) {
            (Some(hub), Some(base), WaitMode::Callback | WaitMode::Both) => {
                Some(format!("{}{}", base.trim_end_matches('/'), hub.path()))
            }
            _ => None,
        };

        let resume = self.resume.get(&step_ref.index).copied();
        let first = resume.map_or(1, |r| r.attempt.max(1));
        // A fresh submission after earlier sessions gets its full retries; an attached
        // instance keeps the count its session started.
        let retries = match resume {
            Some(ResumeFrom { attach: None, .. }) => retries + (first - 1),
            _ => retries,
        };
        let mut attempt: Option<Attempt> = resume.and_then(|r| {
            r.attach.map(|job| {
                setup.events.emit(RunEvent::Warning {
                    step: Some(step_ref.clone()),
                    message: format!("re-attached to job {job}, submitted before the resume"),
                });
                Attempt { number: first, job }
            })
        });
        let mut number = first;
        loop {
            // Submit (first attempt, or a fresh submission where there are no step operations).
            let current = match attempt.take() {
                Some(a) => a,
                None => {
                    let name = task_name(&prefix, &setup.run_id, &step_ref.id, number);
                    // JOB gets the real name; baton's records get it masked before the
                    // cut to JOB's length, so a cut never leaves part of a secret. The
                    // suffix naming run, step and attempt is the same in both.
                    let shown_name = task_name(
                        &setup.masker.mask(&prefix),
                        &setup.run_id,
                        &step_ref.id,
                        number,
                    );
                    let mut call = base_call.clone();
                    decorate(&mut call, protocol, &name, callback_url.as_deref());
                    // The intent is journaled before the request leaves, so a crash
                    // in between is reconciled by task name, never re-sent blindly.
                    if let Err(e) = setup.events.emit_durable(RunEvent::StepSubmitting {
                        step: step_ref.clone(),
                        attempt: number,
                        task_name: shown_name,
                    }) {
                        return Ending::failed(
                            format!(
                                "not submitted: cannot record the submission in the journal: {e}"
                            ),
                            number.saturating_sub(1),
                            None,
                        );
                    }
                    // Only fast tasks carry the name (see `decorate`), so only they can
                    // be looked up by it.
                    let lookup =
                        crate::job_api::build::carries_task_name(call.api).then(|| name.clone());
                    // Not raced against an interrupt: dropping the request midway would
                    // leave an instance we could neither see nor terminate.
                    match setup.api.submit(call, lookup).await {
                        Ok(outcome) => {
                            let handoff = if number == 1 {
                                ctx.ready_at
                                    .map(|r| outcome.sent_at.saturating_duration_since(r))
                            } else {
                                None
                            };
                            setup.events.emit(RunEvent::StepSubmitted {
                                step: step_ref.clone(),
                                attempt: number,
                                job_instance_id: outcome.submitted.job_instance_id,
                                reconciled: outcome.reconciled,
                                handoff,
                                at: events::now(),
                            });
                            Attempt {
                                number,
                                job: outcome.submitted.job_instance_id,
                            }
                        }
                        Err(e @ ClientError::SubmissionUnknown { .. }) => {
                            return Ending::in_doubt(&e, number, &setup.run_id, &step_ref.id);
                        }
                        Err(e) => {
                            self.record_fatal(&e);
                            return Ending::failed(e.to_string(), number, None);
                        }
                    }
                }
            };

            let job = current.job;
            let deadline = Instant::now() + wait_timeout;
            let (final_status, observed) = match self
                .await_finish(step_ref, job, deadline, &ctx.control)
                .await
            {
                Ok(pair) => pair,
                Err(mut ending) => {
                    ending.attempts = current.number;
                    return ending;
                }
            };

            let ok = match final_status.status {
                RunStatus::Success => true,
                RunStatus::IgnoreError => ignore_errors,
                _ => false,
            };
            let (hosts, outputs, host_outputs) = self
                .collect_results(job, &final_status, want_all_logs)
                .await;
            if ok {
                let exports = resolved
                    .step
                    .job
                    .as_ref()
                    .map_or(&[][..], |j| j.exports.as_slice());
                let vars = if exports.is_empty() {
                    BTreeMap::new()
                } else {
                    match self.read_job_vars(job, exports).await {
                        Ok(vars) => vars,
                        Err(error) => {
                            let mut ending = Ending::failed(error, current.number, Some(job));
                            ending.job_status = Some(final_status.status);
                            ending.hosts = hosts;
                            ending.observed = Some(observed);
                            return ending;
                        }
                    }
                };
                return Ending {
                    status: StepStatus::Succeeded,
                    job_status: Some(final_status.status),
                    job: Some(job),
                    attempts: current.number,
                    hosts,
                    outputs,
                    host_outputs,
                    vars,
                    error: None,
                    observed: Some(observed),
                    job_ms: final_status.job_ms,
                };
            }
            let failed_hosts: Vec<String> = hosts
                .iter()
                .filter(|h| !h.ok)
                .map(|h| h.host.clone())
                .collect();
            let error = if failed_hosts.is_empty() {
                format!("job {job} ended {}", final_status.status)
            } else {
                format!(
                    "job {job} ended {} on {}",
                    final_status.status,
                    failed_hosts.join(", ")
                )
            };
            if current.number > retries {
                return Ending {
                    status: StepStatus::Failed,
                    job_status: Some(final_status.status),
                    job: Some(job),
                    attempts: current.number,
                    hosts,
                    outputs,
                    host_outputs,
                    vars: BTreeMap::new(),
                    error: Some(error),
                    observed: Some(observed),
                    job_ms: final_status.job_ms,
                };
            }

            // Retry.
            number = current.number + 1;
            let retry_step = failed_steps(&final_status)
                .first()
                .map(|s| s.step_instance_id);
            let in_place = setup.api.has_step_operations() && retry_step.is_some();
            setup.events.emit(RunEvent::StepRetrying {
                step: step_ref.clone(),
                attempt: number,
                delay: retry_delay,
                how: if in_place {
                    "retry failed hosts".into()
                } else {
                    "fresh submission".into()
                },
            });
            tokio::select! {
                _ = ctx.control.abort.cancelled() => {
                    let mut ending = Ending::failed(format!("interrupted before retry; {error}"), current.number, Some(job));
                    ending.status = StepStatus::Interrupted;
                    return ending;
                }
                _ = tokio::time::sleep(retry_delay) => {}
            }
            if let (true, Some(step_instance)) = (in_place, retry_step) {
                match setup
                    .api
                    .operate_step(job, step_instance, StepOperation::RetryFailed)
                    .await
                {
                    Ok(()) => {
                        attempt = Some(Attempt { number, job });
                    }
                    // The retry may be running on JOB: find out before deciding, since
                    // a step failed here would be run afresh by a resume, beside it.
                    Err(e @ ClientError::OperationUnknown { .. }) => {
                        let before = final_status
                            .steps
                            .iter()
                            .find(|s| s.step_instance_id == step_instance)
                            .map(|s| s.execute_count);
                        match setup.api.status(job).await {
                            Ok(now) if retry_taken(&now, step_instance, before) => {
                                attempt = Some(Attempt { number, job });
                            }
                            Ok(_) => {
                                return Ending::failed(
                                    format!("{error}; retry not taken: {e}"),
                                    current.number,
                                    Some(job),
                                );
                            }
                            Err(read) => {
                                return Ending::unknown(
                                    format!(
                                        "{error}; the retry of its failed hosts may be running: {e}, and job {job} cannot be read ({read}). `baton resume {run}` re-attaches to job {job} if it runs",
                                        run = setup.run_id
                                    ),
                                    number,
                                    Some(job),
                                );
                            }
                        }
                    }
                    Err(e) => {
                        self.record_fatal(&e);
                        return Ending::failed(
                            format!("{error}; retry refused: {e}"),
                            current.number,
                            Some(job),
                        );
                    }
                }
            }
        }
    }

    /// Waits until `job` finishes, handling confirmations, the deadline and cancellation.
    async fn await_finish(
        &self,
        step_ref: &StepRef,
        job: JobInstanceId,
        deadline: Instant,
        control: &super::scheduler::RunControl,
    ) -> Result<(JobStatusView, (Instant, Observed)), Ending> {
        let setup = &self.setup;
        let waiter = match (&setup.hub, setup.wait.mode) {
            (Some(hub), WaitMode::Callback | WaitMode::Both) => Some(hub.register(job.0)),
            _ => None,
        };
        let unregister = || {
            if let Some(hub) = &setup.hub {
                hub.unregister(job.0);
            }
        };
        let events = setup.events.clone();
        let progress_ref = step_ref.clone();
        let mut on_status = move |status: &JobStatusView| {
            let (hosts, batch) = progress_of(status);
            events.emit(RunEvent::StepProgress {
                step: progress_ref.clone(),
                job_instance_id: job,
                status: status.status,
                hosts,
                batch,
                at: Some(super::events::now()),
            });
        };
        loop {
            let end = wait::wait_for(
                setup.api.as_ref(),
                job,
                waiter.as_ref(),
                &setup.wait,
                deadline,
                &control.abort,
                &mut on_status,
            )
            .await;
            match end {
                WaitEnd::Finished {
                    status,
                    observed_at,
                    via,
                } => {
                    unregister();
                    return Ok((status, (observed_at, via)));
                }
                WaitEnd::WaitingUser { status } => {
                    if let Err(ending) = self.confirm(step_ref, job, &status, control).await {
                        unregister();
                        return Err(ending);
                    }
                }
                WaitEnd::Deadline => {
                    unregister();
                    let outcome = self.terminate(job).await;
                    return Err(Ending::failed(
                        format!("no result within the wait timeout; {outcome}"),
                        0,
                        Some(job),
                    ));
                }
                WaitEnd::Cancelled => {
                    unregister();
                    let what = if control.should_leave_running() {
                        format!("left job {job} running (--detach)")
                    } else {
                        self.terminate(job).await
                    };
                    let mut ending = Ending::failed(format!("interrupted: {what}"), 0, Some(job));
                    ending.status = StepStatus::Interrupted;
                    return Err(ending);
                }
                WaitEnd::Error(e) => {
                    unregister();
                    self.record_fatal(&e);
                    let reason = if e.is_unknown_instance() {
                        format!(
                            "instance unknown: JOB no longer knows job {job} ({e}); it was not submitted again, check JOB before re-running this step"
                        )
                    } else {
                        format!("cannot read the status of job {job}: {e}")
                    };
                    return Err(Ending::failed(reason, 0, Some(job)));
                }
            }
        }
    }

    /// Terminates `job` (operation 1) and says what happened.
    async fn terminate(&self, job: JobInstanceId) -> String {
        match self
            .setup
            .api
            .operate_job(job, JobOperation::Terminate)
            .await
        {
            Ok(()) => format!("terminated job {job}"),
            Err(e) => format!("could not terminate job {job}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
