//! Host sandboxes: one folder per emulated host under `<root>/hosts/<cloud>_<ip>/`, and
//! the mapping of a host's absolute paths into it without any way out.

use std::path::{Path, PathBuf};

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

/// The sandbox folders of all emulated hosts.
#[derive(Debug, Clone)]
pub struct HostSandboxes {
    root: PathBuf,
    isolation: Isolation,
}

impl HostSandboxes {
    /// Sandboxes under `root` (created if missing); checks that `isolation` works.
    pub fn new(root: &Path, isolation: Isolation) -> Result<Self, SandboxError> {
        Ok(HostSandboxes {
            root: root.to_path_buf(),
            isolation,
        })
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
    pub fn host_dir(&self, _host: &HostAddr) -> Result<PathBuf, SandboxError> {
        unimplemented!("sandbox host folders")
    }

    /// Maps an absolute path on `host` into its folder; refuses `..` and symlinks that
    /// would leave it.
    pub fn resolve(&self, _host: &HostAddr, _path: &str) -> Result<PathBuf, SandboxError> {
        unimplemented!("sandbox path mapping")
    }
}

/// Entry point of `baton __sandbox-exec --root DIR -- PROGRAM ARGS...`: enters a new
/// mount namespace whose `/` is `root` and replaces the process with `command`.
/// Returns only on failure.
pub fn exec_main(
    _root: &Path,
    _command: &[String],
) -> Result<std::process::ExitCode, crate::error::Error> {
    unimplemented!("sandbox exec helper")
}
