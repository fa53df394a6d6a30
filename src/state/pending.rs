//! A run before it starts: [`prepare`] resolves the state folder, checks a resumed plan
//! for changes, takes the plan lock according to `concurrency` and applies
//! `--skip-if-successful-since`; [`Pending`] then takes over from an older run
//! (`concurrency: replace`) and creates or reopens the run folder and journal. A resume
//! replays the journal into what each step does and leaves the submissions only JOB can
//! settle as a [`Resuming`]. The caller asks JOB and hands the answers back; nothing
//! here talks to JOB.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::error::StateError;
use super::fingerprint::{self, Fingerprint};
use super::journal::{self, Journal};
use super::lock::{self, Attempt, Held, Holder, PlanLock, RunLock};
use super::resume::{self, Action, PlanStep, Selection};
use super::resuming::{Resuming, next_attempt};
use super::runs::{self, RunDir, RunMeta, StateDir};
use super::session::Session;
use crate::executor::events::RunTarget;
use crate::job_api::types::JobInstanceId;

/// How long `concurrency: replace` waits for the older run to let go, unless
/// `--wait-lock` says otherwise.
const REPLACE_WAIT: Duration = Duration::from_secs(60);

/// The run-state options a run was given.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--wait-lock`.
    pub wait_lock: Option<Duration>,
    /// `--skip-if-successful-since`.
    pub skip_if_successful_since: Option<Duration>,
}

/// What a plan's `concurrency` says about a second run of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockPolicy {
    /// Runs of the plan may overlap: no plan lock.
    Allow,
    /// A second run waits (`--wait-lock`) or exits 75.
    #[default]
    Forbid,
    /// A second run stops the older one and takes over.
    Replace,
}

/// What the session records of the plan being run.
#[derive(Debug, Clone)]
pub struct PlanRecord {
    /// The plan's name.
    pub name: String,
    /// The plan file as given.
    pub path: PathBuf,
    /// Its `concurrency` policy.
    pub concurrency: LockPolicy,
    /// The inputs, secret ones masked.
    pub inputs: BTreeMap<String, String>,
    /// The names of the secret inputs.
    pub secret_inputs: Vec<String>,
    /// The plan's text with its secrets masked, for the run folder's copy.
    pub masked_text: String,
    /// The steps in plan order, for a resume's decisions.
    pub steps: Vec<PlanStep>,
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

impl ResumeRequest {
    /// A request to resume the run in `dir`, whose lock is held.
    pub fn new(
        dir: RunDir,
        meta: RunMeta,
        selection: Selection,
        run_lock: RunLock,
        settle_after: Duration,
    ) -> Self {
        ResumeRequest {
            dir,
            meta,
            selection,
            run_lock,
            settle_after,
        }
    }
}

/// The outcome of [`prepare`].
#[derive(Debug)]
pub enum Prepared {
    /// `--skip-if-successful-since` found a recent success: print this and exit 0.
    Skip(String),
    /// Go on.
    Go(Box<Pending>),
}

/// A new run's record, or the run being resumed.
#[derive(Debug)]
enum Start {
    Fresh(Box<RunMeta>),
    Resume(Box<ResumeRequest>),
}

/// An older run `concurrency: replace` is to stop.
#[derive(Debug)]
struct Replace {
    path: PathBuf,
    holder: Holder,
    wait: Duration,
}

/// A run that may start: its lock is held (or will be, after replacing the holder).
#[derive(Debug)]
pub struct Pending {
    state: StateDir,
    run_id: String,
    plan: String,
    me: Holder,
    plan_lock: Option<PlanLock>,
    replace: Option<Replace>,
    start: Start,
    plan_text: String,
    force: bool,
}

/// Before anything is sent: resolves the state folder, checks a resumed plan for
/// changes, takes the plan lock according to `concurrency`, and applies
/// `--skip-if-successful-since`.
pub fn prepare(
    options: &SessionOptions,
    fingerprint: Fingerprint,
    plan: &PlanRecord,
    resume: Option<ResumeRequest>,
) -> Result<Prepared, StateError> {
    let state = StateDir::resolve(options.state_dir.clone())?;
    let canonical = plan
        .path
        .canonicalize()
        .unwrap_or_else(|_| plan.path.clone());
    let inputs = plan.inputs.clone();
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
    let policy = plan.concurrency;
    let lock_path = state.plan_lock_path(&plan.name, &canonical);
    let mut plan_lock = None;
    let mut replace = None;
    match policy {
        LockPolicy::Allow => {}
        // A resume never replaces: it must not kill a newer run of the plan.
        LockPolicy::Replace if resume.is_none() => match lock::try_acquire(&lock_path, &me)? {
            Attempt::Acquired(lock) => plan_lock = Some(lock),
            Attempt::Held(Held::Known(holder)) => {
                let wait = options.wait_lock.unwrap_or(REPLACE_WAIT);
                replace = Some(Replace {
                    path: lock_path,
                    holder,
                    wait,
                });
            }
            Attempt::Held(_) => {
                // A holder that cannot be named is not signalled: wait for it.
                plan_lock = Some(wait_for_lock(
                    &lock_path,
                    &me,
                    &plan.name,
                    Some(options.wait_lock.unwrap_or(REPLACE_WAIT)),
                )?);
            }
        },
        LockPolicy::Forbid | LockPolicy::Replace => {
            plan_lock = Some(wait_for_lock(
                &lock_path,
                &me,
                &plan.name,
                options.wait_lock,
            )?);
        }
    }

    if let (Some(since), None) = (options.skip_if_successful_since, &resume) {
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
                plan.name,
                done.run_id,
                done.finished_at.unwrap_or_default(),
                humantime::format_duration(since)
            )));
        }
    }

    let start = match resume {
        Some(request) => Start::Resume(Box::new(request)),
        None => Start::Fresh(Box::new(RunMeta::new(
            &run_id,
            &plan.name,
            &canonical,
            fingerprint,
            inputs,
            plan.secret_inputs.clone(),
        ))),
    };
    Ok(Prepared::Go(Box::new(Pending {
        state,
        run_id,
        plan: plan.name.clone(),
        me,
        plan_lock,
        replace,
        start,
        plan_text: plan.masked_text.clone(),
        force,
    })))
}

/// Takes the plan lock, waiting up to `wait` if given; exit 75 when it stays held.
fn wait_for_lock(
    path: &Path,
    me: &Holder,
    plan: &str,
    wait: Option<Duration>,
) -> Result<PlanLock, StateError> {
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
        Attempt::Held(holder) => Err(locked(plan, &holder, wait.is_some())),
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
) -> Result<(), StateError> {
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
    )))
}

/// What [`Pending::open`] leaves: a fresh run ready to go, or a resume with
/// submissions JOB must settle first.
#[derive(Debug)]
pub enum Opened {
    /// A new run, recorded.
    Ready(Box<Session>),
    /// A resume: settle [`Resuming::unsettled`], then [`Resuming::settle`].
    Resuming(Box<Resuming>),
}

impl Pending {
    /// The run id (new, or the resumed run's).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// `concurrency: replace` with an older run holding the lock: announces that it is
    /// being stopped and returns its in-flight instances (read from its journal) when it
    /// ran against the same JOB as `target`. `None` when there is nothing to replace.
    pub fn older_run(&self, target: &RunTarget) -> Option<Vec<(String, JobInstanceId)>> {
        let replace = self.replace.as_ref()?;
        eprintln!(
            "baton: concurrency: replace: stopping {}",
            replace.holder.describe()
        );
        let older = RunDir::open(&self.state, &replace.holder.run_id);
        let Ok(replay) = journal::read(&older.journal_path()) else {
            return Some(Vec::new());
        };
        let older_state = resume::replay(&replay);
        let same_job = matches!(
            (&older_state.target, target),
            (Some(RunTarget::Remote { endpoint: a }), RunTarget::Remote { endpoint: b }) if a == b
        );
        if !same_job {
            return Some(Vec::new());
        }
        Some(
            older_state
                .steps
                .iter()
                .filter_map(|(id, history)| match history.settled {
                    resume::Settled::InFlight { job, .. } => Some((id.clone(), job)),
                    _ => None,
                })
                .collect(),
        )
    }

    /// `concurrency: replace`, once the older run's instances are dealt with: asks its
    /// process to stop, and takes the lock once it is gone.
    pub async fn take_over(&mut self) -> Result<(), StateError> {
        let Some(Replace { path, holder, wait }) = self.replace.take() else {
            return Ok(());
        };
        // Only the process the lock table still names as holding the lock, and as that
        // run, is signalled: the older run may have ended and its pid been reused since.
        if let Ok(Some(Held::Known(now))) = lock::current_holder(&path)
            && now == holder
        {
            signal_stop(holder.pid);
        }
        let me = self.me.clone();
        let waiting = path.clone();
        let attempt =
            tokio::task::spawn_blocking(move || lock::acquire_within(&waiting, &me, wait, |_| {}))
                .await
                .map_err(|e| {
                    StateError::io(
                        "cannot wait for the plan lock",
                        &path,
                        std::io::Error::other(e.to_string()),
                    )
                })??;
        match attempt {
            Attempt::Acquired(lock) => {
                self.plan_lock = Some(lock);
                Ok(())
            }
            Attempt::Held(now) => Err(locked(&self.plan, &now, true)),
        }
    }

    /// Creates (or reopens) the run folder and journal. A resume replays the journal
    /// into what each step does; the submissions only JOB can settle are left for the
    /// caller to ask about.
    pub fn open(self, target: &RunTarget, plan: &[PlanStep]) -> Result<Opened, StateError> {
        match self.start {
            Start::Fresh(meta) => {
                let dir = RunDir::create(&self.state, &meta, &self.plan_text)?;
                let run_lock = lock::lock_run(dir.path())?.ok_or_else(|| {
                    StateError::Locked(format!("run folder {} is in use", dir.path().display()))
                })?;
                let journal = Arc::new(Journal::create(&dir.journal_path(), &self.run_id)?);
                tracing::info!(run = %self.run_id, folder = %dir.path().display(), "run recorded");
                Ok(Opened::Ready(Box::new(Session {
                    dir,
                    journal,
                    plan_lock: self.plan_lock,
                    run_lock,
                    actions: Vec::new(),
                    plan_ids: Vec::new(),
                    notes: Vec::new(),
                    restored: Vec::new(),
                })))
            }
            Start::Resume(request) => {
                let ResumeRequest {
                    dir,
                    meta,
                    selection,
                    run_lock,
                    settle_after,
                } = *request;
                // The last moment the earlier session may have sent something.
                let last_written = std::fs::metadata(dir.journal_path())
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now());
                let (journal, replay) = Journal::reopen(&dir.journal_path())?;
                let state = resume::replay(&replay);
                let mut actions = resume::decide(&state, plan, &selection)?;
                let mut notes = Vec::new();
                let same_job = match (&state.target, target) {
                    (
                        Some(RunTarget::Remote { endpoint: before }),
                        RunTarget::Remote { endpoint: now },
                    ) => {
                        if before.trim_end_matches('/') != now.trim_end_matches('/') && !self.force
                        {
                            return Err(StateError::Resume(format!(
                                "run {} ran against {before}, not {now}; resume against the same JOB (or pass --force)",
                                meta.run_id
                            )));
                        }
                        true
                    }
                    _ => false,
                };
                // Instance lists are searched from a little before the run first started.
                let since_ms = journal::parse_time(&meta.started_at)
                    .map_or(0, |at| at.timestamp_millis() - 10 * 60_000);
                for (index, action) in actions.iter_mut().enumerate() {
                    let in_flight = matches!(
                        action,
                        Action::Attach { .. }
                            | Action::Reconcile { .. }
                            | Action::CheckInterrupted { .. }
                    );
                    if in_flight && !same_job {
                        // The earlier session's instances lived in its own local
                        // emulator, which ended with it; nothing there can be attached to.
                        notes.push((
                            index,
                            "its instance lived in the earlier session's local emulator; running it again"
                                .to_owned(),
                        ));
                        *action = Action::Run {
                            attempt: next_attempt(&state, &plan[index].id),
                        };
                    }
                }
                Ok(Opened::Resuming(Box::new(Resuming {
                    dir,
                    meta,
                    journal,
                    run_lock,
                    plan_lock: self.plan_lock,
                    state,
                    actions,
                    plan_ids: plan.iter().map(|s| s.id.clone()).collect(),
                    notes,
                    force: self.force,
                    since_ms,
                    last_written,
                    settle_after,
                })))
            }
        }
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
