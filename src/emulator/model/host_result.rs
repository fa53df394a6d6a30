//! What one host's part of a step produced ([`HostResult`]): its JOB host status, exit
//! code, log and times, and for file steps the file-log entries ([`FileLogEntry`]) that
//! the status and log views read back.

use crate::job_api::types::HostAddr;

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

/// One entry of a v3 file log (`file_logs[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileLogEntry {
    /// 0 upload (source side), 1 download (target side).
    pub mode: u8,
    /// Source host.
    pub src_host: HostAddr,
    /// Source path (the resolved file).
    pub src_path: String,
    /// Target host (download entries).
    pub dest_host: Option<HostAddr>,
    /// Target path (download entries).
    pub dest_path: Option<String>,
    /// 1 waiting, 2 uploading, 3 downloading, 4 success, 5 failed.
    pub status: u8,
    /// Human-readable line in JOB's format.
    pub log_content: String,
    /// Size as JOB prints it (`9.0 Bytes`).
    pub size: String,
    /// Speed as JOB prints it (`1 KB/s`).
    pub speed: String,
    /// Progress (`100%`).
    pub process: String,
}
