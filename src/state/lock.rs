//! Locks: one per plan, so two runs of the same runbook never overlap, and one per run,
//! so history pruning can tell a live run from a finished or dead one.
//!
//! Both are `flock`s taken with `std::fs::File::try_lock` and held for the life of the
//! run. The kernel releases them when the process dies, however it dies, so there is no
//! stale lock to clean up: a lock left by a SIGKILLed run is simply free. The holder's
//! run id, pid and start time are written inside the plan lock file for messages only;
//! the flock, never the file's content, decides who holds it. Caveats: flock is per open
//! file description (two opens in one process conflict, which the tests rely on) and is
//! unreliable on NFS, so the state folder should be local.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::StateError;

/// How often a waiting run tries the lock again.
const WAIT_STEP: Duration = Duration::from_millis(200);

/// Who holds a plan lock, as written in the lock file.
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

/// A held plan lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct PlanLock {
    file: File,
    path: PathBuf,
}

impl PlanLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PlanLock {
    fn drop(&mut self) {
        // Closing the file would release the flock anyway; unlocking first makes the
        // release independent of any descriptor a child process may have inherited.
        let _ = self.file.unlock();
    }
}

/// The outcome of trying to take a lock.
#[derive(Debug)]
pub enum Attempt {
    /// The lock is ours.
    Acquired(PlanLock),
    /// Another process holds it; who, if its file says so.
    Held(Option<Holder>),
}

fn open_lock_file(path: &Path) -> Result<File, StateError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| StateError::io("cannot create the lock folder", parent, e))?;
    }
    // Not truncated on open: the content belongs to whoever holds the lock until we do.
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StateError::io("cannot open the lock file", path, e))
}

/// Tries once to take the lock at `path` for `me`.
pub fn try_acquire(path: &Path, me: &Holder) -> Result<Attempt, StateError> {
    let mut file = open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(Attempt::Held(read_holder(path))),
        Err(TryLockError::Error(e)) => return Err(StateError::io("cannot lock", path, e)),
    }
    let text = serde_json::to_string(me).unwrap_or_default();
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_data())
        .map_err(|e| StateError::io("cannot write the lock file", path, e))?;
    Ok(Attempt::Acquired(PlanLock {
        file,
        path: path.to_path_buf(),
    }))
}

/// Takes the lock at `path`, trying again until `wait` has passed. `on_wait` is called
/// once, with the holder, when the first try finds the lock held.
pub fn acquire_within(
    path: &Path,
    me: &Holder,
    wait: Duration,
    mut on_wait: impl FnMut(Option<&Holder>),
) -> Result<Attempt, StateError> {
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        match try_acquire(path, me)? {
            Attempt::Acquired(lock) => return Ok(Attempt::Acquired(lock)),
            Attempt::Held(holder) => {
                if !told {
                    on_wait(holder.as_ref());
                    told = true;
                }
                let now = Instant::now();
                if now >= deadline {
                    return Ok(Attempt::Held(holder));
                }
                std::thread::sleep(WAIT_STEP.min(deadline - now));
            }
        }
    }
}

/// The holder written in the lock file at `path`, when readable.
pub fn read_holder(path: &Path) -> Option<Holder> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// A run's own liveness lock (`run.lock` in its folder), held while the run lives.
#[derive(Debug)]
pub struct RunLock {
    file: File,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Takes the liveness lock of the run folder `dir`. Fails if another process holds
/// it: the run is alive elsewhere.
pub fn lock_run(dir: &Path) -> Result<Option<RunLock>, StateError> {
    let path = dir.join(RUN_LOCK_FILE);
    let file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(RunLock { file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StateError::io("cannot lock", path, e)),
    }
}

/// Whether a process holds the liveness lock of the run folder `dir`.
pub fn run_is_live(dir: &Path) -> bool {
    let path = dir.join(RUN_LOCK_FILE);
    let Ok(file) = File::open(&path) else {
        return false;
    };
    // A shared try-lock conflicts only with the live run's exclusive lock and leaves
    // nothing behind when it succeeds (the file is closed right away).
    matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
}

/// The liveness lock's file name inside a run folder.
pub const RUN_LOCK_FILE: &str = "run.lock";

#[cfg(test)]
mod tests {
    use super::*;

    fn me(run: &str) -> Holder {
        Holder {
            run_id: run.into(),
            pid: std::process::id(),
            started_at: "2026-05-01T02:00:00Z".into(),
            plan_path: "/plans/release.yaml".into(),
        }
    }

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/release.lock");
        let Attempt::Acquired(first) = try_acquire(&path, &me("run-a")).unwrap() else {
            panic!("the first try must get the lock");
        };
        match try_acquire(&path, &me("run-b")).unwrap() {
            Attempt::Held(Some(holder)) => assert_eq!(holder.run_id, "run-a"),
            other => panic!("expected the lock to be held by run-a, got {other:?}"),
        }
        drop(first);
        let Attempt::Acquired(_second) = try_acquire(&path, &me("run-b")).unwrap() else {
            panic!("a released lock must be free");
        };
        assert_eq!(read_holder(&path).unwrap().run_id, "run-b");
    }

    #[test]
    fn waiting_gives_up_at_the_deadline_and_reports_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lock");
        let Attempt::Acquired(_held) = try_acquire(&path, &me("run-a")).unwrap() else {
            panic!("first lock");
        };
        let mut told = 0;
        let outcome = acquire_within(&path, &me("run-b"), Duration::from_millis(300), |_| {
            told += 1
        })
        .unwrap();
        assert!(matches!(outcome, Attempt::Held(Some(_))));
        assert_eq!(told, 1);
    }

    #[test]
    fn run_liveness_follows_the_run_lock() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!run_is_live(dir.path()));
        let lock = lock_run(dir.path()).unwrap().expect("free");
        assert!(run_is_live(dir.path()));
        assert!(lock_run(dir.path()).unwrap().is_none());
        drop(lock);
        assert!(!run_is_live(dir.path()));
    }
}
