//! What a step reads about the steps before it when it decides whether and where to
//! run: its `if` (evaluated against how every ended step ended, its outputs and its
//! hosts) and targets drawn from an upstream step's hosts.

use std::collections::{BTreeMap, HashMap};

use super::{JobStepRunner, StepOutput, StepSource};
use crate::compile::condition::Outcomes;
use crate::compile::condition::{HostPick, HostSet, Targets};
use crate::executor::events::{HostOutcome, StepStatus};
use crate::executor::events::{NotRunReason, RunEvent, StepRef};
use crate::executor::scheduler::Final;
use crate::executor::scheduler::StepContext;
use crate::job_api::client::JobApi;

/// How one step of this run (or of an earlier session) ended, as later steps read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepRecord {
    /// The report's status word.
    pub status: String,
    /// Per host (`cloud:ip`), whether it succeeded.
    pub hosts: Vec<(String, bool)>,
    /// Raw outputs.
    pub outputs: BTreeMap<String, String>,
    /// Last job instance.
    pub job: Option<u64>,
}

impl StepRecord {
    /// The record of a finished step.
    pub fn of(
        status: StepStatus,
        hosts: &[HostOutcome],
        outputs: &BTreeMap<String, String>,
        job: Option<u64>,
    ) -> Self {
        StepRecord {
            status: status_word(status).to_owned(),
            hosts: hosts.iter().map(|h| (h.host.clone(), h.ok)).collect(),
            outputs: outputs.clone(),
            job,
        }
    }
}

/// The report's word for a final status.
pub fn status_word(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "succeeded",
        StepStatus::Failed => "failed",
        StepStatus::NotRun => "not_run",
        StepStatus::Interrupted => "interrupted",
        StepStatus::Unknown => "unknown",
    }
}

fn final_word(f: Final) -> &'static str {
    match f {
        Final::Succeeded => "succeeded",
        Final::Skipped => "skipped",
        Final::Failed => "failed",
        Final::NotRun => "not_run",
        Final::Interrupted => "interrupted",
    }
}

/// Everything a condition may read, by step id.
pub struct View {
    steps: HashMap<String, StepRecord>,
    interrupted: bool,
}

impl View {
    /// Joins the scheduler's view (every ended step), the outputs of succeeded ones,
    /// and the runner's own records (hosts, and `unknown` where the scheduler only
    /// knows `failed`).
    pub fn new(
        ids: impl Fn(usize) -> Option<String>,
        finished: &BTreeMap<usize, Final>,
        upstream: &BTreeMap<usize, StepOutput>,
        records: &BTreeMap<usize, StepRecord>,
        interrupted: bool,
    ) -> Self {
        let mut steps = HashMap::new();
        for (&index, &f) in finished {
            let Some(id) = ids(index) else { continue };
            let mut record = records.get(&index).cloned().unwrap_or_default();
            if record.status.is_empty() || f != Final::Failed {
                record.status = final_word(f).to_owned();
            }
            if let Some(out) = upstream.get(&index) {
                record.outputs.clone_from(&out.outputs);
                record.job = out.job_instance_id.map(|j| j.0);
            }
            steps.insert(id, record);
        }
        View { steps, interrupted }
    }
}

impl Outcomes for View {
    fn status(&self, step: &str) -> Option<String> {
        self.steps.get(step).map(|r| r.status.clone())
    }
    fn output(&self, step: &str, key: &str) -> Option<String> {
        self.steps.get(step)?.outputs.get(key).cloned()
    }
    fn hosts(&self, step: &str, pick: HostPick) -> Vec<String> {
        self.steps.get(step).map_or_else(Vec::new, |r| {
            r.hosts
                .iter()
                .filter(|(_, ok)| match pick {
                    HostPick::Succeeded => *ok,
                    HostPick::Failed => !*ok,
                    HostPick::All => true,
                })
                .map(|(host, _)| host.clone())
                .collect()
        })
    }
    fn job_instance_id(&self, step: &str) -> Option<u64> {
        self.steps.get(step)?.job
    }
    fn interrupted(&self) -> bool {
        self.interrupted
    }
}

/// Hosts as a step's reports name them (`cloud:ip`, or `host_id:N` when JOB gave no
/// address) turned back into targets.
pub fn targets_of(hosts: &[String]) -> Targets {
    let mut set = HostSet::default();
    for host in hosts {
        match host.strip_prefix("host_id:").and_then(|id| id.parse().ok()) {
            Some(id) => set.host_ids.push(id),
            None => set.ips.push(host.clone()),
        }
    }
    Targets::Inline(set)
}

impl<A: JobApi, S: StepSource> JobStepRunner<A, S> {
    /// Whether the step runs, by its `if`, and the targets it draws from an upstream
    /// step if it does; `Err` says why it is skipped. A handler that runs says why.
    pub(super) fn decide(
        &self,
        step_ref: &StepRef,
        ctx: &StepContext<StepOutput>,
    ) -> Result<Option<crate::compile::condition::Targets>, NotRunReason> {
        let setup = &self.setup;
        let index = step_ref.index;
        let condition = setup.source.condition(index);
        let from = setup.source.targets_from(index);
        // An instance an earlier session started runs whatever its condition says now:
        // it is followed to its end, never left unobserved or sent again.
        let attaching = self.resume.get(&index).is_some_and(|r| r.attach.is_some());
        if attaching || (condition.is_none() && from.is_none()) {
            return Ok(None);
        }
        let records = self.records.lock().map(|r| r.clone()).unwrap_or_default();
        let source = &setup.source;
        let view = View::new(
            |i| source.step_id(i).map(str::to_owned),
            &ctx.finished,
            &ctx.upstream,
            &records,
            ctx.interrupted,
        );
        if let Some(condition) = condition {
            let verdict = condition.evaluate(&view, &|name| source.var(name));
            if !verdict.run {
                return Err(NotRunReason::ConditionFalse {
                    condition: condition.text.clone(),
                });
            }
            if condition.handler {
                setup.events.emit(RunEvent::HandlerTriggered {
                    step: step_ref.clone(),
                    condition: condition.text.clone(),
                    because: verdict.because,
                });
            }
        }
        let Some(from) = from else { return Ok(None) };
        let hosts = view.hosts(&from.from, from.hosts);
        if hosts.is_empty() {
            return Err(NotRunReason::NoTargets {
                from: from.from.clone(),
                hosts: from.hosts.name().to_owned(),
            });
        }
        Ok(Some(targets_of(&hosts)))
    }
}
