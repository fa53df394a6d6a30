//! A resumed run between replaying its journal and starting: [`Resuming`] lists the
//! steps whose earlier submission only JOB can settle ([`Unresolved`]), takes back what
//! JOB said, writes the `resumed` marker and the run's record, and opens the
//! [`Session`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::error::StateError;
use super::journal::{self, Journal, JournalLine, Marker};
use super::lock::{PlanLock, RunLock};
use super::resume::{Action, JournalState};
use super::runs::{RunDir, RunMeta};
use super::session::Session;
use crate::executor::events::{RunEvent, StepRef};

/// The first attempt number a step's new submission takes: after any the journal saw.
pub(super) fn next_attempt(state: &JournalState, id: &str) -> u32 {
    state.steps.get(id).map_or(1, |h| h.max_attempt + 1)
}

/// A step whose earlier submission only JOB can settle.
#[derive(Debug, Clone)]
pub struct Unresolved {
    /// The step's index in the plan.
    pub index: usize,
    /// Its id.
    pub step_id: String,
    /// What resuming decided so far: [`Action::Reconcile`] or
    /// [`Action::CheckInterrupted`].
    pub action: Action,
}

/// A resumed run whose in-doubt submissions are being settled.
#[derive(Debug)]
pub struct Resuming {
    pub(super) dir: RunDir,
    pub(super) meta: RunMeta,
    pub(super) journal: Journal,
    pub(super) run_lock: RunLock,
    pub(super) plan_lock: Option<PlanLock>,
    pub(super) state: JournalState,
    pub(super) actions: Vec<Action>,
    pub(super) plan_ids: Vec<String>,
    pub(super) notes: Vec<(usize, String)>,
    pub(super) force: bool,
    pub(super) since_ms: i64,
    pub(super) last_written: SystemTime,
    pub(super) settle_after: Duration,
}

impl Resuming {
    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.meta.run_id
    }

    /// Instance lists are searched from this moment (ms since the epoch).
    pub fn since_ms(&self) -> i64 {
        self.since_ms
    }

    /// The last moment the earlier session may have sent something.
    pub fn last_written(&self) -> SystemTime {
        self.last_written
    }

    /// `--settle-after`.
    pub fn settle_after(&self) -> Duration {
        self.settle_after
    }

    /// The steps only JOB can settle, in plan order.
    pub fn unsettled(&self) -> Vec<Unresolved> {
        self.actions
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                matches!(
                    a,
                    Action::Reconcile { .. } | Action::CheckInterrupted { .. }
                )
            })
            .map(|(index, action)| Unresolved {
                index,
                step_id: self.plan_ids[index].clone(),
                action: action.clone(),
            })
            .collect()
    }

    /// The first attempt number of a new submission of step `index`.
    pub fn next_attempt(&self, index: usize) -> u32 {
        self.plan_ids
            .get(index)
            .map_or(1, |id| next_attempt(&self.state, id))
    }

    /// Records what JOB settled (per step: the action now decided, and a note to show),
    /// writes the `resumed` marker and the run's record, and starts the session. A step
    /// settled to [`Action::KeepUnknown`] is listed as unknown.
    pub fn settle(
        mut self,
        settled: Vec<(usize, Action, Option<String>)>,
    ) -> Result<Session, StateError> {
        let mut unknown = Vec::new();
        for (index, action, note) in settled {
            if matches!(action, Action::KeepUnknown { .. }) {
                unknown.push(index);
            }
            if let Some(note) = note {
                self.notes.push((index, note));
            }
            if let Some(slot) = self.actions.get_mut(index) {
                *slot = action;
            }
        }
        self.notes.sort_by_key(|(index, _)| *index);
        let Resuming {
            dir,
            mut meta,
            journal,
            run_lock,
            plan_lock,
            state,
            actions,
            plan_ids,
            notes,
            force,
            ..
        } = self;
        let name = |pick: fn(&Action) -> bool| -> Vec<String> {
            actions
                .iter()
                .enumerate()
                .filter(|(i, a)| pick(a) && !unknown.contains(i))
                .map(|(i, _)| plan_ids[i].clone())
                .collect()
        };
        journal.append(&JournalLine::Marker(Marker::Resumed {
            at: journal::now_text(),
            pid: std::process::id(),
            kept: name(Action::is_kept),
            attached: name(|a| matches!(a, Action::Attach { .. })),
            rerun: name(|a| matches!(a, Action::Run { .. })),
            unknown: unknown.iter().map(|&i| plan_ids[i].clone()).collect(),
            forced: force,
        }))?;
        tracing::info!(
            run = %meta.run_id,
            folder = %dir.path().display(),
            sessions = state.sessions,
            "resuming run"
        );
        meta.resumed_at.push(journal::now_text());
        meta.pid = std::process::id();
        meta.finished_at = None;
        meta.exit_code = None;
        dir.write_meta(&meta)?;

        let restored = actions
            .iter()
            .enumerate()
            .map(|(index, action)| {
                let word = state.steps.get(&plan_ids[index])?.last_word.clone()?;
                action.is_kept().then(|| reindex(word, index))
            })
            .collect();
        Ok(Session {
            dir,
            journal: Arc::new(journal),
            plan_lock,
            run_lock,
            actions,
            plan_ids,
            notes,
            restored,
        })
    }
}

/// The event `word`, re-addressed to the step's index in the plan as it is now.
fn reindex(word: RunEvent, index: usize) -> RunEvent {
    let at = |step: StepRef| StepRef { index, id: step.id };
    match word {
        RunEvent::StepFinished {
            step,
            outcome,
            at: when,
        } => RunEvent::StepFinished {
            step: at(step),
            outcome,
            at: when,
        },
        RunEvent::StepNotRun { step, reason } => RunEvent::StepNotRun {
            step: at(step),
            reason,
        },
        other => other,
    }
}
