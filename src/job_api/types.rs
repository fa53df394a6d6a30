//! JOB's vocabulary, independent of protocol generation: instance ids, job/step and
//! host statuses, operation codes, script-language codes. The client, the runner and
//! the emulator all speak in these terms.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The JOB API generation a request is encoded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// ESB `/api/c/compapi/v2/job/<name>/`, credentials in the body.
    V2,
    /// API gateway `/api/v3/<name>`, `X-Bkapi-Authorization` header.
    V3,
    /// API gateway `/api/v4/<name>`, HTTP-status errors.
    V4,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::V2 => "v2",
            Protocol::V3 => "v3",
            Protocol::V4 => "v4",
        })
    }
}

/// The resource scope a request acts in: `bk_biz_id` (v2) or `bk_scope_type` +
/// `bk_scope_id` (v3, v4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// A business or a business set.
    pub scope_type: ScopeType,
    /// The business or business-set id.
    pub id: u64,
}

/// JOB's resource scope kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeType {
    /// A business (`biz`).
    Biz,
    /// A business set (`biz_set`).
    BizSet,
}

/// A job instance id (`job_instance_id`), unique and increasing per JOB install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobInstanceId(pub u64);

/// A step instance id (`step_instance_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepInstanceId(pub u64);

impl fmt::Display for JobInstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for StepInstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Job and step status (`RunStatusEnum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum RunStatus {
    /// 1: created, not started.
    Blank,
    /// 2: running.
    Running,
    /// 3: succeeded.
    Success,
    /// 4: failed.
    Fail,
    /// 5: skipped.
    Skipped,
    /// 6: failed, error ignored by an operator.
    IgnoreError,
    /// 7: waiting for a person (manual confirm, rolling confirm).
    WaitingUser,
    /// 8: terminated by hand.
    Terminated,
    /// 9: abnormal state.
    Abnormal,
    /// 10: being stopped.
    Stopping,
    /// 11: stopped.
    StopSuccess,
    /// 12: stop failed (v2 docs only).
    StopFailed,
    /// 13: a confirmation was refused.
    ConfirmTerminated,
    /// 14: abandoned.
    Abandoned,
    /// 15: a rolling step waiting for its next batch.
    RollingWaiting,
}

impl RunStatus {
    /// JOB's numeric code.
    pub fn code(self) -> u8 {
        match self {
            RunStatus::Blank => 1,
            RunStatus::Running => 2,
            RunStatus::Success => 3,
            RunStatus::Fail => 4,
            RunStatus::Skipped => 5,
            RunStatus::IgnoreError => 6,
            RunStatus::WaitingUser => 7,
            RunStatus::Terminated => 8,
            RunStatus::Abnormal => 9,
            RunStatus::Stopping => 10,
            RunStatus::StopSuccess => 11,
            RunStatus::StopFailed => 12,
            RunStatus::ConfirmTerminated => 13,
            RunStatus::Abandoned => 14,
            RunStatus::RollingWaiting => 15,
        }
    }

    /// The status for a code, if JOB defines one.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => RunStatus::Blank,
            2 => RunStatus::Running,
            3 => RunStatus::Success,
            4 => RunStatus::Fail,
            5 => RunStatus::Skipped,
            6 => RunStatus::IgnoreError,
            7 => RunStatus::WaitingUser,
            8 => RunStatus::Terminated,
            9 => RunStatus::Abnormal,
            10 => RunStatus::Stopping,
            11 => RunStatus::StopSuccess,
            12 => RunStatus::StopFailed,
            13 => RunStatus::ConfirmTerminated,
            14 => RunStatus::Abandoned,
            15 => RunStatus::RollingWaiting,
            _ => return None,
        })
    }

    /// JOB's `finished` / `is_finished` (`FINISHED_STATUS_SET`). Not terminal: an
    /// operator can move a failed job back to running.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Success
                | RunStatus::Fail
                | RunStatus::Skipped
                | RunStatus::IgnoreError
                | RunStatus::Terminated
                | RunStatus::Abnormal
                | RunStatus::StopSuccess
                | RunStatus::ConfirmTerminated
                | RunStatus::Abandoned
        )
    }

    /// A short English label for reports.
    pub fn label(self) -> &'static str {
        match self {
            RunStatus::Blank => "not started",
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Fail => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::IgnoreError => "error ignored",
            RunStatus::WaitingUser => "waiting for confirmation",
            RunStatus::Terminated => "terminated",
            RunStatus::Abnormal => "abnormal",
            RunStatus::Stopping => "stopping",
            RunStatus::StopSuccess => "stopped",
            RunStatus::StopFailed => "stop failed",
            RunStatus::ConfirmTerminated => "confirmation refused",
            RunStatus::Abandoned => "abandoned",
            RunStatus::RollingWaiting => "waiting for next batch",
        }
    }
}

impl From<RunStatus> for u8 {
    fn from(status: RunStatus) -> u8 {
        status.code()
    }
}

/// A status code JOB does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown JOB status {0}")]
pub struct UnknownRunStatus(pub u8);

impl TryFrom<u8> for RunStatus {
    type Error = UnknownRunStatus;
    fn try_from(code: u8) -> Result<Self, UnknownRunStatus> {
        RunStatus::from_code(code).ok_or(UnknownRunStatus(code))
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.label(), self.code())
    }
}

/// Host (execute object) status codes (`ExecuteObjectTaskStatusEnum`).
pub mod host_status {
    /// Unknown error.
    pub const UNKNOWN_ERROR: u16 = 0;
    /// Agent abnormal.
    pub const AGENT_ERROR: u16 = 1;
    /// Invalid host.
    pub const INVALID_HOST: u16 = 2;
    /// Succeeded last time (skipped on retry of failed hosts).
    pub const LAST_SUCCESS: u16 = 3;
    /// Waiting.
    pub const WAITING: u16 = 5;
    /// Running.
    pub const RUNNING: u16 = 7;
    /// Succeeded.
    pub const SUCCESS: u16 = 9;
    /// Failed.
    pub const FAILED: u16 = 11;
    /// Submit failed.
    pub const SUBMIT_FAILED: u16 = 12;
    /// Task timeout.
    pub const TASK_TIMEOUT: u16 = 13;
    /// Script failed.
    pub const SCRIPT_FAILED: u16 = 101;
    /// Script timed out.
    pub const SCRIPT_TIMEOUT: u16 = 102;
    /// Script terminated.
    pub const SCRIPT_TERMINATED: u16 = 103;
    /// Script exited non-zero.
    pub const SCRIPT_NON_ZERO_EXIT: u16 = 104;
    /// File transfer failed.
    pub const FILE_TRANSFER_FAILED: u16 = 202;
    /// Source file does not exist.
    pub const SOURCE_FILE_NOT_EXIST: u16 = 203;
    /// Terminated by GSE.
    pub const TERMINATE_SUCCESS: u16 = 403;

    /// A short English label for a host status code.
    pub fn label(code: u16) -> &'static str {
        match code {
            0 => "unknown error",
            1 => "agent abnormal",
            2 => "invalid host",
            3 => "succeeded last time",
            5 => "waiting",
            7 => "running",
            9 => "success",
            11 => "failed",
            12 => "submit failed",
            13 => "task timeout",
            15 => "log error",
            16 => "script log timeout",
            17 => "file log timeout",
            18 => "agent not installed",
            101 => "script failed",
            102 => "script timed out",
            103 => "script terminated",
            104 => "script exit code non-zero",
            202 => "file transfer failed",
            203 => "source file does not exist",
            301 => "file task system error",
            303 => "file task timeout",
            310 => "agent abnormal",
            311 => "user does not exist",
            312 => "wrong user password",
            320 => "file fetch failed",
            321 => "file too large",
            329 => "file transfer error",
            399 => "task error",
            403 => "terminated",
            404 => "terminate failed",
            _ => "unknown status",
        }
    }

    /// Whether the host is still waiting or running.
    pub fn is_pending(code: u16) -> bool {
        matches!(code, WAITING | RUNNING)
    }

    /// Whether the host finished successfully (including "succeeded last time").
    pub fn is_success(code: u16) -> bool {
        matches!(code, SUCCESS | LAST_SUCCESS)
    }
}

/// `operate_job_instance` operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOperation {
    /// 1: terminate the job.
    Terminate,
    /// 2: start a job created with `start_task: false`.
    Start,
}

impl JobOperation {
    /// JOB's code.
    pub fn code(self) -> u8 {
        match self {
            JobOperation::Terminate => 1,
            JobOperation::Start => 2,
        }
    }

    /// The operation for a code.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(JobOperation::Terminate),
            2 => Some(JobOperation::Start),
            _ => None,
        }
    }
}

/// `operate_step_instance` operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOperation {
    /// 2: retry the failed hosts.
    RetryFailed,
    /// 3: ignore the error and go on.
    IgnoreError,
    /// 6: confirm a manual step and continue.
    ConfirmContinue,
    /// 8: retry all hosts.
    RetryAll,
    /// 9: refuse a manual confirmation (ends the job).
    ConfirmTerminate,
    /// 10: ask for the confirmation again.
    ConfirmRestart,
    /// 11: go to the next step after a stop.
    NextStep,
    /// 12: skip a step that is being stopped.
    Skip,
    /// 13: start the next rolling batch.
    RollingContinue,
}

impl StepOperation {
    /// JOB's code.
    pub fn code(self) -> u8 {
        match self {
            StepOperation::RetryFailed => 2,
            StepOperation::IgnoreError => 3,
            StepOperation::ConfirmContinue => 6,
            StepOperation::RetryAll => 8,
            StepOperation::ConfirmTerminate => 9,
            StepOperation::ConfirmRestart => 10,
            StepOperation::NextStep => 11,
            StepOperation::Skip => 12,
            StepOperation::RollingContinue => 13,
        }
    }

    /// The operation for a code.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            2 => StepOperation::RetryFailed,
            3 => StepOperation::IgnoreError,
            6 => StepOperation::ConfirmContinue,
            8 => StepOperation::RetryAll,
            9 => StepOperation::ConfirmTerminate,
            10 => StepOperation::ConfirmRestart,
            11 => StepOperation::NextStep,
            12 => StepOperation::Skip,
            13 => StepOperation::RollingContinue,
            _ => return None,
        })
    }
}

/// JOB step types (`StepExecuteTypeEnum`).
pub mod step_type {
    /// A script step.
    pub const SCRIPT: u8 = 1;
    /// A file step.
    pub const FILE: u8 = 2;
    /// A manual confirmation.
    pub const MANUAL_CONFIRM: u8 = 3;
    /// A SQL step.
    pub const SQL: u8 = 4;
}

/// JOB's script-language codes (`script_type` / `script_language`).
pub mod language_code {
    /// shell
    pub const SHELL: u8 = 1;
    /// bat
    pub const BAT: u8 = 2;
    /// perl
    pub const PERL: u8 = 3;
    /// python
    pub const PYTHON: u8 = 4;
    /// powershell
    pub const POWERSHELL: u8 = 5;
    /// sql
    pub const SQL: u8 = 6;
}

/// A host as JOB names it on the wire: cloud area and IPv4 address, plus the CMDB id
/// where known.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HostAddr {
    /// `bk_cloud_id`.
    pub cloud_id: u64,
    /// IPv4 address.
    pub ip: String,
}

impl HostAddr {
    /// Parses `cloud:ip` or a bare `ip` (cloud 0).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (cloud, ip) = match text.split_once(':') {
            Some((cloud, ip)) => (cloud.trim().parse::<u64>().ok()?, ip.trim()),
            None => (0, text),
        };
        ip.parse::<std::net::Ipv4Addr>().ok()?;
        Some(HostAddr {
            cloud_id: cloud,
            ip: ip.to_owned(),
        })
    }

    /// `<cloud>_<ip>`, the form of `[FILESRCIP]` and of sandbox folder names.
    pub fn folder_name(&self) -> String {
        format!("{}_{}", self.cloud_id, self.ip)
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.cloud_id, self.ip)
    }
}

// ---------------------------------------------------------------------------
// Decoded responses, the same for every protocol (see `job_api::decode`). Times are
// epoch milliseconds and durations milliseconds whatever the wire used.
// ---------------------------------------------------------------------------

/// A host as a log query names it: by CMDB id where known, else by address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostRef {
    /// `bk_host_id`, when JOB reported one.
    pub host_id: Option<u64>,
    /// Cloud area and IP, when JOB reported them.
    pub addr: Option<HostAddr>,
}

impl HostRef {
    /// `cloud:ip`, else `host_id:N`.
    pub fn label(&self) -> String {
        host_label(self.addr.as_ref(), self.host_id)
    }
}

fn host_label(addr: Option<&HostAddr>, host_id: Option<u64>) -> String {
    match (addr, host_id) {
        (Some(addr), _) => addr.to_string(),
        (None, Some(id)) => format!("host_id:{id}"),
        (None, None) => "unknown host".into(),
    }
}

/// What a submission returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The new job instance.
    pub job_instance_id: JobInstanceId,
    /// Its name (the task name, or JOB's generated one).
    pub job_instance_name: Option<String>,
    /// The step instance, for fast tasks where JOB returns it.
    pub step_instance_id: Option<StepInstanceId>,
}

/// A job instance's state, from `get_job_instance_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// JOB's `finished` / `is_finished`.
    pub finished: bool,
    /// The instance itself.
    pub job: JobInstanceInfo,
    /// Its steps, in order.
    pub steps: Vec<StepStatus>,
}

/// A job instance's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInstanceInfo {
    /// Its id.
    pub job_instance_id: JobInstanceId,
    /// Its name.
    pub name: Option<String>,
    /// Its status.
    pub status: RunStatus,
    /// Creation time, epoch ms.
    pub create_time_ms: Option<i64>,
    /// Start time, epoch ms.
    pub start_time_ms: Option<i64>,
    /// End time, epoch ms.
    pub end_time_ms: Option<i64>,
    /// Duration in ms.
    pub total_time_ms: Option<u64>,
}

/// One step instance's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStatus {
    /// Its id.
    pub step_instance_id: StepInstanceId,
    /// Its name.
    pub name: Option<String>,
    /// [`step_type`] code.
    pub step_type: Option<u8>,
    /// Its status.
    pub status: RunStatus,
    /// How many times it was re-run (0 for the first run).
    pub execute_count: u32,
    /// Creation time, epoch ms.
    pub create_time_ms: Option<i64>,
    /// Start time, epoch ms.
    pub start_time_ms: Option<i64>,
    /// End time, epoch ms.
    pub end_time_ms: Option<i64>,
    /// Duration in ms.
    pub total_time_ms: Option<u64>,
    /// Per-host results (file steps: target hosts only); empty when JOB sent none.
    pub hosts: Vec<HostResult>,
    /// The rolling batch, for rolling steps whose status answer says which batch runs.
    /// Optional: JOB's documented status answers carry no batch (only its batch-aware
    /// log queries take a `batch` parameter); baton's emulator adds a non-standard
    /// `rolling_batch: {current, total}`, and a missing or malformed one is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<RollingBatch>,
}

/// Which rolling batch a step is on: `current` of `total`, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollingBatch {
    /// The batch running (or, between batches, the one just done), 1-based.
    pub current: u32,
    /// How many batches the step has.
    pub total: u32,
}

/// One host's result within a step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostResult {
    /// CMDB host id.
    pub host_id: Option<u64>,
    /// Cloud area and IP.
    pub addr: Option<HostAddr>,
    /// [`host_status`] code.
    pub status: u16,
    /// Script exit code.
    pub exit_code: Option<i64>,
    /// JOB's per-host error code.
    pub error_code: Option<i32>,
    /// Text set by `job_success` / `job_fail`.
    pub tag: Option<String>,
    /// Start time, epoch ms.
    pub start_time_ms: Option<i64>,
    /// End time, epoch ms.
    pub end_time_ms: Option<i64>,
    /// Duration in ms.
    pub total_time_ms: Option<u64>,
}

impl HostResult {
    /// How a log query names this host.
    pub fn host_ref(&self) -> HostRef {
        HostRef {
            host_id: self.host_id,
            addr: self.addr.clone(),
        }
    }

    /// `cloud:ip`, else `host_id:N`.
    pub fn label(&self) -> String {
        host_label(self.addr.as_ref(), self.host_id)
    }
}

/// Which kind of log a step has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogType {
    /// 1: script output.
    Script,
    /// 2: file transfer records.
    File,
}

/// The host logs of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepLogs {
    /// The step (v2 reports every step of the job; v3/v4 the one asked for).
    pub step_instance_id: Option<StepInstanceId>,
    /// Step name (v2 only).
    pub name: Option<String>,
    /// Script or file log, when JOB said.
    pub log_type: Option<LogType>,
    /// One entry per host (and, for v2, per execution).
    pub hosts: Vec<HostLog>,
}

/// One host's log within a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLog {
    /// Cloud area and IP.
    pub host: Option<HostAddr>,
    /// CMDB host id.
    pub host_id: Option<u64>,
    /// Which execution of the step (v2 reports it).
    pub execute_count: Option<u32>,
    /// [`host_status`] code (v2 reports it with the log).
    pub status: Option<u16>,
    /// `job_success` / `job_fail` text (v2).
    pub tag: Option<String>,
    /// Script exit code (v2).
    pub exit_code: Option<i32>,
    /// The log text, already HTML-decoded where the protocol encodes it (v2). For a
    /// v2 file step it is the file log text.
    pub content: Option<String>,
    /// File-transfer records (v3/v4 file steps).
    pub file_logs: Vec<FileLog>,
}

/// One file-transfer record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLog {
    /// 0 upload (source side), 1 download (target side).
    pub mode: Option<u8>,
    /// Source host.
    pub src: Option<HostRef>,
    /// Source path.
    pub src_path: Option<String>,
    /// Target host (downloads).
    pub dest: Option<HostRef>,
    /// Target path (downloads).
    pub dest_path: Option<String>,
    /// 1 waiting, 2 uploading, 3 downloading, 4 success, 5 failed.
    pub status: Option<u8>,
    /// The record's log text.
    pub content: Option<String>,
    /// Size as JOB formats it.
    pub size: Option<String>,
    /// Speed as JOB formats it.
    pub speed: Option<String>,
    /// Progress as JOB formats it.
    pub progress: Option<String>,
}

/// A page of `get_job_instance_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceList {
    /// The instances, newest first as JOB returns them.
    pub instances: Vec<InstanceSummary>,
    /// Total matches, when JOB reports it (v3).
    pub total: Option<u64>,
}

/// One job instance in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSummary {
    /// Its id.
    pub job_instance_id: JobInstanceId,
    /// Its name (the task name of a fast task).
    pub name: String,
    /// Its status.
    pub status: Option<RunStatus>,
    /// Who started it.
    pub operator: Option<String>,
    /// Creation time, epoch ms.
    pub create_time_ms: Option<i64>,
    /// 0 plan, 1 fast script, 2 fast file.
    pub task_type: Option<u8>,
    /// 1 web, 2 API, 3 cron.
    pub launch_mode: Option<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_set_matches_job() {
        let finished: Vec<u8> = (1..=15)
            .filter_map(RunStatus::from_code)
            .filter(|s| s.is_finished())
            .map(RunStatus::code)
            .collect();
        assert_eq!(finished, vec![3, 4, 5, 6, 8, 9, 11, 13, 14]);
    }

    #[test]
    fn host_addr_parsing() {
        assert_eq!(
            HostAddr::parse("0:10.0.0.1").unwrap().folder_name(),
            "0_10.0.0.1"
        );
        assert_eq!(HostAddr::parse("10.0.0.2").unwrap().cloud_id, 0);
        assert!(HostAddr::parse("0:10.0.0.256").is_none());
        assert!(HostAddr::parse("-1:10.0.0.1").is_none());
        assert!(HostAddr::parse("a:b").is_none());
    }
}
