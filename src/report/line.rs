//! The one-line text of a run event ([`describe`]) and of a step's host counts
//! ([`host_counts`]), shared by the plain reporter and the progress display so that a
//! warning, a finished step or an interruption reads the same in a log as on a terminal.

use crate::executor::events::{HostCounts, NotRunReason, RunEvent, RunTarget, StepStatus};

use super::summary::human;

/// The one-line text of an event, or `None` for events not worth a line.
pub fn describe(event: &RunEvent) -> Option<String> {
    Some(match event {
        RunEvent::RunStarted {
            run_id,
            plan,
            protocol,
            steps,
            target,
            ..
        } => {
            let target = match target {
                RunTarget::Emulator { endpoint, .. } => format!("local emulator {endpoint}"),
                RunTarget::Remote { endpoint } => endpoint.clone(),
            };
            format!(
                "run {run_id} of {plan} started: {} steps, {protocol} on {target}",
                steps.len()
            )
        }
        RunEvent::StepStarted { .. } | RunEvent::StepSubmitting { .. } => return None,
        RunEvent::StepSubmitted {
            step,
            job_instance_id,
            attempt,
            reconciled,
            ..
        } => {
            let mut text = format!("step {} submitted (job {job_instance_id})", step.id);
            if *attempt > 1 {
                text.push_str(&format!(", attempt {attempt}"));
            }
            if *reconciled {
                text.push_str(", found by task name after an unanswered submit");
            }
            text
        }
        RunEvent::StepProgress {
            step,
            job_instance_id,
            status,
            hosts,
            batch,
            ..
        } => {
            // The batch leads (`step stop-web batch 2/4: …`) so a rolling step's
            // progress reads at a glance and greps easily.
            let batch = batch
                .map(|(k, n)| format!(" batch {k}/{n}:"))
                .unwrap_or_default();
            format!(
                "step {}{batch} job {job_instance_id} {}: {}",
                step.id,
                status.label(),
                host_counts(hosts, ", ")
            )
        }
        RunEvent::StepWaitingUser {
            step,
            prompt,
            action,
            ..
        } => format!("step {} {prompt}: {action}", step.id),
        RunEvent::StepRetrying {
            step,
            attempt,
            delay,
            how,
        } => format!(
            "step {} retrying (attempt {attempt}, {how}) in {}",
            step.id,
            human(*delay)
        ),
        RunEvent::StepNotRun { step, reason } => match reason {
            NotRunReason::WhenFalse => format!("step {} skipped: `when` is false", step.id),
            NotRunReason::UpstreamFailed { upstream } => {
                format!(
                    "step {} not run: needs {upstream}, which did not succeed",
                    step.id
                )
            }
            NotRunReason::RunStopped => {
                format!("step {} not run: the run stopped after a failure", step.id)
            }
            NotRunReason::Interrupted => format!("step {} not run: interrupted", step.id),
            NotRunReason::ConditionFalse { .. } | NotRunReason::NoTargets { .. } => {
                format!("step {} skipped: {}", step.id, reason.describe())
            }
        },
        RunEvent::HandlerTriggered {
            step,
            condition,
            because,
        } => format!("step {} runs: `if: {condition}` holds ({because})", step.id),
        RunEvent::GateWaiting {
            step,
            message,
            timeout_secs,
            command,
            ..
        } => format!(
            "step {} waits for approval: {message} (up to {}; answer with `{command}`)",
            step.id,
            human(std::time::Duration::from_secs(*timeout_secs))
        ),
        RunEvent::GateDecided {
            step,
            decision,
            by,
            via,
            ..
        } => match by {
            Some(by) => format!("step {} {} by {by} ({via})", step.id, decision.word()),
            None => format!(
                "step {} {}: nobody answered",
                step.id,
                decision.word().replace('_', " ")
            ),
        },
        RunEvent::StepFinished { step, outcome, .. } => {
            let job = outcome
                .job_instance_id
                .map(|j| format!(" (job {j})"))
                .unwrap_or_default();
            match outcome.status {
                StepStatus::Succeeded => format!(
                    "step {} succeeded{job} in {}",
                    step.id,
                    human(outcome.duration)
                ),
                StepStatus::Failed => format!(
                    "step {} failed{job}: {}",
                    step.id,
                    outcome.error.as_deref().unwrap_or("failed")
                ),
                StepStatus::Interrupted => format!(
                    "step {} interrupted{job}: {}",
                    step.id,
                    outcome.error.as_deref().unwrap_or("interrupted")
                ),
                StepStatus::NotRun => format!("step {} not run", step.id),
                StepStatus::Unknown => format!(
                    "step {} in doubt{job}: {}",
                    step.id,
                    outcome
                        .error
                        .as_deref()
                        .unwrap_or("submission outcome unknown")
                ),
            }
        }
        RunEvent::Warning { step, message } => match step {
            Some(step) => format!("warning: step {}: {message}", step.id),
            None => format!("warning: {message}"),
        },
        RunEvent::Interrupted { action } => format!("interrupted: {action}"),
        RunEvent::RunFinished { exit_code, .. } => format!("run finished (exit {exit_code})"),
    })
}

/// `2 running, 1 waiting, 3 ok, 0 failed` with `separator` between the counts. Waiting
/// hosts are named only when there are some, which keeps the common line short and
/// tells a rolling step's later batches apart from its running one.
pub fn host_counts(hosts: &HostCounts, separator: &str) -> String {
    let mut parts = vec![format!("{} running", hosts.running)];
    if hosts.waiting > 0 {
        parts.push(format!("{} waiting", hosts.waiting));
    }
    parts.push(format!("{} ok", hosts.ok));
    parts.push(format!("{} failed", hosts.failed));
    parts.join(separator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::events::StepRef;
    use crate::job_api::types::{JobInstanceId, RunStatus};

    #[test]
    fn rolling_progress_names_the_batch_first() {
        let mut event = RunEvent::StepProgress {
            step: StepRef {
                index: 0,
                id: "stop-web".into(),
            },
            job_instance_id: JobInstanceId(7),
            status: RunStatus::Running,
            hosts: HostCounts {
                running: 1,
                waiting: 2,
                ok: 1,
                failed: 0,
            },
            batch: Some((2, 4)),
            at: None,
        };
        assert_eq!(
            describe(&event).as_deref(),
            Some("step stop-web batch 2/4: job 7 running: 1 running, 2 waiting, 1 ok, 0 failed")
        );
        let RunEvent::StepProgress { hosts, .. } = &mut event else {
            unreachable!("built above")
        };
        hosts.waiting = 0;
        assert_eq!(
            describe(&event).as_deref(),
            Some("step stop-web batch 2/4: job 7 running: 1 running, 1 ok, 0 failed")
        );
    }

    #[test]
    fn host_counts_take_the_separator() {
        let hosts = HostCounts {
            running: 2,
            waiting: 1,
            ok: 3,
            failed: 0,
        };
        assert_eq!(
            host_counts(&hosts, " / "),
            "2 running / 1 waiting / 3 ok / 0 failed"
        );
    }
}
