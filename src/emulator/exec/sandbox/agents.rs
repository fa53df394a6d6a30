//! The emulator's side of the host executors: [`HostAgents`] starts one executor per
//! host folder on the host's first script (`__sandbox-exec --executor`, which builds
//! the host's namespaces and mounts once) and hands it each script after that, as JOB
//! hands scripts to the agent of a real host. [`AgentRun`] is one script there: its
//! output pipes, its end, and a kill that reaches everything it started.
//!
//! An executor that died (or could not be started) is started again for the next
//! script. Dropping the last handle on an executor shuts its socket down, and the
//! executor's exit ends every process of that host.

use std::collections::HashMap;
use std::io::PipeReader;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::emulator::exec::sandbox::error::SandboxError;
use crate::emulator::exec::sandbox::launch::{SANDBOX_PATH, executor_command};
use crate::emulator::exec::sandbox::wire::{self, CHUNK, Kind, Spec};

/// How a script on an executor ended.
#[derive(Debug)]
pub enum AgentExit {
    /// It ran and ended with this status.
    Exited(ExitStatus),
    /// The executor could not start it (why).
    NotStarted(String),
    /// The executor went away before saying.
    Lost,
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<AgentExit>>>>;

/// One host's executor.
struct Agent {
    socket: Arc<OwnedFd>,
    next_id: AtomicU64,
    waiters: Waiters,
    alive: Arc<AtomicBool>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        // The reader thread holds the socket too: shutting it down (rather than
        // closing this handle) is what the executor sees as the emulator leaving.
        let _ = rustix::net::shutdown(self.socket.as_fd(), rustix::net::Shutdown::Both);
    }
}

/// A host folder's slot: its executor once started.
type AgentSlot = Arc<tokio::sync::Mutex<Option<Arc<Agent>>>>;

/// The executors of all hosts, keyed by host folder.
pub struct HostAgents {
    helper: PathBuf,
    slots: Mutex<HashMap<PathBuf, AgentSlot>>,
}

impl std::fmt::Debug for HostAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostAgents")
            .field("helper", &self.helper)
            .finish_non_exhaustive()
    }
}

impl HostAgents {
    /// Executors started through the baton binary at `helper`.
    pub fn new(helper: &Path) -> Self {
        HostAgents {
            helper: helper.to_path_buf(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Starts `spec` in the sandbox of `host_dir` with fresh output pipes.
    pub(crate) async fn run(&self, host_dir: &Path, spec: &Spec) -> Result<AgentRun, SandboxError> {
        let agent = self.agent(host_dir).await?;
        let (stdout, out_w) =
            std::io::pipe().map_err(|e| SandboxError::io("creating a pipe", e))?;
        let (stderr, err_w) =
            std::io::pipe().map_err(|e| SandboxError::io("creating a pipe", e))?;
        let id = agent.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, exit) = oneshot::channel();
        agent
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        let text = serde_json::to_vec(spec)
            .map_err(|e| SandboxError::io("describing the script", std::io::Error::other(e)))?;
        let sent = text
            .chunks(CHUNK)
            .try_for_each(|chunk| wire::send(agent.socket.as_fd(), Kind::SpecChunk, id, chunk, &[]))
            .and_then(|()| {
                wire::send(
                    agent.socket.as_fd(),
                    Kind::Start,
                    id,
                    &[],
                    &[out_w.as_fd(), err_w.as_fd()],
                )
            });
        if let Err(e) = sent {
            agent.alive.store(false, Ordering::Release);
            agent
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            return Err(SandboxError::io(
                format!(
                    "handing the script to the executor of {}",
                    host_dir.display()
                ),
                e,
            ));
        }
        Ok(AgentRun {
            agent,
            id,
            exit,
            ended: false,
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }

    /// The live executor of `host_dir`, started if there is none.
    async fn agent(&self, host_dir: &Path) -> Result<Arc<Agent>, SandboxError> {
        let slot = Arc::clone(
            self.slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(host_dir.to_path_buf())
                .or_default(),
        );
        let mut slot = slot.lock().await;
        if let Some(agent) = slot.as_ref().filter(|a| a.alive.load(Ordering::Acquire)) {
            return Ok(Arc::clone(agent));
        }
        let (helper, dir) = (self.helper.clone(), host_dir.to_path_buf());
        let agent = tokio::task::spawn_blocking(move || start(&helper, &dir))
            .await
            .map_err(|e| SandboxError::io("starting an executor", std::io::Error::other(e)))??;
        let agent = Arc::new(agent);
        *slot = Some(Arc::clone(&agent));
        Ok(agent)
    }
}

/// Starts the executor of `host_dir` and waits until its sandbox is built. Blocking.
fn start(helper: &Path, host_dir: &Path) -> Result<Agent, SandboxError> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| SandboxError::io("creating the executor's socket", e.into()))?;
    let mut child = {
        let mut command = executor_command(helper, host_dir);
        command
            .env_clear()
            .env("PATH", SANDBOX_PATH)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The command (and our copy of the executor's end) is dropped right after.
        command.spawn().map_err(|e| {
            SandboxError::NoIsolation(format!("cannot run {}: {e}", helper.display()))
        })?
    };
    let first = wire::recv(&ours);
    let mut refused = |why: String| {
        let _ = child.kill();
        let _ = child.wait();
        SandboxError::NoIsolation(format!(
            "the executor of {} did not start: {why}",
            host_dir.display()
        ))
    };
    match first {
        Ok(Some(frame)) if frame.kind == Kind::Ready => {}
        Ok(Some(frame)) if frame.kind == Kind::SetupFailed => {
            return Err(refused(
                String::from_utf8_lossy(&frame.payload).into_owned(),
            ));
        }
        Ok(_) => return Err(refused("it exited".into())),
        Err(e) => return Err(refused(e.to_string())),
    }
    let socket = Arc::new(ours);
    let waiters: Waiters = Arc::default();
    let alive = Arc::new(AtomicBool::new(true));
    let reader = {
        let (socket, waiters, alive) = (
            Arc::clone(&socket),
            Arc::clone(&waiters),
            Arc::clone(&alive),
        );
        move || read_replies(&socket, &waiters, &alive, child)
    };
    std::thread::Builder::new()
        .name("executor-replies".into())
        .spawn(reader)
        .map_err(|e| SandboxError::io("starting the executor's reader", e))?;
    Ok(Agent {
        socket,
        next_id: AtomicU64::new(1),
        waiters,
        alive,
    })
}

/// Delivers each script's end to its waiter until the executor goes away, then fails
/// every waiter still there and reaps the helper.
fn read_replies(
    socket: &OwnedFd,
    waiters: &Waiters,
    alive: &AtomicBool,
    mut child: std::process::Child,
) {
    while let Ok(Some(frame)) = wire::recv(socket) {
        let exit = match frame.kind {
            Kind::Exited => {
                let mut raw = [0u8; 4];
                if frame.payload.len() != raw.len() {
                    continue;
                }
                raw.copy_from_slice(&frame.payload);
                AgentExit::Exited(ExitStatus::from_raw(i32::from_le_bytes(raw)))
            }
            Kind::StartFailed => {
                AgentExit::NotStarted(String::from_utf8_lossy(&frame.payload).into_owned())
            }
            _ => continue,
        };
        let waiter = waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&frame.id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(exit);
        }
    }
    alive.store(false, Ordering::Release);
    // Dropping the senders tells every waiter the script is lost.
    waiters
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    let _ = child.wait();
}

/// One script on a host's executor. Dropping it before the script ended kills the
/// script and everything it started.
pub struct AgentRun {
    agent: Arc<Agent>,
    id: u64,
    exit: oneshot::Receiver<AgentExit>,
    ended: bool,
    /// The script's stdout (read end).
    pub stdout: Option<PipeReader>,
    /// The script's stderr (read end).
    pub stderr: Option<PipeReader>,
}

impl AgentRun {
    /// Waits for the script's end. Cancel-safe: may be awaited again after a kill.
    pub async fn wait(&mut self) -> AgentExit {
        let exit = (&mut self.exit).await.unwrap_or(AgentExit::Lost);
        self.ended = true;
        exit
    }

    /// Kills the script's PID namespace: the script and all it started.
    pub fn kill(&self) {
        if self.ended {
            return;
        }
        let _ = wire::send(self.agent.socket.as_fd(), Kind::Kill, self.id, &[], &[]);
    }
}

impl Drop for AgentRun {
    fn drop(&mut self) {
        self.kill();
    }
}
