//! The `__sandbox-exec` helper ([`exec_main`]) that makes a host folder the `/` of a
//! script.
//!
//! The helper runs in two stages because a PID namespace only applies to children:
//! stage 1 unshares the namespaces and starts stage 2 (itself again), which is PID 1 of
//! the new PID namespace, builds the mounts, pivots into the host folder and then
//! either execs one program (the start-up probe) or, with `--executor`, serves the
//! host's scripts for as long as the emulator runs (`executor`). When PID 1 ends, the
//! kernel kills everything left in the namespace, and nothing inside can see or
//! signal this machine's processes.

use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::Mode;

use crate::emulator::exec::sandbox::error::{SandboxError, SetupError, io_step, step};
use crate::emulator::exec::sandbox::executor;
use crate::emulator::exec::sandbox::launch::{executor_command, helper_command};
use crate::emulator::exec::sandbox::mounts::{bind_read_only, mount_dev, mount_point, mount_proc};

/// Marks the second helper stage. Private to the helper; removed before the script
/// starts.
const STAGE2_ENV: &str = "BATON_SANDBOX_STAGE2";

/// System folders bound read-only into every sandbox, when this machine has them.
const SYSTEM_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib64", "lib32", "etc"];

/// Entry point of `baton __sandbox-exec --root DIR -- PROGRAM ARGS...`: enters a new
/// mount namespace whose `/` is `root` and replaces the process with `command`.
///
/// The first invocation unshares the namespaces, re-runs itself as PID 1 of the new
/// PID namespace and returns that run's exit status (128 + signal when killed); the
/// second builds the sandbox and execs `command`, returning only on failure. Must run
/// before any thread is started: `unshare(CLONE_NEWUSER)` refuses threaded processes.
///
/// With `executor`, `command` is empty and stage 2 becomes the host's executor, talking
/// to the emulator over the socket it was given as stdin; set-up failures are sent
/// there too.
pub fn exec_main(
    root: &Path,
    command: &[String],
    executor: bool,
) -> Result<ExitCode, SandboxError> {
    if command.is_empty() && !executor {
        return Err(SandboxError::NoCommand);
    }
    let root = std::fs::canonicalize(root).map_err(|source| SandboxError::Io {
        context: format!("sandbox folder {}", root.display()),
        source,
    })?;
    let outcome = match (std::env::var_os(STAGE2_ENV).is_some(), executor) {
        (false, _) => stage1(&root, command, executor),
        (true, false) => stage2(&root, command).map(|never| match never {}),
        (true, true) => stage2_executor(&root),
    };
    if let (Err(error), true) = (&outcome, executor) {
        executor::report_setup_failure(std::io::stdin().as_fd(), error);
    }
    outcome.map_err(SandboxError::Setup)
}

/// Stage 1: new mount and PID namespaces (and a user namespace when not root, mapping
/// the caller to root inside), then stage 2 as PID 1 of the new PID namespace. Waits
/// for it and passes its exit status on.
fn stage1(root: &Path, command: &[String], executor: bool) -> Result<ExitCode, SetupError> {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
    if !uid.is_root() {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    step(|| "unshare".into(), unshare(flags))?;
    if !uid.is_root() {
        // setgroups must be denied before an unprivileged process may write gid_map.
        io_step(
            || "writing /proc/self/setgroups".into(),
            std::fs::write("/proc/self/setgroups", "deny"),
        )?;
        io_step(
            || "writing /proc/self/uid_map".into(),
            std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")),
        )?;
        io_step(
            || "writing /proc/self/gid_map".into(),
            std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")),
        )?;
    }
    let exe = io_step(
        || "locating the baton binary".into(),
        std::env::current_exe(),
    )?;
    let mut stage2 = if executor {
        executor_command(&exe, root)
    } else {
        let mut stage2 = helper_command(&exe, root);
        stage2.args(command);
        stage2
    };
    let mut child = io_step(
        || format!("starting {}", exe.display()),
        stage2.env(STAGE2_ENV, "1").spawn(),
    )?;
    if executor {
        // Only the executor may hold the control socket, or the emulator's exit would
        // go unnoticed.
        executor::release_stdin()?;
    }
    let status = io_step(|| format!("waiting for {}", exe.display()), child.wait())?;
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Stage 2, PID 1 of the new PID namespace: builds the sandbox and execs the command.
fn stage2(root: &Path, command: &[String]) -> Result<std::convert::Infallible, SetupError> {
    build_sandbox(root)?;
    let program = cstring(&command[0])?;
    let args = command
        .iter()
        .map(|arg| cstring(arg))
        .collect::<Result<Vec<_>, _>>()?;
    let env = std::env::vars_os()
        .filter(|(key, _)| key != STAGE2_ENV)
        .map(|(key, value)| {
            let mut pair = key.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            CString::new(pair)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SetupError {
            what: "environment".into(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
    step(
        || format!("executing {}", command[0]),
        nix::unistd::execvpe(&program, &args, &env),
    )
}

/// Stage 2 of `--executor`: the same sandbox, then the host's executor until the
/// emulator goes away.
fn stage2_executor(root: &Path) -> Result<ExitCode, SetupError> {
    // Stage 1 holds stdin open no more, so this is the only copy of the socket.
    let socket = executor::take_control_socket()?;
    if let Err(error) = build_sandbox(root) {
        executor::report_setup_failure(socket.as_fd(), &error);
        return Err(error);
    }
    Ok(executor::serve(socket))
}

/// Builds the sandbox's mounts and makes the host folder `/`. Every mount lives only in
/// this namespace, so nothing here changes this machine; mount points stay behind as
/// empty folders.
fn build_sandbox(root: &Path) -> Result<(), SetupError> {
    // If stage 1 is killed (timeout, cancel), take the whole namespace down with it.
    step(
        || "prctl(PR_SET_PDEATHSIG)".into(),
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL),
    )?;
    step(
        || "making / private".into(),
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
    )?;
    // pivot_root needs the new root to be a mount point.
    step(
        || format!("binding {} onto itself", root.display()),
        mount(
            Some(root),
            root,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ),
    )?;
    let root_fd = step(
        || format!("opening {}", root.display()),
        nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ),
    )?;

    for name in SYSTEM_DIRS {
        let source = Path::new("/").join(name);
        if !source.is_dir() {
            continue;
        }
        bind_read_only(root, &root_fd, name, &source)?;
    }
    mount_dev(root, &root_fd)?;
    mount_proc(root, &root_fd)?;
    for name in ["tmp", "root"] {
        mount_point(&root_fd, name)?;
    }
    enter_root(root)
}

fn cstring(text: &str) -> Result<CString, SetupError> {
    CString::new(text).map_err(|e| SetupError {
        what: format!("argument `{}`", text.escape_debug()),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })
}

/// Makes `root` the `/` of this process. pivot_root, then detaching the old root,
/// leaves no path back to this machine's file system (a chroot alone can be climbed
/// out of by root); chroot is the fallback where pivot_root is unsupported.
fn enter_root(root: &Path) -> Result<(), SetupError> {
    step(
        || format!("entering {}", root.display()),
        nix::unistd::chdir(root),
    )?;
    match nix::unistd::pivot_root(".", ".") {
        Ok(()) => {
            step(
                || "detaching the old root".into(),
                umount2(".", MntFlags::MNT_DETACH),
            )?;
        }
        Err(_) => {
            step(|| "chroot".into(), nix::unistd::chroot("."))?;
        }
    }
    step(|| "chdir /".into(), nix::unistd::chdir("/"))
}
