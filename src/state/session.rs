//! A run in progress: [`Session`] holds its folder, journal and locks, what resuming
//! decided for each step and what to show again when the run starts, and records the
//! exit code when the run ends. [`super::pending`] opens it; never talks to JOB.

use std::path::Path;
use std::sync::Arc;

use super::journal::{Journal, JournalLine, Marker};
use super::lock::{PlanLock, RunLock};
use super::resume::Action;
use super::runs::RunDir;
use crate::executor::events::{self, EventRecorder, RunEvent, StepFinished, StepRef};

/// A run in progress: its folder, journal and locks.
#[derive(Debug)]
pub struct Session {
    pub(super) dir: RunDir,
    pub(super) journal: Arc<Journal>,
    pub(super) plan_lock: Option<PlanLock>,
    pub(super) run_lock: RunLock,
    pub(super) actions: Vec<Action>,
    pub(super) plan_ids: Vec<String>,
    pub(super) notes: Vec<(usize, String)>,
    pub(super) restored: Vec<Option<RunEvent>>,
}

impl Session {
    /// The run id.
    pub fn run_id(&self) -> &str {
        self.dir.id()
    }

    /// The run folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The journal, to hand to the event sink.
    pub fn recorder(&self) -> Arc<dyn EventRecorder> {
        Arc::clone(&self.journal) as Arc<dyn EventRecorder>
    }

    /// For a resume: how kept steps ended, and what resuming decided, to show again
    /// right after the run starts; a step still in doubt ends `unknown` in this
    /// session's record and journal.
    pub fn restored(&self) -> Vec<RunEvent> {
        let mut restored: Vec<RunEvent> = self.restored.iter().flatten().cloned().collect();
        for (index, action) in self.actions.iter().enumerate() {
            if let Action::KeepUnknown { reason, attempt } = action {
                restored.push(RunEvent::StepFinished {
                    step: StepRef {
                        index,
                        id: self.plan_ids.get(index).cloned().unwrap_or_default(),
                    },
                    outcome: Box::new(StepFinished::in_doubt(reason.clone(), *attempt)),
                    at: events::now(),
                });
            }
        }
        for (index, note) in &self.notes {
            restored.push(RunEvent::Warning {
                step: Some(StepRef {
                    index: *index,
                    id: self.plan_ids.get(*index).cloned().unwrap_or_default(),
                }),
                message: note.clone(),
            });
        }
        restored
    }

    /// What resuming decided for each step, in plan order (empty for a fresh run).
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// The id of step `index` as the plan is now.
    pub fn step_id(&self, index: usize) -> String {
        self.plan_ids.get(index).cloned().unwrap_or_default()
    }

    /// Whether resuming left a step in doubt.
    pub fn has_steps_in_doubt(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::KeepUnknown { .. }))
    }

    /// Appends a journal marker (a notification's fate), durably.
    pub fn mark(&self, marker: Marker) -> Result<(), super::StateError> {
        self.journal.append(&JournalLine::Marker(marker))
    }

    /// Records the session's exit code and releases the locks. Returns a warning to
    /// print if the journal could not be written at some point.
    pub fn finish(self, exit_code: u8) -> Option<String> {
        let mut warning = self.journal.first_error().map(|e| {
            format!(
                "baton: warning: the run journal is incomplete ({e}); resume may not know everything"
            )
        });
        if let Err(e) = self.dir.record_finish(exit_code) {
            warning.get_or_insert_with(|| format!("baton: warning: {e}"));
        }
        drop(self.run_lock);
        drop(self.plan_lock);
        warning
    }
}
