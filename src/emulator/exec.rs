//! Runs one script on one emulated host, inside that host's sandbox.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::sandbox::HostSandboxes;
use crate::job_api::types::HostAddr;

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
}

/// The outcome of one host's execution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostResult {
    /// Host status code (`job_api::types::host_status`).
    pub status: u16,
    /// The script's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The host log: stdout and stderr lines with JOB's timestamp prefix.
    pub log: String,
    /// Text set through `job_success` / `job_fail` (empty when none).
    pub tag: String,
    /// Start, epoch milliseconds.
    pub start_ms: i64,
    /// End, epoch milliseconds.
    pub end_ms: i64,
}

/// Runs `run` on `host`; cancelling `cancel` kills the process group (status 403).
pub async fn run_script(
    _sandboxes: &HostSandboxes,
    _host: &HostAddr,
    _run: &ScriptRun,
    _cancel: CancellationToken,
) -> HostResult {
    unimplemented!("emulator script execution")
}
