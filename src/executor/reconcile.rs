//! Settling what an earlier session left in doubt, by asking JOB: a submission that
//! went unanswered is looked up by its unique task name ([`reconcile`] attaches to it if
//! JOB has it, submits again only once JOB is known not to have it, and otherwise keeps
//! it in doubt), an instance left when the runner was interrupted is read again, and
//! `concurrency: replace` terminates the older run's instances ([`terminate_older`]).
//! Each [`Question`] gets a [`Settled`] answer with the note the run shows for it.

use std::time::{Duration, SystemTime};

use crate::job_api::client::{self, ClientError, JobApi};
use crate::job_api::types::{JobInstanceId, JobOperation, RunStatus};

/// What is in doubt about one step.
#[derive(Debug, Clone)]
pub enum Doubt {
    /// Its submission went unanswered.
    Submission {
        /// The task name it was sent with, when the journal has it.
        task_name: Option<String>,
        /// The job plan it executes, if it is a job plan step (those carry no task
        /// name to look up).
        job_plan: Option<String>,
    },
    /// The runner was interrupted while waiting for this instance.
    Interrupted {
        /// The instance.
        job: JobInstanceId,
    },
}

/// One step to settle.
#[derive(Debug, Clone)]
pub struct Question {
    /// The step's index in the plan.
    pub index: usize,
    /// The step's id.
    pub step_id: String,
    /// The attempt in doubt.
    pub attempt: u32,
    /// What is in doubt.
    pub doubt: Doubt,
}

/// What settling decided for a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Wait for this instance; never submit again.
    Attach {
        /// The instance.
        job: JobInstanceId,
        /// Its attempt.
        attempt: u32,
    },
    /// JOB never got it, or it ended unsuccessfully: submit afresh.
    Rerun,
    /// Still in doubt: not run, reported `unknown` with this reason.
    Unknown {
        /// Why, and what the operator does.
        reason: String,
        /// Its attempt.
        attempt: u32,
    },
}

/// A question's answer, and the note shown for it.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The step's index in the plan.
    pub index: usize,
    /// What to do.
    pub answer: Answer,
    /// What the run says about it, if anything.
    pub note: Option<String>,
}

/// When the earlier session could still have sent something, and where to look.
#[derive(Debug, Clone)]
pub struct Settling {
    /// The run id, for the operator's `baton resume` command.
    pub run_id: String,
    /// Instance lists are searched from this moment (ms since the epoch).
    pub since_ms: i64,
    /// The last moment the earlier session may have sent something.
    pub last_written: SystemTime,
    /// How long after that a request may still reach JOB.
    pub settle_after: Duration,
}

/// Why a submission in doubt could not be settled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unsettled {
    /// Job plan executions carry no task name.
    #[error("a job plan execution carries no task name to look it up by")]
    JobPlan,
    /// The journal did not record the task name.
    #[error("the journal has no task name for it")]
    NoTaskName,
    /// JOB cannot list instances.
    #[error("JOB offers no instance list to look it up in")]
    NoInstanceList,
    /// JOB's instance list could not be read.
    #[error("JOB's instance list could not be read ({0})")]
    Unreadable(ClientError),
}

/// Settles each question against JOB, in order.
pub async fn reconcile<A: JobApi>(
    api: &A,
    settling: &Settling,
    questions: Vec<Question>,
) -> Vec<Settled> {
    let mut settled = Vec::with_capacity(questions.len());
    for question in questions {
        settled.push(settle_one(api, settling, question).await);
    }
    settled
}

async fn settle_one<A: JobApi>(api: &A, settling: &Settling, question: Question) -> Settled {
    let Question {
        index,
        step_id: id,
        attempt,
        doubt,
    } = question;
    let run_id = &settling.run_id;
    let (answer, note) = match doubt {
        Doubt::Submission {
            task_name,
            job_plan,
        } => {
            let what = match (&job_plan, &task_name) {
                (Some(plan), _) => format!(" of job plan {plan}"),
                (None, Some(name)) => format!(" for task `{}`", client::task_marker(name)),
                (None, None) => String::new(),
            };
            let lookup = match (task_name, job_plan.is_some()) {
                (_, true) => Err(Unsettled::JobPlan),
                (None, false) => Err(Unsettled::NoTaskName),
                (Some(name), false) => Ok(name),
            };
            let found = match lookup {
                Ok(name) => settle(
                    api,
                    &name,
                    settling.since_ms,
                    settling.last_written,
                    settling.settle_after,
                )
                .await
                .map(|found| (name, found)),
                Err(why) => Err(why),
            };
            match found {
                Ok((_, Some(job))) => (
                    Answer::Attach { job, attempt },
                    Some(format!(
                        "its unanswered submission was found in JOB as job {job}; waiting for it"
                    )),
                ),
                Ok((name, None)) => (
                    Answer::Rerun,
                    Some(format!(
                        "JOB has no instance of task `{}`: the submission never arrived; submitting again",
                        client::task_marker(&name)
                    )),
                ),
                Err(why) => (
                    Answer::Unknown {
                        reason: format!(
                            "submission outcome unknown{what}: {why}. It is NOT sent again: check JOB for it, then `baton resume {run_id} --step {id} --force` runs it"
                        ),
                        attempt,
                    },
                    None,
                ),
            }
        }
        Doubt::Interrupted { job } => match api.status(job).await {
            Ok(status) if !status.status.is_finished() => (
                Answer::Attach { job, attempt },
                Some(format!("job {job} is still running; waiting for it")),
            ),
            // Left running (`--detach`) and done since: its work is done, and running
            // it again would do it twice.
            Ok(status) if status.status == RunStatus::Success => (
                Answer::Attach { job, attempt },
                Some(format!(
                    "job {job} finished successfully after the interrupt; keeping its result"
                )),
            ),
            Ok(_) => (Answer::Rerun, None),
            Err(e) => (
                Answer::Unknown {
                    reason: format!(
                        "cannot read job {job} ({e}); it is NOT submitted again while it may run: check JOB, then `baton resume {run_id} --step {id} --force` runs it"
                    ),
                    attempt,
                },
                None,
            ),
        },
    };
    Settled {
        index,
        answer,
        note,
    }
}

/// Looks a submission in doubt up in JOB by its task name: `Ok(Some)` found, `Ok(None)`
/// proven never to have arrived, `Err` with why it cannot be told. Absence proves
/// something only once `settle_after` has passed since the earlier session last wrote:
/// until then its request may still be on its way to JOB.
async fn settle<A: JobApi>(
    api: &A,
    task_name: &str,
    since_ms: i64,
    last_written: SystemTime,
    settle_after: Duration,
) -> Result<Option<JobInstanceId>, Unsettled> {
    loop {
        match api.find_by_task_name(task_name, since_ms).await {
            Ok(Some(job)) => return Ok(Some(job)),
            Ok(None) => {
                let quiet_for = last_written.elapsed().unwrap_or_default();
                let Some(rest) = settle_after.checked_sub(quiet_for).filter(|d| !d.is_zero())
                else {
                    return Ok(None);
                };
                eprintln!(
                    "baton: JOB has no instance of task `{}` yet, but a request sent just before the runner stopped may still be on its way; asking again in {}s",
                    client::task_marker(task_name),
                    rest.as_secs().max(1)
                );
                tokio::time::sleep(rest).await;
            }
            Err(ClientError::Unsupported(_)) => return Err(Unsettled::NoInstanceList),
            Err(e) => return Err(Unsettled::Unreadable(e)),
        }
    }
}

/// `concurrency: replace`: terminates the older run's in-flight instances, each named
/// with its step.
pub async fn terminate_older<A: JobApi>(api: &A, in_flight: &[(String, JobInstanceId)]) {
    for (id, job) in in_flight {
        match api.operate_job(*job, JobOperation::Terminate).await {
            Ok(()) => eprintln!("baton: terminated job {job} (step {id} of the older run)"),
            Err(e) => {
                eprintln!("baton: could not terminate job {job} (step {id} of the older run): {e}")
            }
        }
    }
}
