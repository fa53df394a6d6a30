//! `RunEvent`: the one contract between the run engine and everything that watches it
//! (progress bars, plain lines, the final report, the journal). The engine only emits;
//! watchers only consume. Events carry wall-clock timestamps for display and measured
//! durations for timings, so no watcher needs a clock of its own to report them.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::job_api::types::{JobInstanceId, RunStatus};
use crate::mask::Masker;

/// A step as events name it: its position in the plan and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRef {
    /// Index in the plan's `steps`.
    pub index: usize,
    /// The step's `id`.
    pub id: String,
}

/// What a run talks to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunTarget {
    /// The in-process emulator; host sandboxes live under `sandbox`.
    Emulator {
        /// Base URL of the emulator.
        endpoint: String,
        /// Folder holding the host sandboxes.
        sandbox: String,
    },
    /// A real JOB.
    Remote {
        /// Base URL.
        endpoint: String,
    },
}

/// Static facts about one step, announced at the start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepInfo {
    /// Position and id.
    pub step: StepRef,
    /// Display name (the step's `name`, else its id).
    pub name: String,
    /// Ids of the steps it needs.
    pub needs: Vec<String>,
    /// Its `if` lets it run after a failure (`failure()`, `always()`, `cancelled()`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handler: bool,
}

/// Why a step did not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NotRunReason {
    /// Its `when:` rendered false.
    WhenFalse,
    /// A step it needs (directly or not) failed or did not run.
    UpstreamFailed {
        /// The needed step that did not succeed.
        upstream: String,
    },
    /// A step failed with `on_failure: stop`, so nothing new started.
    RunStopped,
    /// The run was interrupted before the step started.
    Interrupted,
    /// Its `if` was false.
    ConditionFalse {
        /// The condition as written.
        condition: String,
    },
    /// Its targets are drawn from an upstream step that had no such hosts.
    NoTargets {
        /// The upstream step.
        from: String,
        /// Which hosts: `succeeded`, `failed` or `all`.
        hosts: String,
    },
}

impl NotRunReason {
    /// Whether the step counts as skipped (its dependents may run), not as not run.
    pub fn is_skip(&self) -> bool {
        matches!(
            self,
            NotRunReason::WhenFalse
                | NotRunReason::ConditionFalse { .. }
                | NotRunReason::NoTargets { .. }
        )
    }

    /// The reason in the report's words.
    pub fn describe(&self) -> String {
        match self {
            NotRunReason::WhenFalse => "`when` was false".into(),
            NotRunReason::UpstreamFailed { upstream } => {
                format!("needs `{upstream}`, which did not succeed")
            }
            NotRunReason::RunStopped => "the run stopped after a failure".into(),
            NotRunReason::Interrupted => "the run was interrupted".into(),
            NotRunReason::ConditionFalse { condition } => {
                format!("`if: {condition}` was false")
            }
            NotRunReason::NoTargets { from, hosts } => {
                format!("no targets: `{from}` has no {hosts} hosts")
            }
        }
    }
}

/// How an approval gate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateDecision {
    /// A person (or `--approve`) let the run go on.
    Approved,
    /// A person refused.
    Rejected,
    /// Nobody answered within the gate's timeout.
    TimedOut,
}

impl GateDecision {
    /// The word used in reports.
    pub fn word(self) -> &'static str {
        match self {
            GateDecision::Approved => "approved",
            GateDecision::Rejected => "rejected",
            GateDecision::TimedOut => "timed_out",
        }
    }
}

/// How the runner learned that an instance finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
    /// A callback triggered the status read that saw it.
    Callback,
    /// A scheduled poll saw it.
    Poll,
}

/// Host counts of a running step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCounts {
    /// Running now.
    pub running: usize,
    /// Not started yet: a later rolling batch, or JOB has not reached them. Absent in
    /// journals written before it was counted apart.
    #[serde(default)]
    pub waiting: usize,
    /// Succeeded.
    pub ok: usize,
    /// Failed.
    pub failed: usize,
}

/// One host's final state in a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostOutcome {
    /// `cloud:ip` (or `host_id:N` when JOB gave no IP).
    pub host: String,
    /// JOB host status code.
    pub status: u16,
    /// Its label.
    pub status_label: String,
    /// Script exit code, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Whether this host counts as succeeded.
    pub ok: bool,
    /// The last lines of its log (failed hosts, or all hosts when outputs are declared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
}

/// The final state of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Finished successfully.
    Succeeded,
    /// Failed (after its retries).
    Failed,
    /// Did not run (see the reason).
    NotRun,
    /// Interrupted while running: terminated, or left running with `--detach`.
    Interrupted,
    /// In doubt: its submission may or may not have started a job, and JOB could not
    /// tell. Never sent again until settled (by JOB's instance list, or the operator's
    /// `--step ID --force`).
    Unknown,
}

/// Everything known about a finished step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFinished {
    /// Final state.
    pub status: StepStatus,
    /// JOB's final job status, when one was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_status: Option<RunStatus>,
    /// The last job instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_instance_id: Option<JobInstanceId>,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
    /// Per-host results of the last attempt.
    pub hosts: Vec<HostOutcome>,
    /// `steps.<id>.outputs.<key>` as extracted; reporters mask secret values.
    pub outputs: BTreeMap<String, String>,
    /// The same, per host.
    pub host_outputs: BTreeMap<String, BTreeMap<String, String>>,
    /// What went wrong, in one line, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time from the first submit to the finish being observed.
    pub duration: Duration,
    /// JOB's own start → end of the last instance, ms (absent in older journals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_ms: Option<u64>,
    /// How the finish was observed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
}

impl StepFinished {
    /// A step left in doubt without a new submission (settled on resume, or not).
    pub fn in_doubt(reason: String, attempts: u32) -> Self {
        StepFinished {
            status: StepStatus::Unknown,
            job_status: None,
            job_instance_id: None,
            attempts,
            hosts: Vec::new(),
            outputs: BTreeMap::new(),
            host_outputs: BTreeMap::new(),
            error: Some(reason),
            duration: Duration::ZERO,
            job_ms: None,
            observed: None,
        }
    }
}

/// Something happened in the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run begins.
    RunStarted {
        /// Unique run id.
        run_id: String,
        /// Plan name.
        plan: String,
        /// Plan file.
        plan_path: String,
        /// Protocol generation.
        protocol: String,
        /// What the run talks to.
        target: RunTarget,
        /// Every step, in plan order.
        steps: Vec<StepInfo>,
        /// Wall clock.
        #[serde(serialize_with = "rfc3339", deserialize_with = "parse_rfc3339")]
        at: DateTime<Utc>,
    },
    /// A step's needs are met and it is being prepared.
    StepStarted {
        /// The step.
        step: StepRef,
        /// Wall clock.
        #[serde(serialize_with = "rfc3339", deserialize_with = "parse_rfc3339")]
        at: DateTime<Utc>,
    },
    /// A submission is about to be sent.
    StepSubmitting {
        /// The step.
        step: StepRef,
        /// 1-based attempt.
        attempt: u32,
        /// The unique task name sent.
        task_name: String,
    },
    /// JOB accepted the submission (or reconciliation found it).
    StepSubmitted {
        /// The step.
        step: StepRef,
        /// 1-based attempt.
        attempt: u32,
        /// The instance.
        job_instance_id: JobInstanceId,
        /// The instance was found by task name after an ambiguous submit.
        reconciled: bool,
        /// Time from the upstream finish being observed to this submit being sent.
        #[serde(skip_serializing_if = "Option::is_none")]
        handoff: Option<Duration>,
        /// Wall clock.
        #[serde(serialize_with = "rfc3339", deserialize_with = "parse_rfc3339")]
        at: DateTime<Utc>,
    },
    /// A status read of a running step.
    StepProgress {
        /// The step.
        step: StepRef,
        /// The instance.
        job_instance_id: JobInstanceId,
        /// JOB's job status.
        status: RunStatus,
        /// Host counts.
        hosts: HostCounts,
        /// Rolling batch `(k, n)`, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        batch: Option<(u32, u32)>,
        /// Wall clock of the read (absent in older journals), so a timeline can place
        /// rolling batches.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            serialize_with = "opt_rfc3339",
            deserialize_with = "parse_opt_rfc3339"
        )]
        at: Option<DateTime<Utc>>,
    },
    /// JOB waits for a person (manual confirmation or a rolling batch).
    StepWaitingUser {
        /// The step.
        step: StepRef,
        /// The instance.
        job_instance_id: JobInstanceId,
        /// What is asked.
        prompt: String,
        /// What baton did: confirmed, refused, failed for lack of a TTY.
        action: String,
    },
    /// A failed attempt is being retried.
    StepRetrying {
        /// The step.
        step: StepRef,
        /// The attempt about to start (2, 3, …).
        attempt: u32,
        /// The pause before it.
        delay: Duration,
        /// How: `retry failed hosts` or `fresh submission`.
        how: String,
    },
    /// A handler's condition admitted what happened upstream: it runs, and why.
    HandlerTriggered {
        /// The step.
        step: StepRef,
        /// Its `if` as written.
        condition: String,
        /// What made it true, e.g. "`deploy` failed".
        because: String,
    },
    /// An approval gate is waiting for a person.
    GateWaiting {
        /// The gate step.
        step: StepRef,
        /// What is asked.
        message: String,
        /// How long it waits, in seconds.
        timeout_secs: u64,
        /// The command that answers it from another terminal.
        command: String,
        /// Wall clock.
        #[serde(serialize_with = "rfc3339", deserialize_with = "parse_rfc3339")]
        at: DateTime<Utc>,
    },
    /// An approval gate was answered (or timed out).
    GateDecided {
        /// The gate step.
        step: StepRef,
        /// How it ended.
        decision: GateDecision,
        /// Who answered: a user name, `--approve`, or nobody on a timeout.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// Where the answer came from: `terminal`, `baton approve`, `--approve`.
        via: String,
        /// Wall clock.
        #[serde(serialize_with = "rfc3339", deserialize_with = "parse_rfc3339")]
        at: DateTime<Utc>,
    },
    /// A step did not run.
    StepNotRun {
        /// The step.
        step: StepRef,
        /// Why.
        reason: NotRunReason,
    },
    /// A step ended.
    StepFinished {
        /// The step.
        step: StepRef,
        /// Its outcome.
        outcome: Box<StepFinished>,
        /// Wall clock.
        #[serde(serialize_with = "rfc3339", deserialize_with = "parse_rfc3339")]
        at: DateTime<Utc>,
    },
    /// Something the user should see, not fatal by itself.
    Warning {
        /// The step concerned, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<StepRef>,
        /// The message.
        message: String,
    },
    /// Ctrl-C / SIGTERM was received; says what is being done about running instances.
    Interrupted {
        /// The action taken.
        action: String,
    },
    /// The run is over.
    RunFinished {
        /// The process exit code.
        exit_code: u8,
        /// Wall clock.
        #[serde(serialize_with = "rfc3339", deserialize_with = "parse_rfc3339")]
        at: DateTime<Utc>,
    },
}

/// Something that must see an event before the engine goes on: the run journal. It is
/// called synchronously inside [`EventSink::emit`], so an intent ("about to submit") is
/// on disk before the side effect it announces, whatever happens to the watchers'
/// channel or the process afterwards.
pub trait EventRecorder: Send + Sync {
    /// Records one event durably; the error says why it could not.
    fn record(&self, event: &RunEvent) -> Result<(), RecordError>;
}

/// Why an event could not be recorded, in the recorder's own words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(Box<dyn std::error::Error + Send + Sync>);

impl RecordError {
    /// The recorder's failure.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        RecordError(error.into())
    }
}

impl From<String> for RecordError {
    fn from(message: String) -> Self {
        RecordError(message.into())
    }
}

/// Where the engine sends events. Cloneable; sending never blocks the engine (beyond
/// the recorder's own write), and a closed receiver (the watchers are gone) is not the
/// engine's problem. With a masker, every event is masked here, once, before the
/// recorder and the watchers see it: nothing downstream holds a secret.
#[derive(Clone)]
pub struct EventSink {
    tx: tokio::sync::mpsc::UnboundedSender<RunEvent>,
    recorder: Option<Arc<dyn EventRecorder>>,
    masker: Option<Masker>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("recorder", &self.recorder.is_some())
            .field("masker", &self.masker)
            .finish_non_exhaustive()
    }
}

impl EventSink {
    /// A sink and the receiver watchers read from.
    pub fn channel() -> (Self, tokio::sync::mpsc::UnboundedReceiver<RunEvent>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            EventSink {
                tx,
                recorder: None,
                masker: None,
            },
            rx,
        )
    }

    /// The same sink, with every event masked by `masker` before anyone sees it.
    pub fn with_masker(mut self, masker: Masker) -> Self {
        self.masker = Some(masker);
        self
    }

    /// `event` as it may be shown.
    fn masked(&self, event: RunEvent) -> RunEvent {
        let Some(masker) = &self.masker else {
            return event;
        };
        masker
            .mask_serialized(event)
            .unwrap_or_else(|| RunEvent::Warning {
                step: None,
                message: "an event carrying a secret could not be masked and was withheld".into(),
            })
    }

    /// The same sink, with every event also handed to `recorder` before it is sent.
    pub fn with_recorder(mut self, recorder: Arc<dyn EventRecorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Emits one event. A recorder failure does not stop the run here; the recorder
    /// keeps it to report (see [`EventSink::emit_durable`] for events that must not
    /// go unrecorded).
    pub fn emit(&self, event: RunEvent) {
        let event = self.masked(event);
        if let Some(recorder) = &self.recorder {
            let _ = recorder.record(&event);
        }
        let _ = self.tx.send(event);
    }

    /// Emits an event that must be recorded before the engine acts on it (a submission
    /// intent). On a recorder failure nothing is sent and the error is returned, so the
    /// caller can refrain from the side effect.
    pub fn emit_durable(&self, event: RunEvent) -> Result<(), RecordError> {
        let event = self.masked(event);
        if let Some(recorder) = &self.recorder {
            recorder.record(&event)?;
        }
        let _ = self.tx.send(event);
        Ok(())
    }
}

/// Serializes a timestamp as RFC 3339 UTC with seconds (chrono's serde feature is off).
fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(at))
}

/// [`rfc3339`] for an optional timestamp (only called when present).
fn opt_rfc3339<S: serde::Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.serialize_str(&format_time(at)),
        None => serializer.serialize_none(),
    }
}

/// Reads an optional timestamp written by [`opt_rfc3339`].
fn parse_opt_rfc3339<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    parse_rfc3339(deserializer).map(Some)
}

/// Reads a timestamp written by [`rfc3339`] (any RFC 3339 offset is accepted).
fn parse_rfc3339<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

/// `2026-11-23T10:00:01Z`: the one timestamp format of plain output and reports.
pub fn format_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The current wall-clock time, for event timestamps.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}
