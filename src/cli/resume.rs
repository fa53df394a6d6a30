//! `baton resume`, and the run-state side of `baton run`: the plan lock and the
//! `concurrency` policy, `--skip-if-successful-since`, the run folder and its journal,
//! `--log-file`, and, for a resume, the plan-change check and the replay of the journal
//! into pre-set step states.
//!
//! `baton run` calls in at three points: [`prepare`] before anything is sent (lock,
//! skip, plan check), [`Pending::start`] once the JOB client exists (replacing an older
//! run, reconciling in-flight submissions, opening the journal), and [`Session::finish`]
//! with the exit code. A resumed run keeps its run id and appends to the same journal
//! after a `resumed` marker, so `baton runs show` tells the whole story.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgMatches, Args, FromArgMatches};

use super::run::RunArgs;
use crate::compile::CompiledPlan;
use crate::error::Error;
use crate::executor::events::{
    self, EventRecorder, EventSink, RunEvent, RunTarget, StepFinished, StepRef,
};
use crate::executor::scheduler::Initial;
use crate::executor::step::{ResumeFrom, StepOutput};
use crate::job_api::client::{self, ClientError, JobApi};
use crate::job_api::types::{JobInstanceId, JobOperation};
use crate::mask::Masker;
use crate::plan::model::Concurrency;
use crate::report::plain::PlainReporter;
use crate::report::watch::Watcher;
use crate::state::StateError;
use crate::state::fingerprint::{self, Fingerprint};
use crate::state::journal::{self, Journal, JournalLine, Marker};
use crate::state::lock::{self, Attempt, Held, Holder, PlanLock, RunLock};
use crate::state::resume::{self, Action, PlanStep, Selection};
use crate::state::runs::{self, RunDir, RunMeta, StateDir};

/// How long `concurrency: replace` waits for the older run to let go, unless
/// `--wait-lock` says otherwise.
const REPLACE_WAIT: Duration = Duration::from_secs(60);

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

/// Parses `90s`, `10m`, `24h`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration (e.g. 90s, 10m, 24h): {e}"))
}

/// `baton resume`: every `baton run` option, with the run (id, unique prefix or
/// `last`) where `run` takes the plan file.
#[derive(Debug)]
pub struct ResumeArgs {
    /// The run options; `input.plan` holds the run id as typed.
    pub run: RunArgs,
    /// `--step ID`.
    pub step: Option<String>,
    /// `--downstream`.
    pub downstream: bool,
    /// `--force`.
    pub force: bool,
    /// `--settle-after`.
    pub settle_after: Duration,
}

/// How long after its last record a submission may still reach JOB (the submit timeout,
/// plus a gateway's own queueing): before that, "JOB has no such instance" proves
/// nothing.
const SETTLE_AFTER: Duration = Duration::from_secs(60);

// Hand-written so that `resume` accepts every `baton run` option, now and later,
// without repeating them: it is `run`'s argument set with the positional re-labelled.
impl Args for ResumeArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        RunArgs::augment_args(cmd)
            .mut_arg("plan", |arg| {
                arg.value_name("RUN")
                    .help("The run to resume: its id, a unique prefix of it, or `last`")
            })
            .mut_arg("skip_if_successful_since", |arg| arg.hide(true))
            .arg(
                clap::Arg::new("step")
                    .long("step")
                    .value_name("ID")
                    .help("Run this step again (even if it succeeded); other steps stay as they were"),
            )
            .arg(
                clap::Arg::new("downstream")
                    .long("downstream")
                    .action(clap::ArgAction::SetTrue)
                    .requires("step")
                    .help("With --step: run every step after it again too"),
            )
            .arg(
                clap::Arg::new("force")
                    .long("force")
                    .action(clap::ArgAction::SetTrue)
                    .help("Resume even though the plan file or the inputs changed; with --step, run that step even though its last submission is in doubt (check JOB first)"),
            )
            .arg(
                clap::Arg::new("settle_after")
                    .long("settle-after")
                    .value_name("DURATION")
                    .default_value("60s")
                    .value_parser(parse_duration)
                    .help("A submission in doubt is taken as never arrived only if JOB has no such instance this long after the run last wrote its journal (a request may still be on its way until then)"),
            )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ResumeArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(ResumeArgs {
            run: RunArgs::from_arg_matches(matches)?,
            step: matches.get_one::<String>("step").cloned(),
            downstream: matches.get_flag("downstream"),
            force: matches.get_flag("force"),
            settle_after: matches
                .get_one::<Duration>("settle_after")
                .copied()
                .unwrap_or(SETTLE_AFTER),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// What `baton run` needs to continue a recorded run.
#[derive(Debug)]
pub struct ResumeRequest {
    dir: RunDir,
    meta: RunMeta,
    selection: Selection,
    run_lock: RunLock,
    settle_after: Duration,
}

/// Runs `baton resume`.
pub fn resume(args: ResumeArgs) -> Result<ExitCode, Error> {
    let ResumeArgs {
        mut run,
        step,
        downstream,
        force,
        settle_after,
    } = args;
    super::outputs::check(&run)?;
    let state = StateDir::resolve(run.state.state_dir.clone())?;
    let which = run.input.plan.display().to_string();
    let dir = runs::find(&state, &which)?;
    let meta = dir.read_meta()?;
    let Some(run_lock) = lock::lock_run(dir.path())? else {
        return Err(StateError::Locked(format!(
            "run {} is still running (pid {}); it cannot be resumed while it lives",
            meta.run_id, meta.pid
        ))
        .into());
    };
    let journal_state = resume::replay(&journal::read(&dir.journal_path())?);
    if step.is_none() && journal_state.finished == Some(crate::error::exit::SUCCESS) {
        println!(
            "baton: run {} of {} already succeeded; nothing to resume (use --step ID to run a step again)",
            meta.run_id, meta.plan
        );
        return Ok(ExitCode::SUCCESS);
    }
    // The same plan file, and the same non-secret inputs ahead of anything given now;
    // secret inputs were never stored and must be supplied again.
    run.input.plan = PathBuf::from(&meta.plan_path);
    let declared = crate::plan::load(&run.input.plan)
        .map(|loaded| loaded.plan.vars.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let mut vars: Vec<String> = meta
        .inputs
        .iter()
        .filter(|(name, _)| !meta.secret_inputs.contains(name) && declared.contains(name))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    vars.append(&mut run.input.vars);
    run.input.vars = vars;
    if run.endpoint.is_none()
        && std::env::var_os("BATON_ENDPOINT").is_none()
        && let Some(RunTarget::Remote { endpoint }) = &journal_state.target
    {
        run.endpoint = Some(endpoint.clone());
    }
    // A rehearsal resumes in the same host sandboxes, where the kept steps left their
    // files.
    if run.endpoint.is_none()
        && run.sandbox.is_none()
        && run.profile.is_none()
        && run.profile_file.is_none()
        && std::env::var_os("BATON_ENDPOINT").is_none()
        && let Some(RunTarget::Emulator { sandbox, .. }) = &journal_state.target
    {
        run.sandbox = Some(PathBuf::from(sandbox));
    }
    run.state.skip_if_successful_since = None;
    let request = ResumeRequest {
        dir,
        meta,
        selection: Selection {
            step,
            downstream,
            force,
        },
        run_lock,
        settle_after,
    };
    super::run::run_resumed(run, request)
}

/// The outcome of [`prepare`].
#[derive(Debug)]
pub enum Prepared {
    /// `--skip-if-successful-since` found a recent success: print this and exit 0.
    Skip(String),
    /// Go on.
    Go(Box<Pending>),
}

/// A run that may start: its lock is held (or will be, after replacing the holder).
#[derive(Debug)]
pub struct Pending {
    state: StateDir,
    run_id: String,
    me: Holder,
    plan_lock: Option<PlanLock>,
    replace: Option<(PathBuf, Holder, Duration)>,
    fresh: Option<RunMeta>,
    plan_text: String,
    resume: Option<ResumeRequest>,
    force: bool,
}

/// Before anything is sent: resolves the state folder, checks a resumed plan for
/// changes, takes the plan lock according to `concurrency`, and applies
/// `--skip-if-successful-since`.
pub fn prepare(
    args: &StateArgs,
    fingerprint: Fingerprint,
    validated: &CompiledPlan,
    resume: Option<ResumeRequest>,
) -> Result<Prepared, Error> {
    let state = StateDir::resolve(args.state_dir.clone())?;
    let plan_path = Path::new(&*validated.source.name);
    let canonical = plan_path
        .canonicalize()
        .unwrap_or_else(|_| plan_path.to_path_buf());
    let inputs = validated.vars.masked_values();
    let secret_inputs: Vec<String> = validated.vars.secret_names().iter().cloned().collect();
    let force = resume.as_ref().is_some_and(|r| r.selection.force);

    if let Some(request) = &resume {
        check_unchanged(&request.meta, &fingerprint, &inputs, force)?;
    }

    let run_id = match &resume {
        Some(request) => request.meta.run_id.clone(),
        None => runs::new_run_id(),
    };
    let me = Holder {
        run_id: run_id.clone(),
        pid: std::process::id(),
        started_at: journal::now_text(),
        plan_path: canonical.display().to_string(),
    };
    let policy = validated.plan.concurrency.unwrap_or(Concurrency::Forbid);
    let lock_path = state.plan_lock_path(&validated.plan.name, &canonical);
    let mut plan_lock = None;
    let mut replace = None;
    match policy {
        Concurrency::Allow => {}
        // A resume never replaces: it must not kill a newer run of the plan.
        Concurrency::Replace if resume.is_none() => match lock::try_acquire(&lock_path, &me)? {
            Attempt::Acquired(lock) => plan_lock = Some(lock),
            Attempt::Held(Held::Known(holder)) => {
                let wait = args.wait_lock.unwrap_or(REPLACE_WAIT);
                replace = Some((lock_path, holder, wait));
            }
            Attempt::Held(_) => {
                // A holder that cannot be named is not signalled: wait for it.
                plan_lock = Some(wait_for_lock(
                    &lock_path,
                    &me,
                    &validated.plan.name,
                    Some(args.wait_lock.unwrap_or(REPLACE_WAIT)),
                )?);
            }
        },
        Concurrency::Forbid | Concurrency::Replace => {
            plan_lock = Some(wait_for_lock(
                &lock_path,
                &me,
                &validated.plan.name,
                args.wait_lock,
            )?);
        }
    }

    if let (Some(since), None) = (args.skip_if_successful_since, &resume) {
        let after =
            chrono::Utc::now() - chrono::Duration::from_std(since).unwrap_or(chrono::Duration::MAX);
        if let Some(done) = runs::last_success(
            &state,
            &canonical.display().to_string(),
            &fingerprint.hash,
            &inputs,
            after,
        ) {
            return Ok(Prepared::Skip(format!(
                "baton: skipped: {} already succeeded in run {} (finished {}) with the same plan and inputs, within {}",
                validated.plan.name,
                done.run_id,
                done.finished_at.unwrap_or_default(),
                humantime::format_duration(since)
            )));
        }
    }

    let fresh = resume.is_none().then(|| {
        RunMeta::new(
            &run_id,
            &validated.plan.name,
            &canonical,
            fingerprint,
            inputs,
            secret_inputs,
        )
    });
    Ok(Prepared::Go(Box::new(Pending {
        state,
        run_id,
        me,
        plan_lock,
        replace,
        fresh,
        // A secret may sit in the plan itself (a default); the copy never holds it.
        plan_text: Masker::for_plan(validated).mask(&validated.source.text),
        resume,
        force,
    })))
}

/// Takes the plan lock, waiting up to `wait` if given; exit 75 when it stays held.
fn wait_for_lock(
    path: &Path,
    me: &Holder,
    plan: &str,
    wait: Option<Duration>,
) -> Result<PlanLock, Error> {
    let attempt = match wait {
        None => lock::try_acquire(path, me)?,
        Some(wait) => lock::acquire_within(path, me, wait, |holder| {
            eprintln!(
                "baton: plan {plan} is being run by {}; waiting up to {}",
                holder.describe(),
                humantime::format_duration(wait)
            );
        })?,
    };
    match attempt {
        Attempt::Acquired(lock) => Ok(lock),
        Attempt::Held(holder) => Err(locked(plan, &holder, wait.is_some()).into()),
    }
}

fn locked(plan: &str, holder: &Held, waited: bool) -> StateError {
    let hint = if waited {
        "it did not finish in time"
    } else {
        "try later, or pass --wait-lock DURATION"
    };
    StateError::Locked(format!(
        "plan {plan} is already being run by {}; {hint}",
        holder.describe()
    ))
}

/// Refuses a resume when the plan or the inputs changed, unless forced.
fn check_unchanged(
    meta: &RunMeta,
    now: &Fingerprint,
    inputs: &BTreeMap<String, String>,
    force: bool,
) -> Result<(), Error> {
    let mut problems = Vec::new();
    if meta.fingerprint.hash != now.hash {
        let changes = fingerprint::compare(&meta.fingerprint, now);
        if changes.is_empty() {
            eprintln!(
                "baton: {} changed since run {} only in comments or layout; resuming",
                meta.plan_path, meta.run_id
            );
        } else {
            problems.extend(changes.describe());
        }
    }
    let changed_inputs: Vec<&String> = meta
        .inputs
        .keys()
        .chain(inputs.keys())
        .filter(|name| meta.inputs.get(*name) != inputs.get(*name))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !changed_inputs.is_empty() {
        problems.push(format!(
            "changed inputs: {}",
            changed_inputs
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    if force {
        eprintln!(
            "baton: resuming run {} despite changes (--force): {}",
            meta.run_id,
            problems.join("; ")
        );
        return Ok(());
    }
    Err(StateError::PlanChanged(format!(
        "{} changed since run {} started:\n  {}\nresume refuses to mix two versions of a runbook; pass --force to resume anyway, or start a new run",
        meta.plan_path,
        meta.run_id,
        problems.join("\n  ")
    ))
    .into())
}

impl Pending {
    /// The run id (new, or the resumed run's).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Once the JOB client exists: replaces an older run if the policy says so,
    /// creates (or reopens) the run folder and journal, and for a resume settles every
    /// step's pre-set state.
    pub async fn start<A: JobApi>(
        mut self,
        api: &A,
        target: &RunTarget,
        validated: &CompiledPlan,
    ) -> Result<Session, Error> {
        if let Some((path, holder, wait)) = self.replace.take() {
            self.plan_lock = Some(
                replace_older(
                    &self.state,
                    api,
                    target,
                    (&path, &validated.plan.name),
                    &holder,
                    &self.me,
                    wait,
                )
                .await?,
            );
        }
        match self.resume.take() {
            None => {
                let Some(meta) = self.fresh.take() else {
                    return Err(Error::Usage("internal: a new run without a record".into()));
                };
                let dir = RunDir::create(&self.state, &meta, &self.plan_text)?;
                let run_lock = lock::lock_run(dir.path())?.ok_or_else(|| {
                    StateError::Locked(format!("run folder {} is in use", dir.path().display()))
                })?;
                let journal = Arc::new(Journal::create(&dir.journal_path(), &self.run_id)?);
                tracing::info!(run = %self.run_id, folder = %dir.path().display(), "run recorded");
                Ok(Session {
                    dir,
                    journal,
                    plan_lock: self.plan_lock,
                    run_lock,
                    actions: Vec::new(),
                    plan_ids: Vec::new(),
                    notes: Vec::new(),
                    restored: Vec::new(),
                })
            }
            Some(request) => self.start_resumed(request, api, target, validated).await,
        }
    }

    async fn start_resumed<A: JobApi>(
        self,
        request: ResumeRequest,
        api: &A,
        target: &RunTarget,
        validated: &CompiledPlan,
    ) -> Result<Session, Error> {
        let ResumeRequest {
            dir,
            mut meta,
            selection,
            run_lock,
            settle_after,
        } = request;
        // The last moment the earlier session may have sent something.
        let last_written = std::fs::metadata(dir.journal_path())
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| std::time::SystemTime::now());
        let (journal, replay) = Journal::reopen(&dir.journal_path())?;
        let state = resume::replay(&replay);
        let plan: Vec<PlanStep> = validated
            .plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| PlanStep {
                id: s.id.clone(),
                needs: validated.graph.dependencies(i),
            })
            .collect();
        let mut actions = resume::decide(&state, &plan, &selection)?;
        let mut notes = Vec::new();
        let same_job = match (&state.target, target) {
            (Some(RunTarget::Remote { endpoint: before }), RunTarget::Remote { endpoint: now }) => {
                if before.trim_end_matches('/') != now.trim_end_matches('/') && !self.force {
                    return Err(StateError::Resume(format!(
                        "run {} ran against {before}, not {now}; resume against the same JOB (or pass --force)",
                        meta.run_id
                    ))
                    .into());
                }
                true
            }
            _ => false,
        };
        // Instance lists are searched from a little before the run first started.
        let since_ms = journal::parse_time(&meta.started_at)
            .map_or(0, |at| at.timestamp_millis() - 10 * 60_000);
        let mut unknown = Vec::new();
        for (index, action) in actions.iter_mut().enumerate() {
            let id = &plan[index].id;
            let next = state.steps.get(id).map_or(1, |h| h.max_attempt + 1);
            let in_flight = matches!(
                action,
                Action::Attach { .. } | Action::Reconcile { .. } | Action::CheckInterrupted { .. }
            );
            if in_flight && !same_job {
                // The earlier session's instances lived in its own local emulator,
                // which ended with it; nothing there can be attached to.
                notes.push((
                    index,
                    "its instance lived in the earlier session's local emulator; running it again"
                        .to_owned(),
                ));
                *action = Action::Run { attempt: next };
                continue;
            }
            match action.clone() {
                Action::Reconcile { task_name, attempt } => {
                    let job_plan = validated
                        .plan
                        .steps
                        .get(index)
                        .and_then(|s| s.job.as_ref())
                        .map(|job| job.plan_id.to_string());
                    let is_job_plan = job_plan.is_some();
                    let what = match (&job_plan, &task_name) {
                        (Some(plan), _) => format!(" of job plan {plan}"),
                        (None, Some(name)) => {
                            format!(" for task `{}`", client::task_marker(name))
                        }
                        (None, None) => String::new(),
                    };
                    let lookup = match (task_name, is_job_plan) {
                        (_, true) => {
                            Err("a job plan execution carries no task name to look it up by"
                                .to_owned())
                        }
                        (None, false) => Err("the journal has no task name for it".to_owned()),
                        (Some(name), false) => Ok(name),
                    };
                    let settled = match lookup {
                        Ok(name) => settle(api, &name, since_ms, last_written, settle_after)
                            .await
                            .map(|found| (name, found)),
                        Err(why) => Err(why),
                    };
                    match settled {
                        Ok((_, Some(job))) => {
                            notes.push((
                                index,
                                format!("its unanswered submission was found in JOB as job {job}; waiting for it"),
                            ));
                            *action = Action::Attach { job, attempt };
                        }
                        Ok((name, None)) => {
                            notes.push((
                                index,
                                format!("JOB has no instance of task `{}`: the submission never arrived; submitting again", client::task_marker(&name)),
                            ));
                            *action = Action::Run { attempt: next };
                        }
                        Err(why) => {
                            *action = Action::KeepUnknown {
                                reason: format!(
                                    "submission outcome unknown{what}: {why}. It is NOT sent again: check JOB for it, then `baton resume {} --step {id} --force` runs it",
                                    meta.run_id
                                ),
                                attempt,
                            };
                            unknown.push(index);
                        }
                    }
                }
                Action::CheckInterrupted { job, attempt } => match api.status(job).await {
                    Ok(status) if !status.status.is_finished() => {
                        notes.push((index, format!("job {job} is still running; waiting for it")));
                        *action = Action::Attach { job, attempt };
                    }
                    // Left running (`--detach`) and done since: its work is done, and
                    // running it again would do it twice.
                    Ok(status) if status.status == crate::job_api::types::RunStatus::Success => {
                        notes.push((index, format!("job {job} finished successfully after the interrupt; keeping its result")));
                        *action = Action::Attach { job, attempt };
                    }
                    Ok(_) => *action = Action::Run { attempt: next },
                    Err(e) => {
                        *action = Action::KeepUnknown {
                            reason: format!(
                                "cannot read job {job} ({e}); it is NOT submitted again while it may run: check JOB, then `baton resume {} --step {id} --force` runs it",
                                meta.run_id
                            ),
                            attempt,
                        };
                        unknown.push(index);
                    }
                },
                _ => {}
            }
        }
        let name = |pick: fn(&Action) -> bool| -> Vec<String> {
            actions
                .iter()
                .enumerate()
                .filter(|(i, a)| pick(a) && !unknown.contains(i))
                .map(|(i, _)| plan[i].id.clone())
                .collect()
        };
        journal.append(&JournalLine::Marker(Marker::Resumed {
            at: journal::now_text(),
            pid: std::process::id(),
            kept: name(Action::is_kept),
            attached: name(|a| matches!(a, Action::Attach { .. })),
            rerun: name(|a| matches!(a, Action::Run { .. })),
            unknown: unknown.iter().map(|&i| plan[i].id.clone()).collect(),
            forced: self.force,
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
                let word = state.steps.get(&plan[index].id)?.last_word.clone()?;
                action.is_kept().then(|| reindex(word, index))
            })
            .collect();
        Ok(Session {
            dir,
            journal: Arc::new(journal),
            plan_lock: self.plan_lock,
            run_lock,
            actions,
            plan_ids: plan.into_iter().map(|s| s.id).collect(),
            notes,
            restored,
        })
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
    last_written: std::time::SystemTime,
    settle_after: Duration,
) -> Result<Option<JobInstanceId>, String> {
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
            Err(ClientError::Unsupported(_)) => {
                return Err("JOB offers no instance list to look it up in".to_owned());
            }
            Err(e) => return Err(format!("JOB's instance list could not be read ({e})")),
        }
    }
}

/// `concurrency: replace`: terminates the older run's in-flight instances (read from
/// its journal), asks its process to stop, and takes the lock once it is gone.
async fn replace_older<A: JobApi>(
    state: &StateDir,
    api: &A,
    target: &RunTarget,
    (path, plan): (&Path, &str),
    holder: &Holder,
    me: &Holder,
    wait: Duration,
) -> Result<PlanLock, Error> {
    eprintln!(
        "baton: concurrency: replace: stopping {}",
        holder.describe()
    );
    let older = RunDir::open(state, &holder.run_id);
    if let Ok(replay) = journal::read(&older.journal_path()) {
        let older_state = resume::replay(&replay);
        let same_job = matches!(
            (&older_state.target, target),
            (Some(RunTarget::Remote { endpoint: a }), RunTarget::Remote { endpoint: b }) if a == b
        );
        if same_job {
            for (id, history) in &older_state.steps {
                if let resume::Settled::InFlight { job, .. } = history.settled {
                    match api.operate_job(job, JobOperation::Terminate).await {
                        Ok(()) => {
                            eprintln!("baton: terminated job {job} (step {id} of the older run)")
                        }
                        Err(e) => eprintln!(
                            "baton: could not terminate job {job} (step {id} of the older run): {e}"
                        ),
                    }
                }
            }
        }
    }
    // Only the process the lock table still names as holding the lock, and as that
    // run, is signalled: the older run may have ended and its pid been reused since.
    if let Ok(Some(Held::Known(now))) = lock::current_holder(path)
        && now == *holder
    {
        signal_stop(holder.pid);
    }
    let path = path.to_path_buf();
    let me = me.clone();
    let attempt =
        tokio::task::spawn_blocking(move || lock::acquire_within(&path, &me, wait, |_| {}))
            .await
            .map_err(|e| Error::Usage(format!("internal: lock waiter failed: {e}")))??;
    match attempt {
        Attempt::Acquired(lock) => Ok(lock),
        Attempt::Held(now) => Err(locked(plan, &now, true).into()),
    }
}

/// Sends SIGTERM to the older run, so it stops starting steps and winds down (its own
/// handler terminates what it still runs). The pid is the one the kernel's lock table
/// names as holding the plan lock, checked against its record; it is never ours.
fn signal_stop(pid: u32) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let Ok(raw) = i32::try_from(pid) else { return };
        if raw <= 1 || pid == std::process::id() {
            return;
        }
        if let Err(e) = kill(Pid::from_raw(raw), Signal::SIGTERM) {
            eprintln!("baton: could not signal pid {pid}: {e}");
        }
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

/// A run in progress: its folder, journal and locks.
#[derive(Debug)]
pub struct Session {
    dir: RunDir,
    journal: Arc<Journal>,
    plan_lock: Option<PlanLock>,
    run_lock: RunLock,
    actions: Vec<Action>,
    plan_ids: Vec<String>,
    notes: Vec<(usize, String)>,
    restored: Vec<Option<RunEvent>>,
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

    /// For a resume: shows again how kept steps ended, and what resuming decided; a
    /// step still in doubt ends `unknown` in this session's record and journal. Call
    /// right after `run_started`.
    pub fn restore(&self, sink: &EventSink) {
        for event in self.restored.iter().flatten() {
            sink.emit(event.clone());
        }
        for (index, action) in self.actions.iter().enumerate() {
            if let Action::KeepUnknown { reason, attempt } = action {
                sink.emit(RunEvent::StepFinished {
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
            sink.emit(RunEvent::Warning {
                step: Some(StepRef {
                    index: *index,
                    id: self.plan_ids.get(*index).cloned().unwrap_or_default(),
                }),
                message: note.clone(),
            });
        }
    }

    /// The scheduler's pre-set states (empty for a fresh run).
    pub fn initial(&self) -> Vec<Initial<StepOutput>> {
        self.actions
            .iter()
            .enumerate()
            .map(|(index, action)| match action {
                Action::KeepSucceeded(outcome) => Initial::Succeeded(StepOutput {
                    id: self.plan_ids.get(index).cloned().unwrap_or_default(),
                    job_instance_id: outcome.job_instance_id,
                    status: "success".into(),
                    outputs: outcome.outputs.clone(),
                }),
                Action::KeepSkipped => Initial::Skipped,
                Action::KeepFailed | Action::KeepUnknown { .. } => Initial::Failed,
                Action::KeepNotRun => Initial::NotRun,
                Action::Attach { .. }
                | Action::Reconcile { .. }
                | Action::CheckInterrupted { .. }
                | Action::Run { .. } => Initial::Pending,
            })
            .collect()
    }

    /// Where resumed steps pick up (empty for a fresh run).
    pub fn resume_from(&self) -> BTreeMap<usize, ResumeFrom> {
        self.actions
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
            .collect()
    }

    /// Whether resuming left a step in doubt.
    pub fn has_steps_in_doubt(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::KeepUnknown { .. }))
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
