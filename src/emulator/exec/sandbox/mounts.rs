//! The mounts of a sandbox, built by the helper inside its own mount namespace: the
//! read-only binds of this machine's system folders, a private `/dev` with the
//! harmless device nodes, and a `/proc` of the script's PID namespace.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::mount::{MsFlags, mount};
use nix::sys::stat::{Mode, mkdirat};
use nix::sys::statvfs::{FsFlags, statvfs};

use crate::emulator::exec::sandbox::error::{SetupError, io_step, step};

/// Device nodes a script may need; bound from this machine's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The `/proc/self/fd` path of `fd`: mounting onto it mounts onto the very folder the
/// fd was opened on, so a symlink swapped in by a script cannot redirect the mount.
pub(super) fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Creates `name` in the host folder if missing and opens it without following
/// symlinks: a mount point must be a plain folder of the sandbox.
pub(super) fn mount_point(root_fd: &OwnedFd, name: &str) -> Result<OwnedFd, SetupError> {
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

pub(super) fn remount_read_only(target: &str, source: &Path) -> Result<(), SetupError> {
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
pub(super) fn bind_read_only(
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
pub(super) fn mount_dev(root: &Path, root_fd: &OwnedFd) -> Result<(), SetupError> {
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
pub(super) fn mount_proc(root: &Path, root_fd: &OwnedFd) -> Result<(), SetupError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(br"/a\040b\134c"), b"/a b\\c".to_vec());
        assert_eq!(unescape_mountinfo(br"/plain\04"), br"/plain\04".to_vec());
    }
}
