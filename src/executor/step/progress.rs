//! Reading a job's status for progress and retries: host counts of the current step
//! instance, the step instances that failed, and whether a retry of failed hosts took.

use crate::executor::events::HostCounts;
use crate::job_api::client::{JobStatusView, StepInstanceView};
use crate::job_api::types::{RunStatus, StepInstanceId, host_status};

/// Host counts and rolling batch of the step instance that is current.
pub fn progress_of(status: &JobStatusView) -> (HostCounts, Option<(u32, u32)>) {
    let current = status
        .steps
        .iter()
        .find(|s| {
            matches!(
                s.status,
                RunStatus::Running
                    | RunStatus::RollingWaiting
                    | RunStatus::WaitingUser
                    | RunStatus::Stopping
            )
        })
        .or_else(|| status.steps.last());
    let mut counts = HostCounts::default();
    let Some(step) = current else {
        return (counts, None);
    };
    for host in &step.hosts {
        if host.status == host_status::WAITING {
            counts.waiting += 1;
        } else if host_status::is_pending(host.status) {
            counts.running += 1;
        } else if host_status::is_success(host.status) {
            counts.ok += 1;
        } else {
            counts.failed += 1;
        }
    }
    (counts, step.batch)
}

pub(super) fn failed_steps(status: &JobStatusView) -> Vec<&StepInstanceView> {
    status
        .steps
        .iter()
        .filter(|s| {
            !matches!(
                s.status,
                RunStatus::Success | RunStatus::Skipped | RunStatus::IgnoreError
            )
        })
        .collect()
}

/// Whether a "retry failed hosts" on `step` took effect: the job runs again, or the
/// step's execute count moved past `before`.
pub(super) fn retry_taken(now: &JobStatusView, step: StepInstanceId, before: Option<u32>) -> bool {
    let count = now
        .steps
        .iter()
        .find(|s| s.step_instance_id == step)
        .map(|s| s.execute_count);
    !now.finished || matches!((count, before), (Some(now), Some(before)) if now > before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::client::HostResult;
    use crate::job_api::types::HostAddr;

    fn running_view() -> JobStatusView {
        JobStatusView {
            finished: false,
            status: RunStatus::Running,
            job_ms: None,
            steps: vec![StepInstanceView {
                step_instance_id: StepInstanceId(7),
                step_type: Some(1),
                status: RunStatus::Running,
                execute_count: 0,
                batch: None,
                hosts: vec![HostResult {
                    host_id: None,
                    addr: HostAddr::parse("0:10.0.0.1"),
                    status: host_status::RUNNING,
                    exit_code: Some(1),
                    ..HostResult::default()
                }],
            }],
        }
    }

    #[test]
    fn progress_counts_hosts_of_later_batches_as_waiting_not_running() {
        let mut view = running_view();
        let step = &mut view.steps[0];
        step.batch = Some((1, 3));
        let template = step.hosts[0].clone();
        for (ip, code) in [
            ("0:10.0.0.2", host_status::WAITING),
            ("0:10.0.0.3", host_status::WAITING),
        ] {
            step.hosts.push(HostResult {
                addr: HostAddr::parse(ip),
                status: code,
                ..template.clone()
            });
        }
        let (counts, batch) = progress_of(&view);
        assert_eq!(
            counts,
            HostCounts {
                running: 1,
                waiting: 2,
                ok: 0,
                failed: 0
            }
        );
        assert_eq!(batch, Some((1, 3)));
    }
}
