//! Journal replay for `baton resume`: what each step's journal says happened to it, and
//! what the resumed session must therefore do with it.
//!
//! The rules, per step (by id, so a reordered plan under `--force` still matches):
//! succeeded or skipped steps are kept, with their outputs, so later templates render as
//! before; a step with a job instance id and no finish is re-attached to that instance
//! (its status is read, it is never submitted again); a submission intent without an
//! instance id is settled by its task name first; everything else runs, with attempt
//! numbers after the journal's so task names stay unique. `--step ID` reruns that step
//! (and with `--downstream` everything after it) and keeps the rest as it was.

use std::collections::{BTreeMap, BTreeSet};

use super::error::StateError;
use super::journal::{JournalLine, Marker, Replay};
use crate::executor::events::{RunEvent, RunTarget, StepFinished, StepStatus};
use crate::job_api::types::JobInstanceId;

/// Where a step stood when its journal ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// The journal never mentions it.
    Unseen,
    /// Started (rendering) but nothing was submitted.
    Started,
    /// The intent to submit was recorded; the answer never was.
    Submitting {
        /// The attempt.
        attempt: u32,
        /// The unique task name sent (or about to be).
        task_name: String,
    },
    /// A session ended it in doubt: its submission may or may not have started a job.
    InDoubt {
        /// The attempt.
        attempt: u32,
        /// The task name of that submission, when the journal has it.
        task_name: Option<String>,
    },
    /// JOB accepted it; no finish was recorded.
    InFlight {
        /// The instance.
        job: JobInstanceId,
        /// The attempt.
        attempt: u32,
    },
    /// Finished successfully.
    Succeeded(Box<StepFinished>),
    /// `when:` was false.
    Skipped,
    /// Failed.
    Failed,
    /// Interrupted while running; `job` is the instance it was waiting for (terminated,
    /// or left running with `--detach`).
    Interrupted {
        /// The instance, when one was submitted.
        job: Option<JobInstanceId>,
    },
    /// Did not run (upstream failure, stop, interrupt).
    NotRun,
}

/// One step's history in the journal.
#[derive(Debug, Clone)]
pub struct StepHistory {
    /// Where it stood at the end.
    pub settled: Settled,
    /// The highest attempt number the journal saw.
    pub max_attempt: u32,
    /// The event that settled it (`step_finished` / `step_not_run`), to show it again.
    pub last_word: Option<RunEvent>,
}

/// What a journal says about a run.
#[derive(Debug, Clone, Default)]
pub struct JournalState {
    /// The run id (from the header or the first `run_started`).
    pub run_id: Option<String>,
    /// Per step id.
    pub steps: BTreeMap<String, StepHistory>,
    /// The exit code of the last session, if it finished.
    pub finished: Option<u8>,
    /// How many sessions (1 + resumes).
    pub sessions: usize,
    /// What the first session talked to.
    pub target: Option<RunTarget>,
}

/// Folds a journal into per-step states.
pub fn replay(journal: &Replay) -> JournalState {
    let mut state = JournalState::default();
    for line in &journal.lines {
        match line {
            JournalLine::Marker(Marker::Journal { run_id, .. }) => {
                state.run_id = Some(run_id.clone());
            }
            JournalLine::Marker(Marker::Resumed { .. }) => {
                state.finished = None;
            }
            JournalLine::Marker(Marker::Notified { .. }) => {}
            JournalLine::Event(event) => apply(&mut state, event),
        }
    }
    state
}

fn entry<'a>(state: &'a mut JournalState, id: &str) -> &'a mut StepHistory {
    state
        .steps
        .entry(id.to_owned())
        .or_insert_with(|| StepHistory {
            settled: Settled::Unseen,
            max_attempt: 0,
            last_word: None,
        })
}

fn apply(state: &mut JournalState, event: &RunEvent) {
    match event {
        RunEvent::RunStarted { run_id, target, .. } => {
            state.run_id.get_or_insert_with(|| run_id.clone());
            state.target.get_or_insert_with(|| target.clone());
            state.sessions += 1;
            state.finished = None;
        }
        RunEvent::RunFinished { exit_code, .. } => state.finished = Some(*exit_code),
        RunEvent::StepStarted { step, .. } => {
            let history = entry(state, &step.id);
            history.settled = Settled::Started;
        }
        RunEvent::StepSubmitting {
            step,
            attempt,
            task_name,
        } => {
            let history = entry(state, &step.id);
            history.max_attempt = history.max_attempt.max(*attempt);
            history.settled = Settled::Submitting {
                attempt: *attempt,
                task_name: task_name.clone(),
            };
        }
        RunEvent::StepSubmitted {
            step,
            attempt,
            job_instance_id,
            ..
        } => {
            let history = entry(state, &step.id);
            history.max_attempt = history.max_attempt.max(*attempt);
            history.settled = Settled::InFlight {
                job: *job_instance_id,
                attempt: *attempt,
            };
        }
        RunEvent::StepRetrying { step, attempt, .. } => {
            // An in-place retry ("retry failed hosts") keeps the instance; a fresh
            // submission will show up as its own `step_submitting`.
            let history = entry(state, &step.id);
            history.max_attempt = history.max_attempt.max(*attempt);
            if let Settled::InFlight { job, .. } = history.settled {
                history.settled = Settled::InFlight {
                    job,
                    attempt: *attempt,
                };
            }
        }
        RunEvent::StepFinished { step, outcome, .. } => {
            let history = entry(state, &step.id);
            history.max_attempt = history.max_attempt.max(outcome.attempts);
            history.settled = match (outcome.status, outcome.job_instance_id) {
                // The instance is known and may be running (a retry of its failed
                // hosts went unanswered): wait for it, as for one in flight.
                (StepStatus::Unknown, Some(job)) => Settled::InFlight {
                    job,
                    attempt: outcome.attempts,
                },
                (StepStatus::Unknown, None) => match &history.settled {
                    Settled::Submitting { attempt, task_name } => Settled::InDoubt {
                        attempt: *attempt,
                        task_name: Some(task_name.clone()),
                    },
                    // Settled again in a later session, or never seen submitting.
                    Settled::InDoubt { attempt, task_name } => Settled::InDoubt {
                        attempt: *attempt,
                        task_name: task_name.clone(),
                    },
                    _ => Settled::InDoubt {
                        attempt: outcome.attempts,
                        task_name: None,
                    },
                },
                (StepStatus::Succeeded, _) => Settled::Succeeded(outcome.clone()),
                (StepStatus::Failed, _) => Settled::Failed,
                (StepStatus::NotRun, _) => Settled::NotRun,
                (StepStatus::Interrupted, job) => Settled::Interrupted { job },
            };
            history.last_word = Some(event.clone());
        }
        RunEvent::StepNotRun { step, reason } => {
            let history = entry(state, &step.id);
            history.settled = if reason.is_skip() {
                Settled::Skipped
            } else {
                Settled::NotRun
            };
            history.last_word = Some(event.clone());
        }
        RunEvent::StepProgress { .. }
        | RunEvent::StepWaitingUser { .. }
        | RunEvent::HandlerTriggered { .. }
        | RunEvent::GateWaiting { .. }
        | RunEvent::GateDecided { .. }
        | RunEvent::Warning { .. }
        | RunEvent::Interrupted { .. } => {}
    }
}

/// `--step ID [--downstream]`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The step to run again.
    pub step: Option<String>,
    /// Its dependents too.
    pub downstream: bool,
    /// `--force`: run selected steps even when an earlier submission of theirs is in
    /// flight or unanswered (the operator checked JOB).
    pub force: bool,
}

/// A step of the plan as it is now, for deciding.
#[derive(Debug, Clone)]
pub struct PlanStep {
    /// Its id.
    pub id: String,
    /// Indexes of the steps it needs.
    pub needs: Vec<usize>,
}

/// What the resumed session does with one step.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Succeeded before: not run, outputs restored.
    KeepSucceeded(Box<StepFinished>),
    /// Skipped before: not run.
    KeepSkipped,
    /// Failed before and not selected: not run (its dependents neither).
    KeepFailed,
    /// Did not run before and not selected: not run.
    KeepNotRun,
    /// Wait for this instance; never submit again.
    Attach {
        /// The instance.
        job: JobInstanceId,
        /// Its attempt.
        attempt: u32,
    },
    /// Look the task name up first: attach if JOB has it; run again only if JOB is
    /// known not to have it; otherwise report it unknown and do not send it.
    Reconcile {
        /// The task name of the unanswered submission, when known.
        task_name: Option<String>,
        /// Its attempt.
        attempt: u32,
    },
    /// Still in doubt after trying to settle it: not run, reported `unknown` with this
    /// reason, and its dependents do not run.
    KeepUnknown {
        /// Why, and what the operator does.
        reason: String,
        /// Its attempt.
        attempt: u32,
    },
    /// Interrupted earlier while waiting for `job`: attach if it still runs, else run.
    CheckInterrupted {
        /// The instance.
        job: JobInstanceId,
        /// Its attempt.
        attempt: u32,
    },
    /// Submit afresh, starting at this attempt number.
    Run {
        /// The first attempt number of this session.
        attempt: u32,
    },
}

impl Action {
    /// Whether the step is left as it was.
    pub fn is_kept(&self) -> bool {
        matches!(
            self,
            Action::KeepSucceeded(_)
                | Action::KeepSkipped
                | Action::KeepFailed
                | Action::KeepNotRun
        )
    }
}

/// Decides, per step of `plan` (in plan order), what the resumed session does.
pub fn decide(
    journal: &JournalState,
    plan: &[PlanStep],
    selection: &Selection,
) -> Result<Vec<Action>, StateError> {
    let selected: BTreeSet<usize> = match &selection.step {
        None => BTreeSet::new(),
        Some(id) => {
            let Some(index) = plan.iter().position(|s| &s.id == id) else {
                let known: Vec<&str> = plan.iter().map(|s| s.id.as_str()).collect();
                return Err(StateError::Resume(format!(
                    "--step {id}: the plan has no such step (steps: {})",
                    known.join(", ")
                )));
            };
            let mut set = BTreeSet::from([index]);
            if selection.downstream {
                set.extend(descendants(plan, index));
            }
            set
        }
    };
    let mut actions = Vec::with_capacity(plan.len());
    for (index, step) in plan.iter().enumerate() {
        let history = journal.steps.get(&step.id);
        let next = history.map_or(1, |h| h.max_attempt + 1);
        let settled = history.map_or(&Settled::Unseen, |h| &h.settled);
        let in_flight = match settled {
            Settled::InFlight { job, attempt } => Some(Action::Attach {
                job: *job,
                attempt: *attempt,
            }),
            Settled::Submitting { attempt, task_name } => Some(Action::Reconcile {
                task_name: Some(task_name.clone()),
                attempt: *attempt,
            }),
            Settled::InDoubt { attempt, task_name } => Some(Action::Reconcile {
                task_name: task_name.clone(),
                attempt: *attempt,
            }),
            _ => None,
        };
        let action = if selected.contains(&index) {
            if let Some(action) = in_flight.filter(|_| !selection.force) {
                // Running it again now would run it twice at once.
                let what = match &action {
                    Action::Attach { job, .. } => format!("job {job} is still in flight"),
                    _ => "the outcome of its last submission is unknown (JOB may be running it)"
                        .to_owned(),
                };
                return Err(StateError::Resume(format!(
                    "--step {}: {what}; resume without --step to wait for it first, or check JOB and add --force",
                    step.id
                )));
            }
            Action::Run { attempt: next }
        } else if let Some(action) = in_flight {
            action
        } else {
            match (settled, selection.step.is_some()) {
                (Settled::Succeeded(outcome), _) => Action::KeepSucceeded(outcome.clone()),
                (Settled::Skipped, _) => Action::KeepSkipped,
                (Settled::Interrupted { job: Some(job) }, false) => Action::CheckInterrupted {
                    job: *job,
                    attempt: history.map_or(1, |h| h.max_attempt.max(1)),
                },
                (Settled::Failed | Settled::Interrupted { .. }, true) => Action::KeepFailed,
                (Settled::NotRun | Settled::Started | Settled::Unseen, true) => Action::KeepNotRun,
                (_, _) => Action::Run { attempt: next },
            }
        };
        actions.push(action);
    }
    Ok(actions)
}

/// Every step that needs `of`, directly or not.
fn descendants(plan: &[PlanStep], of: usize) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut changed = true;
    while changed {
        changed = false;
        for (i, step) in plan.iter().enumerate() {
            if !out.contains(&i) && step.needs.iter().any(|&d| d == of || out.contains(&d)) {
                out.insert(i);
                changed = true;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::events::EventRecorder;
    use crate::executor::events::NotRunReason;
    use crate::executor::events::{StepRef, now};
    use crate::job_api::types::RunStatus;
    use crate::state::journal::{self, Journal};
    use std::time::Duration;

    fn step(index: usize, id: &str) -> StepRef {
        StepRef {
            index,
            id: id.into(),
        }
    }

    fn finished(index: usize, id: &str, status: StepStatus, job: Option<u64>) -> RunEvent {
        RunEvent::StepFinished {
            step: step(index, id),
            outcome: Box::new(StepFinished {
                status,
                job_status: Some(RunStatus::Success),
                job_instance_id: job.map(JobInstanceId),
                attempts: 1,
                hosts: Vec::new(),
                outputs: BTreeMap::from([("build".to_owned(), "42".to_owned())]),
                host_outputs: BTreeMap::new(),
                error: None,
                duration: Duration::from_millis(1500),
                observed: None,
                job_ms: None,
            }),
            at: now(),
        }
    }

    fn submitting(index: usize, id: &str, attempt: u32) -> RunEvent {
        RunEvent::StepSubmitting {
            step: step(index, id),
            attempt,
            task_name: format!("p [baton r {id}#{attempt}]"),
        }
    }

    fn submitted(index: usize, id: &str, attempt: u32, job: u64) -> RunEvent {
        RunEvent::StepSubmitted {
            step: step(index, id),
            attempt,
            job_instance_id: JobInstanceId(job),
            reconciled: false,
            handoff: None,
            at: now(),
        }
    }

    /// A journal written to disk and read back, so the events round-trip through JSON.
    fn journal_of(events: &[RunEvent]) -> JournalState {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let j = Journal::create(&path, "r").unwrap();
        for event in events {
            j.record(event).unwrap();
        }
        replay(&journal::read(&path).unwrap())
    }

    /// a → b → c, and d alone; e → f.
    fn plan() -> Vec<PlanStep> {
        let s = |id: &str, needs: Vec<usize>| PlanStep {
            id: id.into(),
            needs,
        };
        vec![
            s("a", vec![]),
            s("b", vec![0]),
            s("c", vec![1]),
            s("d", vec![]),
            s("e", vec![]),
            s("f", vec![4]),
        ]
    }

    fn crashed_run() -> JournalState {
        journal_of(&[
            submitting(0, "a", 1),
            submitted(0, "a", 1, 10),
            finished(0, "a", StepStatus::Succeeded, Some(10)),
            submitting(1, "b", 1),
            submitted(1, "b", 1, 11),
            submitting(3, "d", 1),
            submitting(4, "e", 1),
            submitted(4, "e", 1, 12),
            RunEvent::StepRetrying {
                step: step(4, "e"),
                attempt: 2,
                delay: Duration::ZERO,
                how: "fresh submission".into(),
            },
            finished(4, "e", StepStatus::Failed, Some(12)),
        ])
    }

    #[test]
    fn a_crashed_run_keeps_attaches_reconciles_and_reruns() {
        let state = crashed_run();
        let actions = decide(&state, &plan(), &Selection::default()).unwrap();
        assert!(
            matches!(&actions[0], Action::KeepSucceeded(o) if o.outputs["build"] == "42" && o.job_instance_id == Some(JobInstanceId(10)))
        );
        assert_eq!(
            actions[1],
            Action::Attach {
                job: JobInstanceId(11),
                attempt: 1
            }
        );
        assert_eq!(actions[2], Action::Run { attempt: 1 });
        assert_eq!(
            actions[3],
            Action::Reconcile {
                task_name: Some("p [baton r d#1]".into()),
                attempt: 1
            }
        );
        // e failed after two attempts: the rerun numbers its attempts after them.
        assert_eq!(actions[4], Action::Run { attempt: 3 });
        assert_eq!(actions[5], Action::Run { attempt: 1 });
    }

    /// The hole this closes: a step that ended "submission outcome unknown" used to be
    /// replayed as failed, and a plain resume sent it again.
    #[test]
    fn a_step_left_in_doubt_is_looked_up_never_rerun() {
        let in_doubt = finished(0, "a", StepStatus::Unknown, None);
        let state = journal_of(&[submitting(0, "a", 1), in_doubt.clone()]);
        assert_eq!(
            state.steps["a"].settled,
            Settled::InDoubt {
                attempt: 1,
                task_name: Some("p [baton r a#1]".into())
            }
        );
        let actions = decide(&state, &plan(), &Selection::default()).unwrap();
        assert_eq!(
            actions[0],
            Action::Reconcile {
                task_name: Some("p [baton r a#1]".into()),
                attempt: 1
            }
        );
        // Its dependents wait for it; they are not run.
        assert_eq!(actions[1], Action::Run { attempt: 1 });
        // A second session that could not settle it either keeps it in doubt, with
        // the task name of the original submission.
        let twice = journal_of(&[submitting(0, "a", 1), in_doubt.clone(), in_doubt]);
        assert!(matches!(
            &twice.steps["a"].settled,
            Settled::InDoubt { task_name: Some(name), .. } if name == "p [baton r a#1]"
        ));
        // `--step a` alone refuses; with --force it runs under a new attempt number.
        let only = |force| Selection {
            step: Some("a".into()),
            downstream: false,
            force,
        };
        let err = decide(&state, &plan(), &only(false)).unwrap_err();
        assert!(
            err.to_string()
                .contains("outcome of its last submission is unknown"),
            "{err}"
        );
        let forced = decide(&state, &plan(), &only(true)).unwrap();
        assert_eq!(forced[0], Action::Run { attempt: 2 });
    }

    #[test]
    fn step_selection_reruns_only_what_was_asked() {
        let state = crashed_run();
        let err = decide(
            &state,
            &plan(),
            &Selection {
                step: Some("b".into()),
                downstream: false,
                force: false,
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("b: job 11 is still in flight"),
            "{err}"
        );
        // Rerunning `a` leaves `b` in flight to be waited for.
        let actions = decide(
            &state,
            &plan(),
            &Selection {
                step: Some("a".into()),
                downstream: false,
                force: false,
            },
        )
        .unwrap();
        assert_eq!(actions[0], Action::Run { attempt: 2 });
        assert!(matches!(actions[1], Action::Attach { .. }));

        let finished_run = journal_of(&[
            finished(0, "a", StepStatus::Succeeded, Some(10)),
            finished(1, "b", StepStatus::Succeeded, Some(11)),
            finished(2, "c", StepStatus::Failed, Some(12)),
            finished(3, "d", StepStatus::Succeeded, Some(13)),
            finished(4, "e", StepStatus::Failed, Some(14)),
            RunEvent::StepNotRun {
                step: step(5, "f"),
                reason: NotRunReason::UpstreamFailed {
                    upstream: "e".into(),
                },
            },
        ]);
        let actions = decide(
            &finished_run,
            &plan(),
            &Selection {
                step: Some("b".into()),
                downstream: false,
                force: false,
            },
        )
        .unwrap();
        assert!(matches!(actions[0], Action::KeepSucceeded(_)));
        assert_eq!(actions[1], Action::Run { attempt: 2 });
        assert_eq!(actions[2], Action::KeepFailed);
        assert!(matches!(actions[3], Action::KeepSucceeded(_)));
        assert_eq!(actions[4], Action::KeepFailed);
        assert_eq!(actions[5], Action::KeepNotRun);

        let actions = decide(
            &finished_run,
            &plan(),
            &Selection {
                step: Some("b".into()),
                downstream: true,
                force: false,
            },
        )
        .unwrap();
        assert_eq!(actions[1], Action::Run { attempt: 2 });
        assert_eq!(actions[2], Action::Run { attempt: 2 });
        assert_eq!(actions[4], Action::KeepFailed);
    }

    #[test]
    fn force_reruns_a_selected_step_whose_submission_is_unsettled() {
        let actions = decide(
            &crashed_run(),
            &plan(),
            &Selection {
                step: Some("d".into()),
                downstream: false,
                force: true,
            },
        )
        .unwrap();
        assert_eq!(actions[3], Action::Run { attempt: 2 });
        // Unselected in-flight steps are still waited for, never dropped.
        assert!(matches!(actions[1], Action::Attach { .. }));
    }

    #[test]
    fn an_unknown_step_is_refused() {
        let err = decide(
            &crashed_run(),
            &plan(),
            &Selection {
                step: Some("zz".into()),
                downstream: false,
                force: false,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("no such step"));
    }

    #[test]
    fn interrupted_steps_are_checked_and_skips_kept() {
        let state = journal_of(&[
            finished(0, "a", StepStatus::Interrupted, Some(10)),
            RunEvent::StepNotRun {
                step: step(3, "d"),
                reason: NotRunReason::WhenFalse,
            },
            RunEvent::RunFinished {
                exit_code: 130,
                at: now(),
            },
        ]);
        assert_eq!(state.finished, Some(130));
        let actions = decide(&state, &plan(), &Selection::default()).unwrap();
        assert_eq!(
            actions[0],
            Action::CheckInterrupted {
                job: JobInstanceId(10),
                attempt: 1
            }
        );
        assert_eq!(actions[3], Action::KeepSkipped);
    }

    #[test]
    fn a_later_session_overrides_an_earlier_one() {
        let mut events = vec![finished(2, "c", StepStatus::Failed, Some(12))];
        events.push(RunEvent::StepStarted {
            step: step(2, "c"),
            at: now(),
        });
        events.push(submitting(2, "c", 2));
        events.push(submitted(2, "c", 2, 20));
        events.push(finished(2, "c", StepStatus::Succeeded, Some(20)));
        let state = journal_of(&events);
        assert!(matches!(
            &state.steps["c"].settled,
            Settled::Succeeded(o) if o.job_instance_id == Some(JobInstanceId(20))
        ));
        assert_eq!(state.steps["c"].max_attempt, 2);
    }
}
