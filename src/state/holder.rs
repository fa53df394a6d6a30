//! Who holds a plan lock. Every run that asks for a plan lock first writes its own
//! record, `<key>.holders/<pid>.json`, complete and renamed into place, and only then
//! tries the flock on `<key>.lock`. A run that finds the lock held asks the kernel's
//! lock table which pid holds the flock on that inode, reads that pid's record, and
//! checks the record against the living process (its start time, so a reused pid is
//! not taken for a dead run). So the holder named is the live one, never a run that
//! died, and never a record read half-written: the flock cannot be held by a run whose
//! record is not already whole, and a record is removed only after its flock is let go.
//!
//! A record is not fsync'd: its only readers are processes on the same running kernel,
//! which see it as soon as it is renamed; after a power loss its writer is dead, and a
//! record of a dead process is ignored and swept away whatever it holds.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::error::StateError;
use super::procfs;

/// A run that holds, or asks for, a plan lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holder's run id.
    pub run_id: String,
    /// Its process id.
    pub pid: u32,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// The plan file it runs.
    pub plan_path: String,
}

impl Holder {
    /// `run 0197… (pid 4242, started 2026-05-01T02:00:00Z)`.
    pub fn describe(&self) -> String {
        format!(
            "run {} (pid {}, started {})",
            self.run_id, self.pid, self.started_at
        )
    }
}

/// Who holds a plan lock, as far as it can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// The live holder: named by the kernel's lock table, its record checked against
    /// its process.
    Known(Holder),
    /// The kernel names this pid, but it left no valid record: a process other than
    /// baton, or an older baton.
    Unrecorded {
        /// The process holding the flock.
        pid: u32,
    },
    /// The kernel could not name the holder (no readable `/proc/locks`, or the holder
    /// is not visible from here): why, and the live runs that recorded themselves as
    /// asking for this lock, any of which may hold it.
    Unverified {
        /// Why the holder cannot be named.
        why: &'static str,
        /// Live contenders, from their records.
        contenders: Vec<Holder>,
    },
}

impl Held {
    /// The live holder, when known.
    pub fn known(&self) -> Option<&Holder> {
        match self {
            Held::Known(holder) => Some(holder),
            _ => None,
        }
    }

    /// For messages: `run … (pid …, started …)`, or what can honestly be said instead.
    pub fn describe(&self) -> String {
        match self {
            Held::Known(holder) => holder.describe(),
            Held::Unrecorded { pid } => {
                format!("pid {pid}, which left no baton run record (not baton, or an older baton)")
            }
            Held::Unverified { why, contenders } if contenders.is_empty() => {
                format!("another process ({why}; no live baton run recorded itself for this plan)")
            }
            Held::Unverified { why, contenders } => {
                let names: Vec<String> = contenders.iter().map(Holder::describe).collect();
                format!(
                    "another process ({why}; live baton runs that asked for this plan: {})",
                    names.join(", ")
                )
            }
        }
    }
}

/// What a contender writes about itself.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    holder: Holder,
    /// `/proc/<pid>/stat` start time of the writer, when the system has `/proc`.
    #[serde(default)]
    proc_start: Option<u64>,
}

/// The folder of contenders' records beside the lock file `lock_path`.
pub fn records_dir(lock_path: &Path) -> PathBuf {
    let mut name = lock_path
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_default();
    name.push(".holders");
    lock_path.with_file_name(name)
}

fn record_path(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("{pid}.json"))
}

/// Record files this process has written and not yet removed. A process normally asks
/// for a plan lock once at a time; when it asks twice (two open files conflict under
/// flock), the first record stays the one on disk, since it may be the holder's.
static WRITTEN: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn written() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    WRITTEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// This process's record for one plan lock; removed when dropped.
#[derive(Debug)]
pub(super) struct OwnRecord {
    path: Option<PathBuf>,
    text: String,
}

impl OwnRecord {
    /// Writes the record again if it is gone. Called once the lock is taken: a sweep
    /// by the previous holder may have read a dead process's record of this pid just
    /// before this one was renamed over it, and removed this one. Sweeps run only
    /// while the lock is held, so none can follow this call until the lock changes
    /// hands again.
    pub(super) fn restore(&self) {
        if let Some(path) = &self.path
            && !path.exists()
        {
            let _ = write_file(path, &self.text);
        }
    }

    /// Removes the record (once).
    pub(super) fn remove(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(&path);
            written().remove(&path);
        }
    }
}

impl Drop for OwnRecord {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Writes `me`'s record for the lock at `lock_path`: to a temporary file first, then
/// renamed, so a reader finds either no record or a whole one.
pub(super) fn write_own(lock_path: &Path, me: &Holder) -> Result<OwnRecord, StateError> {
    let dir = records_dir(lock_path);
    std::fs::create_dir_all(&dir)
        .map_err(|e| StateError::io("cannot create the lock holders folder", &dir, e))?;
    let path = record_path(&dir, me.pid);
    let record = Record {
        holder: me.clone(),
        proc_start: procfs::process(me.pid).map(|p| p.start),
    };
    let text = serde_json::to_string(&record).map_err(|e| StateError::Corrupt {
        path: path.clone(),
        message: format!("cannot encode the lock holder record: {e}"),
    })?;
    if !written().insert(path.clone()) {
        return Ok(OwnRecord { path: None, text });
    }
    if let Err(e) = write_file(&path, &text) {
        written().remove(&path);
        return Err(StateError::io(
            "cannot write the lock holder record",
            &path,
            e,
        ));
    }
    Ok(OwnRecord {
        path: Some(path),
        text,
    })
}

/// `text` into `path` through a temporary file renamed into place.
fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut temp = path.as_os_str().to_os_string();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let written = File::create(&temp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// The record of `pid` in `dir`, if it is whole and its process is the one that wrote
/// it and still lives.
fn live_record(dir: &Path, pid: u32) -> Option<Holder> {
    let text = std::fs::read_to_string(record_path(dir, pid)).ok()?;
    let record: Record = serde_json::from_str(&text).ok()?;
    (record.holder.pid == pid && is_live(&record)).then_some(record.holder)
}

/// Whether the record's writer is alive: with `/proc`, the pid's process exists, has
/// not exited, and started when the record says; without, the pid answers signal 0.
fn is_live(record: &Record) -> bool {
    if procfs::available() {
        return procfs::process(record.holder.pid)
            .is_some_and(|p| !p.exited && record.proc_start == Some(p.start));
    }
    pid_answers(record.holder.pid)
}

fn pid_answers(pid: u32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    raw > 0 && matches!(kill(Pid::from_raw(raw), None), Ok(()) | Err(Errno::EPERM))
}

fn process_gone(pid: u32) -> bool {
    if procfs::available() {
        return procfs::process(pid).is_none_or(|p| p.exited);
    }
    !pid_answers(pid)
}

/// The live contenders recorded for the lock at `lock_path`.
fn live_contenders(lock_path: &Path) -> Vec<Holder> {
    let dir = records_dir(lock_path);
    let mut live: Vec<Holder> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let pid = name.to_str()?.strip_suffix(".json")?.parse().ok()?;
            live_record(&dir, pid)
        })
        .collect();
    live.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    live
}

/// What a look at the kernel's lock table found for a held lock.
#[derive(Debug)]
pub(super) enum Lookup {
    /// Who holds it.
    Held(Held),
    /// Nobody holds it any more, or its holder's record is gone: it was let go between
    /// the try and the look. Try again.
    Changed(Option<Held>),
}

/// Names the holder of the flock on `file` (the lock file at `lock_path`), which this
/// process has just found held.
pub(super) fn identify(lock_path: &Path, file: &File) -> Lookup {
    let Some(flocks) = procfs::held_flocks() else {
        return Lookup::Held(unverified(
            lock_path,
            "the kernel's lock table /proc/locks cannot be read here, so baton cannot tell which holds it",
        ));
    };
    let Ok(meta) = file.metadata() else {
        return Lookup::Held(unverified(lock_path, "the lock file cannot be examined"));
    };
    let dir = records_dir(lock_path);
    let (major, minor) = (
        nix::sys::stat::major(meta.dev()),
        nix::sys::stat::minor(meta.dev()),
    );
    let on_inode = |f: &&procfs::FlockEntry| f.inode == meta.ino();
    let exact = flocks
        .iter()
        .filter(on_inode)
        .find(|f| f.major == major && f.minor == minor);
    // Some filesystems (btrfs subvolumes, overlayfs) report another device number to
    // stat than the kernel prints for the inode. Then the inode number must match and
    // the pid must have a live record in this lock's own folder, which only a
    // contender for this very lock writes.
    let holder_pid = exact.map(|f| f.pid).or_else(|| {
        flocks
            .iter()
            .filter(on_inode)
            .map(|f| f.pid)
            .find(|pid| live_record(&dir, *pid).is_some())
    });
    match holder_pid {
        None => Lookup::Changed(None),
        Some(pid) => match live_record(&dir, pid) {
            Some(holder) => Lookup::Held(Held::Known(holder)),
            None => Lookup::Changed(Some(Held::Unrecorded { pid })),
        },
    }
}

/// `Held::Unverified` with the live contenders of the lock at `lock_path`.
pub(super) fn unverified(lock_path: &Path, why: &'static str) -> Held {
    Held::Unverified {
        why,
        contenders: live_contenders(lock_path),
    }
}

/// Removes records (and half-written temporaries) left by processes that are gone, or
/// whose pid now names another process. Called only while holding the lock (see
/// [`OwnRecord::restore`] for the one record this can wrongly take).
pub(super) fn sweep(lock_path: &Path) {
    let dir = records_dir(lock_path);
    let own = std::process::id();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = name
            .split_once('.')
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let stale = if name.ends_with(".json") {
            // A record whose pid lives on in another process (reused) is stale too.
            live_record(&dir, pid).is_none()
                && (process_gone(pid) || parses(&entry.path()).is_some())
        } else {
            name.ends_with(".json.tmp") && process_gone(pid)
        };
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn parses(path: &Path) -> Option<Record> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(run: &str, pid: u32) -> Holder {
        Holder {
            run_id: run.into(),
            pid,
            started_at: "2026-05-01T02:00:00Z".into(),
            plan_path: "/plans/release.yaml".into(),
        }
    }

    fn write_record(dir: &Path, holder: &Holder, proc_start: Option<u64>) {
        std::fs::create_dir_all(dir).unwrap();
        let record = Record {
            holder: holder.clone(),
            proc_start,
        };
        std::fs::write(
            record_path(dir, holder.pid),
            serde_json::to_string(&record).unwrap(),
        )
        .unwrap();
    }

    /// A pid that certainly names no process now: a child that has been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    }

    #[test]
    fn the_records_folder_sits_beside_the_lock_file() {
        assert_eq!(
            records_dir(Path::new("/s/locks/release-abc.lock")),
            Path::new("/s/locks/release-abc.holders")
        );
    }

    #[test]
    fn a_record_of_a_dead_or_reused_pid_is_rejected_and_swept() {
        if !procfs::available() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let lock = tmp.path().join("p.lock");
        let dir = records_dir(&lock);
        let me = std::process::id();
        let my_start = procfs::process(me).map(|p| p.start);

        let dead = dead_pid();
        write_record(&dir, &holder("run-dead", dead), Some(1));
        assert_eq!(live_record(&dir, dead), None, "dead pid");

        // This process's pid, but another start time: the pid was reused.
        write_record(&dir, &holder("run-reused", me), my_start.map(|s| s + 1));
        assert_eq!(live_record(&dir, me), None, "start time mismatch");
        write_record(&dir, &holder("run-nostart", me), None);
        assert_eq!(live_record(&dir, me), None, "no start time recorded");

        write_record(&dir, &holder("run-live", me), my_start);
        assert_eq!(
            live_record(&dir, me).map(|h| h.run_id),
            Some("run-live".into())
        );

        // A record naming another pid than its file is not believed.
        let parent = std::os::unix::process::parent_id();
        std::fs::copy(record_path(&dir, me), record_path(&dir, parent)).unwrap();
        assert_eq!(live_record(&dir, parent), None);

        std::fs::write(dir.join(format!("{dead}.json.tmp")), "{\"run_").unwrap();
        sweep(&lock);
        assert!(!record_path(&dir, dead).exists(), "dead record swept");
        assert!(!dir.join(format!("{dead}.json.tmp")).exists(), "temp swept");
        assert!(record_path(&dir, me).exists(), "own record kept");
        assert_eq!(
            live_contenders(&lock)
                .iter()
                .map(|h| h.run_id.as_str())
                .collect::<Vec<_>>(),
            vec!["run-live"]
        );
    }

    #[test]
    fn the_holder_is_named_from_the_lock_table_not_from_other_records() {
        if procfs::held_flocks().is_none() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let lock = tmp.path().join("p.lock");
        let dir = records_dir(&lock);
        write_record(&dir, &holder("run-dead", dead_pid()), Some(1));
        let mut own = write_own(&lock, &holder("run-me", std::process::id())).unwrap();
        let file = File::create(&lock).unwrap();
        file.lock().unwrap();
        match identify(&lock, &file) {
            Lookup::Held(Held::Known(h)) => assert_eq!(h.run_id, "run-me"),
            other => panic!("expected run-me, got {other:?}"),
        }
        // The holder's record gone while it still holds: not named, looked at again.
        own.remove();
        assert!(matches!(
            identify(&lock, &file),
            Lookup::Changed(Some(Held::Unrecorded { .. }))
        ));
        file.unlock().unwrap();
        assert!(matches!(identify(&lock, &file), Lookup::Changed(None)));
    }

    #[test]
    fn messages_say_what_is_known() {
        let h = holder("run-a", 42);
        assert_eq!(
            Held::Known(h.clone()).describe(),
            "run run-a (pid 42, started 2026-05-01T02:00:00Z)"
        );
        assert!(
            Held::Unrecorded { pid: 7 }
                .describe()
                .starts_with("pid 7, which left no baton run record")
        );
        let unverified = Held::Unverified {
            why: "no lock table",
            contenders: vec![h],
        }
        .describe();
        assert!(unverified.contains("no lock table"), "{unverified}");
        assert!(unverified.contains("run run-a (pid 42"), "{unverified}");
    }
}
