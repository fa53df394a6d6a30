//! Runs one script on one emulated host, inside that host's sandbox: writes the script
//! under the host's `/tmp/bk_job/`, runs it under its real interpreter, turns its
//! output into JOB's timestamped host log, and maps exit, timeout and termination to
//! JOB's host status codes.
//!
//! The script is the leader of its own process group, and the whole group is killed on
//! timeout, on cancel and when the script ends: in a namespace sandbox the PID
//! namespace takes everything down anyway, and without one nothing a script left
//! running in the background outlives its host's run.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::emulator::exec::sandbox::agents::{AgentExit, AgentRun};
use crate::emulator::exec::sandbox::error::SandboxError;
use crate::emulator::exec::sandbox::host_paths::HostSandboxes;
use crate::emulator::exec::sandbox::isolation::Isolation;
use crate::emulator::exec::sandbox::launch::SANDBOX_PATH;
use crate::emulator::exec::sandbox::wire::Spec;
use crate::emulator::model::host_result::HostResult;
use crate::emulator::model::job_vars::parse_set_output;
use crate::job_api::types::{HostAddr, host_status};

/// A script as JOB hands it to a host agent.
#[derive(Debug, Clone)]
pub struct ScriptRun {
    /// JOB language code (1 shell, 2 bat, 3 perl, 4 python, 5 powershell, 6 sql).
    pub language: u8,
    /// The decoded script text.
    pub content: Vec<u8>,
    /// The decoded parameter string, split as a shell would.
    pub params: String,
    /// Kill the process group after this long (host status 102).
    pub timeout: Duration,
    /// Extra environment (job plan global variables, JOB-like variables).
    pub env: Vec<(String, String)>,
    /// Execution account alias (informational in the emulator).
    pub account: String,
    /// Changeable string variables a shell script's assignments are read back for.
    pub capture: Vec<String>,
}

/// The most host log kept per host and run; the rest is dropped with a note.
pub const MAX_LOG_BYTES: usize = 5 * 1024 * 1024;

/// Longest line read in one piece; longer lines are split so that a script printing
/// without newlines cannot exhaust memory.
const MAX_LINE_BYTES: u64 = 64 * 1024;

/// How long output may still arrive after the script ended (from processes that
/// escaped the group and still hold the pipes, in an unisolated run).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// JOB's log line prefix time, `yyyy-MM-dd HH:mm:ss` in local time.
pub fn log_time() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A host log being written: timestamped lines, capped at [`MAX_LOG_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct HostLog {
    text: String,
    truncated: bool,
}

impl HostLog {
    /// Appends one line (without its newline) as `[time] line`.
    pub(crate) fn line(&mut self, line: &str) {
        if self.truncated {
            return;
        }
        let time = log_time();
        let entry = format!("[{time}] {line}\n");
        if self.text.len() + entry.len() > MAX_LOG_BYTES {
            self.truncated = true;
            self.text.push_str(&format!(
                "[{time}] (log truncated: more than {} MiB of output)\n",
                MAX_LOG_BYTES / (1024 * 1024)
            ));
            return;
        }
        self.text.push_str(&entry);
    }

    pub(crate) fn into_text(self) -> String {
        self.text
    }
}

/// How a script is run: interpreter candidates (absolute, first existing wins) and the
/// script file's extension.
struct Interpreter {
    candidates: &'static [&'static str],
    extension: &'static str,
}

/// Why a script was not started on its host; the text goes into the host log.
#[derive(Debug, thiserror::Error)]
enum NotRun {
    /// A language the emulator's Linux hosts cannot run.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A language code JOB does not have.
    #[error("unknown script language {0}; the script was not run")]
    UnknownLanguage(u8),
    /// The host's sandbox refused a path.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Writing the script or its folders failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl NotRun {
    fn io(what: String, source: std::io::Error) -> Self {
        NotRun::Io { what, source }
    }
}

/// The interpreter for a JOB language code, or why the emulator cannot run it.
fn interpreter(language: u8) -> Result<Interpreter, NotRun> {
    match language {
        1 => Ok(Interpreter {
            candidates: &["/usr/bin/bash", "/bin/bash"],
            extension: "sh",
        }),
        3 => Ok(Interpreter {
            candidates: &["/usr/bin/perl", "/bin/perl"],
            extension: "pl",
        }),
        4 => Ok(Interpreter {
            candidates: &["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"],
            extension: "py",
        }),
        2 => Err(NotRun::Unsupported(
            "bat scripts need a Windows host; the emulator's hosts are Linux sandboxes, \
                  so this script was not run",
        )),
        5 => Err(NotRun::Unsupported(
            "PowerShell scripts need a Windows host; the emulator's hosts are Linux \
                  sandboxes, so this script was not run",
        )),
        6 => Err(NotRun::Unsupported(
            "SQL is not emulated: the emulator has no database to run SQL scripts \
                  against, so this script was not run",
        )),
        other => Err(NotRun::UnknownLanguage(other)),
    }
}

/// Runs `run` on `host`; cancelling `cancel` kills the process group (status 403).
pub async fn run_script(
    sandboxes: &HostSandboxes,
    host: &HostAddr,
    run: &ScriptRun,
    cancel: CancellationToken,
) -> HostResult {
    run_script_capturing(sandboxes, host, run, cancel).await.0
}

/// [`run_script`], also returning the values the script left in the variables of
/// `run.capture`.
pub async fn run_script_capturing(
    sandboxes: &HostSandboxes,
    host: &HostAddr,
    run: &ScriptRun,
    cancel: CancellationToken,
) -> (HostResult, Vec<(String, String)>) {
    let start_ms = now_ms();
    let log = Arc::new(Mutex::new(HostLog::default()));
    let mut captured = Vec::new();
    let (status, exit_code) = execute(sandboxes, host, run, cancel, &log, &mut captured).await;
    let log = match Arc::try_unwrap(log) {
        Ok(log) => log.into_inner().unwrap_or_else(|e| e.into_inner()),
        // A reader task we gave up on still holds a reference: copy what is there.
        Err(shared) => {
            let guard = shared.lock().unwrap_or_else(|e| e.into_inner());
            HostLog {
                text: guard.text.clone(),
                truncated: guard.truncated,
            }
        }
    };
    let result = HostResult {
        status,
        exit_code,
        log: log.into_text(),
        tag: String::new(),
        start_ms,
        end_ms: now_ms(),
    };
    (result, captured)
}

fn note(log: &Mutex<HostLog>, line: &str) {
    log.lock().unwrap_or_else(|e| e.into_inner()).line(line);
}

/// The script file as the host sees it and as this machine sees it.
struct Prepared {
    host_dir: PathBuf,
    host_path: String,
    real_path: PathBuf,
}

/// Creates the host's `/tmp` (sticky, world-writable as usual), `/tmp/bk_job` and
/// `/root`, and writes the script there. Blocking: run on the blocking pool.
fn prepare(
    sandboxes: &HostSandboxes,
    host: &HostAddr,
    content: &[u8],
    extension: &str,
) -> Result<Prepared, NotRun> {
    use std::os::unix::fs::PermissionsExt;
    let host_dir = sandboxes.host_dir(host)?;
    for (dir, mode) in [("/tmp", 0o1777), ("/tmp/bk_job", 0o755), ("/root", 0o700)] {
        let real = sandboxes.resolve(host, dir)?;
        if !real.is_dir() {
            std::fs::create_dir_all(&real)
                .map_err(|source| NotRun::io(format!("create {dir} on the host"), source))?;
            std::fs::set_permissions(&real, std::fs::Permissions::from_mode(mode)).map_err(
                |source| NotRun::io(format!("set the mode of {dir} on the host"), source),
            )?;
        }
    }
    let host_path = format!("/tmp/bk_job/{}.{extension}", uuid::Uuid::now_v7().simple());
    let real_path = sandboxes.resolve(host, &host_path)?;
    std::fs::write(&real_path, content)
        .map_err(|source| NotRun::io(format!("write the script to {host_path}"), source))?;
    std::fs::set_permissions(&real_path, std::fs::Permissions::from_mode(0o755))
        .map_err(|source| NotRun::io(format!("make {host_path} executable"), source))?;
    Ok(Prepared {
        host_dir,
        host_path,
        real_path,
    })
}

/// Everything after the start time: returns the host status and exit code, writing
/// the log as it goes.
async fn execute(
    sandboxes: &HostSandboxes,
    host: &HostAddr,
    run: &ScriptRun,
    cancel: CancellationToken,
    log: &Arc<Mutex<HostLog>>,
    captured: &mut Vec<(String, String)>,
) -> (u16, Option<i32>) {
    let fail = |reason: &str| {
        note(log, reason);
        (host_status::SCRIPT_FAILED, None)
    };
    let interp = match interpreter(run.language) {
        Ok(interp) => interp,
        Err(reason) => return fail(&reason.to_string()),
    };
    let Some(program) = interp
        .candidates
        .iter()
        .find(|path| Path::new(path).is_file())
    else {
        return fail(&format!(
            "no interpreter found for this script (looked for {})",
            interp.candidates.join(", ")
        ));
    };
    let params = match shell_words::split(&run.params) {
        Ok(params) => params,
        Err(e) => return fail(&format!("cannot split the script parameters: {e}")),
    };
    // Where the wrapper's EXIT trap leaves the changeable variables: the path as the
    // script sees it, and as this machine does.
    let capture = if run.language == 1 && !run.capture.is_empty() {
        let host_path = format!(
            "/tmp/bk_job/{}_params_output.env",
            uuid::Uuid::now_v7().simple()
        );
        match sandboxes.resolve(host, &host_path) {
            Ok(real) => {
                let seen = match sandboxes.isolation() {
                    Isolation::Namespace { .. } => host_path,
                    Isolation::Unisolated => real.to_string_lossy().into_owned(),
                };
                Some((seen, real))
            }
            Err(e) => return fail(&format!("cannot place the variable file: {e}")),
        }
    } else {
        None
    };
    let prepared = {
        let sandboxes = sandboxes.clone();
        let host = host.clone();
        let content = match &capture {
            Some((seen, _)) => capture_wrapper(&run.content, &run.capture, seen),
            None => run.content.clone(),
        };
        let extension = interp.extension;
        tokio::task::spawn_blocking(move || prepare(&sandboxes, &host, &content, extension)).await
    };
    let prepared = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(reason)) => return fail(&reason.to_string()),
        Err(e) => return fail(&format!("preparing the script failed: {e}")),
    };

    // Without a namespace, /root would be this machine's: keep the dot-files a
    // script writes in the host folder instead.
    let home = match sandboxes.isolation() {
        Isolation::Namespace { .. } => "/root".to_owned(),
        Isolation::Unisolated => prepared.host_dir.join("root").display().to_string(),
    };
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), SANDBOX_PATH.into()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    env.extend(run.env.iter().cloned());
    env.push(("HOME".into(), home));

    let outcome = match sandboxes.agents() {
        Some(agents) => {
            let mut args = vec![prepared.host_path.clone()];
            args.extend(params);
            let spec = Spec {
                program: (*program).to_owned(),
                args,
                env,
            };
            match agents.run(&prepared.host_dir, &spec).await {
                Ok(agent_run) => run_child(Running::Agent(agent_run), run, cancel, log).await,
                Err(e) => {
                    note(log, &format!("cannot start the script: {e}"));
                    (host_status::SCRIPT_FAILED, None)
                }
            }
        }
        None => {
            let mut command = Command::new(program);
            command
                .arg(&prepared.real_path)
                .args(&params)
                .current_dir(&prepared.host_dir)
                .env_clear()
                .envs(env)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true);
            match command.spawn() {
                Ok(child) => run_child(Running::local(child), run, cancel, log).await,
                Err(e) => {
                    note(log, &format!("cannot start the script: {e}"));
                    (host_status::SCRIPT_FAILED, None)
                }
            }
        }
    };

    let real_path = prepared.real_path;
    // The script file is ours, not the runbook's: leave the host's /tmp as it was.
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(real_path)).await;
    if let Some((_, real)) = capture {
        let names = run.capture.clone();
        let read = tokio::task::spawn_blocking(move || {
            let text = std::fs::read_to_string(&real).unwrap_or_default();
            let _ = std::fs::remove_file(&real);
            parse_set_output(&text, &names)
        })
        .await;
        if let Ok(values) = read {
            *captured = values;
        }
    }
    outcome
}

/// The user's shell script with JOB's EXIT trap in front of it: on exit, bash's `set`
/// lines of the changeable variables go to `out_path`, and the exit code is kept.
fn capture_wrapper(content: &[u8], names: &[String], out_path: &str) -> Vec<u8> {
    let pattern = names
        .iter()
        .map(|n| format!("^{n}="))
        .collect::<Vec<_>>()
        .join("|");
    let trap = format!(
        "__job_output_vars() {{\n  __job_exit=$?\n  set | grep -E '{pattern}' > '{out_path}'\n  return $__job_exit\n}}\ntrap '__job_output_vars' EXIT\n"
    );
    let text = String::from_utf8_lossy(content);
    let joined = match text.strip_prefix("#!").and_then(|_| text.split_once('\n')) {
        Some((shebang, rest)) => format!("{shebang}\n{trap}{rest}"),
        None => format!("{trap}{text}"),
    };
    joined.into_bytes()
}

/// How the wait for a script ended.
enum Ending {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut,
    Cancelled,
}

/// Kills the script's process group when dropped, so no path out of
/// [`run_child`] (including the caller dropping the future) leaves processes behind.
struct GroupKill(Option<nix::unistd::Pid>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // ESRCH (the group is gone already) is the normal case.
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// A started script: a child of this process (`--unisolated`), or a script on its
/// host's executor, whose PID namespace holds everything it starts.
enum Running {
    Local {
        child: tokio::process::Child,
        group: GroupKill,
    },
    Agent(AgentRun),
}

impl Running {
    fn local(child: tokio::process::Child) -> Self {
        let group = GroupKill(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(nix::unistd::Pid::from_raw),
        );
        Running::Local { child, group }
    }

    fn take_pipes(&mut self) -> Vec<Box<dyn AsyncRead + Unpin + Send + 'static>> {
        let mut pipes: Vec<Box<dyn AsyncRead + Unpin + Send>> = Vec::new();
        match self {
            Running::Local { child, .. } => {
                if let Some(stdout) = child.stdout.take() {
                    pipes.push(Box::new(stdout));
                }
                if let Some(stderr) = child.stderr.take() {
                    pipes.push(Box::new(stderr));
                }
            }
            Running::Agent(agent_run) => {
                for pipe in [agent_run.stdout.take(), agent_run.stderr.take()]
                    .into_iter()
                    .flatten()
                {
                    // Unread, a pipe closes and the script sees EPIPE: its output is
                    // lost but it still runs to its end.
                    if let Ok(receiver) =
                        tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(pipe))
                    {
                        pipes.push(Box::new(receiver));
                    }
                }
            }
        }
        pipes
    }

    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self {
            Running::Local { child, .. } => child.wait().await,
            Running::Agent(agent_run) => match agent_run.wait().await {
                AgentExit::Exited(status) => Ok(status),
                AgentExit::NotStarted(why) => Err(std::io::Error::other(why)),
                AgentExit::Lost => Err(std::io::Error::other("the host's executor went away")),
            },
        }
    }

    /// Kills the script and everything it started.
    fn kill(&mut self) {
        match self {
            Running::Local { group, .. } => {
                if let Some(pgid) = group.0.take() {
                    // ESRCH (the group is gone already) is the normal case.
                    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                }
            }
            Running::Agent(agent_run) => agent_run.kill(),
        }
    }
}

async fn run_child(
    mut running: Running,
    run: &ScriptRun,
    cancel: CancellationToken,
    log: &Arc<Mutex<HostLog>>,
) -> (u16, Option<i32>) {
    let mut readers = Vec::new();
    for pipe in running.take_pipes() {
        readers.push(tokio::spawn(read_lines(pipe, Arc::clone(log))));
    }

    let ending = tokio::select! {
        status = running.wait() => Ending::Exited(status),
        () = tokio::time::sleep(run.timeout) => Ending::TimedOut,
        () = cancel.cancelled() => Ending::Cancelled,
    };
    running.kill();
    if !matches!(ending, Ending::Exited(_)) {
        // Reap the killed leader.
        let _ = running.wait().await;
    }
    for reader in readers {
        let abort = reader.abort_handle();
        if tokio::time::timeout(DRAIN_GRACE, reader).await.is_err() {
            abort.abort();
        }
    }

    match ending {
        Ending::Exited(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            let code = status
                .code()
                .or_else(|| status.signal().map(|signal| 128 + signal))
                .unwrap_or(-1);
            if code == 0 {
                (host_status::SUCCESS, Some(0))
            } else {
                (host_status::SCRIPT_NON_ZERO_EXIT, Some(code))
            }
        }
        Ending::Exited(Err(e)) => {
            note(log, &format!("lost track of the script: {e}"));
            (host_status::SCRIPT_FAILED, None)
        }
        Ending::TimedOut => {
            note(
                log,
                &format!(
                    "script timed out after {} s and was killed",
                    run.timeout.as_secs_f64()
                ),
            );
            (host_status::SCRIPT_TIMEOUT, None)
        }
        Ending::Cancelled => {
            note(log, "script terminated by the operator");
            (host_status::TERMINATE_SUCCESS, None)
        }
    }
}

/// Appends each line of `pipe` to the log as it arrives. Keeps reading after the log
/// is full so the script never blocks on a full pipe.
async fn read_lines(pipe: impl AsyncRead + Unpin + Send, log: Arc<Mutex<HostLog>>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        note(&log, &String::from_utf8_lossy(&buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_map_to_interpreters_or_reasons() {
        assert_eq!(interpreter(1).unwrap().candidates[0], "/usr/bin/bash");
        assert_eq!(interpreter(3).unwrap().candidates[0], "/usr/bin/perl");
        assert_eq!(interpreter(4).unwrap().candidates[0], "/usr/bin/python3");
        assert!(
            interpreter(2)
                .err()
                .unwrap()
                .to_string()
                .contains("Windows")
        );
        assert!(
            interpreter(5)
                .err()
                .unwrap()
                .to_string()
                .contains("Windows")
        );
        assert!(
            interpreter(6)
                .err()
                .unwrap()
                .to_string()
                .contains("SQL is not emulated")
        );
        assert!(interpreter(9).is_err());
    }

    #[test]
    fn log_lines_carry_job_timestamps_and_are_capped() {
        let mut log = HostLog::default();
        log.line("hello");
        let text = log.text.clone();
        let re = regex::Regex::new(r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] hello\n$").unwrap();
        assert!(re.is_match(&text), "{text:?}");
        let big = "x".repeat(1024 * 1024);
        for _ in 0..6 {
            log.line(&big);
        }
        log.line("after");
        let text = log.into_text();
        assert!(text.len() <= MAX_LOG_BYTES + 200);
        assert!(text.ends_with("(log truncated: more than 5 MiB of output)\n"));
        assert!(!text.contains("after"));
    }
}
