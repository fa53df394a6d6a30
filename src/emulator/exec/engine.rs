//! The state machine of bkjob-api §15, driven by one tokio task per job while it has
//! work: job 1 → 2, each step 1 → 2 (→ 15 / 7 between rolling batches) → 3 / 4 / …,
//! hosts 5 → 7 → 9 / 11 / 1xx, then the job's finish and its callback. The task ends
//! whenever the job finishes or waits for an operator; operations (`ops.rs`) set the
//! next action and start a new task. Hosts run under the instance's and the emulator's
//! semaphores, through `exec::run_script_capturing` / `files::copy::transfer_to_host` (or a host fault,
//! or the `simulate` setting), each in its own task so a panic there fails one host
//! instead of the emulator.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::emulator::app::App;
use crate::emulator::exec::callback;
use crate::emulator::exec::files::copy::{SourceFiles, TransferSpec, transfer_to_host};
use crate::emulator::exec::script::{ScriptRun, run_script_capturing};
use crate::emulator::model::clock::delay;
use crate::emulator::model::host_result::FileLogEntry;
use crate::emulator::model::host_result::HostResult;
use crate::emulator::model::job_vars::JobVar;
use crate::emulator::model::jobs::{
    Batch, HostRun, JobInstance, JobState, Next, RollingMode, StepKind, now_ms,
};
use crate::job_api::types::{HostAddr, RunStatus, host_status, language_code};

/// Starts a driver task for `job` unless one is running (it will see `next`).
pub fn spawn_drive(app: &Arc<App>, job: &Arc<JobInstance>) {
    {
        let mut state = job.lock();
        if state.driving || (state.next.is_none() && state.status != RunStatus::Stopping) {
            return;
        }
        state.driving = true;
    }
    tokio::spawn(drive(app.clone(), job.clone()));
}

/// Marks the job finished with `status` and sends its callback.
pub fn finish(app: &Arc<App>, job_id: u64, state: &mut JobState, status: RunStatus) {
    let now = now_ms();
    state.status = status;
    state.end_ms = Some(now);
    state.next = None;
    state.finishes += 1;
    if let Some(url) = state.callback_url.clone() {
        let body = callback::body(app, job_id, state);
        callback::send(app, job_id, url, body);
    }
}

async fn drive(app: Arc<App>, job: Arc<JobInstance>) {
    loop {
        let (next, cancel) = {
            let mut state = job.lock();
            if state.status == RunStatus::Stopping {
                finish_stop(&app, job.id, &mut state);
            }
            match state.next.take() {
                Some(next) => (next, state.cancel.clone()),
                None => {
                    state.driving = false;
                    return;
                }
            }
        };
        match next {
            Next::Start => start_job(&app, &job, &cancel).await,
            Next::StartStep(index) => start_step(&app, &job, index, &cancel).await,
            Next::RunBatch { step, batch, only } => {
                run_batch(&app, &job, step, batch, only, &cancel).await
            }
            Next::Finish => {
                let mut state = job.lock();
                if state.status != RunStatus::Stopping {
                    finish(&app, job.id, &mut state, RunStatus::Success);
                }
            }
        }
    }
}

async fn start_job(app: &Arc<App>, job: &Arc<JobInstance>, cancel: &CancellationToken) {
    let ok = delay(app.settings.step_start_delay_ms, cancel).await;
    let mut state = job.lock();
    if !ok || state.status == RunStatus::Stopping {
        return;
    }
    state.status = RunStatus::Running;
    state.start_ms = Some(now_ms());
    state.next = Some(Next::StartStep(0));
}

async fn start_step(
    app: &Arc<App>,
    job: &Arc<JobInstance>,
    index: usize,
    cancel: &CancellationToken,
) {
    if index > 0 && !delay(app.settings.step_start_delay_ms, cancel).await {
        return;
    }
    if !app.gates.pass(job.id, None, cancel).await {
        return;
    }
    let mut state = job.lock();
    if state.status == RunStatus::Stopping {
        return;
    }
    if index >= state.steps.len() {
        state.next = Some(Next::Finish);
        return;
    }
    state.current = index;
    let now = now_ms();
    let step = &mut state.steps[index];
    step.status = RunStatus::Running;
    step.start_ms = Some(now);
    step.end_ms = None;
    if let StepKind::Confirm(_) = step.kind {
        step.status = RunStatus::WaitingUser;
        state.status = RunStatus::WaitingUser;
        return;
    }
    step.batch = 0;
    step.resume_batch = None;
    step.hosts = step.targets.iter().cloned().map(HostRun::waiting).collect();
    if step.targets.is_empty() || step.batches.is_empty() {
        step.status = RunStatus::Success;
        step.end_ms = Some(now);
        state.next = Some(Next::StartStep(index + 1));
        return;
    }
    state.next = Some(Next::RunBatch {
        step: index,
        batch: 0,
        only: None,
    });
}

async fn run_batch(
    app: &Arc<App>,
    job: &Arc<JobInstance>,
    index: usize,
    batch: usize,
    only: Option<Vec<HostAddr>>,
    cancel: &CancellationToken,
) {
    if batch > 0 && only.is_none() {
        // Between batches the step shows 15 ROLLING_WAITING; a hold keeps it there.
        set_step_status(job, index, RunStatus::RollingWaiting);
        let ok = delay(app.settings.step_start_delay_ms, cancel).await
            && app.gates.pass(job.id, None, cancel).await;
        if !ok {
            return;
        }
        set_step_status(job, index, RunStatus::Running);
    }
    let hosts = {
        let mut state = job.lock();
        if state.status == RunStatus::Stopping {
            return;
        }
        let Some(step) = state.steps.get_mut(index) else {
            return;
        };
        step.batch = batch;
        let in_batch: Vec<HostAddr> = match (&only, step.batches.get(batch)) {
            (Some(list), _) => list.clone(),
            (None, Some(Batch::Targets(list))) => list.clone(),
            (None, Some(Batch::Sources(_))) | (None, None) => {
                step.targets.iter().map(|h| h.addr.clone()).collect()
            }
        };
        for addr in &in_batch {
            if let Some(run) = step.host_mut(addr) {
                run.status = host_status::WAITING;
            }
        }
        in_batch
    };
    let mut set = JoinSet::new();
    for addr in hosts.clone() {
        let (app, job, cancel) = (app.clone(), job.clone(), cancel.clone());
        set.spawn(async move { run_host(app, job, index, batch, addr, cancel).await });
    }
    while set.join_next().await.is_some() {}

    let mut state = job.lock();
    if state.status == RunStatus::Stopping {
        return;
    }
    let now = now_ms();
    let step = &mut state.steps[index];
    let batch_failed = step
        .hosts
        .iter()
        .any(|h| hosts.contains(&h.host.addr) && h.failed());
    let more = batch + 1 < step.batches.len();
    if batch_failed && !(step.rolling == Some(RollingMode::Ignore) && more) {
        step.status = RunStatus::Fail;
        step.end_ms = Some(now);
        finish(app, job.id, &mut state, RunStatus::Fail);
    } else if more {
        if step.rolling == Some(RollingMode::Confirm) {
            step.status = RunStatus::WaitingUser;
            step.resume_batch = Some(batch + 1);
            state.status = RunStatus::WaitingUser;
        } else {
            state.next = Some(Next::RunBatch {
                step: index,
                batch: batch + 1,
                only: None,
            });
        }
    } else if step.hosts.iter().any(HostRun::failed) {
        step.status = RunStatus::Fail;
        step.end_ms = Some(now);
        finish(app, job.id, &mut state, RunStatus::Fail);
    } else {
        step.status = RunStatus::Success;
        step.end_ms = Some(now);
        state.next = Some(Next::StartStep(index + 1));
    }
}

fn set_step_status(job: &JobInstance, index: usize, status: RunStatus) {
    let mut state = job.lock();
    if state.status == RunStatus::Stopping {
        return;
    }
    if let Some(step) = state.steps.get_mut(index) {
        step.status = status;
    }
}

/// Terminate arrived while the job ran: pending hosts → 403, step → 11 (or 5 when op 12
/// asked to skip it, and the job goes on), job → 11 with its callback.
fn finish_stop(app: &Arc<App>, job_id: u64, state: &mut JobState) {
    let now = now_ms();
    let index = state.current;
    let skip = std::mem::take(&mut state.skip_requested);
    // Only a step that was under way stops; a job held between steps keeps its
    // finished steps as they are.
    if let Some(step) = state
        .steps
        .get_mut(index)
        .filter(|s| !s.status.is_finished() && s.status != RunStatus::Blank)
    {
        for run in &mut step.hosts {
            if host_status::is_pending(run.status) {
                run.status = host_status::TERMINATE_SUCCESS;
                run.end_ms = Some(now);
            }
        }
        step.status = if skip {
            RunStatus::Skipped
        } else {
            RunStatus::StopSuccess
        };
        step.end_ms = Some(now);
    }
    if skip {
        state.status = RunStatus::Running;
        state.cancel = CancellationToken::new();
        state.next = Some(Next::StartStep(index + 1));
    } else {
        finish(app, job_id, state, RunStatus::StopSuccess);
    }
}

/// Host status 303: file task timeout.
const FILE_TASK_TIMEOUT: u16 = 303;

/// What one host does.
enum Work {
    Script(ScriptRun),
    File(TransferSpec, std::time::Duration),
}

async fn run_host(
    app: Arc<App>,
    job: Arc<JobInstance>,
    index: usize,
    batch: usize,
    addr: HostAddr,
    cancel: CancellationToken,
) {
    // Semaphores are never closed, so acquisition only fails if the emulator is gone.
    let Ok(_local) = job.parallel.clone().acquire_owned().await else {
        return;
    };
    let Ok(_global) = app.global_parallel.clone().acquire_owned().await else {
        return;
    };
    if !delay(app.settings.host_delay_ms, &cancel).await {
        return terminated(&job, index, &addr);
    }
    let work = {
        let mut state = job.lock();
        if state.status == RunStatus::Stopping {
            return;
        }
        let vars = state.vars.clone();
        let Some(step) = state.steps.get_mut(index) else {
            return;
        };
        let work = match &step.kind {
            StepKind::Script(script) => Work::Script(script_run(script, &vars)),
            StepKind::File(file) => Work::File(
                transfer_spec(file, step.batches.get(batch)),
                std::time::Duration::from_secs(file.timeout_secs),
            ),
            StepKind::Confirm(_) => return,
        };
        let Some(run) = step.host_mut(&addr) else {
            return;
        };
        run.status = host_status::RUNNING;
        if run.start_ms.is_none() || batch == 0 {
            run.start_ms = Some(now_ms());
        }
        work
    };
    if !app.gates.pass(job.id, Some(&addr), &cancel).await {
        return terminated(&job, index, &addr);
    }
    let is_script = matches!(work, Work::Script(_));
    let (result, file_logs, captured) = execute(&app, &addr, work, &cancel).await;
    let mut state = job.lock();
    if let Some(run) = state.steps.get_mut(index).and_then(|s| s.host_mut(&addr)) {
        run.finish(result, file_logs);
    }
    if is_script && !state.vars.is_empty() {
        // Hosts of a step finish in any order: the last one to report sets the value,
        // as the last write to JOB's step variable record does.
        for (name, value) in captured {
            if let Some(var) = state
                .vars
                .iter_mut()
                .find(|v| v.name == name && v.is_captured())
            {
                var.value = value;
            }
        }
        let snapshot = state.vars.clone();
        if let Some(step) = state.steps.get_mut(index) {
            step.var_values = Some(snapshot);
        }
    }
}

fn terminated(job: &JobInstance, index: usize, addr: &HostAddr) {
    let mut state = job.lock();
    if let Some(run) = state.steps.get_mut(index).and_then(|s| s.host_mut(addr)) {
        run.status = host_status::TERMINATE_SUCCESS;
        run.end_ms = Some(now_ms());
    }
}

async fn execute(
    app: &Arc<App>,
    addr: &HostAddr,
    work: Work,
    cancel: &CancellationToken,
) -> (HostResult, Vec<FileLogEntry>, Vec<(String, String)>) {
    let start = now_ms();
    if let Some(forced) = app.faults.on_host(addr) {
        let mut log = forced.log;
        if !log.is_empty() && !log.ends_with('\n') {
            log.push('\n');
        }
        return (
            HostResult {
                status: forced.status,
                exit_code: forced.exit_code,
                log,
                tag: String::new(),
                start_ms: start,
                end_ms: now_ms(),
            },
            Vec::new(),
            Vec::new(),
        );
    }
    if app.settings.simulate {
        return (
            HostResult {
                status: host_status::SUCCESS,
                exit_code: Some(0),
                log: "simulated\n".into(),
                tag: String::new(),
                start_ms: start,
                end_ms: now_ms(),
            },
            Vec::new(),
            Vec::new(),
        );
    }
    let sandboxes = app.sandboxes.clone();
    let host = addr.clone();
    let outcome = match work {
        Work::Script(run) => {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let (result, captured) =
                    run_script_capturing(&sandboxes, &host, &run, cancel).await;
                (result, Vec::new(), captured)
            })
            .await
        }
        Work::File(spec, timeout) => {
            let mut task =
                tokio::spawn(async move { transfer_to_host(&sandboxes, &host, &spec).await });
            tokio::select! {
                joined = &mut task => joined.map(|(result, logs)| (result, logs, Vec::new())),
                _ = tokio::time::sleep(timeout) => {
                    task.abort();
                    return (
                        HostResult {
                            status: FILE_TASK_TIMEOUT,
                            log: format!("file transfer timed out after {}s\n", timeout.as_secs()),
                            start_ms: start,
                            end_ms: now_ms(),
                            ..HostResult::default()
                        },
                        Vec::new(),
                        Vec::new(),
                    );
                }
                _ = cancel.cancelled() => {
                    task.abort();
                    return (
                        HostResult {
                            status: host_status::TERMINATE_SUCCESS,
                            start_ms: start,
                            end_ms: now_ms(),
                            ..HostResult::default()
                        },
                        Vec::new(),
                        Vec::new(),
                    );
                }
            }
        }
    };
    outcome.unwrap_or_else(|error| {
        (
            HostResult {
                status: host_status::UNKNOWN_ERROR,
                exit_code: None,
                log: format!("emulator: the host execution failed: {error}\n"),
                tag: String::new(),
                start_ms: start,
                end_ms: now_ms(),
            },
            Vec::new(),
            Vec::new(),
        )
    })
}

/// The script as the host agent gets it. String globals of a plan are exported both
/// as environment variables and, for shell scripts, as `name='value'` assignments after
/// the shebang line, which is how JOB makes them visible to shell steps. Values come
/// from the job's variables as earlier steps left them (`vars`), and a shell step's
/// changeable variables are read back after it ran.
fn script_run(script: &crate::emulator::model::jobs::ScriptStep, vars: &[JobVar]) -> ScriptRun {
    let mut content = script.content.clone();
    let env: Vec<(String, String)> = script
        .env
        .iter()
        .map(|(name, value)| {
            let current = vars.iter().find(|v| &v.name == name).map(|v| &v.value);
            (name.clone(), current.unwrap_or(value).clone())
        })
        .collect();
    let capture: Vec<String> = if script.language == language_code::SHELL {
        vars.iter()
            .filter(|v| v.is_captured())
            .map(|v| v.name.clone())
            .collect()
    } else {
        Vec::new()
    };
    if script.language == language_code::SHELL && !env.is_empty() {
        let mut prefix = String::new();
        for (name, value) in &env {
            prefix.push_str(&format!("{name}='{}'\n", value.replace('\'', "'\\''")));
        }
        let text = String::from_utf8_lossy(&content).into_owned();
        let joined = match text.strip_prefix("#!") {
            Some(_) => match text.split_once('\n') {
                Some((shebang, rest)) => format!("{shebang}\n{prefix}{rest}"),
                None => format!("{text}\n{prefix}"),
            },
            None => format!("{prefix}{text}"),
        };
        content = joined.into_bytes();
    }
    ScriptRun {
        language: script.language,
        content,
        params: script.params.clone(),
        timeout: std::time::Duration::from_secs(script.timeout_secs),
        env,
        account: script.account.alias.clone(),
        capture,
    }
}

fn transfer_spec(
    file: &crate::emulator::model::jobs::FileStep,
    batch: Option<&Batch>,
) -> TransferSpec {
    let sources = match batch {
        Some(Batch::Sources(pieces)) => pieces
            .pieces
            .iter()
            .flat_map(|piece| {
                piece.hosts.iter().map(|host| SourceFiles {
                    host: host.clone(),
                    files: piece.files.clone(),
                })
            })
            .collect(),
        _ => file
            .sources
            .iter()
            .flat_map(|source| {
                source.hosts.iter().map(|host| SourceFiles {
                    host: host.addr.clone(),
                    files: source.files.clone(),
                })
            })
            .collect(),
    };
    TransferSpec {
        sources,
        target_path: file.target_path.clone(),
        target_name: file.target_name.clone(),
        strict: file.strict,
        now_ms: now_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::model::inventory::Account;
    use crate::emulator::model::jobs::ScriptStep;

    #[test]
    fn string_globals_follow_the_shebang() {
        let step = ScriptStep {
            language: 1,
            content: b"#!/bin/bash\necho $v\n".to_vec(),
            params: String::new(),
            timeout_secs: 10,
            account: Account {
                id: 1,
                alias: "root".into(),
            },
            sensitive: false,
            env: vec![("v".into(), "it's".into())],
        };
        let run = script_run(&step, &[]);
        assert_eq!(
            String::from_utf8(run.content).unwrap(),
            "#!/bin/bash\nv='it'\\''s'\necho $v\n"
        );
    }
}
