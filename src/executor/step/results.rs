//! A finished job's results: per-host outcomes, the masked log tails of failed hosts,
//! and outputs read from the logs (the first host's value, and every host's).

use std::collections::BTreeMap;

use super::outputs::extract_outputs;
use super::{JobStepRunner, StepSource};
use crate::executor::events::{HostOutcome, RunEvent};
use crate::job_api::client::{HostResult, JobApi, JobStatusView};
use crate::job_api::types::{JobInstanceId, RunStatus, host_status};

/// Lines of a failed host's log kept for the report.
const LOG_TAIL_LINES: usize = 20;

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl<A: JobApi, S: StepSource> JobStepRunner<A, S> {
    /// Per-host outcomes, log tails of failed hosts, and outputs from every host's log
    /// when outputs are declared.
    pub(super) async fn collect_results(
        &self,
        job: JobInstanceId,
        status: &JobStatusView,
        want_all_logs: bool,
    ) -> (
        Vec<HostOutcome>,
        BTreeMap<String, String>,
        BTreeMap<String, BTreeMap<String, String>>,
    ) {
        let setup = &self.setup;
        let mut hosts: BTreeMap<String, HostOutcome> = BTreeMap::new();
        let mut logs: BTreeMap<String, String> = BTreeMap::new();
        for step in &status.steps {
            let step_failed = !matches!(step.status, RunStatus::Success | RunStatus::Skipped);
            for host in &step.hosts {
                let label = host.label();
                let host_ok = host_status::is_success(host.status);
                let entry = hosts.entry(label.clone()).or_insert_with(|| HostOutcome {
                    host: label.clone(),
                    status: host.status,
                    status_label: host_status::label(host.status).into(),
                    exit_code: host.exit_code,
                    ok: host_ok,
                    log_tail: None,
                });
                if !host_ok {
                    entry.ok = false;
                    entry.status = host.status;
                    entry.status_label = host_status::label(host.status).into();
                    entry.exit_code = host.exit_code;
                }
            }
            let wanted: Vec<HostResult> = step
                .hosts
                .iter()
                .filter(|h| want_all_logs || (step_failed && !host_status::is_success(h.status)))
                .cloned()
                .collect();
            if wanted.is_empty() {
                continue;
            }
            match setup.api.logs(job, step.step_instance_id, wanted).await {
                Ok(found) => {
                    for log in found {
                        logs.entry(log.host).or_default().push_str(&log.content);
                    }
                }
                Err(e) => setup.events.emit(RunEvent::Warning {
                    step: None,
                    message: format!("cannot read the logs of job {job}: {e}"),
                }),
            }
        }
        let mut outputs = BTreeMap::new();
        let mut host_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (host, text) in &logs {
            for (key, value) in extract_outputs(text) {
                host_outputs
                    .entry(host.clone())
                    .or_default()
                    .insert(key.clone(), value.clone());
                // The first host (in address order) wins; all values stay in the per-host map.
                outputs.entry(key).or_insert(value);
            }
            if let Some(outcome) = hosts.get_mut(host)
                && !outcome.ok
            {
                // Masked whole before the cut, so a secret spanning lines leaves no part.
                outcome.log_tail = Some(tail(&setup.masker.mask(text), LOG_TAIL_LINES));
            }
        }
        (hosts.into_values().collect(), outputs, host_outputs)
    }
}
