//! `Ending`: how a step's life ended, before it is turned into events and a
//! scheduler outcome, with the endings every path shares (failed, in doubt).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::executor::events::{HostOutcome, Observed, StepStatus};
use crate::job_api::client::ClientError;
use crate::job_api::types::{JobInstanceId, RunStatus};

/// A step's end before it is turned into events.
pub(super) struct Ending {
    pub(super) status: StepStatus,
    pub(super) job_status: Option<RunStatus>,
    pub(super) job: Option<JobInstanceId>,
    pub(super) attempts: u32,
    pub(super) hosts: Vec<HostOutcome>,
    pub(super) outputs: BTreeMap<String, String>,
    pub(super) host_outputs: BTreeMap<String, BTreeMap<String, String>>,
    /// A job plan's exported global variables (raw values).
    pub(super) vars: BTreeMap<String, String>,
    pub(super) error: Option<String>,
    pub(super) observed: Option<(Instant, Observed)>,
    pub(super) job_ms: Option<u64>,
}

impl Ending {
    /// A submission that may or may not have started a job: the reason says what the
    /// operator does about it.
    pub(super) fn in_doubt(
        error: &ClientError,
        attempts: u32,
        run_id: &str,
        step_id: &str,
    ) -> Self {
        Ending::unknown(
            format!(
                "{error}. It is not sent again until settled: `baton resume {run_id}` looks it up in JOB where JOB can tell; otherwise check JOB, then `baton resume {run_id} --step {step_id} --force` runs it"
            ),
            attempts,
            None,
        )
    }

    /// An end in doubt: whether `job` (or the submission) is running is unknown.
    pub(super) fn unknown(reason: String, attempts: u32, job: Option<JobInstanceId>) -> Self {
        Ending {
            status: StepStatus::Unknown,
            ..Ending::failed(reason, attempts, job)
        }
    }

    pub(super) fn failed(error: String, attempts: u32, job: Option<JobInstanceId>) -> Self {
        Ending {
            status: StepStatus::Failed,
            job_status: None,
            job,
            attempts,
            hosts: Vec::new(),
            outputs: BTreeMap::new(),
            host_outputs: BTreeMap::new(),
            vars: BTreeMap::new(),
            error: Some(error),
            observed: None,
            job_ms: None,
        }
    }
}
