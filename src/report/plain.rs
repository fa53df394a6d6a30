//! Plain progress lines for logs, cron and CI: one timestamped line per thing that
//! happened, no ANSI codes, no carriage returns. Progress reads are reported only when
//! the picture changes, so a long wait does not flood the log.

use std::collections::HashMap;
use std::io::Write;

use crate::executor::events::{NotRunReason, RunEvent, RunTarget, StepStatus, format_time, now};

use super::summary::human;
use super::watch::Watcher;

/// Writes plain lines to `out`.
pub struct PlainReporter<W: Write + Send> {
    out: W,
    last_progress: HashMap<usize, String>,
}

impl<W: Write + Send> PlainReporter<W> {
    /// A reporter writing to `out`.
    pub fn new(out: W) -> Self {
        PlainReporter {
            out,
            last_progress: HashMap::new(),
        }
    }

    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{} {text}", format_time(&now()));
        let _ = self.out.flush();
    }
}

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
        } => {
            // The batch leads (`step stop-web batch 2/4: …`) so a rolling step's
            // progress reads at a glance and greps easily.
            let batch = batch
                .map(|(k, n)| format!(" batch {k}/{n}:"))
                .unwrap_or_default();
            // Waiting hosts are named only when there are some, which keeps the common
            // line short and tells a rolling step's later batches apart from its running one.
            let waiting = match hosts.waiting {
                0 => String::new(),
                n => format!(" {n} waiting,"),
            };
            format!(
                "step {}{batch} job {job_instance_id} {}: {} running,{waiting} {} ok, {} failed",
                step.id,
                status.label(),
                hosts.running,
                hosts.ok,
                hosts.failed
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

impl<W: Write + Send> Watcher for PlainReporter<W> {
    fn on_event(&mut self, event: &RunEvent) {
        if let RunEvent::StepProgress { step, .. } = event {
            let Some(text) = describe(event) else { return };
            if self.last_progress.get(&step.index) == Some(&text) {
                return;
            }
            self.last_progress.insert(step.index, text.clone());
            self.line(&text);
            return;
        }
        if let Some(text) = describe(event) {
            self.line(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::events::{HostCounts, StepRef};
    use crate::job_api::types::{JobInstanceId, RunStatus};

    #[test]
    fn lines_are_timestamped_plain_and_deduplicated() {
        let mut buffer = Vec::new();
        {
            let mut reporter = PlainReporter::new(&mut buffer);
            let step = StepRef {
                index: 0,
                id: "push-package".into(),
            };
            reporter.on_event(&RunEvent::StepSubmitted {
                step: step.clone(),
                attempt: 1,
                job_instance_id: JobInstanceId(10002),
                reconciled: false,
                handoff: None,
                at: now(),
            });
            let progress = RunEvent::StepProgress {
                step,
                job_instance_id: JobInstanceId(10002),
                status: RunStatus::Running,
                hosts: HostCounts {
                    running: 2,
                    ..HostCounts::default()
                },
                batch: None,
            };
            reporter.on_event(&progress);
            reporter.on_event(&progress);
        }
        let text = String::from_utf8(buffer).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with("Z step push-package submitted (job 10002)"));
        assert!(lines[0].as_bytes()[4] == b'-' && lines[0].as_bytes()[10] == b'T');
        assert!(!text.contains('\u{1b}'));
    }

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
}
