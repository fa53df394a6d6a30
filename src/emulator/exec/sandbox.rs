//! Host sandboxes: one folder per emulated host under `<root>/hosts/<cloud>_<ip>/`, the
//! mapping of a host's absolute paths into it without any way out, and the
//! `__sandbox-exec` helper that makes that folder the `/` of a script.
//!
//! Path mapping follows what a script inside the sandbox sees: the host folder is `/`,
//! so an absolute symlink target (`/opt/app/current -> /opt/app/releases/1.2`, written
//! by a runbook script) is read as a path on the same host, never on this machine. A
//! relative symlink that climbs above the host's `/` is refused.
//!
//! The helper runs in two stages because a PID namespace only applies to children:
//! stage 1 unshares the namespaces and starts stage 2 (itself again), which is PID 1 of
//! the new PID namespace, builds the mounts, pivots into the host folder and execs the
//! script. When the script ends, the kernel kills everything it left behind, and a
//! script can neither see nor signal this machine's processes.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::{Mode, mkdirat};
use nix::sys::statvfs::{FsFlags, statvfs};

use crate::job_api::types::HostAddr;

/// How scripts are isolated.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// A mount namespace whose `/` is the host folder, set up by re-running the baton
    /// binary at `helper` with the hidden `__sandbox-exec` command.
    Namespace {
        /// The baton executable.
        helper: PathBuf,
    },
    /// Scripts run as plain child processes with the host folder as working directory
    /// (`--unisolated`): absolute paths reach the real machine.
    Unisolated,
}

impl Isolation {
    /// Namespaces through this very binary as the helper, or none when `unisolated`.
    pub fn for_this_binary(unisolated: bool) -> Result<Self, SandboxError> {
        if unisolated {
            return Ok(Isolation::Unisolated);
        }
        let helper = std::env::current_exe().map_err(|source| {
            SandboxError::io(
                "cannot locate the baton executable for the sandbox helper",
                source,
            )
        })?;
        Ok(Isolation::Namespace { helper })
    }
}

/// The hidden command of the baton binary that enters a sandbox.
pub const HELPER_COMMAND: &str = "__sandbox-exec";

/// `<helper> __sandbox-exec --root <root> --`: append the program and its arguments.
pub fn helper_command(helper: &Path, root: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(helper);
    command
        .arg(HELPER_COMMAND)
        .arg("--root")
        .arg(root)
        .arg("--");
    command
}

/// Why a sandbox operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The path would leave the host folder.
    #[error("path `{path}` escapes the sandbox of host {host}")]
    Escape {
        /// The host.
        host: String,
        /// The offending path.
        path: String,
    },
    /// Namespaces are not available and `--unisolated` was not given.
    #[error("cannot isolate scripts: {0}; pass --unisolated to run them unsandboxed")]
    NoIsolation(String),
    /// The helper was called without a program to run.
    #[error("__sandbox-exec needs a program to run after `--`")]
    NoCommand,
    /// The helper could not build the sandbox.
    #[error("sandbox: {0}")]
    Setup(#[source] SetupError),
    /// File-system error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl SandboxError {
    fn io(context: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Symlinks followed while resolving one path before giving up, as the kernel's
/// `MAXSYMLINKS`.
const MAX_SYMLINK_HOPS: usize = 40;

/// The sandbox folders of all emulated hosts.
#[derive(Debug, Clone)]
pub struct HostSandboxes {
    root: PathBuf,
    isolation: Isolation,
}

impl HostSandboxes {
    /// Sandboxes under `root` (created if missing); checks that `isolation` works.
    pub fn new(root: &Path, isolation: Isolation) -> Result<Self, SandboxError> {
        let hosts = root.join("hosts");
        std::fs::create_dir_all(&hosts)
            .map_err(|e| SandboxError::io(format!("creating {}", hosts.display()), e))?;
        // Canonical, so host folders are absolute and free of symlinks: the helper
        // compares them with /proc/self/mountinfo and resolve() builds on them.
        let root = std::fs::canonicalize(root)
            .map_err(|e| SandboxError::io(format!("resolving {}", root.display()), e))?;
        if let Isolation::Namespace { helper } = &isolation {
            probe_namespace(&root, helper)?;
        }
        Ok(HostSandboxes { root, isolation })
    }

    /// The sandbox root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The isolation in force.
    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// The folder of `host`, created if missing.
    pub fn host_dir(&self, host: &HostAddr) -> Result<PathBuf, SandboxError> {
        let dir = self.host_dir_path(host)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| SandboxError::io(format!("creating {}", dir.display()), e))?;
        Ok(dir)
    }

    /// The folder of `host` without touching the disk. `HostAddr` fields are public and
    /// may come from a request, so the ip must really be an address: anything else
    /// (`..`, `a/b`) could name a folder outside `hosts/`.
    fn host_dir_path(&self, host: &HostAddr) -> Result<PathBuf, SandboxError> {
        if host.ip.parse::<std::net::IpAddr>().is_err() {
            return Err(SandboxError::Escape {
                host: host.to_string(),
                path: host.folder_name(),
            });
        }
        Ok(self.root.join("hosts").join(host.folder_name()))
    }

    /// Maps an absolute path on `host` into its folder; refuses `..` and symlinks that
    /// would leave it.
    ///
    /// Existing components are followed one by one: a symlink's target is read as a
    /// path on the same host (absolute targets restart at the host's `/`), and `..`
    /// inside a symlink target may climb only as far as the host's `/`. Components that
    /// do not exist yet are appended as written. The result is the real path of the
    /// file at the time of the call.
    pub fn resolve(&self, host: &HostAddr, path: &str) -> Result<PathBuf, SandboxError> {
        let escape = || SandboxError::Escape {
            host: host.to_string(),
            path: path.to_owned(),
        };
        let base = self.host_dir(host)?;
        if !path.starts_with('/') || path.contains('\0') {
            return Err(escape());
        }
        let mut pending: Vec<Vec<u8>> = Vec::new();
        for part in path.split('/').rev() {
            match part {
                "" | "." => {}
                ".." => return Err(escape()),
                name => pending.push(name.as_bytes().to_vec()),
            }
        }
        // `pending` is a stack: the next component is at the end.
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        let mut missing = false;
        while let Some(part) = pending.pop() {
            if part == b".." {
                // Only symlink targets bring `..` here; the request path cannot.
                if resolved.pop().is_none() {
                    return Err(escape());
                }
                continue;
            }
            resolved.push(part);
            if missing {
                continue;
            }
            let real = join(&base, &resolved);
            let meta = match std::fs::symlink_metadata(&real) {
                Ok(meta) => meta,
                // A file in the middle of the path (`/a.txt/x`) means nothing is there.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    missing = true;
                    continue;
                }
                Err(e) => {
                    return Err(SandboxError::io(
                        format!("resolving `{path}` on host {host}"),
                        e,
                    ));
                }
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(SandboxError::io(
                    format!("resolving `{path}` on host {host}"),
                    io::Error::from_raw_os_error(Errno::ELOOP as i32),
                ));
            }
            let target = std::fs::read_link(&real)
                .map_err(|e| SandboxError::io(format!("reading link {}", real.display()), e))?;
            resolved.pop();
            let target = target.as_os_str().as_bytes();
            if target.starts_with(b"/") {
                resolved.clear();
            }
            for part in target.split(|b| *b == b'/').rev() {
                match part {
                    b"" | b"." => {}
                    other => pending.push(other.to_vec()),
                }
            }
        }
        Ok(join(&base, &resolved))
    }
}

fn join(base: &Path, parts: &[Vec<u8>]) -> PathBuf {
    let mut out = base.to_path_buf();
    for part in parts {
        out.push(OsStr::from_bytes(part));
    }
    out
}

/// Runs the helper once with `true` in a scratch folder, so a machine without
/// namespaces is refused at start-up rather than failing every script later.
fn probe_namespace(root: &Path, helper: &Path) -> Result<(), SandboxError> {
    let probe = tempfile::Builder::new()
        .prefix(".isolation-probe-")
        .tempdir_in(root)
        .map_err(|e| {
            SandboxError::io(format!("creating a probe folder in {}", root.display()), e)
        })?;
    let output = helper_command(helper, probe.path())
        .arg("true")
        .env_clear()
        .env("PATH", SANDBOX_PATH)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| SandboxError::NoIsolation(format!("cannot run {}: {e}", helper.display())))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(SandboxError::NoIsolation(format!(
            "the sandbox helper failed ({}): {}",
            output.status,
            stderr.trim()
        )))
    }
}

/// `PATH` inside a sandbox: the usual system folders, all bound from this machine.
pub const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Marks the second helper stage. Private to the helper; removed before the script
/// starts.
const STAGE2_ENV: &str = "BATON_SANDBOX_STAGE2";

/// System folders bound read-only into every sandbox, when this machine has them.
const SYSTEM_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib64", "lib32", "etc"];

/// Device nodes a script may need; bound from this machine's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Entry point of `baton __sandbox-exec --root DIR -- PROGRAM ARGS...`: enters a new
/// mount namespace whose `/` is `root` and replaces the process with `command`.
///
/// The first invocation unshares the namespaces, re-runs itself as PID 1 of the new
/// PID namespace and returns that run's exit status (128 + signal when killed); the
/// second builds the sandbox and execs `command`, returning only on failure. Must run
/// before any thread is started: `unshare(CLONE_NEWUSER)` refuses threaded processes.
pub fn exec_main(root: &Path, command: &[String]) -> Result<ExitCode, SandboxError> {
    if command.is_empty() {
        return Err(SandboxError::NoCommand);
    }
    let root = std::fs::canonicalize(root).map_err(|source| SandboxError::Io {
        context: format!("sandbox folder {}", root.display()),
        source,
    })?;
    let outcome = if std::env::var_os(STAGE2_ENV).is_some() {
        stage2(&root, command).map(|never| match never {})
    } else {
        stage1(&root, command)
    };
    outcome.map_err(SandboxError::Setup)
}

/// A failed helper step, named for the host log.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct SetupError {
    what: String,
    #[source]
    source: io::Error,
}

fn step<T>(what: impl FnOnce() -> String, result: nix::Result<T>) -> Result<T, SetupError> {
    result.map_err(|errno| SetupError {
        what: what(),
        source: io::Error::from(errno),
    })
}

fn io_step<T>(what: impl FnOnce() -> String, result: io::Result<T>) -> Result<T, SetupError> {
    result.map_err(|source| SetupError {
        what: what(),
        source,
    })
}

/// Stage 1: new mount and PID namespaces (and a user namespace when not root, mapping
/// the caller to root inside), then stage 2 as PID 1 of the new PID namespace. Waits
/// for it and passes its exit status on.
fn stage1(root: &Path, command: &[String]) -> Result<ExitCode, SetupError> {
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
    let status = io_step(
        || format!("starting {}", exe.display()),
        helper_command(&exe, root)
            .args(command)
            .env(STAGE2_ENV, "1")
            .status(),
    )?;
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Stage 2, PID 1 of the new PID namespace: builds the sandbox's mounts, makes the host
/// folder `/` and execs the command. Every mount lives only in this namespace, so
/// nothing here changes this machine; mount points stay behind as empty folders.
fn stage2(root: &Path, command: &[String]) -> Result<std::convert::Infallible, SetupError> {
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
    enter_root(root)?;

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

fn cstring(text: &str) -> Result<CString, SetupError> {
    CString::new(text).map_err(|e| SetupError {
        what: format!("argument `{}`", text.escape_debug()),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })
}

/// The `/proc/self/fd` path of `fd`: mounting onto it mounts onto the very folder the
/// fd was opened on, so a symlink swapped in by a script cannot redirect the mount.
fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Creates `name` in the host folder if missing and opens it without following
/// symlinks: a mount point must be a plain folder of the sandbox.
fn mount_point(root_fd: &OwnedFd, name: &str) -> Result<OwnedFd, SetupError> {
    match mkdirat(root_fd.as_fd(), name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => return step(|| format!("creating /{name} in the sandbox"), Err(errno)),
    }
    step(
        || format!("/{name} in the sandbox is not a plain folder"),
        openat(
            root_fd.as_fd(),
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ),
    )
}

/// Mount flags that must be repeated when remounting a bind of `path`: inside a user
/// namespace the kernel refuses to clear flags locked by the parent namespace.
fn locked_flags(path: &Path) -> MsFlags {
    let Ok(stat) = statvfs(path) else {
        return MsFlags::empty();
    };
    let fs = stat.flags();
    let mut flags = MsFlags::empty();
    for (st, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if fs.contains(st) {
            flags |= ms;
        }
    }
    flags
}

fn remount_read_only(target: &str, source: &Path) -> Result<(), SetupError> {
    step(
        || format!("making {target} read-only"),
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags(source),
            None::<&str>,
        ),
    )
}

/// Binds this machine's `source` (with its submounts) onto `/<name>` of the sandbox,
/// every mount of it read-only.
fn bind_read_only(
    root: &Path,
    root_fd: &OwnedFd,
    name: &str,
    source: &Path,
) -> Result<(), SetupError> {
    let point = mount_point(root_fd, name)?;
    step(
        || format!("binding {} into the sandbox", source.display()),
        mount(
            Some(source),
            fd_path(&point).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
    )?;
    // Reopen: the earlier fd names the folder under the new mount, not the mount.
    let mounted = mount_point(root_fd, name)?;
    remount_read_only(&fd_path(&mounted), source)?;
    // A remount changes one mount only; submounts (e.g. a container's /etc/hosts)
    // would stay writable.
    let prefix = root.join(name);
    for sub in submounts(&prefix)? {
        remount_read_only(&sub.to_string_lossy(), &sub)?;
    }
    Ok(())
}

/// Mount points strictly below `prefix`, from /proc/self/mountinfo.
fn submounts(prefix: &Path) -> Result<Vec<PathBuf>, SetupError> {
    let info = io_step(
        || "reading /proc/self/mountinfo".into(),
        std::fs::read("/proc/self/mountinfo"),
    )?;
    let mut out = Vec::new();
    for line in info.split(|b| *b == b'\n') {
        let Some(field) = line.split(|b| *b == b' ').nth(4) else {
            continue;
        };
        let point = PathBuf::from(OsStr::from_bytes(&unescape_mountinfo(field)));
        if point != prefix && point.starts_with(prefix) {
            out.push(point);
        }
    }
    Ok(out)
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mountinfo(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = field[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

/// A private tmpfs `/dev` holding binds of the harmless device nodes and the usual
/// `/dev/fd` links: scripts get `/dev/null` without seeing this machine's disks.
fn mount_dev(root: &Path, root_fd: &OwnedFd) -> Result<(), SetupError> {
    let point = mount_point(root_fd, "dev")?;
    step(
        || "mounting a tmpfs on /dev".into(),
        mount(
            Some("tmpfs"),
            fd_path(&point).as_str(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=755,size=1m"),
        ),
    )?;
    // Everything below is inside the tmpfs that exists only in this namespace, so
    // plain paths are safe from here on.
    let dev = root.join("dev");
    for name in DEVICES {
        let source = Path::new("/dev").join(name);
        if !source.exists() {
            continue;
        }
        let target = dev.join(name);
        io_step(
            || format!("creating {}", target.display()),
            std::fs::File::create(&target),
        )?;
        step(
            || format!("binding {}", source.display()),
            mount(
                Some(&source),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ),
        )?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        io_step(
            || format!("linking /dev/{link}"),
            std::os::unix::fs::symlink(target, dev.join(link)),
        )?;
    }
    io_step(
        || "creating /dev/shm".into(),
        std::fs::create_dir(dev.join("shm")),
    )?;
    Ok(())
}

/// A `/proc` of the new PID namespace (only the script's processes), with
/// `/proc/sys` and `/proc/sysrq-trigger` read-only: a `sysctl -w` in a runbook must
/// not retune this machine's kernel.
fn mount_proc(root: &Path, root_fd: &OwnedFd) -> Result<(), SetupError> {
    let point = mount_point(root_fd, "proc")?;
    step(
        || "mounting /proc".into(),
        mount(
            Some("proc"),
            fd_path(&point).as_str(),
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        ),
    )?;
    for name in ["sys", "sysrq-trigger"] {
        let path = root.join("proc").join(name);
        if !path.exists() {
            continue;
        }
        step(
            || format!("binding {}", path.display()),
            mount(
                Some(&path),
                &path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ),
        )?;
        remount_read_only(&path.to_string_lossy(), &path)?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostAddr {
        HostAddr {
            cloud_id: 0,
            ip: "10.0.0.1".into(),
        }
    }

    fn sandboxes() -> (tempfile::TempDir, HostSandboxes) {
        let dir = tempfile::tempdir().unwrap();
        let sandboxes = HostSandboxes::new(dir.path(), Isolation::Unisolated).unwrap();
        (dir, sandboxes)
    }

    fn is_escape(result: Result<PathBuf, SandboxError>) -> bool {
        matches!(result, Err(SandboxError::Escape { .. }))
    }

    #[test]
    fn host_folders_are_cloud_underscore_ip() {
        let (_dir, sb) = sandboxes();
        let dir = sb.host_dir(&host()).unwrap();
        assert_eq!(dir, sb.root().join("hosts").join("0_10.0.0.1"));
        assert!(dir.is_dir());
    }

    #[test]
    fn host_folders_refuse_non_addresses() {
        let (_dir, sb) = sandboxes();
        for ip in ["..", "../../etc", "a/b", ""] {
            let bad = HostAddr {
                cloud_id: 0,
                ip: ip.into(),
            };
            assert!(matches!(
                sb.host_dir(&bad),
                Err(SandboxError::Escape { .. })
            ));
        }
    }

    #[test]
    fn absolute_paths_map_inside_the_host_folder() {
        let (_dir, sb) = sandboxes();
        let base = sb.host_dir(&host()).unwrap();
        assert_eq!(
            sb.resolve(&host(), "/opt/app/x.log").unwrap(),
            base.join("opt/app/x.log")
        );
        assert_eq!(sb.resolve(&host(), "/").unwrap(), base);
        assert_eq!(
            sb.resolve(&host(), "//tmp/./a//b/").unwrap(),
            base.join("tmp/a/b")
        );
    }

    #[test]
    fn dot_dot_and_relative_paths_are_refused() {
        let (_dir, sb) = sandboxes();
        assert!(is_escape(sb.resolve(&host(), "/../etc/passwd")));
        assert!(is_escape(sb.resolve(&host(), "/tmp/../../x")));
        assert!(is_escape(sb.resolve(&host(), "/tmp/..")));
        assert!(is_escape(sb.resolve(&host(), "tmp/x")));
        assert!(is_escape(sb.resolve(&host(), "")));
        assert!(is_escape(sb.resolve(&host(), "/tmp/a\0b")));
    }

    #[test]
    fn relative_symlinks_climbing_out_are_refused_at_any_level() {
        let (_dir, sb) = sandboxes();
        let base = sb.host_dir(&host()).unwrap();
        std::fs::create_dir_all(base.join("data/deep")).unwrap();
        std::os::unix::fs::symlink("../../../..", base.join("data/deep/up")).unwrap();
        assert!(is_escape(sb.resolve(&host(), "/data/deep/up")));
        assert!(is_escape(sb.resolve(&host(), "/data/deep/up/etc/passwd")));
        std::os::unix::fs::symlink("deep/up", base.join("data/chain")).unwrap();
        assert!(is_escape(sb.resolve(&host(), "/data/chain/x")));
    }

    #[test]
    fn symlinks_inside_the_host_are_followed() {
        let (_dir, sb) = sandboxes();
        let base = sb.host_dir(&host()).unwrap();
        std::fs::create_dir_all(base.join("opt/app/releases/1.2")).unwrap();
        std::os::unix::fs::symlink("releases/1.2", base.join("opt/app/rel")).unwrap();
        std::os::unix::fs::symlink("../app/./releases/1.2", base.join("opt/app/up")).unwrap();
        assert_eq!(
            sb.resolve(&host(), "/opt/app/rel/bin").unwrap(),
            base.join("opt/app/releases/1.2/bin")
        );
        assert_eq!(
            sb.resolve(&host(), "/opt/app/up").unwrap(),
            base.join("opt/app/releases/1.2")
        );
    }

    #[test]
    fn absolute_symlink_targets_are_host_paths() {
        // What a script wrote with `ln -s /opt/app/releases/1.2 /opt/app/current`
        // means the same host's folder, and `/etc/passwd` means the host's own
        // (sandboxed) file, never this machine's.
        let (_dir, sb) = sandboxes();
        let base = sb.host_dir(&host()).unwrap();
        std::fs::create_dir_all(base.join("opt/app/releases/1.2")).unwrap();
        std::os::unix::fs::symlink("/opt/app/releases/1.2", base.join("opt/app/current")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", base.join("opt/pw")).unwrap();
        assert_eq!(
            sb.resolve(&host(), "/opt/app/current/start.sh").unwrap(),
            base.join("opt/app/releases/1.2/start.sh")
        );
        let pw = sb.resolve(&host(), "/opt/pw").unwrap();
        assert_eq!(pw, base.join("etc/passwd"));
        assert!(pw.starts_with(&base));
    }

    #[test]
    fn symlink_loops_end_in_an_error() {
        let (_dir, sb) = sandboxes();
        let base = sb.host_dir(&host()).unwrap();
        std::os::unix::fs::symlink("b", base.join("a")).unwrap();
        std::os::unix::fs::symlink("a", base.join("b")).unwrap();
        assert!(matches!(
            sb.resolve(&host(), "/a/x"),
            Err(SandboxError::Io { .. })
        ));
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(br"/a\040b\134c"), b"/a b\\c".to_vec());
        assert_eq!(unescape_mountinfo(br"/plain\04"), br"/plain\04".to_vec());
    }
}
