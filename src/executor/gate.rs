//! Approval gates: a step that waits for a person instead of sending anything to JOB.
//!
//! A gate is passed by `--approve GATE` (named on the command line, for unattended
//! runs), by an approval record that `baton approve RUN GATE` writes into the run's
//! folder (`approvals/<gate>.json`, written whole and renamed into place; the waiting
//! run reads it every [`GatePolicy::poll`]), or by a yes on the terminal. `--yes` does
//! not pass a gate: it answers JOB's own confirmations, and a gate is written to stop a
//! release until a person looks. Without an answer, the gate ends `timed_out` after its
//! timeout; a later `baton resume` finds the record and goes on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::events::{self, EventSink, GateDecision, RunEvent, StepRef};
use super::prompt::Prompter;
use super::scheduler::RunControl;

/// The folder of a run that holds approval records.
pub const APPROVALS_DIR: &str = "approvals";

/// A person's answer, as `baton approve` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// `approved` or `rejected`.
    pub decision: GateDecision,
    /// Who answered.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Where gate `step` of the run in `run_dir` finds its approval record.
pub fn approval_path(run_dir: &Path, step: &str) -> PathBuf {
    run_dir.join(APPROVALS_DIR).join(format!("{step}.json"))
}

/// The approval record of gate `step`, if one was written and reads.
pub fn read_approval(run_dir: &Path, step: &str) -> Option<Approval> {
    let text = std::fs::read_to_string(approval_path(run_dir, step)).ok()?;
    serde_json::from_str(&text).ok()
}

/// How a run answers its gates.
#[derive(Clone)]
pub struct GatePolicy {
    /// The run's folder (approval records); absent when the run keeps no records.
    pub run_dir: Option<PathBuf>,
    /// Gates passed by `--approve`.
    pub pre_approved: BTreeSet<String>,
    /// Who runs baton, for `--approve` and terminal answers.
    pub user: String,
    /// Asks on the terminal, when there is one.
    pub prompter: Option<Arc<dyn Prompter>>,
    /// How often the approval record is looked for.
    pub poll: Duration,
}

impl Default for GatePolicy {
    fn default() -> Self {
        GatePolicy {
            run_dir: None,
            pre_approved: BTreeSet::new(),
            user: current_user(),
            prompter: None,
            poll: Duration::from_millis(200),
        }
    }
}

impl std::fmt::Debug for GatePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatePolicy")
            .field("run_dir", &self.run_dir)
            .field("pre_approved", &self.pre_approved)
            .field("prompter", &self.prompter.is_some())
            .finish_non_exhaustive()
    }
}

/// The login name of whoever runs baton (`$USER`, else `$LOGNAME`, else `unknown`).
pub fn current_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// How a gate ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateEnd {
    /// Answered (or timed out).
    Decided(GateDecision, Option<String>),
    /// The run was interrupted while the gate waited.
    Interrupted,
}

/// Waits at gate `step` until it is answered, times out or the run is interrupted;
/// journals the wait and the answer.
pub async fn wait(
    policy: &GatePolicy,
    events: &EventSink,
    run_id: &str,
    step: &StepRef,
    message: &str,
    timeout: Duration,
    control: &RunControl,
) -> GateEnd {
    let decided = |decision: GateDecision, by: Option<String>, via: &str| {
        events.emit(RunEvent::GateDecided {
            step: step.clone(),
            decision,
            by: by.clone(),
            via: via.to_owned(),
            at: events::now(),
        });
        GateEnd::Decided(decision, by)
    };
    events.emit(RunEvent::GateWaiting {
        step: step.clone(),
        message: message.to_owned(),
        timeout_secs: timeout.as_secs(),
        command: format!("baton approve {run_id} {}", step.id),
        at: events::now(),
    });
    if policy.pre_approved.contains(&step.id) {
        return decided(
            GateDecision::Approved,
            Some(policy.user.clone()),
            "--approve",
        );
    }
    let recorded = || {
        policy
            .run_dir
            .as_deref()
            .and_then(|dir| read_approval(dir, &step.id))
    };
    // A plain thread, not the runtime's blocking pool: when the gate is answered
    // elsewhere, the question stays open on stdin, and the runtime would wait for it
    // at exit.
    let mut asked = policy.prompter.clone().map(|prompter| {
        let question = format!("baton: gate {}: {message}\nApprove? [y/N] ", step.id);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = tx.send(prompter.confirm(&question));
        });
        rx
    });
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(approval) = recorded() {
            return decided(approval.decision, Some(approval.by), "baton approve");
        }
        let tick = tokio::time::sleep(policy.poll);
        tokio::select! {
            _ = control.abort.cancelled() => return GateEnd::Interrupted,
            _ = tokio::time::sleep_until(deadline) => {
                // An answer that arrived with the deadline still counts.
                if let Some(approval) = recorded() {
                    return decided(approval.decision, Some(approval.by), "baton approve");
                }
                return decided(GateDecision::TimedOut, None, "timeout");
            }
            answer = async {
                match asked.as_mut() {
                    Some(rx) => rx.await,
                    None => std::future::pending().await,
                }
            }, if asked.is_some() => {
                asked = None;
                match answer {
                    Ok(true) => return decided(GateDecision::Approved, Some(policy.user.clone()), "terminal"),
                    Ok(false) => return decided(GateDecision::Rejected, Some(policy.user.clone()), "terminal"),
                    // The terminal went away: keep waiting for a record or the deadline.
                    Err(_) => {}
                }
            }
            _ = tick => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    fn control() -> RunControl {
        let token = CancellationToken::new();
        RunControl {
            abort: token.child_token(),
            interrupt: token,
            detach: false,
        }
    }

    fn gate() -> StepRef {
        StepRef {
            index: 0,
            id: "go".into(),
        }
    }

    #[tokio::test]
    async fn a_record_written_while_waiting_passes_the_gate() {
        let dir = tempfile::tempdir().unwrap();
        let policy = GatePolicy {
            run_dir: Some(dir.path().to_owned()),
            poll: Duration::from_millis(5),
            ..GatePolicy::default()
        };
        let (sink, mut rx) = EventSink::channel();
        let path = approval_path(dir.path(), "go");
        let waiter = {
            let sink = sink.clone();
            tokio::spawn(async move {
                wait(
                    &policy,
                    &sink,
                    "r1",
                    &gate(),
                    "ship?",
                    Duration::from_secs(60),
                    &control(),
                )
                .await
            })
        };
        // Written once the gate says it waits, as a person would.
        match rx.recv().await {
            Some(RunEvent::GateWaiting { command, .. }) => {
                assert_eq!(command, "baton approve r1 go")
            }
            other => panic!("{other:?}"),
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let approval = Approval {
            decision: GateDecision::Rejected,
            by: "ana".into(),
            at: "2026-12-01T10:00:00Z".into(),
        };
        std::fs::write(&path, serde_json::to_string(&approval).unwrap()).unwrap();
        assert_eq!(
            waiter.await.unwrap(),
            GateEnd::Decided(GateDecision::Rejected, Some("ana".into()))
        );
    }

    #[tokio::test]
    async fn pre_approval_passes_and_silence_times_out() {
        let (sink, _rx) = EventSink::channel();
        let policy = GatePolicy {
            pre_approved: BTreeSet::from(["go".to_owned()]),
            user: "cron".into(),
            ..GatePolicy::default()
        };
        let end = wait(
            &policy,
            &sink,
            "r",
            &gate(),
            "m",
            Duration::from_secs(60),
            &control(),
        )
        .await;
        assert_eq!(
            end,
            GateEnd::Decided(GateDecision::Approved, Some("cron".into()))
        );
        let end = wait(
            &GatePolicy::default(),
            &sink,
            "r",
            &gate(),
            "m",
            Duration::ZERO,
            &control(),
        )
        .await;
        assert_eq!(end, GateEnd::Decided(GateDecision::TimedOut, None));
    }
}
