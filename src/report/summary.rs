//! The end of a run, for people and for machines: a [`RunRecord`] assembled from
//! `RunEvent`s, printed as a table, written as the versioned JSON report
//! (`--report`) and as JUnit XML (`--junit`).
//!
//! # JSON report, schema `baton.run-report` version 1
//!
//! ```text
//! {
//!   "schema": "baton.run-report", "schema_version": 1,
//!   "run_id": str, "plan": str, "plan_path": str, "protocol": "v2"|"v3"|"v4",
//!   "target": {"kind": "emulator", "endpoint": str, "sandbox": str} | {"kind": "remote", "endpoint": str},
//!   "started_at": RFC 3339, "finished_at": RFC 3339|null, "exit_code": int|null,
//!   "steps": [{
//!     "id": str, "name": str, "needs": [str],
//!     "status": "succeeded"|"failed"|"skipped"|"not_run"|"interrupted"|"unknown",
//!     "reason": str|null,            // why it did not run / what failed, one line
//!     "attempts": int, "task_names": [str],
//!     "job_instance_id": int|null, "job_status": int|null, "reconciled": bool,
//!     "job_url": str?,               // the instance's page in JOB's web UI, when configured
//!     "hosts": [{"host": str, "status": int, "status_label": str, "exit_code": int?, "ok": bool, "log_tail": str?}],
//!     "outputs": {key: value}, "host_outputs": {host: {key: value}},   // secret values masked
//!     "timings": {"started_at": RFC 3339|null, "submitted_at": RFC 3339|null, "finished_at": RFC 3339|null,
//!                 "duration_ms": int|null, "handoff_ms": int|null, "handoff_us": int|null,
//!                 "job_ms": int|null, "observed_via": "callback"|"poll"|null}
//!   }],
//!   "warnings": [str]
//! }
//! ```
//!
//! `handoff_ms` is the time from the finish of the step's last need being observed
//! (callback received, or the poll that saw it) to this step's submission being sent;
//! `handoff_us` is the same in microseconds (a handoff takes well under a millisecond).
//! `job_ms` is JOB's own start → end of the last instance, from its status, so
//! `duration_ms − job_ms` is how late baton learned of the finish.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::failure_paths::{GateRecord, HandlerRecord};
use super::links::JobWeb;
use super::timeline::StepTimes;
use crate::executor::events::{
    HostOutcome, Observed, RunEvent, RunTarget, StepStatus, format_time,
};

/// The JSON report's schema name.
pub const SCHEMA: &str = "baton.run-report";
/// The JSON report's schema version.
pub const SCHEMA_VERSION: u32 = 1;

/// Timings of one step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepTimings {
    /// When its needs were met.
    pub started_at: Option<String>,
    /// When the first submission was accepted.
    pub submitted_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// From submission to observed finish.
    pub duration_ms: Option<u64>,
    /// From the upstream finish being observed to this submission being sent.
    pub handoff_ms: Option<u64>,
    /// The same in microseconds.
    pub handoff_us: Option<u64>,
    /// JOB's own start → end of the last instance.
    pub job_ms: Option<u64>,
    /// How the finish was observed.
    pub observed_via: Option<Observed>,
}

/// One step in the report.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Step id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Ids it needs.
    pub needs: Vec<String>,
    /// A failure handler: drawn with its own edges; the JSON report's `handler` says
    /// when one ran and why.
    #[serde(skip)]
    pub runs_after_failures: bool,
    /// Final status.
    pub status: String,
    /// Why it failed or did not run.
    pub reason: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// Task names sent.
    pub task_names: Vec<String>,
    /// Last job instance.
    pub job_instance_id: Option<u64>,
    /// JOB's final job status code.
    pub job_status: Option<u8>,
    /// Found by task name after an ambiguous submit.
    pub reconciled: bool,
    /// Per-host results.
    pub hosts: Vec<HostOutcome>,
    /// Outputs (masked).
    pub outputs: BTreeMap<String, String>,
    /// Outputs per host (masked).
    pub host_outputs: BTreeMap<String, BTreeMap<String, String>>,
    /// Timings.
    pub timings: StepTimings,
    /// The instance's page in JOB's web UI, when a JOB web address is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_url: Option<String>,
    /// A handler's condition and why it ran (absent for ordinary steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<HandlerRecord>,
    /// An approval gate's question and answer (absent for other steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateRecord>,
    /// A submission was sent and its answer never recorded.
    #[serde(skip)]
    pub awaiting_answer: bool,
    /// Its moments at full precision, for the timeline.
    #[serde(skip)]
    pub times: StepTimes,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// `baton.run-report`.
    pub schema: &'static str,
    /// 1.
    pub schema_version: u32,
    /// Run id.
    pub run_id: String,
    /// Plan name.
    pub plan: String,
    /// Plan file.
    pub plan_path: String,
    /// Protocol.
    pub protocol: String,
    /// What the run talked to.
    pub target: Option<RunTarget>,
    /// Start.
    pub started_at: Option<String>,
    /// End.
    pub finished_at: Option<String>,
    /// Exit code.
    pub exit_code: Option<u8>,
    /// Steps in plan order.
    pub steps: Vec<StepRecord>,
    /// Warnings seen.
    pub warnings: Vec<String>,
    #[serde(skip)]
    started: Option<DateTime<Utc>>,
    #[serde(skip)]
    finished: Option<DateTime<Utc>>,
}

impl Default for RunRecord {
    fn default() -> Self {
        RunRecord {
            schema: SCHEMA,
            schema_version: SCHEMA_VERSION,
            run_id: String::new(),
            plan: String::new(),
            plan_path: String::new(),
            protocol: String::new(),
            target: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            steps: Vec::new(),
            warnings: Vec::new(),
            started: None,
            finished: None,
        }
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RunRecord {
    /// Folds one event into the record.
    pub fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::RunStarted {
                run_id,
                plan,
                plan_path,
                protocol,
                target,
                steps,
                at,
            } => {
                self.run_id = run_id.clone();
                self.plan = plan.clone();
                self.plan_path = plan_path.clone();
                self.protocol = protocol.clone();
                self.target = Some(target.clone());
                self.started = Some(*at);
                self.started_at = Some(format_time(at));
                self.steps = steps
                    .iter()
                    .map(|s| StepRecord {
                        id: s.step.id.clone(),
                        name: s.name.clone(),
                        needs: s.needs.clone(),
                        runs_after_failures: s.handler,
                        status: "pending".into(),
                        reason: None,
                        attempts: 0,
                        task_names: Vec::new(),
                        job_instance_id: None,
                        job_status: None,
                        reconciled: false,
                        hosts: Vec::new(),
                        outputs: BTreeMap::new(),
                        host_outputs: BTreeMap::new(),
                        timings: StepTimings::default(),
                        job_url: None,
                        awaiting_answer: false,
                        times: StepTimes::default(),
                        handler: None,
                        gate: None,
                    })
                    .collect();
            }
            RunEvent::StepStarted { step, at } => {
                if let Some(s) = self.steps.get_mut(step.index) {
                    s.status = "running".into();
                    s.timings.started_at = Some(format_time(at));
                    s.times.started = Some(*at);
                }
            }
            RunEvent::StepSubmitting {
                step,
                attempt,
                task_name,
            } => {
                if let Some(s) = self.steps.get_mut(step.index) {
                    s.attempts = s.attempts.max(*attempt);
                    s.task_names.push(task_name.clone());
                    s.awaiting_answer = true;
                }
            }
            RunEvent::StepSubmitted {
                step,
                job_instance_id,
                reconciled,
                handoff,
                at,
                ..
            } => {
                if let Some(s) = self.steps.get_mut(step.index) {
                    s.awaiting_answer = false;
                    s.job_instance_id = Some(job_instance_id.0);
                    s.reconciled |= *reconciled;
                    if s.timings.submitted_at.is_none() {
                        s.timings.submitted_at = Some(format_time(at));
                        s.times.submitted = Some(*at);
                    }
                    if let Some(h) = handoff {
                        s.timings.handoff_ms = Some(ms(*h));
                        s.timings.handoff_us =
                            Some(u64::try_from(h.as_micros()).unwrap_or(u64::MAX));
                    }
                }
            }
            RunEvent::StepRetrying { step, attempt, .. } => {
                if let Some(s) = self.steps.get_mut(step.index) {
                    s.attempts = s.attempts.max(*attempt);
                }
            }
            RunEvent::StepNotRun { step, reason } => {
                if let Some(s) = self.steps.get_mut(step.index) {
                    let status = if reason.is_skip() {
                        "skipped"
                    } else {
                        "not_run"
                    };
                    s.status = status.into();
                    s.reason = Some(reason.describe());
                }
            }
            RunEvent::StepFinished { step, outcome, at } => {
                if let Some(s) = self.steps.get_mut(step.index) {
                    s.awaiting_answer = false;
                    s.status = match outcome.status {
                        StepStatus::Succeeded => "succeeded",
                        StepStatus::Failed => "failed",
                        StepStatus::NotRun => "not_run",
                        StepStatus::Interrupted => "interrupted",
                        StepStatus::Unknown => "unknown",
                    }
                    .into();
                    // A gate that was refused or not answered says so in its status.
                    if outcome.status == StepStatus::Failed
                        && let Some(decision) = s.gate.as_ref().and_then(|g| g.decision.clone())
                        && decision != "approved"
                    {
                        s.status = decision;
                    }
                    s.reason = outcome.error.clone();
                    s.attempts = s.attempts.max(outcome.attempts);
                    if outcome.job_instance_id.is_some() {
                        s.job_instance_id = outcome.job_instance_id.map(|j| j.0);
                    }
                    s.job_status = outcome.job_status.map(|st| st.code());
                    s.hosts = outcome.hosts.clone();
                    s.outputs = outcome.outputs.clone();
                    s.host_outputs = outcome.host_outputs.clone();
                    s.timings.finished_at = Some(format_time(at));
                    s.times.ended(*at);
                    s.timings.duration_ms = Some(ms(outcome.duration));
                    s.timings.observed_via = outcome.observed;
                    s.timings.job_ms = outcome.job_ms;
                }
            }
            RunEvent::Warning { step, message } => {
                let text = match step {
                    Some(step) => format!("{}: {message}", step.id),
                    None => message.clone(),
                };
                self.warnings.push(text);
            }
            RunEvent::Interrupted { action } => {
                self.warnings.push(format!("interrupted: {action}"))
            }
            RunEvent::RunFinished { exit_code, at } => {
                self.exit_code = Some(*exit_code);
                self.finished = Some(*at);
                self.finished_at = Some(format_time(at));
            }
            RunEvent::StepProgress {
                step,
                batch: Some(batch),
                at: Some(at),
                ..
            } => {
                if let Some(s) = self.steps.get_mut(step.index) {
                    s.times.saw_batch(*batch, *at);
                }
            }
            RunEvent::HandlerTriggered {
                step,
                condition,
                because,
            } => {
                if let Some(s) = self.steps.get_mut(step.index) {
                    s.handler = Some(HandlerRecord {
                        condition: condition.clone(),
                        because: because.clone(),
                    });
                }
            }
            RunEvent::GateWaiting { step, message, .. } => {
                if let Some(s) = self.steps.get_mut(step.index) {
                    s.gate = Some(GateRecord {
                        message: message.clone(),
                        decision: None,
                        by: None,
                        via: None,
                        at: None,
                    });
                }
            }
            RunEvent::GateDecided {
                step,
                decision,
                by,
                via,
                at,
            } => {
                if let Some(gate) = self.steps.get_mut(step.index).and_then(|s| s.gate.as_mut()) {
                    gate.decision = Some(decision.word().to_owned());
                    gate.by = by.clone();
                    gate.via = Some(via.clone());
                    gate.at = Some(format_time(at));
                }
            }
            RunEvent::StepProgress { .. } | RunEvent::StepWaitingUser { .. } => {}
        }
    }

    /// For a run whose process died without recording an end: gives every step its
    /// journal leaves open the final status that its last event implies, with the
    /// reason, so the record is as complete as one that ended normally.
    pub fn close_abandoned(&mut self) {
        for step in &mut self.steps {
            let (status, reason) = match step.status.as_str() {
                "running" if step.awaiting_answer => (
                    "unknown",
                    "the runner stopped while its submission was unanswered: JOB may or may not have started it; `baton resume` looks it up before anything is sent again".to_owned(),
                ),
                "running" => match step.job_instance_id {
                    Some(job) => (
                        "interrupted",
                        format!("the runner stopped while job {job} ran; `baton resume` re-attaches to it"),
                    ),
                    None => ("not_run", "the runner stopped before submitting it".to_owned()),
                },
                "pending" => ("not_run", "the runner stopped before it started".to_owned()),
                _ => continue,
            };
            step.status = status.into();
            step.reason = Some(reason);
        }
    }

    /// When the run started, at full precision.
    pub fn started(&self) -> Option<DateTime<Utc>> {
        self.started
    }

    /// When the run ended, at full precision.
    pub fn finished(&self) -> Option<DateTime<Utc>> {
        self.finished
    }

    /// Links every step's JOB instance to its page in JOB's web UI.
    pub fn link_jobs(&mut self, web: &JobWeb) {
        for step in &mut self.steps {
            step.job_url = step.job_instance_id.map(|job| web.instance_url(job));
        }
    }

    /// How many steps ended in `status`.
    pub fn count(&self, status: &str) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }

    /// The final table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let elapsed = match (self.started, self.finished) {
            (Some(a), Some(b)) => format!(" in {}", human((b - a).to_std().unwrap_or_default())),
            _ => String::new(),
        };
        let mut counts = Vec::new();
        for (status, label) in [
            ("succeeded", "succeeded"),
            ("failed", "failed"),
            ("interrupted", "interrupted"),
            ("unknown", "in doubt"),
            ("rejected", "rejected"),
            ("timed_out", "timed out"),
            ("skipped", "skipped"),
            ("not_run", "not run"),
        ] {
            let n = self.count(status);
            if n > 0 {
                counts.push(format!("{n} {label}"));
            }
        }
        let _ = writeln!(
            out,
            "baton: run {} of {} ({}) finished{elapsed}: {}",
            self.run_id,
            self.plan,
            self.protocol,
            counts.join(", ")
        );
        let width = self
            .steps
            .iter()
            .map(|s| s.id.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "  {:<width$}  {:<11}  {:>9}  {:>10}  HOSTS",
            "STEP", "STATUS", "DURATION", "JOB"
        );
        for step in &self.steps {
            let ok = step.hosts.iter().filter(|h| h.ok).count();
            let failed = step.hosts.len() - ok;
            let hosts = match (ok, failed) {
                (0, 0) => String::new(),
                (ok, 0) => format!("{ok} ok"),
                (ok, failed) => format!("{ok} ok, {failed} failed"),
            };
            let duration = step
                .timings
                .duration_ms
                .map(|d| human(std::time::Duration::from_millis(d)))
                .unwrap_or_else(|| "-".into());
            let job = step
                .job_instance_id
                .map(|j| j.to_string())
                .unwrap_or_else(|| "-".into());
            let status = step.status.replace('_', " ");
            let _ = writeln!(
                out,
                "  {:<width$}  {:<11}  {:>9}  {:>10}  {hosts}",
                step.id, status, duration, job
            );
            if let Some(url) = &step.job_url {
                let _ = writeln!(out, "      {url}");
            }
            if step.status != "succeeded"
                && let Some(reason) = &step.reason
            {
                let _ = writeln!(out, "      {reason}");
            }
            if let Some(handler) = &step.handler {
                let _ = writeln!(
                    out,
                    "      handler: ran because {} (if: {})",
                    handler.because, handler.condition
                );
            }
            if let Some(line) = step.gate.as_ref().and_then(GateRecord::answer) {
                let _ = writeln!(out, "      gate: {line}");
            }
            for host in step.hosts.iter().filter(|h| !h.ok) {
                let exit = host
                    .exit_code
                    .map(|c| format!(", exit {c}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "      {}: {} ({}){exit}",
                    host.host, host.status_label, host.status
                );
                if let Some(tail) = &host.log_tail {
                    for line in tail.lines() {
                        let _ = writeln!(out, "        | {line}");
                    }
                }
            }
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "  warning: {warning}");
        }
        out
    }

    /// The JSON report.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The JUnit XML report: one test case per step.
    pub fn to_junit(&self) -> String {
        let failures = self.count("failed")
            + self.count("interrupted")
            + self.count("unknown")
            + self.count("rejected")
            + self.count("timed_out");
        let skipped = self.count("skipped") + self.count("not_run");
        let total_secs: f64 = self
            .steps
            .iter()
            .filter_map(|s| s.timings.duration_ms)
            .map(|ms| ms as f64 / 1000.0)
            .sum();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"baton\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{total_secs:.3}\">",
            self.steps.len()
        );
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{total_secs:.3}\" timestamp=\"{}\">",
            xml(&self.plan),
            self.steps.len(),
            xml(self.started_at.as_deref().unwrap_or(""))
        );
        for step in &self.steps {
            let time = step.timings.duration_ms.unwrap_or(0) as f64 / 1000.0;
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{time:.3}\"",
                xml(&self.plan),
                xml(&step.id)
            );
            let mut notes = String::new();
            if let Some(handler) = &step.handler {
                let _ = writeln!(
                    notes,
                    "handler: ran because {} (if: {})",
                    handler.because, handler.condition
                );
            }
            if let Some(line) = step.gate.as_ref().and_then(GateRecord::answer) {
                let _ = writeln!(notes, "gate: {line}");
            }
            match step.status.as_str() {
                "succeeded" if notes.is_empty() => out.push_str("/>\n"),
                "succeeded" => {
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>{}</system-out>\n    </testcase>",
                        xml(&notes)
                    );
                }
                "failed" | "interrupted" | "unknown" | "rejected" | "timed_out" => {
                    out.push_str(">\n");
                    let message = step.reason.clone().unwrap_or_else(|| step.status.clone());
                    let mut details = String::new();
                    for host in step.hosts.iter().filter(|h| !h.ok) {
                        let _ = writeln!(
                            details,
                            "{}: {} ({})",
                            host.host, host.status_label, host.status
                        );
                        if let Some(tail) = &host.log_tail {
                            let _ = writeln!(details, "{tail}");
                        }
                    }
                    let _ = writeln!(
                        out,
                        "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                        xml(&message),
                        xml(&step.status),
                        xml(&details)
                    );
                    out.push_str("    </testcase>\n");
                }
                _ => {
                    let message = step
                        .reason
                        .clone()
                        .unwrap_or_else(|| step.status.replace('_', " "));
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml(&message)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }
}

/// Escapes text for XML attributes and content, dropping characters XML 1.0 forbids.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\r' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// `850ms`, `12.3s`, `4m05s`.
pub fn human(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::events::NotRunReason;
    use crate::executor::events::{StepFinished, StepInfo, StepRef};
    use crate::job_api::types::{JobInstanceId, RunStatus};
    use std::time::Duration;

    fn sample() -> RunRecord {
        let at = Utc::now();
        let step = |i: usize, id: &str| StepRef {
            index: i,
            id: id.into(),
        };
        let events = vec![
            RunEvent::RunStarted {
                run_id: "r1".into(),
                plan: "demo".into(),
                plan_path: "plan.yaml".into(),
                protocol: "v3".into(),
                target: RunTarget::Remote {
                    endpoint: "http://x".into(),
                },
                steps: vec![
                    StepInfo {
                        step: step(0, "a"),
                        name: "a".into(),
                        needs: vec![],
                        handler: false,
                    },
                    StepInfo {
                        step: step(1, "b"),
                        name: "b".into(),
                        needs: vec!["a".into()],
                        handler: false,
                    },
                ],
                at,
            },
            RunEvent::StepSubmitted {
                step: step(0, "a"),
                attempt: 1,
                job_instance_id: JobInstanceId(10),
                reconciled: false,
                handoff: Some(Duration::from_millis(12)),
                at,
            },
            RunEvent::StepFinished {
                step: step(0, "a"),
                outcome: Box::new(StepFinished {
                    status: StepStatus::Failed,
                    job_status: Some(RunStatus::Fail),
                    job_instance_id: Some(JobInstanceId(10)),
                    attempts: 1,
                    hosts: vec![HostOutcome {
                        host: "0:10.0.0.1".into(),
                        status: 104,
                        status_label: "script exit code non-zero".into(),
                        exit_code: Some(3),
                        ok: false,
                        log_tail: Some("disk <full>".into()),
                    }],
                    outputs: BTreeMap::new(),
                    host_outputs: BTreeMap::new(),
                    error: Some("job 10 ended failed (4) on 0:10.0.0.1".into()),
                    duration: Duration::from_millis(1500),
                    observed: Some(Observed::Callback),
                    job_ms: Some(7),
                }),
                at,
            },
            RunEvent::StepNotRun {
                step: step(1, "b"),
                reason: NotRunReason::UpstreamFailed {
                    upstream: "a".into(),
                },
            },
            RunEvent::RunFinished { exit_code: 1, at },
        ];
        let mut record = RunRecord::default();
        for e in &events {
            record.apply(e);
        }
        record
    }

    #[test]
    fn table_json_and_junit_tell_the_same_story() {
        let record = sample();
        let table = record.table();
        assert!(table.contains("1 failed, 1 not run"), "{table}");
        assert!(table.contains("| disk <full>"));
        let json: serde_json::Value = serde_json::from_str(&record.to_json()).unwrap();
        assert_eq!(json["schema"], SCHEMA);
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["exit_code"], 1);
        assert_eq!(json["steps"][0]["timings"]["handoff_ms"], 12);
        assert_eq!(json["steps"][0]["timings"]["handoff_us"], 12_000);
        assert_eq!(json["steps"][0]["timings"]["job_ms"], 7);
        assert_eq!(json["steps"][0]["timings"]["observed_via"], "callback");
        assert_eq!(json["steps"][1]["status"], "not_run");
        let junit = record.to_junit();
        assert!(junit.contains("<failure message=\"job 10 ended failed (4) on 0:10.0.0.1\""));
        assert!(junit.contains("disk &lt;full&gt;"));
        assert!(junit.contains("<skipped message=\"needs `a`, which did not succeed\"/>"));
    }
}
