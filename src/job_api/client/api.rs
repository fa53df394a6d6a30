//! What the runner needs from JOB, whatever the protocol: the [`JobApi`] trait and the
//! protocol-neutral results it returns ([`SubmitOutcome`], [`JobStatusView`],
//! [`HostLog`]).

use std::future::Future;
use std::time::Instant;

use super::error::ClientError;
use crate::job_api::build::ApiCall;
pub use crate::job_api::decode::GlobalVarValue;
use crate::job_api::types::Protocol;
use crate::job_api::types::{
    HostResult, JobInstanceId, JobOperation, RunStatus, StepInstanceId, StepOperation, Submitted,
};

/// A submission's result as the runner sees it.
#[derive(Debug, Clone)]
pub struct SubmitOutcome {
    /// The instance.
    pub submitted: Submitted,
    /// Found through the instance list after an ambiguous submit.
    pub reconciled: bool,
    /// When the (last) request was handed to the network.
    pub sent_at: Instant,
}

/// One step instance of a job instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInstanceView {
    /// Its id.
    pub step_instance_id: StepInstanceId,
    /// JOB's step type (`step_type`), when given.
    pub step_type: Option<u8>,
    /// Its status.
    pub status: RunStatus,
    /// Retries so far (`execute_count`).
    pub execute_count: u32,
    /// Rolling batch `(current, total)`, when JOB reports it.
    pub batch: Option<(u32, u32)>,
    /// Per-host results (latest execute count).
    pub hosts: Vec<HostResult>,
}

/// A job instance's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatusView {
    /// `finished` / `is_finished`.
    pub finished: bool,
    /// The job's status.
    pub status: RunStatus,
    /// Its steps.
    pub steps: Vec<StepInstanceView>,
    /// JOB's own start → end of the instance, ms, when it says (how long JOB worked,
    /// as opposed to how long baton waited).
    pub job_ms: Option<u64>,
}

/// One host's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLog {
    /// The host, labelled as [`HostResult::label`].
    pub host: String,
    /// The log text (HTML-decoding, if any, is the reader's job).
    pub content: String,
}

/// What the runner needs from JOB, protocol-neutral.
pub trait JobApi: Send + Sync + 'static {
    /// The protocol spoken.
    fn protocol(&self) -> Protocol;
    /// Submits a step. `task_name` is the unique name the request carries, used to
    /// settle an ambiguous answer; `None` where the request carries no task name (job
    /// plan executions), so an ambiguous answer cannot be settled by name.
    fn submit(
        &self,
        call: ApiCall,
        task_name: Option<String>,
    ) -> impl Future<Output = Result<SubmitOutcome, ClientError>> + Send;
    /// Reads a job instance's status.
    fn status(
        &self,
        job: JobInstanceId,
    ) -> impl Future<Output = Result<JobStatusView, ClientError>> + Send;
    /// Reads the logs of some hosts of a step instance.
    fn logs(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        hosts: Vec<HostResult>,
    ) -> impl Future<Output = Result<Vec<HostLog>, ClientError>> + Send;
    /// `operate_job_instance`.
    fn operate_job(
        &self,
        job: JobInstanceId,
        op: JobOperation,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// `operate_step_instance`.
    fn operate_step(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        op: StepOperation,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// Whether `operate_step_instance` exists (v2, v3).
    fn has_step_operations(&self) -> bool;

    /// Each global variable's final value in a finished job-plan instance
    /// (`get_job_instance_global_var_value`). `Unsupported` where there is none.
    fn global_vars(
        &self,
        job: JobInstanceId,
    ) -> impl Future<Output = Result<Vec<GlobalVarValue>, ClientError>> + Send {
        let _ = job;
        async {
            Err(ClientError::Unsupported(
                "get_job_instance_global_var_value",
            ))
        }
    }

    /// The instance named exactly `task_name` created since `since_ms` (epoch ms), as
    /// ambiguous submissions are reconciled: for `baton resume`, which finds a
    /// submission intent without its answer. `Unsupported` where the protocol has no
    /// instance list.
    fn find_by_task_name(
        &self,
        task_name: &str,
        since_ms: i64,
    ) -> impl Future<Output = Result<Option<JobInstanceId>, ClientError>> + Send {
        let _ = (task_name, since_ms);
        async { Err(ClientError::Unsupported("get_job_instance_list")) }
    }
}
