//! Plain progress lines for logs, cron and CI: one timestamped line per thing that
//! happened, no ANSI codes, no carriage returns. Progress reads are reported only when
//! the picture changes, so a long wait does not flood the log.

use std::collections::HashMap;
use std::io::Write;

use crate::executor::events::{RunEvent, format_time, now};

use super::line::describe;
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
                at: None,
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
}
