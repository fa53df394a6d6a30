//! A host's executor, the inside half of `__sandbox-exec --executor` ([`serve`]): PID 1
//! of the host's PID namespace, in its mount (and user) namespace with the host folder
//! as `/`, built once by the helper; from then on it starts each script the emulator
//! sends as a plain child, which is as far as JOB's agent goes on a real host.
//!
//! Each script gets a PID namespace of its own, nested in the host's (an `unshare` of
//! the thread that spawns it): the script is PID 1 there, so when it ends, is killed on
//! timeout or cancel, the kernel takes down everything it started, daemons included.
//! `/proc` is the host's, mounted once: it lists the executor and every script of the
//! host, numbered as the host sees them, as `ps` on a real host shows its agent.
//! When the emulator goes away (its end of the socket closes) the executor returns,
//! and as the host namespace's PID 1 its exit kills every process of the host.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

use crate::emulator::exec::sandbox::error::{SetupError, io_step};
use crate::emulator::exec::sandbox::wire::{self, Frame, Kind, Spec};

/// A script the executor knows of.
enum Slot {
    /// Running as `Pid` (in the host's PID namespace).
    Running(Pid),
    /// A kill arrived before the script was started: kill it as soon as it is.
    Doomed,
}

struct Shared {
    socket: OwnedFd,
    scripts: Mutex<HashMap<u64, Slot>>,
}

impl Shared {
    fn reply(&self, kind: Kind, id: u64, payload: &[u8]) {
        // A lost reply means the emulator is gone; the main loop sees that and exits.
        let _ = wire::send(self.socket.as_fd(), kind, id, payload, &[]);
    }
}

/// Takes the control socket from stdin (stdin becomes `/dev/null`), so that no other
/// process holds the executor's end and the emulator's exit is seen as end of file.
pub(super) fn take_control_socket() -> Result<OwnedFd, SetupError> {
    let socket = io_step(
        || "taking the control socket".into(),
        std::io::stdin().as_fd().try_clone_to_owned(),
    )?;
    release_stdin()?;
    Ok(socket)
}

/// Points stdin at `/dev/null`, dropping this process's copy of the control socket.
pub(super) fn release_stdin() -> Result<(), SetupError> {
    let null = io_step(
        || "opening /dev/null".into(),
        std::fs::File::open("/dev/null"),
    )?;
    crate::emulator::exec::sandbox::error::step(
        || "redirecting stdin".into(),
        nix::unistd::dup2_stdin(&null),
    )
}

/// Tells the emulator why the sandbox could not be built (best effort: `socket` is
/// stdin until the executor has taken the control socket, `/dev/null` after).
pub(super) fn report_setup_failure(socket: BorrowedFd<'_>, error: &SetupError) {
    let text = error.to_string();
    let _ = wire::send(socket, Kind::SetupFailed, 0, text.as_bytes(), &[]);
}

/// Serves scripts until the emulator closes its end of `socket`.
pub(super) fn serve(socket: OwnedFd) -> ExitCode {
    let shared = Arc::new(Shared {
        socket,
        scripts: Mutex::new(HashMap::new()),
    });
    shared.reply(Kind::Ready, 0, &[]);
    let mut specs: HashMap<u64, Vec<u8>> = HashMap::new();
    while let Ok(Some(frame)) = wire::recv(&shared.socket) {
        match frame.kind {
            Kind::SpecChunk => specs
                .entry(frame.id)
                .or_default()
                .extend_from_slice(&frame.payload),
            Kind::Start => {
                let id = frame.id;
                let spec = specs.remove(&id).unwrap_or_default();
                let runner = Arc::clone(&shared);
                let started =
                    std::thread::Builder::new().spawn(move || run_one(&runner, frame, &spec));
                if let Err(e) = started {
                    let reason = format!("cannot start a thread for the script: {e}");
                    shared.reply(Kind::StartFailed, id, reason.as_bytes());
                }
            }
            Kind::Kill => kill_script(&shared, frame.id),
            Kind::Ready | Kind::SetupFailed | Kind::StartFailed | Kind::Exited => {}
        }
    }
    ExitCode::SUCCESS
}

fn kill_script(shared: &Shared, id: u64) {
    let mut scripts = shared
        .scripts
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match scripts.get(&id) {
        // Killing PID 1 of the script's namespace kills the whole namespace.
        Some(Slot::Running(pid)) => {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        Some(Slot::Doomed) => {}
        None => {
            scripts.insert(id, Slot::Doomed);
        }
    }
}

/// Starts one script in a PID namespace of its own and reports its end. Runs on a
/// thread of its own: the namespace `unshare` applies to this thread's children only.
fn run_one(shared: &Shared, frame: Frame, spec: &[u8]) {
    let id = frame.id;
    let child = match spawn(spec, frame.fds) {
        Ok(child) => child,
        Err(reason) => {
            shared
                .scripts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            return shared.reply(Kind::StartFailed, id, reason.as_bytes());
        }
    };
    let mut child = child;
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    {
        let mut scripts = shared
            .scripts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(Slot::Doomed) = scripts.insert(id, Slot::Running(pid)) {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    // Wait without reaping, then forget the pid, then reap: a kill never reaches a
    // process that reused the number.
    while let Err(nix::errno::Errno::EINTR) =
        waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
    {}
    shared
        .scripts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
    let raw = match child.wait() {
        Ok(status) => status.into_raw(),
        // 128 + SIGKILL as a raw status: "killed".
        Err(_) => 9,
    };
    shared.reply(Kind::Exited, id, &raw.to_le_bytes());
}

fn spawn(spec: &[u8], fds: Vec<OwnedFd>) -> Result<std::process::Child, String> {
    let spec: Spec =
        serde_json::from_slice(spec).map_err(|e| format!("unreadable script description: {e}"))?;
    let [stdout, stderr]: [OwnedFd; 2] = fds
        .try_into()
        .map_err(|_| "the script's output pipes are missing".to_owned())?;
    unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("cannot create the script's PID namespace: {e}"))?;
    // The Command (and with it this process's copies of the pipes) is dropped on
    // return, so the emulator sees end of file when the script's side closes.
    Command::new(&spec.program)
        .args(&spec.args)
        .env_clear()
        .envs(spec.env)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", spec.program))
}
