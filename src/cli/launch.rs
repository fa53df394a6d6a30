//! What `baton run` and `baton resume` share around the engine: the run-state flags
//! ([`StateArgs`]), `--log-file`, and the start of a run's session, where the state's
//! record meets the engine's questions to JOB (replacing an older run, settling a
//! resume's submissions in doubt) and the session's decisions become the engine's
//! pre-set step states.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::compile::{self, CompiledPlan, PlanHashes};
use crate::error::Error;
use crate::executor::events::RunTarget;
use crate::executor::reconcile::{self, Answer, Doubt, Question, Settling};
use crate::executor::run::Resumed;
use crate::executor::scheduler::Initial;
use crate::executor::step::{ResumeFrom, StepOutput, StepRecord};
use crate::job_api::client::JobApi;
use crate::mask::Masker;
use crate::plan::load::LoadedPlan;
use crate::plan::model::Concurrency;
use crate::report::plain::PlainReporter;
use crate::report::watch::Watcher;
use crate::state::fingerprint::Fingerprint;
use crate::state::pending::{LockPolicy, Opened, Pending, PlanRecord, SessionOptions};
use crate::state::resume::{Action, PlanStep};
use crate::state::session::Session;

/// Run-state options of `baton run` (flattened into its arguments).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StateArgs {
    /// Folder for run records, journals and locks [default: $XDG_STATE_HOME/baton, else ~/.local/state/baton].
    #[arg(long, value_name = "DIR", env = "BATON_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// When another run of this plan holds its lock, wait up to this long (`90s`, `10m`) instead of exiting 75.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait_lock: Option<Duration>,
    /// Do nothing and exit 0 when this plan file, unchanged, already succeeded with the same inputs within this long (`24h`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub skip_if_successful_since: Option<Duration>,
    /// Also write progress lines and baton's log to this file (appended).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

impl StateArgs {
    /// The options the run session needs.
    pub fn session(&self) -> SessionOptions {
        SessionOptions {
            state_dir: self.state_dir.clone(),
            wait_lock: self.wait_lock,
            skip_if_successful_since: self.skip_if_successful_since,
        }
    }
}

/// Why a duration flag was refused.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a duration (e.g. 90s, 10m, 24h): {source}")]
pub struct DurationError {
    text: String,
    source: humantime::DurationError,
}

#[cfg(test)]
impl DurationError {
    /// Whether the message holds `text`, as the tests ask.
    fn contains(&self, text: &str) -> bool {
        self.to_string().contains(text)
    }
}

/// Parses `90s`, `10m`, `24h`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(text.trim()).map_err(|source| DurationError {
        text: text.to_owned(),
        source,
    })
}

/// The loaded plan's hashes, in the form the run record stores.
pub fn fingerprint(loaded: &LoadedPlan) -> Fingerprint {
    let PlanHashes {
        hash,
        steps,
        fields,
    } = compile::fingerprint(&loaded.source.text, &loaded.plan, &loaded.script_files);
    Fingerprint {
        hash,
        steps,
        fields,
    }
}

/// What the run session records of `validated`.
pub fn plan_record(validated: &CompiledPlan) -> PlanRecord {
    PlanRecord {
        name: validated.plan.name.clone(),
        path: PathBuf::from(&*validated.source.name),
        concurrency: match validated.plan.concurrency {
            Some(Concurrency::Allow) => LockPolicy::Allow,
            Some(Concurrency::Replace) => LockPolicy::Replace,
            Some(Concurrency::Forbid) | None => LockPolicy::Forbid,
        },
        inputs: validated.vars.masked_values(),
        secret_inputs: validated.vars.secret_names().iter().cloned().collect(),
        // A secret may sit in the plan itself (a default); the copy never holds it.
        masked_text: Masker::for_plan(validated).mask(&validated.source.text),
        steps: plan_steps(validated),
    }
}

fn plan_steps(validated: &CompiledPlan) -> Vec<PlanStep> {
    validated
        .plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| PlanStep {
            id: s.id.clone(),
            needs: validated.graph.dependencies(i),
        })
        .collect()
}

/// Once the JOB client exists: replaces an older run if the policy says so, creates
/// (or reopens) the run folder and journal, and for a resume settles every step's
/// pre-set state against JOB.
pub async fn start_session<A: JobApi>(
    mut pending: Pending,
    api: &A,
    target: &RunTarget,
    validated: &CompiledPlan,
) -> Result<Session, Error> {
    if let Some(in_flight) = pending.older_run(target) {
        reconcile::terminate_older(api, &in_flight).await;
        pending.take_over().await?;
    }
    let resuming = match pending.open(target, &plan_steps(validated))? {
        Opened::Ready(session) => return Ok(*session),
        Opened::Resuming(resuming) => resuming,
    };
    let unsettled = resuming.unsettled();
    let questions = unsettled
        .iter()
        .filter_map(|u| {
            let doubt = match &u.action {
                Action::Reconcile { task_name, attempt } => (
                    Doubt::Submission {
                        task_name: task_name.clone(),
                        job_plan: validated
                            .plan
                            .steps
                            .get(u.index)
                            .and_then(|s| s.job.as_ref())
                            .map(|job| job.plan_id.to_string()),
                    },
                    *attempt,
                ),
                Action::CheckInterrupted { job, attempt } => {
                    (Doubt::Interrupted { job: *job }, *attempt)
                }
                _ => return None,
            };
            Some(Question {
                index: u.index,
                step_id: u.step_id.clone(),
                attempt: doubt.1,
                doubt: doubt.0,
            })
        })
        .collect();
    let settling = Settling {
        run_id: resuming.run_id().to_owned(),
        since_ms: resuming.since_ms(),
        last_written: resuming.last_written(),
        settle_after: resuming.settle_after(),
    };
    let settled = reconcile::reconcile(api, &settling, questions)
        .await
        .into_iter()
        .map(|s| {
            let action = match s.answer {
                Answer::Attach { job, attempt } => Action::Attach { job, attempt },
                Answer::Rerun => Action::Run {
                    attempt: resuming.next_attempt(s.index),
                },
                Answer::Unknown { reason, attempt } => Action::KeepUnknown { reason, attempt },
            };
            (s.index, action, s.note)
        })
        .collect();
    Ok(resuming.settle(settled)?)
}

/// Where the engine picks up after what the session decided (empty for a fresh run).
pub fn resumed(session: &Session) -> Resumed {
    let actions = session.actions();
    let initial = actions
        .iter()
        .enumerate()
        .map(|(index, action)| match action {
            Action::KeepSucceeded(outcome) => {
                // Exported job variables were recorded beside the outputs as `vars.<name>`.
                let (vars, outputs): (BTreeMap<_, _>, BTreeMap<_, _>) = outcome
                    .outputs
                    .clone()
                    .into_iter()
                    .partition(|(k, _)| k.starts_with("vars."));
                Initial::Succeeded(StepOutput {
                    id: session.step_id(index),
                    job_instance_id: outcome.job_instance_id,
                    status: "success".into(),
                    outputs,
                    vars: vars
                        .into_iter()
                        .map(|(k, v)| (k["vars.".len()..].to_owned(), v))
                        .collect(),
                })
            }
            Action::KeepSkipped => Initial::Skipped,
            Action::KeepFailed | Action::KeepUnknown { .. } => Initial::Failed,
            Action::KeepNotRun => Initial::NotRun,
            Action::Attach { .. }
            | Action::Reconcile { .. }
            | Action::CheckInterrupted { .. }
            | Action::Run { .. } => Initial::Pending,
        })
        .collect();
    let from: BTreeMap<usize, ResumeFrom> = actions
        .iter()
        .enumerate()
        .filter_map(|(index, action)| {
            let from = match action {
                Action::Attach { job, attempt } => ResumeFrom {
                    attach: Some(*job),
                    attempt: *attempt,
                },
                Action::Run { attempt } => ResumeFrom {
                    attach: None,
                    attempt: *attempt,
                },
                _ => return None,
            };
            Some((index, from))
        })
        .collect();
    let restored = session.restored();
    // How kept steps ended, hosts included, so conditions and drawn targets of the
    // steps that run now read what the earlier session saw.
    let records = restored
        .iter()
        .filter_map(|event| match event {
            crate::executor::events::RunEvent::StepFinished { step, outcome, .. } => Some((
                step.index,
                StepRecord::of(
                    outcome.status,
                    &outcome.hosts,
                    &outcome.outputs,
                    outcome.job_instance_id.map(|j| j.0),
                ),
            )),
            _ => None,
        })
        .collect();
    Resumed {
        initial,
        from,
        restored,
        records,
        in_doubt: session.has_steps_in_doubt(),
    }
}
/// `--log-file`: baton's log (tracing, debug level; trace with `-vv`) goes to the file.
/// Call before any other tracing setup.
pub fn init_log_file(args: &StateArgs, verbose: u8, masker: &Masker) -> Result<(), Error> {
    let Some(path) = &args.log_file else {
        return Ok(());
    };
    let file = open_log(path)?;
    let filter = if verbose >= 2 {
        "baton=trace,info"
    } else {
        "baton=debug,info"
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(masker.make_writer(std::sync::Mutex::new(file)))
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .try_init();
    Ok(())
}

/// `--log-file`: the plain progress lines, also written to the file.
pub fn log_watchers(args: &StateArgs) -> Result<Vec<Box<dyn Watcher>>, Error> {
    let Some(path) = &args.log_file else {
        return Ok(Vec::new());
    };
    // Line-buffered, so each line is one append and never interleaves with the log.
    let out = std::io::LineWriter::new(open_log(path)?);
    Ok(vec![Box::new(PlainReporter::new(out))])
}

fn open_log(path: &Path) -> Result<std::fs::File, Error> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| Error::Io {
            context: format!("cannot open the log file {}", path.display()),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
