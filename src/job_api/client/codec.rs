//! Per protocol, the calls the runner makes and the decoders of their answers: the
//! [`ProtocolCodec`] trait and [`JobCodec`], built on `job_api::calls` and
//! `job_api::decode`.

use super::api::{HostLog, JobStatusView, StepInstanceView};
use super::error::ClientError;
use crate::job_api::build::{ApiCall, BuildError};
use crate::job_api::decode::RawResponse;
use crate::job_api::types::{
    HostRef, HostResult, JobInstanceId, JobOperation, StepInstanceId, StepOperation, Submitted,
};
use crate::job_api::types::{Protocol, Scope};
use crate::job_api::{calls, decode};

/// Per protocol: the query calls the runner needs and the decoders of their answers.
pub trait ProtocolCodec: Send + Sync + 'static {
    /// The protocol.
    fn protocol(&self) -> Protocol;
    /// `get_job_instance_status` with per-host results.
    fn status_call(&self, job: JobInstanceId) -> Result<ApiCall, ClientError>;
    /// Log calls for the given hosts of one step instance.
    fn log_calls(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        hosts: &[HostResult],
    ) -> Result<Vec<ApiCall>, ClientError>;
    /// `operate_job_instance`.
    fn operate_job_call(
        &self,
        job: JobInstanceId,
        op: JobOperation,
    ) -> Result<ApiCall, ClientError>;
    /// `operate_step_instance`, where the protocol has it.
    fn operate_step_call(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        op: StepOperation,
    ) -> Option<Result<ApiCall, ClientError>>;
    /// `get_job_instance_list` filtered by task name and creation time, where the
    /// protocol has it (v3).
    fn instance_list_call(
        &self,
        task_name: &str,
        created_after_ms: i64,
        created_before_ms: i64,
    ) -> Option<Result<ApiCall, ClientError>>;
    /// `get_job_instance_global_var_value`.
    fn global_vars_call(&self, job: JobInstanceId) -> Result<ApiCall, ClientError> {
        let _ = job;
        Err(ClientError::Unsupported(
            "get_job_instance_global_var_value",
        ))
    }
    /// Decodes a global variable answer into each variable's final value.
    fn decode_global_vars(
        &self,
        raw: &RawResponse<'_>,
    ) -> Result<Vec<decode::GlobalVarValue>, ClientError> {
        let _ = raw;
        Err(ClientError::Unsupported(
            "get_job_instance_global_var_value",
        ))
    }
    /// Decodes a submission answer.
    fn decode_submit(&self, api: &str, raw: &RawResponse<'_>) -> Result<Submitted, ClientError>;
    /// Decodes a status answer.
    fn decode_status(&self, raw: &RawResponse<'_>) -> Result<JobStatusView, ClientError>;
    /// Decodes a log answer, keeping the logs of `step`.
    fn decode_logs(
        &self,
        step: StepInstanceId,
        raw: &RawResponse<'_>,
    ) -> Result<Vec<HostLog>, ClientError>;
    /// Decodes an operation answer.
    fn decode_operation(&self, api: &str, raw: &RawResponse<'_>) -> Result<(), ClientError>;
    /// Decodes an instance list into `(id, name)` pairs.
    fn decode_instance_list(
        &self,
        raw: &RawResponse<'_>,
    ) -> Result<Vec<(JobInstanceId, String)>, ClientError>;
}

/// The [`ProtocolCodec`] built on `job_api::calls` (requests) and `job_api::decode`
/// (answers), for one protocol and one scope.
#[derive(Debug, Clone, Copy)]
pub struct JobCodec {
    protocol: Protocol,
    scope: Scope,
}

impl JobCodec {
    /// A codec for `protocol` in `scope`.
    pub fn new(protocol: Protocol, scope: Scope) -> Self {
        JobCodec { protocol, scope }
    }
}

fn build_failed(api: &str, error: BuildError) -> ClientError {
    ClientError::Decode {
        api: api.to_owned(),
        message: format!("cannot build the request: {error}"),
    }
}

impl ProtocolCodec for JobCodec {
    fn protocol(&self) -> Protocol {
        self.protocol
    }

    fn status_call(&self, job: JobInstanceId) -> Result<ApiCall, ClientError> {
        calls::get_job_instance_status(self.protocol, self.scope, job)
            .map_err(|e| build_failed("get_job_instance_status", e))
    }

    fn log_calls(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        hosts: &[HostResult],
    ) -> Result<Vec<ApiCall>, ClientError> {
        let refs: Vec<HostRef> = hosts.iter().map(HostResult::host_ref).collect();
        calls::get_host_logs(self.protocol, self.scope, job, step, &refs)
            .map_err(|e| build_failed("logs", e))
    }

    fn operate_job_call(
        &self,
        job: JobInstanceId,
        op: JobOperation,
    ) -> Result<ApiCall, ClientError> {
        calls::operate_job_instance(self.protocol, self.scope, job, op)
            .map_err(|e| build_failed("operate_job_instance", e))
    }

    fn operate_step_call(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        op: StepOperation,
    ) -> Option<Result<ApiCall, ClientError>> {
        Some(
            calls::operate_step_instance(self.protocol, self.scope, job, step, op)
                .map_err(|e| build_failed("operate_step_instance", e)),
        )
    }

    fn instance_list_call(
        &self,
        task_name: &str,
        created_after_ms: i64,
        created_before_ms: i64,
    ) -> Option<Result<ApiCall, ClientError>> {
        // v2 asks the ESB's jobv3 list beside it; v4 asks the gateway's v3 list, which
        // the same JOB serves with the same credentials and which decodes as v3.
        let list_protocol = match self.protocol {
            Protocol::V2 => Protocol::V2,
            Protocol::V3 | Protocol::V4 => Protocol::V3,
        };
        let query = calls::InstanceQuery {
            name: Some(task_name.to_owned()),
            create_time_start_ms: created_after_ms,
            create_time_end_ms: created_before_ms,
            start: 0,
            length: 100,
        };
        Some(
            calls::get_job_instance_list(list_protocol, self.scope, &query)
                .map_err(|e| build_failed("get_job_instance_list", e)),
        )
    }

    fn global_vars_call(&self, job: JobInstanceId) -> Result<ApiCall, ClientError> {
        calls::get_job_instance_global_var_value(self.protocol, self.scope, job)
            .map_err(|e| build_failed("get_job_instance_global_var_value", e))
    }

    fn decode_global_vars(
        &self,
        raw: &RawResponse<'_>,
    ) -> Result<Vec<decode::GlobalVarValue>, ClientError> {
        // v4 asks the gateway's v3 API (see `global_vars_call`).
        let protocol = match self.protocol {
            Protocol::V2 => Protocol::V2,
            Protocol::V3 | Protocol::V4 => Protocol::V3,
        };
        let steps = decode::decode_global_var_values(protocol, raw)?;
        Ok(decode::final_values(&steps))
    }

    fn decode_submit(&self, _api: &str, raw: &RawResponse<'_>) -> Result<Submitted, ClientError> {
        decode::decode_submit(raw).map_err(ClientError::from)
    }

    fn decode_status(&self, raw: &RawResponse<'_>) -> Result<JobStatusView, ClientError> {
        let status = decode::decode_job_status(self.protocol, raw, decode::local_offset())?;
        let job = &status.job;
        let job_ms = match (job.start_time_ms, job.end_time_ms) {
            (Some(start), Some(end)) if end >= start => u64::try_from(end - start).ok(),
            _ => job.total_time_ms,
        };
        Ok(JobStatusView {
            finished: status.finished,
            status: status.job.status,
            job_ms,
            steps: status
                .steps
                .iter()
                .map(|s| StepInstanceView {
                    step_instance_id: s.step_instance_id,
                    step_type: s.step_type,
                    status: s.status,
                    execute_count: s.execute_count,
                    batch: s.batch.map(|b| (b.current, b.total)),
                    hosts: s.hosts.clone(),
                })
                .collect(),
        })
    }

    fn decode_logs(
        &self,
        step: StepInstanceId,
        raw: &RawResponse<'_>,
    ) -> Result<Vec<HostLog>, ClientError> {
        let steps = decode::decode_host_logs(self.protocol, raw)?;
        let mut logs = Vec::new();
        for step_logs in steps {
            // v2 answers with every step of the job.
            if step_logs.step_instance_id.is_some_and(|id| id != step) {
                continue;
            }
            for host in step_logs.hosts {
                let mut content = host.content.unwrap_or_default();
                for file in &host.file_logs {
                    if let Some(text) = &file.content {
                        if !content.is_empty() && !content.ends_with('\n') {
                            content.push('\n');
                        }
                        content.push_str(text);
                    }
                }
                logs.push(HostLog {
                    host: HostRef {
                        host_id: host.host_id,
                        addr: host.host,
                    }
                    .label(),
                    content,
                });
            }
        }
        Ok(logs)
    }

    fn decode_operation(&self, _api: &str, raw: &RawResponse<'_>) -> Result<(), ClientError> {
        decode::decode_operation(raw).map_err(ClientError::from)
    }

    fn decode_instance_list(
        &self,
        raw: &RawResponse<'_>,
    ) -> Result<Vec<(JobInstanceId, String)>, ClientError> {
        // Every protocol reads a v3-shaped list (see `instance_list_call`).
        let list = decode::decode_instance_list(Protocol::V3, raw)?;
        Ok(list
            .instances
            .into_iter()
            .map(|i| (i.job_instance_id, i.name))
            .collect())
    }
}
