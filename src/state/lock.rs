//! Locks: one per plan, so two runs of the same runbook never overlap, and one per run,
//! so history pruning can tell a live run from a finished or dead one.
//!
//! Both are `flock`s taken with `std::fs::File::try_lock` and held for the life of the
//! run. The kernel releases them when the process dies, however it dies, so there is no
//! stale lock to clean up: a lock left by a SIGKILLed run is simply free. The plan lock
//! file is never replaced and its content means nothing; who holds it is told by
//! [`holder`](super::holder): each contender's own record, written before it tries the
//! flock, and the kernel's lock table. Caveats: flock is per open file description (two
//! opens in one process conflict, which the tests rely on) and is unreliable on NFS, so
//! the state folder should be local.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::StateError;
use super::holder::{self, Lookup, OwnRecord};
pub use super::holder::{Held, Holder};

/// How often a waiting run tries the lock again.
const WAIT_STEP: Duration = Duration::from_millis(200);

/// How many times one try looks again when the lock changed hands while the holder
/// was being named.
const LOOKS: usize = 20;

/// A held plan lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct PlanLock {
    file: File,
    path: PathBuf,
    record: OwnRecord,
}

impl PlanLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PlanLock {
    fn drop(&mut self) {
        // Swept while still held, so the next holder's `restore` comes after it.
        holder::sweep(&self.path);
        // Closing the file would release the flock anyway; unlocking first makes the
        // release independent of any descriptor a child process may have inherited.
        // The record goes only after the flock, so no one ever finds this process
        // holding the lock without its record.
        let _ = self.file.unlock();
        self.record.remove();
    }
}

/// The outcome of trying to take a lock.
#[derive(Debug)]
pub enum Attempt {
    /// The lock is ours.
    Acquired(PlanLock),
    /// Another process holds it; who, as far as can be told.
    Held(Held),
}

fn open_lock_file(path: &Path) -> Result<File, StateError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| StateError::io("cannot create the lock folder", parent, e))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StateError::io("cannot open the lock file", path, e))
}

/// One try at the flock on `file`: `None` when taken, else who holds it.
fn try_once(path: &Path, file: &File) -> Result<Option<Held>, StateError> {
    let mut seen = None;
    for _ in 0..LOOKS {
        match file.try_lock() {
            Ok(()) => return Ok(None),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(StateError::io("cannot lock", path, e)),
        }
        match holder::identify(path, file) {
            Lookup::Held(held) => return Ok(Some(held)),
            // Let go between the try and the look, or held by a pid with no record;
            // both are settled by trying again.
            Lookup::Changed(held) => seen = held.or(seen),
        }
    }
    Ok(Some(seen.unwrap_or_else(|| {
        holder::unverified(
            path,
            "the lock kept changing hands, or its holder is not visible in this /proc",
        )
    })))
}

/// The lock taken: the record restored if a sweep removed it, records of dead
/// contenders swept, and any content an older baton wrote in the lock file dropped.
fn acquired(path: &Path, file: File, record: OwnRecord) -> PlanLock {
    record.restore();
    holder::sweep(path);
    let _ = file.set_len(0);
    tracing::debug!(lock = %path.display(), "plan lock taken");
    PlanLock {
        file,
        path: path.to_path_buf(),
        record,
    }
}

/// Tries once to take the lock at `path` for `me`.
pub fn try_acquire(path: &Path, me: &Holder) -> Result<Attempt, StateError> {
    acquire_within(path, me, Duration::ZERO, |_| {})
}

/// Takes the lock at `path`, trying again until `wait` has passed. `on_wait` is called
/// once, with the holder, when the first try finds the lock held (not when `wait` is
/// zero).
pub fn acquire_within(
    path: &Path,
    me: &Holder,
    wait: Duration,
    mut on_wait: impl FnMut(&Held),
) -> Result<Attempt, StateError> {
    let file = open_lock_file(path)?;
    // Before the flock is tried: whoever holds it has a whole record to be named by.
    let record = holder::write_own(path, me)?;
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        let Some(held) = try_once(path, &file)? else {
            return Ok(Attempt::Acquired(acquired(path, file, record)));
        };
        let now = Instant::now();
        if now >= deadline {
            return Ok(Attempt::Held(held));
        }
        if !told {
            on_wait(&held);
            told = true;
        }
        std::thread::sleep(WAIT_STEP.min(deadline - now));
    }
}

/// Who holds the lock at `path` now; `None` when it is free.
pub fn current_holder(path: &Path) -> Result<Option<Held>, StateError> {
    let file = open_lock_file(path)?;
    let held = try_once(path, &file)?;
    // A free lock was just taken by the look itself; let it go at once.
    if held.is_none() {
        let _ = file.unlock();
    }
    Ok(held)
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
            Attempt::Held(Held::Known(holder)) => assert_eq!(holder.run_id, "run-a"),
            other => panic!("expected the lock to be held by run-a, got {other:?}"),
        }
        drop(first);
        let Attempt::Acquired(_second) = try_acquire(&path, &me("run-b")).unwrap() else {
            panic!("a released lock must be free");
        };
        match current_holder(&path).unwrap() {
            Some(Held::Known(holder)) => assert_eq!(holder.run_id, "run-b"),
            other => panic!("expected run-b, got {other:?}"),
        }
        drop(_second);
        assert_eq!(current_holder(&path).unwrap(), None);
        let records = holder::records_dir(&path);
        assert_eq!(
            std::fs::read_dir(&records).unwrap().count(),
            0,
            "every record removed with its lock"
        );
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
        assert!(matches!(outcome, Attempt::Held(Held::Known(_))));
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
