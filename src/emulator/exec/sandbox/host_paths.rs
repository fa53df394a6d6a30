//! Host folders: [`HostSandboxes`] keeps one folder per emulated host under
//! `<root>/hosts/<cloud>_<ip>/` and maps a host's absolute paths into it without any
//! way out.
//!
//! Path mapping follows what a script inside the sandbox sees: the host folder is `/`,
//! so an absolute symlink target (`/opt/app/current -> /opt/app/releases/1.2`, written
//! by a runbook script) is read as a path on the same host, never on this machine. A
//! relative symlink that climbs above the host's `/` is refused.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;

use crate::emulator::exec::sandbox::agents::HostAgents;
use crate::emulator::exec::sandbox::error::SandboxError;
use crate::emulator::exec::sandbox::isolation::{Isolation, probe_namespace};
use crate::job_api::types::HostAddr;

/// Symlinks followed while resolving one path before giving up, as the kernel's
/// `MAXSYMLINKS`.
const MAX_SYMLINK_HOPS: usize = 40;

/// The sandbox folders of all emulated hosts.
#[derive(Debug, Clone)]
pub struct HostSandboxes {
    root: PathBuf,
    isolation: Isolation,
    /// One executor per host when namespaces isolate scripts.
    agents: Option<Arc<HostAgents>>,
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
        let agents = match &isolation {
            Isolation::Namespace { helper } => {
                probe_namespace(&root, helper)?;
                Some(Arc::new(HostAgents::new(helper)))
            }
            Isolation::Unisolated => None,
        };
        Ok(HostSandboxes {
            root,
            isolation,
            agents,
        })
    }

    /// The hosts' executors, when scripts run in namespaces.
    pub fn agents(&self) -> Option<&HostAgents> {
        self.agents.as_deref()
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
}
