//! The per-host file log of a push, in JOB's line format: [`FileLog`] gathers one
//! upload entry (mode 0) for the source side and one download entry (mode 1) for the
//! target side per file, each with JOB's status, size, speed and progress texts.

use crate::emulator::exec::script::log_time;
use crate::emulator::model::host_result::FileLogEntry;
use crate::job_api::types::HostAddr;

/// File-log `mode`: the source side.
pub const MODE_UPLOAD: u8 = 0;
/// File-log `mode`: the target side.
pub const MODE_DOWNLOAD: u8 = 1;
/// File-log `status`: success.
pub const FILE_SUCCESS: u8 = 4;
/// File-log `status`: failed.
pub const FILE_FAILED: u8 = 5;

/// The file-log entries of one push to one target host.
pub(super) struct FileLog<'a> {
    target: &'a HostAddr,
    entries: Vec<FileLogEntry>,
}

impl<'a> FileLog<'a> {
    pub(super) fn new(target: &'a HostAddr) -> Self {
        FileLog {
            target,
            entries: Vec::new(),
        }
    }

    pub(super) fn into_entries(self) -> Vec<FileLogEntry> {
        self.entries
    }

    pub(super) fn copied(
        &mut self,
        src_host: &HostAddr,
        src_path: &str,
        dest: &str,
        bytes: u64,
        secs: f64,
    ) {
        let size = size_text(bytes);
        // JOB reports whole KB/s; a transfer is never timed below a second.
        let speed = format!("{} KB/s", ((bytes as f64 / 1024.0) / secs.max(1.0)).ceil());
        let upload_state = "source agent success upload file";
        let download_state = "dest agent success download file";
        self.entries.push(FileLogEntry {
            mode: MODE_UPLOAD,
            src_host: src_host.clone(),
            src_path: src_path.to_owned(),
            dest_host: None,
            dest_path: None,
            status: FILE_SUCCESS,
            log_content: log_line(src_path, &size, upload_state, &speed, "100%", "success"),
            size: size.clone(),
            speed: speed.clone(),
            process: "100%".into(),
        });
        self.entries.push(FileLogEntry {
            mode: MODE_DOWNLOAD,
            src_host: src_host.clone(),
            src_path: src_path.to_owned(),
            dest_host: Some(self.target.clone()),
            dest_path: Some(dest.to_owned()),
            status: FILE_SUCCESS,
            log_content: log_line(dest, &size, download_state, &speed, "100%", "success"),
            size,
            speed,
            process: "100%".into(),
        });
    }

    pub(super) fn upload_failed(&mut self, src_host: &HostAddr, src_path: &str, reason: &str) {
        self.entries.push(FileLogEntry {
            mode: MODE_UPLOAD,
            src_host: src_host.clone(),
            src_path: src_path.to_owned(),
            dest_host: None,
            dest_path: None,
            status: FILE_FAILED,
            log_content: log_line(
                src_path,
                &size_text(0),
                "source agent upload file failed",
                "0 KB/s",
                "0%",
                reason,
            ),
            size: size_text(0),
            speed: "0 KB/s".into(),
            process: "0%".into(),
        });
    }

    pub(super) fn download_failed(
        &mut self,
        src_host: &HostAddr,
        src_path: &str,
        dest: &str,
        reason: &str,
    ) {
        self.entries.push(FileLogEntry {
            mode: MODE_DOWNLOAD,
            src_host: src_host.clone(),
            src_path: src_path.to_owned(),
            dest_host: Some(self.target.clone()),
            dest_path: Some(dest.to_owned()),
            status: FILE_FAILED,
            log_content: log_line(
                src_path,
                &size_text(0),
                "dest agent download file failed",
                "0 KB/s",
                "0%",
                reason,
            ),
            size: size_text(0),
            speed: "0 KB/s".into(),
            process: "0%".into(),
        });
    }
}

/// JOB's file-log line:
/// `[2021-06-28 11:32:16] FileName: /tmp/1.log FileSize: 9.0 Bytes State: … Speed: 1 KB/s Progress: 100% StatusDesc: … Detail: success`.
fn log_line(
    file: &str,
    size: &str,
    state: &str,
    speed: &str,
    progress: &str,
    detail: &str,
) -> String {
    format!(
        "[{}] FileName: {file} FileSize: {size} State: {state} Speed: {speed} Progress: {progress} StatusDesc: {state} Detail: {detail}",
        log_time()
    )
}

/// A size as JOB prints it: `9.0 Bytes`, `1.5 KB`, `3.2 MB`, `1.0 GB`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["Bytes", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_job() {
        assert_eq!(size_text(9), "9.0 Bytes");
        assert_eq!(size_text(1536), "1.5 KB");
        assert_eq!(size_text(3 * 1024 * 1024), "3.0 MB");
    }
}
