//! Creating a job instance from a protocol-neutral description (what a fast script, a
//! fast file push or a job plan asks for): rolling batches computed and capped at
//! submit (1244026 / 1244027), ids allocated, the instance stored, and — unless
//! `start_task` is false — the engine started. The submit answer goes back before any
//! status change, as in JOB.

use std::sync::Arc;

use super::app::App;
use super::engine::spawn_drive;
use super::envelope::{ApiError, Protocol, code};
use super::inventory::Host;
use super::jobs::{
    Batch, HostRun, JobInstance, JobState, Next, RollingMode, StepInstance, StepKind, now_ms,
};
use super::rolling::{FileGroup, file_source_batches, target_batches};
use super::scope::Scope;
use super::wire::{invalid_rolling, too_many_batches};
use crate::job_api::rules::{MAX_ROLLING_BATCHES, RollingError, RollingExpr};
use crate::job_api::types::RunStatus;

/// How a step rolls.
#[derive(Debug, Clone)]
pub struct RollingSpec {
    /// Mode.
    pub mode: RollingMode,
    /// Over what.
    pub by: RollingBy,
}

/// What a rolling step splits.
#[derive(Debug, Clone)]
pub enum RollingBy {
    /// Target hosts, by expression (type 1).
    Targets(RollingExpr),
    /// Source files (type 2, file steps only).
    Sources {
        /// Source hosts per batch.
        max_hosts: Option<usize>,
        /// Files per source host.
        max_files: Option<usize>,
    },
}

/// A step to create.
#[derive(Debug, Clone)]
pub struct NewStep {
    /// Plan step id (-1 for fast tasks).
    pub step_id: i64,
    /// Name.
    pub name: String,
    /// What it does.
    pub kind: StepKind,
    /// Resolved targets.
    pub targets: Vec<Host>,
    /// Rolling.
    pub rolling: Option<RollingSpec>,
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Name.
    pub name: String,
    /// Scopes that see it (first: its own).
    pub scopes: Vec<Scope>,
    /// Operator (the caller).
    pub operator: String,
    /// Plan id, -1 for fast tasks.
    pub plan_id: i64,
    /// 0 plan, 1 fast script, 2 fast file.
    pub task_type: u8,
    /// Callback URL.
    pub callback_url: Option<String>,
    /// Protocol of the submit.
    pub protocol: Protocol,
    /// `start_task`.
    pub start: bool,
    /// Steps.
    pub steps: Vec<NewStep>,
}

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
pub fn create(app: &Arc<App>, new: NewJob) -> Result<Submitted, ApiError> {
    let mut prepared = Vec::with_capacity(new.steps.len());
    for step in new.steps {
        if !matches!(step.kind, StepKind::Confirm(_)) && step.targets.is_empty() {
            return Err(if new.task_type == 0 {
                ApiError::new(
                    code::STEP_TARGET_EMPTY,
                    format!("Step [{}] target execute object is empty", step.name),
                )
            } else {
                super::wire::server_empty()
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

fn batches(step: &NewStep) -> Result<Vec<Batch>, ApiError> {
    let addrs: Vec<_> = step.targets.iter().map(|h| h.addr.clone()).collect();
    let Some(rolling) = &step.rolling else {
        return Ok(vec![Batch::Targets(addrs)]);
    };
    match &rolling.by {
        RollingBy::Targets(expr) => target_batches(expr, &addrs)
            .map(|list| list.into_iter().map(Batch::Targets).collect())
            .map_err(|e| match e {
                RollingError::Invalid { .. } => invalid_rolling(),
                RollingError::TooManyBatches { .. } => too_many_batches(),
            }),
        RollingBy::Sources {
            max_hosts,
            max_files,
        } => {
            let StepKind::File(file) = &step.kind else {
                return Err(ApiError::illegal("rolling_config.type"));
            };
            let groups: Vec<FileGroup> = file
                .sources
                .iter()
                .map(|s| FileGroup {
                    hosts: s.hosts.iter().map(|h| h.addr.clone()).collect(),
                    files: s.files.clone(),
                })
                .collect();
            let (max_hosts, max_files) = (*max_hosts, *max_files);
            // The batching lives in the execution layer; a failure there must answer
            // with a JOB error rather than take the request down.
            let list = std::panic::catch_unwind(move || {
                file_source_batches(&groups, max_hosts, max_files)
            })
            .map_err(|_| ApiError::new(code::INTERNAL_ERROR, "Internal Server Error"))?;
            if list.len() > MAX_ROLLING_BATCHES {
                return Err(too_many_batches());
            }
            Ok(list.into_iter().map(Batch::Sources).collect())
        }
    }
}
