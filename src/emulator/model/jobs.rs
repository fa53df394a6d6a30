//! Job instances as JOB stores them: the job, its step instances, each step's hosts
//! for the latest `execute_count` (older runs kept in `history`), rolling batches, and
//! the store that hands out increasing ids (one counter for job and step instances,
//! from `settings.first_id`) and keeps memory bounded by dropping the oldest finished
//! instances. The state machine that moves them lives in `engine.rs` and `ops.rs`.

use crate::emulator::model::job_vars::JobVar;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::emulator::model::host_result::FileLogEntry;
use crate::emulator::model::host_result::HostResult;
use crate::emulator::model::inventory::{Account, Host};
use crate::emulator::model::protocol::Protocol;
use crate::emulator::model::rolling::FileBatch;
use crate::emulator::model::scope::Scope;
use crate::job_api::types::{HostAddr, RunStatus, host_status, step_type};

/// What a step does.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// Run a script on the targets.
    Script(ScriptStep),
    /// Copy files to the targets.
    File(FileStep),
    /// Wait for a person.
    Confirm(ConfirmStep),
}

/// A script step, decoded.
#[derive(Debug, Clone)]
pub struct ScriptStep {
    /// Language code.
    pub language: u8,
    /// Script text.
    pub content: Vec<u8>,
    /// Parameter string.
    pub params: String,
    /// Timeout, seconds.
    pub timeout_secs: u64,
    /// Execution account.
    pub account: Account,
    /// Sensitive parameters.
    pub sensitive: bool,
    /// Exported variables (plan string globals).
    pub env: Vec<(String, String)>,
}

/// One source of a file step.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// Source hosts.
    pub hosts: Vec<Host>,
    /// Files on them, as written.
    pub files: Vec<String>,
    /// Source account.
    pub account: Account,
}

/// A file step.
#[derive(Debug, Clone)]
pub struct FileStep {
    /// Sources.
    pub sources: Vec<FileSource>,
    /// Target folder as written.
    pub target_path: String,
    /// Rename at the target.
    pub target_name: Option<String>,
    /// Strict transfer mode (1).
    pub strict: bool,
    /// Target account.
    pub account: Account,
    /// Timeout, seconds.
    pub timeout_secs: u64,
}

/// A manual confirmation step.
#[derive(Debug, Clone)]
pub struct ConfirmStep {
    /// Message.
    pub message: String,
    /// Who may confirm (empty: anyone).
    pub users: Vec<String>,
}

/// One rolling batch.
#[derive(Debug, Clone)]
pub enum Batch {
    /// A slice of the target hosts.
    Targets(Vec<HostAddr>),
    /// A slice of the source files, delivered to every target.
    Sources(FileBatch),
}

/// How a rolling step rolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollingMode {
    /// 1: stop at a failed batch.
    Pause,
    /// 2: ignore failures and go on.
    Ignore,
    /// 3: wait for a person before each later batch.
    Confirm,
}

impl RollingMode {
    /// From JOB's code.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(RollingMode::Pause),
            2 => Some(RollingMode::Ignore),
            3 => Some(RollingMode::Confirm),
            _ => None,
        }
    }
}

/// One host's run within a step's current execute count.
#[derive(Debug, Clone)]
pub struct HostRun {
    /// The host.
    pub host: Host,
    /// Host status code.
    pub status: u16,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// `job_success`/`job_fail` tag.
    pub tag: String,
    /// Log text.
    pub log: String,
    /// File logs (file steps).
    pub file_logs: Vec<FileLogEntry>,
    /// Start, epoch ms.
    pub start_ms: Option<i64>,
    /// End, epoch ms.
    pub end_ms: Option<i64>,
    /// A batch of this execute count already failed here (source-file rolling runs a
    /// target once per batch; one failure fails the host).
    pub failed_once: bool,
}

impl HostRun {
    /// A waiting host.
    pub fn waiting(host: Host) -> Self {
        HostRun {
            host,
            status: host_status::WAITING,
            exit_code: None,
            tag: String::new(),
            log: String::new(),
            file_logs: Vec::new(),
            start_ms: None,
            end_ms: None,
            failed_once: false,
        }
    }

    /// Back to waiting for a new execute count.
    pub fn reset(&mut self) {
        *self = HostRun::waiting(self.host.clone());
    }

    /// Records a finished execution (logs of several source batches accumulate).
    pub fn finish(&mut self, result: HostResult, file_logs: Vec<FileLogEntry>) {
        if !host_status::is_success(result.status) {
            self.failed_once = true;
            self.status = result.status;
        } else if !self.failed_once {
            self.status = result.status;
        }
        self.exit_code = result.exit_code;
        if !result.tag.is_empty() {
            self.tag = result.tag;
        }
        self.log.push_str(&result.log);
        self.file_logs.extend(file_logs);
        if self.start_ms.is_none() && result.start_ms > 0 {
            self.start_ms = Some(result.start_ms);
        }
        self.end_ms = Some(result.end_ms);
    }

    /// Whether the host has not succeeded (and is not pending).
    pub fn failed(&self) -> bool {
        !host_status::is_pending(self.status) && !host_status::is_success(self.status)
    }
}

/// A step instance.
#[derive(Debug, Clone)]
pub struct StepInstance {
    /// `step_instance_id`.
    pub id: u64,
    /// Plan `step_id` (-1 for fast tasks).
    pub step_id: i64,
    /// Name.
    pub name: String,
    /// What it does.
    pub kind: StepKind,
    /// Status.
    pub status: RunStatus,
    /// `execute_count` (0 on the first run).
    pub execute_count: u32,
    /// Creation, epoch ms.
    pub create_ms: i64,
    /// Start, epoch ms.
    pub start_ms: Option<i64>,
    /// End, epoch ms.
    pub end_ms: Option<i64>,
    /// Target hosts (for file steps: the download side).
    pub targets: Vec<Host>,
    /// Batches (a single batch when not rolling).
    pub batches: Vec<Batch>,
    /// Rolling mode, when rolling.
    pub rolling: Option<RollingMode>,
    /// Index of the batch running or last run.
    pub batch: usize,
    /// The next batch, when waiting for op 13 (rolling confirm).
    pub resume_batch: Option<usize>,
    /// Host runs of the latest execute count, in target order.
    pub hosts: Vec<HostRun>,
    /// Host runs of earlier execute counts.
    pub history: Vec<Vec<HostRun>>,
    /// The job plan's global variables as this step left them (script steps of a
    /// plan with variables, once a host ran).
    pub var_values: Option<Vec<JobVar>>,
}

impl StepInstance {
    /// JOB's step type code.
    pub fn type_code(&self) -> u8 {
        match self.kind {
            StepKind::Script(_) => step_type::SCRIPT,
            StepKind::File(_) => step_type::FILE,
            StepKind::Confirm(_) => step_type::MANUAL_CONFIRM,
        }
    }

    /// Whether this is a rolling step.
    pub fn is_rolling(&self) -> bool {
        self.rolling.is_some()
    }

    /// The run of `addr`, if it is a target.
    pub fn host_mut(&mut self, addr: &HostAddr) -> Option<&mut HostRun> {
        self.hosts.iter_mut().find(|h| &h.host.addr == addr)
    }
}

/// The driver's next action on a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Job 1 → 2, then the first step.
    Start,
    /// Start step `i`.
    StartStep(usize),
    /// Run batch `batch` of step `step`; `only` limits it to some hosts (retries).
    RunBatch {
        /// Step index.
        step: usize,
        /// Batch index.
        batch: usize,
        /// Hosts to run (None: the whole batch).
        only: Option<Vec<HostAddr>>,
    },
    /// All steps done: finish as success.
    Finish,
}

/// The mutable state of a job instance.
#[derive(Debug)]
pub struct JobState {
    /// Name.
    pub name: String,
    /// Who started it.
    pub operator: String,
    /// Plan id (-1 for fast tasks).
    pub plan_id: i64,
    /// 0 plan, 1 fast script, 2 fast file.
    pub task_type: u8,
    /// Status.
    pub status: RunStatus,
    /// Creation, epoch ms.
    pub create_ms: i64,
    /// Start, epoch ms.
    pub start_ms: Option<i64>,
    /// End, epoch ms.
    pub end_ms: Option<i64>,
    /// Index of the current step.
    pub current: usize,
    /// Steps.
    pub steps: Vec<StepInstance>,
    /// Callback URL.
    pub callback_url: Option<String>,
    /// Cancels the running hosts (terminate); replaced when the job resumes.
    pub cancel: CancellationToken,
    /// What the driver does next (None: idle or waiting for an operator).
    pub next: Option<Next>,
    /// Whether a driver task is running.
    pub driving: bool,
    /// Op 12 arrived while stopping: skip the step instead of stopping the job.
    pub skip_requested: bool,
    /// How many times the job finished (callbacks sent).
    pub finishes: u32,
    /// A job plan's global variables, as its steps changed them so far.
    pub vars: Vec<JobVar>,
}

/// A job instance.
#[derive(Debug)]
pub struct JobInstance {
    /// `job_instance_id`.
    pub id: u64,
    /// Scopes it can be queried from (the first is its own).
    pub scopes: Vec<Scope>,
    /// Protocol of the submit.
    pub protocol: Protocol,
    /// Hosts running at once for this instance.
    pub parallel: Arc<Semaphore>,
    state: Mutex<JobState>,
}

impl JobInstance {
    /// A new instance.
    pub fn new(
        id: u64,
        scopes: Vec<Scope>,
        protocol: Protocol,
        parallel_limit: usize,
        state: JobState,
    ) -> Self {
        JobInstance {
            id,
            scopes,
            protocol,
            parallel: Arc::new(Semaphore::new(parallel_limit.max(1))),
            state: Mutex::new(state),
        }
    }

    /// Locks the state. Never held across an await.
    pub fn lock(&self) -> MutexGuard<'_, JobState> {
        // A poisoned lock means a panic elsewhere mid-update; the state is still the
        // best record there is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `scope` may see this instance.
    pub fn visible_in(&self, scope: &Scope) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// All job instances.
pub struct JobStore {
    next_id: AtomicU64,
    jobs: RwLock<BTreeMap<u64, Arc<JobInstance>>>,
    max_instances: usize,
}

impl JobStore {
    /// An empty store whose ids start at `first_id`.
    pub fn new(first_id: u64, max_instances: usize) -> Self {
        JobStore {
            next_id: AtomicU64::new(first_id.max(1)),
            jobs: RwLock::new(BTreeMap::new()),
            max_instances: max_instances.max(1),
        }
    }

    /// A fresh id (job and step instances share the counter).
    pub fn alloc_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds an instance, dropping the oldest finished ones past the cap.
    pub fn insert(&self, job: Arc<JobInstance>) {
        let mut jobs = self.jobs.write().unwrap_or_else(|e| e.into_inner());
        jobs.insert(job.id, job);
        if jobs.len() > self.max_instances {
            let excess = jobs.len() - self.max_instances;
            let old: Vec<u64> = jobs
                .iter()
                .filter(|(_, j)| j.lock().status.is_finished())
                .map(|(id, _)| *id)
                .take(excess)
                .collect();
            for id in old {
                jobs.remove(&id);
            }
        }
    }

    /// An instance by id.
    pub fn get(&self, id: u64) -> Option<Arc<JobInstance>> {
        self.jobs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Every instance, oldest first.
    pub fn all(&self) -> Vec<Arc<JobInstance>> {
        self.jobs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// Now, epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
