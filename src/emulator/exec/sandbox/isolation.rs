//! How scripts are isolated: [`Isolation`] chooses between a namespace built by this
//! very binary and plain child processes (`--unisolated`), and a probe proves at
//! start-up that the namespace can be had.

use std::path::{Path, PathBuf};

use crate::emulator::exec::sandbox::error::SandboxError;
use crate::emulator::exec::sandbox::launch::{SANDBOX_PATH, helper_command};

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

/// Runs the helper once with `true` in a scratch folder, so a machine without
/// namespaces is refused at start-up rather than failing every script later.
pub(super) fn probe_namespace(root: &Path, helper: &Path) -> Result<(), SandboxError> {
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
