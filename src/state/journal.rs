//! The run journal: `journal.jsonl` in a run folder, one JSON object per line, appended
//! event by event so that a run killed at any instant leaves a record of everything it
//! had announced, in particular every submission intent (`step_submitting`) before its
//! request left.
//!
//! Every line is written before the engine goes on, so a killed process loses nothing.
//! Against a power cut, every event that something is done on is fsync'd before the
//! engine does it: a submission intent before its request leaves, and every other
//! state-changing event before the engine goes on, with two exceptions on the path from
//! one step's finish to the next step's submission, where each fsync of its own added a
//! disk's latency to the handoff:
//!
//! - a step being started and a progress read change nothing resume relies on; the
//!   next fsync takes them to disk with it;
//! - a step's finish is written and the engine goes on; what it goes on to do is start
//!   the dependents, whose submission intents are fsync'd before their requests leave,
//!   and that fsync takes the finish with it (one fsync per handoff: the finish and
//!   the intent in one group). A finish that nothing follows within
//!   [`SYNC_DEADLINE`] gets an fsync of its own from the journal's flusher thread. A
//!   power cut inside that window loses a finish nothing was done on yet; resume then
//!   reads the step's instance from JOB again, as it does for a step killed while
//!   waiting.
//!
//! A line is either a [`RunEvent`] exactly as the engine emitted it (so the report can
//! be rebuilt from the journal) or a journal [`Marker`] (the header, a resume). Reading
//! tolerates a torn tail: a last line without its newline, or one that does not parse,
//! is what a crash mid-write leaves, and is ignored. Before appending again (resume) the
//! torn bytes are cut off, so the next line starts on a line of its own.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::StateError;
use crate::executor::events::{EventRecorder, RecordError, RunEvent};

/// The journal file's name inside a run folder.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// The journal format version written in the header.
pub const JOURNAL_VERSION: u32 = 1;

/// The longest a step's finish waits for an fsync it shares (module docs) before the
/// flusher gives it one of its own.
pub const SYNC_DEADLINE: Duration = Duration::from_millis(100);

/// A journal line that is not an engine event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Marker {
    /// The first line of every journal.
    Journal {
        /// Format version ([`JOURNAL_VERSION`]).
        version: u32,
        /// The run this journal belongs to.
        run_id: String,
    },
    /// `baton resume` continues the run from here on; the events of the earlier
    /// session(s) stay above this line.
    Resumed {
        /// Wall clock, RFC 3339.
        at: String,
        /// The resuming process.
        pid: u32,
        /// Steps kept as they were (succeeded or skipped).
        kept: Vec<String>,
        /// Steps re-attached to their in-flight instance.
        attached: Vec<String>,
        /// Steps run (again).
        rerun: Vec<String>,
        /// Steps whose submission could not be settled and are not re-sent.
        unknown: Vec<String>,
        /// `--force` overrode a changed plan.
        forced: bool,
    },
    /// A notification was sent (or could not be) at the end of a session or at a gate.
    Notified {
        /// Wall clock, RFC 3339.
        at: String,
        /// The channel, as reports name it (never its URL).
        channel: String,
        /// Why: `failure`, `success`, `approval`.
        when: String,
        /// The receiver accepted it.
        ok: bool,
        /// Attempts made.
        attempts: u32,
        /// Why it was not delivered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JournalLine {
    /// An engine event.
    Event(RunEvent),
    /// A journal marker.
    Marker(Marker),
}

/// What reading a journal found.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Every whole, readable line, in order.
    pub lines: Vec<JournalLine>,
    /// The last line was torn (no newline, or unreadable) and was ignored.
    pub torn_tail: bool,
    /// Whole lines in the middle that could not be read (not written by this version
    /// of baton, or damaged); skipped.
    pub skipped: usize,
    /// Byte length of the whole lines (where an append must continue).
    pub whole_len: u64,
}

impl Replay {
    /// The engine events, in order.
    pub fn events(&self) -> impl Iterator<Item = &RunEvent> {
        self.lines.iter().filter_map(|line| match line {
            JournalLine::Event(event) => Some(event),
            JournalLine::Marker(_) => None,
        })
    }
}

/// Reads the journal at `path`, up to its last whole line.
pub fn read(path: &Path) -> Result<Replay, StateError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| StateError::io("cannot read the journal", path, e))?;
    Ok(parse(&bytes))
}

/// Parses journal bytes (see [`read`]).
pub fn parse(bytes: &[u8]) -> Replay {
    let mut replay = Replay::default();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let Some(newline) = bytes[offset..].iter().position(|&b| b == b'\n') else {
            // No newline: the write of this line never completed.
            replay.torn_tail = true;
            break;
        };
        let line = &bytes[offset..offset + newline];
        let next = offset + newline + 1;
        if !line.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<JournalLine>(line) {
                Ok(parsed) => replay.lines.push(parsed),
                // The last line, whole but unreadable, is what a crash can leave when
                // the file system persisted the length before the data; cut it like a
                // torn one. Earlier ones are skipped and counted, never cut.
                Err(_) if next >= bytes.len() => {
                    replay.torn_tail = true;
                    break;
                }
                Err(_) => replay.skipped += 1,
            }
        }
        offset = next;
        replay.whole_len = offset as u64;
    }
    replay
}

/// An open journal, appended to by the engine's event sink.
///
/// Durable appends from parallel steps share fsyncs (group commit): a line is written
/// under the write lock, then its writer waits for an fsync that began after the line
/// was written, and only one fsync runs at a time. With 64 steps submitting at once,
/// one `fdatasync` makes a whole batch of intents durable instead of each waiting for
/// all the others' in turn. Every durable append still returns only once its own line
/// is on disk. Finishes are durable by [`SYNC_DEADLINE`] (module docs), through the
/// flusher thread, which also syncs what is left when the journal is dropped.
#[derive(Debug)]
pub struct Journal {
    inner: Arc<Inner>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    file: Mutex<Written>,
    /// A second handle on the same file, for fsyncs outside the write lock.
    sync_handle: File,
    /// How many lines are known to be on disk; held while an fsync runs.
    synced: Mutex<u64>,
    /// The same number, readable without waiting for a running fsync.
    synced_seen: AtomicU64,
    /// fsyncs done, for tests and benches.
    syncs: AtomicU64,
    /// Lines due on disk by a deadline, for the flusher.
    due: Mutex<Due>,
    wake: Condvar,
    /// The first write failure, kept so the run can report it at the end.
    first_error: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct Due {
    /// The last line that must be on disk within [`SYNC_DEADLINE`] of `since`.
    line: u64,
    since: Option<Instant>,
    closing: bool,
}

/// When an appended line must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Before the append returns.
    Now,
    /// Within [`SYNC_DEADLINE`], or with the next fsync if that comes first.
    Soon,
    /// With whatever fsync comes next.
    WithNext,
}

impl Journal {
    fn open_with(path: &Path, file: File) -> Result<Self, StateError> {
        let inner = Arc::new(Inner {
            path: path.to_path_buf(),
            sync_handle: file
                .try_clone()
                .map_err(|e| StateError::io("cannot open the journal", path, e))?,
            file: Mutex::new(Written { file, lines: 0 }),
            synced: Mutex::new(0),
            synced_seen: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            due: Mutex::new(Due::default()),
            wake: Condvar::new(),
            first_error: Mutex::new(None),
        });
        let flusher = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("journal-flusher".into())
                .spawn(move || inner.flush_loop())
                .map_err(|e| StateError::io("cannot start the journal's flusher", path, e))?
        };
        Ok(Journal {
            inner,
            flusher: Some(flusher),
        })
    }

    /// Creates a new journal and writes its header line.
    pub fn create(path: &Path, run_id: &str) -> Result<Self, StateError> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)
            .map_err(|e| StateError::io("cannot create the journal", path, e))?;
        let journal = Journal::open_with(path, file)?;
        journal.append(&JournalLine::Marker(Marker::Journal {
            version: JOURNAL_VERSION,
            run_id: run_id.to_owned(),
        }))?;
        Ok(journal)
    }

    /// Opens an existing journal to continue it, cutting off a torn tail first.
    pub fn reopen(path: &Path) -> Result<(Self, Replay), StateError> {
        let replay = read(path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StateError::io("cannot open the journal", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StateError::io("cannot open the journal", path, e))?
            .len();
        if len != replay.whole_len {
            file.set_len(replay.whole_len)
                .and_then(|()| file.sync_data())
                .map_err(|e| StateError::io("cannot repair the journal's torn tail", path, e))?;
        }
        file.seek(SeekFrom::End(0))
            .map_err(|e| StateError::io("cannot open the journal", path, e))?;
        Ok((Journal::open_with(path, file)?, replay))
    }

    /// Where the journal is.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Appends one line and waits until it is on disk. One `write_all` per line, so
    /// a crash leaves at most the last line torn.
    pub fn append(&self, line: &JournalLine) -> Result<(), StateError> {
        self.inner.write_line(line, Durability::Now)
    }

    /// The first failed write, if any.
    pub fn first_error(&self) -> Option<String> {
        self.inner
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many fsyncs this journal has done.
    pub fn sync_count(&self) -> u64 {
        self.inner.syncs.load(Ordering::Relaxed)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.inner
            .due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closing = true;
        self.inner.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

impl Inner {
    /// Appends one line, on disk when `durability` says.
    fn write_line(&self, line: &JournalLine, durability: Durability) -> Result<(), StateError> {
        let mut text = serde_json::to_string(line).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            message: format!("cannot encode a journal line: {e}"),
        })?;
        text.push('\n');
        let mine = {
            let mut written = self.file.lock().unwrap_or_else(PoisonError::into_inner);
            written
                .file
                .write_all(text.as_bytes())
                .map_err(|e| StateError::io("cannot write the journal", &self.path, e))?;
            written.lines += 1;
            written.lines
        };
        match durability {
            Durability::Now => self.sync_through(mine),
            Durability::Soon => {
                let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
                due.line = due.line.max(mine);
                due.since.get_or_insert_with(Instant::now);
                self.wake.notify_all();
                Ok(())
            }
            Durability::WithNext => Ok(()),
        }
    }

    /// Returns once line `mine` (and every line before it) is on disk, running an
    /// fsync unless one that began after it was written has finished.
    fn sync_through(&self, mine: u64) -> Result<(), StateError> {
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        if *synced >= mine {
            return Ok(());
        }
        // Everything written so far is covered by the fsync about to run.
        let upto = self
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lines;
        self.sync_handle
            .sync_data()
            .map_err(|e| StateError::io("cannot write the journal", &self.path, e))?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        *synced = upto;
        self.synced_seen.store(upto, Ordering::Release);
        Ok(())
    }

    /// The flusher: gives lines due [`Durability::Soon`] an fsync once they have
    /// waited [`SYNC_DEADLINE`] without one, and syncs everything at the end.
    fn flush_loop(&self) {
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if due.closing {
                break;
            }
            let covered = self.synced_seen.load(Ordering::Acquire) >= due.line;
            let Some(since) = due.since.filter(|_| !covered) else {
                due.since = None;
                due = self.wake.wait(due).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let left = SYNC_DEADLINE.saturating_sub(since.elapsed());
            if !left.is_zero() {
                due = self
                    .wake
                    .wait_timeout(due, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            let target = due.line;
            due.since = None;
            drop(due);
            self.keep_error(self.sync_through(target));
            due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        }
        drop(due);
        let last = self
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lines;
        self.keep_error(self.sync_through(last));
    }

    fn keep_error(&self, result: Result<(), StateError>) {
        if let Err(e) = result {
            let mut first = self
                .first_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if first.is_none() {
                *first = Some(e.to_string());
            }
        }
    }
}

/// The journal file and how many lines were written to it.
#[derive(Debug)]
struct Written {
    file: File,
    lines: u64,
}

impl EventRecorder for Journal {
    fn record(&self, event: &RunEvent) -> Result<(), RecordError> {
        // Progress reads repeat every few seconds and carry nothing resume needs
        // beyond the last one; they are journaled all the same (host counts are part
        // of the record). When each kind of line reaches the disk: module docs.
        let durability = match event {
            RunEvent::StepStarted { .. } | RunEvent::StepProgress { .. } => Durability::WithNext,
            RunEvent::StepFinished { .. } => Durability::Soon,
            _ => Durability::Now,
        };
        let result = self
            .inner
            .write_line(&JournalLine::Event(event.clone()), durability);
        if let Err(e) = &result {
            let mut first = self
                .inner
                .first_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if first.is_none() {
                *first = Some(e.to_string());
            }
        }
        result.map_err(RecordError::new)
    }
}

/// The current wall clock as the journal writes it.
pub fn now_text() -> String {
    crate::executor::events::format_time(&Utc::now())
}

/// Parses a journal timestamp.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::events::{StepRef, now};

    fn started(index: usize) -> RunEvent {
        RunEvent::StepStarted {
            step: StepRef {
                index,
                id: format!("s{index}"),
            },
            at: now(),
        }
    }

    #[test]
    fn round_trips_events_and_markers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = Journal::create(&path, "run-1").unwrap();
        journal.record(&started(0)).unwrap();
        journal
            .record(&RunEvent::StepSubmitting {
                step: StepRef {
                    index: 0,
                    id: "s0".into(),
                },
                attempt: 1,
                task_name: "t [baton run-1 s0#1]".into(),
            })
            .unwrap();
        let replay = read(&path).unwrap();
        assert!(!replay.torn_tail);
        assert_eq!(replay.lines.len(), 3);
        assert!(matches!(
            &replay.lines[0],
            JournalLine::Marker(Marker::Journal { run_id, .. }) if run_id == "run-1"
        ));
        assert!(matches!(
            replay.events().nth(1),
            Some(RunEvent::StepSubmitting { task_name, .. }) if task_name.ends_with("s0#1]")
        ));
    }

    fn finished(index: usize) -> RunEvent {
        RunEvent::StepFinished {
            step: StepRef {
                index,
                id: format!("s{index}"),
            },
            outcome: Box::new(crate::executor::events::StepFinished::in_doubt(
                "test".into(),
                1,
            )),
            at: now(),
        }
    }

    fn submitting(index: usize) -> RunEvent {
        RunEvent::StepSubmitting {
            step: StepRef {
                index,
                id: format!("s{index}"),
            },
            attempt: 1,
            task_name: format!("t{index}"),
        }
    }

    #[test]
    fn a_finish_and_the_next_intent_share_one_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = Journal::create(&path, "run-1").unwrap();
        let before = journal.sync_count();
        journal.record(&finished(0)).unwrap();
        journal.record(&started(1)).unwrap();
        journal.record(&submitting(1)).unwrap();
        assert_eq!(journal.sync_count(), before + 1);
        assert_eq!(
            journal.inner.synced_seen.load(Ordering::Acquire),
            4,
            "the intent's fsync covers the finish before it"
        );
        let replay = read(&path).unwrap();
        assert!(matches!(
            replay.events().next(),
            Some(RunEvent::StepFinished { .. })
        ));
    }

    #[test]
    fn a_finish_nothing_follows_gets_its_own_fsync_by_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = Journal::create(&path, "run-1").unwrap();
        let before = journal.sync_count();
        let recorded = Instant::now();
        journal.record(&finished(0)).unwrap();
        while journal.inner.synced_seen.load(Ordering::Acquire) < 2 {
            assert!(
                recorded.elapsed() < Duration::from_secs(30),
                "the finish was never synced"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(journal.sync_count(), before + 1);
    }

    #[test]
    fn parallel_durable_appends_all_land_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = std::sync::Arc::new(Journal::create(&path, "run-1").unwrap());
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let journal = std::sync::Arc::clone(&journal);
                std::thread::spawn(move || {
                    for i in 0..20 {
                        journal
                            .record(&RunEvent::StepSubmitting {
                                step: StepRef {
                                    index: t,
                                    id: format!("s{t}"),
                                },
                                attempt: i,
                                task_name: format!("t{t}-{i}"),
                            })
                            .unwrap();
                        journal.record(&started(t)).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert!(journal.first_error().is_none());
        let replay = read(&path).unwrap();
        assert!(!replay.torn_tail);
        assert_eq!(replay.skipped, 0);
        assert_eq!(replay.lines.len(), 1 + 8 * 20 * 2);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = Journal::create(&path, "run-1").unwrap();
        journal.record(&started(0)).unwrap();
        drop(journal);
        // A crash in the middle of writing the next line.
        let whole = std::fs::read(&path).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(br#"{"event":"step_started","step":{"ind"#);
        std::fs::write(&path, &torn).unwrap();

        let replay = read(&path).unwrap();
        assert!(replay.torn_tail);
        assert_eq!(replay.lines.len(), 2, "header and the one whole event");
        assert_eq!(replay.whole_len, whole.len() as u64);

        let (journal, _) = Journal::reopen(&path).unwrap();
        journal.record(&started(1)).unwrap();
        let replay = read(&path).unwrap();
        assert!(!replay.torn_tail);
        assert_eq!(replay.skipped, 0);
        assert!(matches!(
            replay.events().last(),
            Some(RunEvent::StepStarted { step, .. }) if step.index == 1
        ));
    }

    #[test]
    fn an_unreadable_whole_last_line_counts_as_torn() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(br#"{"event":"journal","version":1,"run_id":"r"}"#);
        bytes.push(b'\n');
        bytes.extend_from_slice(b"{\"event\":\"step_sta\0\0\0\n");
        let replay = parse(&bytes);
        assert!(replay.torn_tail);
        assert_eq!(replay.skipped, 0);
        assert_eq!(replay.lines.len(), 1);
    }

    #[test]
    fn a_damaged_middle_line_is_skipped_and_counted() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"garbage\n");
        bytes.extend_from_slice(br#"{"event":"journal","version":1,"run_id":"r"}"#);
        bytes.push(b'\n');
        let replay = parse(&bytes);
        assert!(!replay.torn_tail);
        assert_eq!(replay.skipped, 1);
        assert_eq!(replay.lines.len(), 1);
    }
}
