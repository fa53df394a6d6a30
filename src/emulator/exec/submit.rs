//! Creating a job instance from a protocol-neutral description (what a fast script, a
//! fast file push or a job plan asks for): rolling batches computed and capped at
//! submit (1244026 / 1244027), ids allocated, the instance stored, and — unless
//! `start_task` is false — the engine started. The submit answer goes back before any
//! status change, as in JOB.

use std::sync::Arc;

use crate::emulator::app::App;
use crate::emulator::exec::engine::spawn_drive;
use crate::emulator::model::job_error::{JobError, code};
use crate::emulator::model::jobs::{
    Batch, HostRun, JobInstance, JobState, Next, StepInstance, StepKind, now_ms,
};
use crate::emulator::model::new_job::{NewJob, NewStep, RollingBy};
use crate::emulator::model::rolling::{FileGroup, file_source_batches, target_batches};
use crate::job_api::rules::{MAX_ROLLING_BATCHES, RollingError};
use crate::job_api::types::RunStatus;

/// JOB's `job.execute.limit.file-task.max-tasks`.
const MAX_FILE_TASKS: usize = 100_000;

/// What a submit answers.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// `job_instance_id`.
    pub job_instance_id: u64,
    /// `job_instance_name`.
    pub name: String,
    /// The first step's instance id.
    pub step_instance_id: Option<u64>,
}

/// Creates (and normally starts) a job instance.
pub fn create(app: &Arc<App>, new: NewJob) -> Result<Submitted, JobError> {
    let mut prepared = Vec::with_capacity(new.steps.len());
    for step in new.steps {
        if !matches!(step.kind, StepKind::Confirm(_)) && step.targets.is_empty() {
            return Err(if new.task_type == 0 {
                JobError::new(
                    code::STEP_TARGET_EMPTY,
                    format!("Step [{}] target execute object is empty", step.name),
                )
            } else {
                JobError::server_empty()
            });
        }
        let batches = batches(&step)?;
        prepared.push((step, batches));
    }
    let job_id = app.store.alloc_id();
    let now = now_ms();
    let steps: Vec<StepInstance> = prepared
        .into_iter()
        .map(|(step, batches)| StepInstance {
            id: app.store.alloc_id(),
            step_id: step.step_id,
            name: step.name,
            status: RunStatus::Blank,
            execute_count: 0,
            create_ms: now,
            start_ms: None,
            end_ms: None,
            hosts: step.targets.iter().cloned().map(HostRun::waiting).collect(),
            targets: step.targets,
            batches,
            rolling: step.rolling.map(|r| r.mode),
            batch: 0,
            resume_batch: None,
            history: Vec::new(),
            var_values: None,
            kind: step.kind,
        })
        .collect();
    let first_step = steps.first().map(|s| s.id);
    let state = JobState {
        name: new.name.clone(),
        operator: new.operator,
        plan_id: new.plan_id,
        task_type: new.task_type,
        status: RunStatus::Blank,
        create_ms: now,
        start_ms: None,
        end_ms: None,
        current: 0,
        steps,
        callback_url: new.callback_url,
        cancel: tokio_util::sync::CancellationToken::new(),
        next: new.start.then_some(Next::Start),
        driving: false,
        skip_requested: false,
        finishes: 0,
        vars: new.vars,
    };
    let job = Arc::new(JobInstance::new(
        job_id,
        new.scopes,
        new.protocol,
        app.settings.parallel_limit,
        state,
    ));
    app.store.insert(job.clone());
    if new.start {
        spawn_drive(app, &job);
    }
    Ok(Submitted {
        job_instance_id: job_id,
        name: new.name,
        step_instance_id: first_step,
    })
}

fn batches(step: &NewStep) -> Result<Vec<Batch>, JobError> {
    let addrs: Vec<_> = step.targets.iter().map(|h| h.addr.clone()).collect();
    let Some(rolling) = &step.rolling else {
        return Ok(vec![Batch::Targets(addrs)]);
    };
    match &rolling.by {
        RollingBy::Targets(expr) => target_batches(expr, &addrs)
            .map(|list| list.into_iter().map(Batch::Targets).collect())
            .map_err(|e| match e {
                RollingError::Invalid { .. } => JobError::invalid_rolling(),
                RollingError::TooManyBatches { .. } => JobError::too_many_batches(),
            }),
        RollingBy::Sources {
            max_hosts,
            max_files,
        } => {
            let StepKind::File(file) = &step.kind else {
                return Err(JobError::illegal("rolling_config.type"));
            };
            let groups: Vec<FileGroup> = file
                .sources
                .iter()
                .map(|s| FileGroup {
                    hosts: s.hosts.iter().map(|h| h.addr.clone()).collect(),
                    files: s.files.clone(),
                })
                .collect();
            // JOB's cap on file tasks (source files × source hosts) also bounds the
            // number of batches computed below.
            let tasks: usize = groups
                .iter()
                .map(|g| g.files.len().saturating_mul(g.hosts.len()))
                .fold(0, usize::saturating_add);
            if tasks > MAX_FILE_TASKS {
                return Err(JobError::new(
                    code::FILE_TASKS_EXCEEDS_LIMIT,
                    format!("The number of file tasks exceeds the limit:{MAX_FILE_TASKS}"),
                ));
            }
            let list = file_source_batches(&groups, *max_hosts, *max_files);
            if list.len() > MAX_ROLLING_BATCHES {
                return Err(JobError::too_many_batches());
            }
            Ok(list.into_iter().map(Batch::Sources).collect())
        }
    }
}
