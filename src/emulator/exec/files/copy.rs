//! File pushes between host sandboxes: [`transfer_to_host`] copies what a
//! [`TransferSpec`] names into one target host's sandbox, checking (strict) or creating
//! (force) the target folder, and decides the host's status from the first failure.
//!
//! Every path, on the source hosts as on the target, goes through
//! [`HostSandboxes::resolve`], so a push reads and writes only inside host folders.
//! Bytes are really copied; each file leaves its entries in the host's file log.

use std::path::Path;
use std::time::Instant;

use crate::emulator::exec::files::error::TransferError;
use crate::emulator::exec::files::file_log::{FILE_FAILED, FileLog, MODE_DOWNLOAD, size_text};
use crate::emulator::exec::files::sources::{
    SourceError, base_name, join_host, match_sources, sorted_names,
};
use crate::emulator::exec::files::target_path::expand_target_path;
use crate::emulator::exec::sandbox::host_paths::HostSandboxes;
use crate::emulator::exec::script::{log_time, now_ms};
use crate::emulator::model::host_result::{FileLogEntry, HostResult};
use crate::job_api::types::{HostAddr, host_status};

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

/// Folder levels followed below a pushed folder; symlinks inside a pushed tree may
/// loop back to an ancestor, and this is where the copy gives up.
const MAX_TREE_DEPTH: usize = 64;

/// Copies every source file into `target`'s sandbox; a missing source fails the host
/// with status 203.
pub async fn transfer_to_host(
    sandboxes: &HostSandboxes,
    target: &HostAddr,
    spec: &TransferSpec,
) -> (HostResult, Vec<FileLogEntry>) {
    let start_ms = now_ms();
    let (sb, tgt, job) = (sandboxes.clone(), target.clone(), spec.clone());
    // Copying is blocking file-system work: keep it off the async workers.
    let outcome = tokio::task::spawn_blocking(move || {
        let mut push = Push::new(&sb, &tgt, &job);
        push.run();
        (push.status, push.log.into_entries())
    })
    .await;
    let (status, entries) = match outcome {
        Ok(done) => done,
        Err(e) => (
            host_status::FILE_TRANSFER_FAILED,
            vec![FileLogEntry {
                mode: MODE_DOWNLOAD,
                src_host: target.clone(),
                src_path: String::new(),
                dest_host: Some(target.clone()),
                dest_path: Some(spec.target_path.clone()),
                status: FILE_FAILED,
                log_content: format!("[{}] the file transfer crashed: {e}", log_time()),
                size: size_text(0),
                speed: "0 KB/s".into(),
                process: "0%".into(),
            }],
        ),
    };
    let log = entries
        .iter()
        .filter(|entry| entry.mode == MODE_DOWNLOAD)
        .map(|entry| format!("{}\n", entry.log_content))
        .collect();
    let result = HostResult {
        status,
        exit_code: None,
        log,
        tag: String::new(),
        start_ms,
        end_ms: now_ms(),
    };
    (result, entries)
}

/// One push to one target host, accumulating its file log and status.
struct Push<'a> {
    sb: &'a HostSandboxes,
    target: &'a HostAddr,
    spec: &'a TransferSpec,
    log: FileLog<'a>,
    status: u16,
}

impl<'a> Push<'a> {
    fn new(sb: &'a HostSandboxes, target: &'a HostAddr, spec: &'a TransferSpec) -> Self {
        Push {
            sb,
            target,
            spec,
            log: FileLog::new(target),
            status: host_status::SUCCESS,
        }
    }

    /// The first failure decides the host's status.
    fn fail_with(&mut self, code: u16) {
        if self.status == host_status::SUCCESS {
            self.status = code;
        }
    }

    fn run(&mut self) {
        for source in &self.spec.sources {
            // `[FILESRCIP]` makes the folder depend on the source host.
            let folder =
                match expand_target_path(&self.spec.target_path, &source.host, self.spec.now_ms) {
                    Ok(folder) => folder,
                    Err(reason) => {
                        let reason = reason.to_string();
                        for file in &source.files {
                            self.log.download_failed(
                                &source.host,
                                file,
                                &self.spec.target_path,
                                &reason,
                            );
                        }
                        self.fail_with(host_status::FILE_TRANSFER_FAILED);
                        continue;
                    }
                };
            if let Err(reason) = self.prepare_folder(&folder) {
                let reason = reason.to_string();
                for file in &source.files {
                    self.log
                        .download_failed(&source.host, file, &folder, &reason);
                }
                self.fail_with(host_status::FILE_TRANSFER_FAILED);
                continue;
            }
            for pattern in &source.files {
                match match_sources(self.sb, &source.host, pattern) {
                    Ok(paths) => {
                        for path in paths {
                            self.push_match(&source.host, &path, &folder);
                        }
                    }
                    Err(SourceError::Missing) => {
                        let reason = format!(
                            "source file `{pattern}` does not exist on host {}",
                            source.host
                        );
                        self.log.upload_failed(&source.host, pattern, &reason);
                        self.log
                            .download_failed(&source.host, pattern, &folder, &reason);
                        self.fail_with(host_status::SOURCE_FILE_NOT_EXIST);
                    }
                    Err(SourceError::Failed(reason)) => {
                        let reason = format!(
                            "cannot read source `{pattern}` on host {}: {reason}",
                            source.host
                        );
                        self.log.upload_failed(&source.host, pattern, &reason);
                        self.log
                            .download_failed(&source.host, pattern, &folder, &reason);
                        self.fail_with(host_status::FILE_TRANSFER_FAILED);
                    }
                }
            }
        }
    }

    /// Checks (strict) or creates (force) the target folder.
    fn prepare_folder(&self, folder: &str) -> Result<(), TransferError> {
        let real = self.sb.resolve(self.target, folder)?;
        if real.is_dir() {
            return Ok(());
        }
        if real.exists() {
            return Err(TransferError::NotAFolder {
                folder: folder.to_owned(),
                host: self.target.clone(),
            });
        }
        if self.spec.strict {
            return Err(TransferError::NoFolder {
                folder: folder.to_owned(),
                host: self.target.clone(),
            });
        }
        std::fs::create_dir_all(&real).map_err(|source| TransferError::CreateFolder {
            folder: folder.to_owned(),
            host: self.target.clone(),
            source,
        })
    }

    /// Copies one matched source path (a file, or a folder with everything in it).
    fn push_match(&mut self, src_host: &HostAddr, src_path: &str, folder: &str) {
        let name = match &self.spec.target_name {
            Some(name) => {
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    let reason = format!("invalid target file name `{name}`");
                    self.log
                        .download_failed(src_host, src_path, folder, &reason);
                    self.fail_with(host_status::FILE_TRANSFER_FAILED);
                    return;
                }
                name.clone()
            }
            None => base_name(src_path).to_owned(),
        };
        let dest = join_host(folder, &name);
        self.copy_tree(src_host, src_path, &dest, 0);
    }

    fn copy_tree(&mut self, src_host: &HostAddr, src_path: &str, dest: &str, depth: usize) {
        let real = match self.sb.resolve(src_host, src_path) {
            Ok(real) => real,
            Err(e) => {
                let reason = e.to_string();
                self.log.upload_failed(src_host, src_path, &reason);
                self.log.download_failed(src_host, src_path, dest, &reason);
                self.fail_with(host_status::FILE_TRANSFER_FAILED);
                return;
            }
        };
        let meta = match std::fs::metadata(&real) {
            Ok(meta) => meta,
            Err(e) => {
                let reason = format!("cannot read `{src_path}` on host {src_host}: {e}");
                self.log.upload_failed(src_host, src_path, &reason);
                self.log.download_failed(src_host, src_path, dest, &reason);
                self.fail_with(host_status::FILE_TRANSFER_FAILED);
                return;
            }
        };
        if meta.is_file() {
            self.copy_file(src_host, src_path, &real, dest);
            return;
        }
        if !meta.is_dir() {
            // Reading a FIFO or device would hang or never end.
            let reason = format!("`{src_path}` on host {src_host} is not a regular file");
            self.log.upload_failed(src_host, src_path, &reason);
            self.log.download_failed(src_host, src_path, dest, &reason);
            self.fail_with(host_status::FILE_TRANSFER_FAILED);
            return;
        }
        if depth >= MAX_TREE_DEPTH {
            let reason = format!("`{src_path}` on host {src_host} nests too deep (symlink loop?)");
            self.log.download_failed(src_host, src_path, dest, &reason);
            self.fail_with(host_status::FILE_TRANSFER_FAILED);
            return;
        }
        if let Err(reason) = self.make_dir(dest) {
            self.log
                .download_failed(src_host, src_path, dest, &reason.to_string());
            self.fail_with(host_status::FILE_TRANSFER_FAILED);
            return;
        }
        let names = match sorted_names(&real) {
            Ok(names) => names,
            Err(e) => {
                let reason = format!("cannot list `{src_path}` on host {src_host}: {e}");
                self.log.upload_failed(src_host, src_path, &reason);
                self.fail_with(host_status::FILE_TRANSFER_FAILED);
                return;
            }
        };
        for name in names {
            self.copy_tree(
                src_host,
                &join_host(src_path, &name),
                &join_host(dest, &name),
                depth + 1,
            );
        }
    }

    fn make_dir(&self, dest: &str) -> Result<(), TransferError> {
        let real = self.sb.resolve(self.target, dest)?;
        if real.is_dir() {
            return Ok(());
        }
        std::fs::create_dir(&real).map_err(|source| TransferError::CreateDir {
            dest: dest.to_owned(),
            host: self.target.clone(),
            source,
        })
    }

    fn copy_file(&mut self, src_host: &HostAddr, src_path: &str, real: &Path, dest: &str) {
        let started = Instant::now();
        let copied = self
            .sb
            .resolve(self.target, dest)
            .map_err(|e| e.to_string())
            .and_then(|dest_real| {
                if dest_real.is_dir() {
                    return Err(format!(
                        "`{dest}` on host {} is a folder; cannot write a file over it",
                        self.target
                    ));
                }
                if same_file(real, &dest_real) {
                    // A file pushed onto itself (source host among the targets, same
                    // folder) stays as it is; copying would truncate it first.
                    return std::fs::metadata(real)
                        .map(|m| m.len())
                        .map_err(|e| format!("cannot read `{src_path}` on host {src_host}: {e}"));
                }
                std::fs::copy(real, &dest_real)
                    .map_err(|e| format!("cannot write `{dest}` on host {}: {e}", self.target))
            });
        match copied {
            Ok(bytes) => {
                let elapsed = started.elapsed().as_secs_f64();
                self.log.copied(src_host, src_path, dest, bytes, elapsed);
            }
            Err(reason) => {
                self.log.download_failed(src_host, src_path, dest, &reason);
                self.fail_with(host_status::FILE_TRANSFER_FAILED);
            }
        }
    }
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
