//! File pushes between host sandboxes: `REGEX:` and `*` source matching,
//! `[FILESRCIP]` and `[DATE:…]` in target paths, strict and force transfer modes.

use super::exec::HostResult;
use super::sandbox::HostSandboxes;
use crate::job_api::types::HostAddr;

/// Files to fetch from one source host.
#[derive(Debug, Clone)]
pub struct SourceFiles {
    /// The source host.
    pub host: HostAddr,
    /// Absolute paths as written in the request (may hold `REGEX:` or `*`).
    pub files: Vec<String>,
}

/// What to deliver to every target host.
#[derive(Debug, Clone)]
pub struct TransferSpec {
    /// Source hosts and their files.
    pub sources: Vec<SourceFiles>,
    /// Target folder as written (macros unexpanded).
    pub target_path: String,
    /// Rename at the target (`file_target_name`).
    pub target_name: Option<String>,
    /// Strict: a missing target folder fails the host; otherwise it is created.
    pub strict: bool,
    /// Time used for `[DATE:…]`, epoch milliseconds.
    pub now_ms: i64,
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

/// Copies every source file into `target`'s sandbox; a missing source fails the host
/// with status 203.
pub async fn transfer_to_host(
    _sandboxes: &HostSandboxes,
    _target: &HostAddr,
    _spec: &TransferSpec,
) -> (HostResult, Vec<FileLogEntry>) {
    unimplemented!("emulator file transfer")
}
