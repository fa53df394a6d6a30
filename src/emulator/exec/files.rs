//! File pushes between host sandboxes: `REGEX:` and `*` source matching,
//! `[FILESRCIP]` and `[DATE:…]` in target paths, strict and force transfer modes.
//!
//! Every path, on the source hosts as on the target, goes through
//! [`HostSandboxes::resolve`], so a push reads and writes only inside host folders.
//! Bytes are really copied; the file logs are written in JOB's line format, one upload
//! entry (mode 0) for the source and one download entry (mode 1) for the target per
//! file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use regex::Regex;

use crate::emulator::exec::sandbox::{HostSandboxes, SandboxError};
use crate::emulator::exec::script::{log_time, now_ms};
use crate::emulator::model::host_result::{FileLogEntry, HostResult};
use crate::job_api::types::{HostAddr, host_status};

/// Why a target folder could not be had or its path expanded; the text goes into the
/// file log of every file meant for it.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The sandbox refused the path.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Something other than a folder is in the way.
    #[error("target path `{folder}` on host {host} is not a folder")]
    NotAFolder {
        /// The folder as written on the host.
        folder: String,
        /// The target host.
        host: HostAddr,
    },
    /// Strict mode and no such folder.
    #[error("target folder `{folder}` does not exist on host {host} (strict transfer mode)")]
    NoFolder {
        /// The folder as written on the host.
        folder: String,
        /// The target host.
        host: HostAddr,
    },
    /// The target folder could not be created.
    #[error("cannot create target folder `{folder}` on host {host}: {source}")]
    CreateFolder {
        /// The folder as written on the host.
        folder: String,
        /// The target host.
        host: HostAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A folder inside a copied tree could not be created.
    #[error("cannot create `{dest}` on host {host}: {source}")]
    CreateDir {
        /// The folder as written on the host.
        dest: String,
        /// The target host.
        host: HostAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `[DATE:…]` with a time local time cannot show.
    #[error("time {0} ms cannot be shown in local time")]
    Time(i64),
    /// `[DATE:…]` / `[DATEFMT:…]` with a pattern chrono refuses.
    #[error("invalid date pattern `{0}`")]
    DatePattern(String),
}

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

/// File-log `mode`: the source side.
pub const MODE_UPLOAD: u8 = 0;
/// File-log `mode`: the target side.
pub const MODE_DOWNLOAD: u8 = 1;
/// File-log `status`: success.
pub const FILE_SUCCESS: u8 = 4;
/// File-log `status`: failed.
pub const FILE_FAILED: u8 = 5;

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
        (push.status, push.entries)
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

/// Why a source pattern gave no files.
enum SourceError {
    /// Nothing exists at the path, or nothing matches the pattern (203).
    Missing,
    /// Refused or unreadable (202).
    Failed(String),
}

impl From<SandboxError> for SourceError {
    fn from(e: SandboxError) -> Self {
        SourceError::Failed(e.to_string())
    }
}

/// One push to one target host, accumulating its file log and status.
struct Push<'a> {
    sb: &'a HostSandboxes,
    target: &'a HostAddr,
    spec: &'a TransferSpec,
    entries: Vec<FileLogEntry>,
    status: u16,
}

impl<'a> Push<'a> {
    fn new(sb: &'a HostSandboxes, target: &'a HostAddr, spec: &'a TransferSpec) -> Self {
        Push {
            sb,
            target,
            spec,
            entries: Vec::new(),
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
                            self.download_failed(
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
                    self.download_failed(&source.host, file, &folder, &reason);
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
                        self.upload_failed(&source.host, pattern, &reason);
                        self.download_failed(&source.host, pattern, &folder, &reason);
                        self.fail_with(host_status::SOURCE_FILE_NOT_EXIST);
                    }
                    Err(SourceError::Failed(reason)) => {
                        let reason = format!(
                            "cannot read source `{pattern}` on host {}: {reason}",
                            source.host
                        );
                        self.upload_failed(&source.host, pattern, &reason);
                        self.download_failed(&source.host, pattern, &folder, &reason);
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
                    self.download_failed(src_host, src_path, folder, &reason);
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
                self.upload_failed(src_host, src_path, &reason);
                self.download_failed(src_host, src_path, dest, &reason);
                self.fail_with(host_status::FILE_TRANSFER_FAILED);
                return;
            }
        };
        let meta = match std::fs::metadata(&real) {
            Ok(meta) => meta,
            Err(e) => {
                let reason = format!("cannot read `{src_path}` on host {src_host}: {e}");
                self.upload_failed(src_host, src_path, &reason);
                self.download_failed(src_host, src_path, dest, &reason);
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
            self.upload_failed(src_host, src_path, &reason);
            self.download_failed(src_host, src_path, dest, &reason);
            self.fail_with(host_status::FILE_TRANSFER_FAILED);
            return;
        }
        if depth >= MAX_TREE_DEPTH {
            let reason = format!("`{src_path}` on host {src_host} nests too deep (symlink loop?)");
            self.download_failed(src_host, src_path, dest, &reason);
            self.fail_with(host_status::FILE_TRANSFER_FAILED);
            return;
        }
        if let Err(reason) = self.make_dir(dest) {
            self.download_failed(src_host, src_path, dest, &reason.to_string());
            self.fail_with(host_status::FILE_TRANSFER_FAILED);
            return;
        }
        let names = match sorted_names(&real) {
            Ok(names) => names,
            Err(e) => {
                let reason = format!("cannot list `{src_path}` on host {src_host}: {e}");
                self.upload_failed(src_host, src_path, &reason);
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
                std::fs::copy(real, &dest_real)
                    .map_err(|e| format!("cannot write `{dest}` on host {}: {e}", self.target))
            });
        match copied {
            Ok(bytes) => {
                let elapsed = started.elapsed().as_secs_f64();
                self.copied(src_host, src_path, dest, bytes, elapsed);
            }
            Err(reason) => {
                self.download_failed(src_host, src_path, dest, &reason);
                self.fail_with(host_status::FILE_TRANSFER_FAILED);
            }
        }
    }

    fn copied(&mut self, src_host: &HostAddr, src_path: &str, dest: &str, bytes: u64, secs: f64) {
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

    fn upload_failed(&mut self, src_host: &HostAddr, src_path: &str, reason: &str) {
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

    fn download_failed(&mut self, src_host: &HostAddr, src_path: &str, dest: &str, reason: &str) {
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

/// The last component of a host path (`/data/dir/` → `dir`).
fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// `folder` + `/` + `name` in host terms, whether or not `folder` ends with a slash.
fn join_host(folder: &str, name: &str) -> String {
    format!("{}/{name}", folder.trim_end_matches('/'))
}

fn sorted_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The host paths a source pattern names on `host`, sorted:
/// - `…/REGEX:<re>`: names in that folder that `re` matches in full;
/// - a component with `*` or `?`: a shell-style glob in its folder (a leading dot is
///   matched only by a pattern starting with a dot, as in a shell);
/// - otherwise the path itself, which must exist (a folder is pushed with its content).
fn match_sources(
    sb: &HostSandboxes,
    host: &HostAddr,
    pattern: &str,
) -> Result<Vec<String>, SourceError> {
    if let Some(at) = pattern.find("REGEX:") {
        let (folder, expr) = (&pattern[..at], &pattern[at + "REGEX:".len()..]);
        let re = Regex::new(&format!("^(?:{expr})$"))
            .map_err(|e| SourceError::Failed(format!("invalid REGEX `{expr}`: {e}")))?;
        let names = list_folder(sb, host, folder)?;
        let found: Vec<String> = names
            .into_iter()
            .filter(|name| re.is_match(name))
            .map(|name| join_host(folder, &name))
            .collect();
        return if found.is_empty() {
            Err(SourceError::Missing)
        } else {
            Ok(found)
        };
    }
    if !pattern.contains(['*', '?']) {
        let real = sb.resolve(host, pattern)?;
        if std::fs::symlink_metadata(&real).is_err() {
            return Err(SourceError::Missing);
        }
        let path = pattern.trim_end_matches('/');
        return Ok(vec![if path.is_empty() {
            "/".into()
        } else {
            path.into()
        }]);
    }
    if !pattern.starts_with('/') {
        return Err(SourceError::Failed("not an absolute path".into()));
    }
    // Expand component by component, so `/data/*/logs/*.log` works too.
    let mut found = vec![String::new()];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        if part.contains(['*', '?']) {
            let glob = Glob::new(part);
            for folder in &found {
                let folder = if folder.is_empty() { "/" } else { folder };
                let Ok(names) = list_folder(sb, host, folder) else {
                    continue;
                };
                next.extend(
                    names
                        .into_iter()
                        .filter(|name| glob.is_match(name))
                        .map(|name| join_host(folder, &name)),
                );
            }
        } else {
            next = found.iter().map(|folder| join_host(folder, part)).collect();
        }
        found = next;
    }
    let mut existing = Vec::new();
    for path in found {
        let real = sb.resolve(host, &path)?;
        if std::fs::symlink_metadata(&real).is_ok() {
            existing.push(path);
        }
    }
    if existing.is_empty() {
        Err(SourceError::Missing)
    } else {
        Ok(existing)
    }
}

/// The entry names of a folder on `host`; a missing folder is a missing source.
fn list_folder(
    sb: &HostSandboxes,
    host: &HostAddr,
    folder: &str,
) -> Result<Vec<String>, SourceError> {
    let real: PathBuf = sb.resolve(host, folder)?;
    if !real.is_dir() {
        return Err(SourceError::Missing);
    }
    sorted_names(&real).map_err(|e| SourceError::Failed(e.to_string()))
}

/// A shell glob for one name: `*` any run, `?` one character, the rest literal; a
/// leading dot must be matched explicitly, as in a shell.
struct Glob {
    re: Regex,
    dot: bool,
}

impl Glob {
    fn new(glob: &str) -> Self {
        let mut re = String::from("^");
        for ch in glob.chars() {
            match ch {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                other => re.push_str(&regex::escape(other.encode_utf8(&mut [0; 4]))),
            }
        }
        re.push('$');
        Glob {
            // Every character is escaped or a plain wildcard: the regex is always valid.
            re: Regex::new(&re).unwrap_or_else(|_| Regex::new("^$").expect("valid")),
            dot: glob.starts_with('.'),
        }
    }

    fn is_match(&self, name: &str) -> bool {
        (self.dot || !name.starts_with('.')) && self.re.is_match(name)
    }
}

/// Expands the target-path macros for one source host: `[FILESRCIP]` →
/// `<cloud>_<ip>`, `[DATE:<java pattern>]` and `[DATEFMT:<strftime>]` → `now_ms` in
/// local time. Other bracketed text is left as written.
pub fn expand_target_path(
    path: &str,
    source: &HostAddr,
    now_ms: i64,
) -> Result<String, TransferError> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let inner = &after[..close];
        if inner == "FILESRCIP" {
            out.push_str(&source.folder_name());
        } else if let Some(pattern) = inner.strip_prefix("DATEFMT:") {
            out.push_str(&format_time(now_ms, pattern)?);
        } else if let Some(pattern) = inner.strip_prefix("DATE:") {
            out.push_str(&format_time(now_ms, &java_to_strftime(pattern))?);
        } else {
            out.push('[');
            out.push_str(inner);
            out.push(']');
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn format_time(now_ms: i64, strftime: &str) -> Result<String, TransferError> {
    use chrono::TimeZone;
    let time = chrono::Local
        .timestamp_millis_opt(now_ms)
        .single()
        .ok_or(TransferError::Time(now_ms))?;
    let mut out = String::new();
    // Formatting an invalid specifier reports an error here instead of panicking.
    write!(out, "{}", time.format(strftime))
        .map_err(|_| TransferError::DatePattern(strftime.to_owned()))?;
    Ok(out)
}

/// Translates a Java date pattern (`yyyy-MM-dd_HH:mm:ss.SSS`) to chrono's strftime.
/// Letters Java would interpret but chrono cannot are kept literally; `'…'` quotes
/// literal text as in Java.
pub fn java_to_strftime(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let literal = |out: &mut String, ch: char| {
        if ch == '%' {
            out.push_str("%%");
        } else {
            out.push(ch);
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if ch == '\'' {
            // '' is a quote; 'text' is literal text.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        out.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                literal(&mut out, chars[i]);
                i += 1;
            }
            continue;
        }
        if !ch.is_ascii_alphabetic() {
            literal(&mut out, ch);
            i += 1;
            continue;
        }
        let mut run = 1;
        while chars.get(i + run) == Some(&ch) {
            run += 1;
        }
        let spec = match (ch, run) {
            ('y' | 'u', 2) => "%y",
            ('y' | 'u', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', _) => "%3f",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('a', _) => "%p",
            ('Z', _) => "%z",
            ('z', _) => "%Z",
            _ => "",
        };
        if spec.is_empty() {
            for _ in 0..run {
                literal(&mut out, ch);
            }
        } else {
            out.push_str(spec);
        }
        i += run;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::exec::sandbox::Isolation;

    fn host(text: &str) -> HostAddr {
        HostAddr::parse(text).unwrap()
    }

    /// 2021-06-28 11:32:16.789 in local time, as epoch ms.
    fn local_ms() -> i64 {
        use chrono::TimeZone;
        chrono::Local
            .with_ymd_and_hms(2021, 6, 28, 11, 32, 16)
            .single()
            .unwrap()
            .timestamp_millis()
            + 789
    }

    #[test]
    fn java_patterns_translate() {
        assert_eq!(java_to_strftime("yyyy-MM-dd_HH:mm:ss"), "%Y-%m-%d_%H:%M:%S");
        assert_eq!(java_to_strftime("yyyyMMddHHmmssSSS"), "%Y%m%d%H%M%S%3f");
        assert_eq!(java_to_strftime("yy/M/d"), "%y/%-m/%-d");
        assert_eq!(java_to_strftime("'day' dd '' 100%"), "day %d ' 100%%");
    }

    #[test]
    fn macros_expand() {
        let src = host("3:10.0.0.9");
        let now = local_ms();
        assert_eq!(
            expand_target_path("/data/logs/[FILESRCIP]/", &src, now).unwrap(),
            "/data/logs/3_10.0.0.9/"
        );
        assert_eq!(
            expand_target_path("/bak/[DATE:yyyy-MM-dd_HH:mm:ss]/x", &src, now).unwrap(),
            "/bak/2021-06-28_11:32:16/x"
        );
        assert_eq!(
            expand_target_path("/bak/[DATE:yyyyMMddHHmmssSSS]", &src, now).unwrap(),
            "/bak/20210628113216789"
        );
        assert_eq!(
            expand_target_path("/bak/[DATEFMT:%Y.%m.%d]/[FILESRCIP]", &src, now).unwrap(),
            "/bak/2021.06.28/3_10.0.0.9"
        );
        assert_eq!(
            expand_target_path("/keep/[OTHER]/[unclosed", &src, now).unwrap(),
            "/keep/[OTHER]/[unclosed"
        );
        assert!(expand_target_path("/bad/[DATEFMT:%Q%]", &src, now).is_err());
    }

    #[test]
    fn sizes_print_like_job() {
        assert_eq!(size_text(9), "9.0 Bytes");
        assert_eq!(size_text(1536), "1.5 KB");
        assert_eq!(size_text(3 * 1024 * 1024), "3.0 MB");
    }

    #[test]
    fn globs_match_names_like_a_shell() {
        let re = Glob::new("app-*.log");
        assert!(re.is_match("app-1.log"));
        assert!(re.is_match("app-.log"));
        assert!(!re.is_match("app-1.log.gz"));
        assert!(!re.is_match("xapp-1.log"));
        let re = Glob::new("*.txt");
        assert!(re.is_match("a.txt"));
        assert!(!re.is_match(".hidden.txt"));
        assert!(Glob::new(".*").is_match(".hidden"));
        assert!(Glob::new("a?c").is_match("abc"));
        assert!(!Glob::new("a?c").is_match("abbc"));
    }

    fn seeded() -> (tempfile::TempDir, HostSandboxes, HostAddr) {
        let dir = tempfile::tempdir().unwrap();
        let sb = HostSandboxes::new(dir.path(), Isolation::Unisolated).unwrap();
        let h = host("0:10.0.0.1");
        let base = sb.host_dir(&h).unwrap();
        std::fs::create_dir_all(base.join("data/sub")).unwrap();
        for name in ["a.txt", "b.txt", "c.log", ".h.txt", "sub/d.txt"] {
            std::fs::write(base.join("data").join(name), name).unwrap();
        }
        (dir, sb, h)
    }

    fn matches(sb: &HostSandboxes, h: &HostAddr, pattern: &str) -> Option<Vec<String>> {
        match match_sources(sb, h, pattern) {
            Ok(found) => Some(found),
            Err(SourceError::Missing) => None,
            Err(SourceError::Failed(reason)) => panic!("{pattern}: {reason}"),
        }
    }

    #[test]
    fn source_patterns_match() {
        let (_dir, sb, h) = seeded();
        assert_eq!(
            matches(&sb, &h, "/data/REGEX:[a-z]\\.txt").unwrap(),
            vec!["/data/a.txt", "/data/b.txt"]
        );
        // Full match: `txt` alone does not match `a.txt`.
        assert_eq!(matches(&sb, &h, "/data/REGEX:txt"), None);
        assert_eq!(
            matches(&sb, &h, "/data/*.txt").unwrap(),
            vec!["/data/a.txt", "/data/b.txt"]
        );
        assert_eq!(
            matches(&sb, &h, "/data/*/d.txt").unwrap(),
            vec!["/data/sub/d.txt"]
        );
        assert_eq!(matches(&sb, &h, "/data/sub/").unwrap(), vec!["/data/sub"]);
        assert_eq!(
            matches(&sb, &h, "/data/c.log").unwrap(),
            vec!["/data/c.log"]
        );
        assert_eq!(matches(&sb, &h, "/data/none.log"), None);
        assert_eq!(matches(&sb, &h, "/data/*.gz"), None);
        assert_eq!(matches(&sb, &h, "/nowhere/REGEX:.*"), None);
        assert!(matches!(
            match_sources(&sb, &h, "/data/../../x"),
            Err(SourceError::Failed(_))
        ));
        assert!(matches!(
            match_sources(&sb, &h, "/data/REGEX:(["),
            Err(SourceError::Failed(_))
        ));
    }

    #[test]
    fn paths_join_and_name() {
        assert_eq!(join_host("/tmp/", "a"), "/tmp/a");
        assert_eq!(join_host("/tmp", "a"), "/tmp/a");
        assert_eq!(join_host("/", "a"), "/a");
        assert_eq!(base_name("/data/dir/"), "dir");
        assert_eq!(base_name("/data/x.log"), "x.log");
    }
}
