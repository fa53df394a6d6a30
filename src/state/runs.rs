//! Run folders, run ids and history.
//!
//! Layout of the state folder (`--state-dir`, `$BATON_STATE_DIR`,
//! `$XDG_STATE_HOME/baton`, else `~/.local/state/baton`):
//!
//! ```text
//! runs/<run-id>/run.json       what the run is: plan, hashes, inputs (secrets masked), outcome
//! runs/<run-id>/plan.yaml      the plan text as loaded
//! runs/<run-id>/journal.jsonl  the event journal (see `journal`)
//! runs/<run-id>/run.lock       held by the live process of the run
//! locks/<plan>-<hash>.lock     the plan lock (see `lock`)
//! locks/<plan>-<hash>.holders/<pid>.json  each contender's record (see `holder`)
//! ```
//!
//! Run ids are uuid v7, so their text sorts by start time. `run.json` is always
//! replaced atomically (temporary file, fsync, rename, fsync of the folder). History is
//! the set of run folders: each run keeps its own record, so two runs of different
//! plans finishing together never race on a shared index file; `baton runs` reads the
//! records (a few hundred small files at most, given `--keep`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::StateError;
use super::fingerprint::Fingerprint;
use super::journal::{self, JOURNAL_FILE, JournalLine, Marker};
use super::lock;
use crate::executor::events::RunEvent;

/// `run.json`'s file name.
pub const META_FILE: &str = "run.json";
/// The plan copy's file name.
pub const PLAN_FILE: &str = "plan.yaml";
/// `run.json`'s schema name.
pub const META_SCHEMA: &str = "baton.run";

/// The state folder.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The folder at `root`, as given.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// `flag` (which clap fills from `BATON_STATE_DIR` too), else
    /// `$XDG_STATE_HOME/baton`, else `$HOME/.local/state/baton`.
    pub fn resolve(flag: Option<PathBuf>) -> Result<Self, StateError> {
        Self::resolve_from(
            flag,
            std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }

    fn resolve_from(
        flag: Option<PathBuf>,
        xdg_state_home: Option<PathBuf>,
        home: Option<PathBuf>,
    ) -> Result<Self, StateError> {
        if let Some(dir) = flag.filter(|d| !d.as_os_str().is_empty()) {
            return Ok(StateDir::at(dir));
        }
        // The XDG spec says relative values are invalid and must be ignored.
        if let Some(xdg) = xdg_state_home.filter(|d| d.is_absolute()) {
            return Ok(StateDir::at(xdg.join("baton")));
        }
        match home.filter(|d| !d.as_os_str().is_empty()) {
            Some(home) => Ok(StateDir::at(home.join(".local/state/baton"))),
            None => Err(StateError::NoStateDir),
        }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `runs/`.
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// The plan lock for the plan `name` at the canonical path `plan_path`: one per
    /// plan file, so two checkouts of the same runbook do not block each other, while
    /// two cron entries for the same file do.
    pub fn plan_lock_path(&self, name: &str, plan_path: &Path) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let key = format!("{}\0{name}", plan_path.display());
        let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let short: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.root.join("locks").join(format!("{safe}-{short}.lock"))
    }
}

/// A new, time-sortable run id (uuid v7).
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `run.json`: everything about a run that is not an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMeta {
    /// [`META_SCHEMA`].
    pub schema: String,
    /// 1.
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// The plan's `name`.
    pub plan: String,
    /// The plan file, canonical.
    pub plan_path: String,
    /// The plan's hashes when the run started.
    pub fingerprint: Fingerprint,
    /// Resolved inputs; secret ones are `******`.
    pub inputs: BTreeMap<String, String>,
    /// Names of the secret inputs (their values are never stored).
    pub secret_inputs: Vec<String>,
    /// Start of the first session, RFC 3339.
    pub started_at: String,
    /// The process of the latest session.
    pub pid: u32,
    /// Starts of later sessions (`baton resume`), RFC 3339.
    #[serde(default)]
    pub resumed_at: Vec<String>,
    /// End of the latest session, RFC 3339.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Exit code of the latest session.
    #[serde(default)]
    pub exit_code: Option<u8>,
}

impl RunMeta {
    /// A record for a run starting now.
    pub fn new(
        run_id: &str,
        plan: &str,
        plan_path: &Path,
        fingerprint: Fingerprint,
        inputs: BTreeMap<String, String>,
        secret_inputs: Vec<String>,
    ) -> Self {
        RunMeta {
            schema: META_SCHEMA.into(),
            schema_version: 1,
            run_id: run_id.into(),
            plan: plan.into(),
            plan_path: plan_path.display().to_string(),
            fingerprint,
            inputs,
            secret_inputs,
            started_at: journal::now_text(),
            pid: std::process::id(),
            resumed_at: Vec::new(),
            finished_at: None,
            exit_code: None,
        }
    }
}

/// A run's folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
    id: String,
}

impl RunDir {
    /// Creates the folder of a new run with its record and plan copy. The caller then
    /// creates the journal ([`RunDir::journal_path`]).
    pub fn create(state: &StateDir, meta: &RunMeta, plan_text: &str) -> Result<Self, StateError> {
        let path = state.runs_dir().join(&meta.run_id);
        fs::create_dir_all(&path)
            .map_err(|e| StateError::io("cannot create the run folder", &path, e))?;
        let dir = RunDir {
            path,
            id: meta.run_id.clone(),
        };
        write_atomic(&dir.path.join(PLAN_FILE), plan_text.as_bytes())?;
        dir.write_meta(meta)?;
        Ok(dir)
    }

    /// An existing run's folder.
    pub fn open(state: &StateDir, id: &str) -> Self {
        RunDir {
            path: state.runs_dir().join(id),
            id: id.to_owned(),
        }
    }

    /// The run id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `journal.jsonl`.
    pub fn journal_path(&self) -> PathBuf {
        self.path.join(JOURNAL_FILE)
    }

    /// The plan copy.
    pub fn plan_copy_path(&self) -> PathBuf {
        self.path.join(PLAN_FILE)
    }

    /// Reads `run.json`.
    pub fn read_meta(&self) -> Result<RunMeta, StateError> {
        let path = self.path.join(META_FILE);
        let text = fs::read_to_string(&path)
            .map_err(|e| StateError::io("cannot read the run record", &path, e))?;
        serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path,
            message: e.to_string(),
        })
    }

    /// Replaces `run.json` atomically.
    pub fn write_meta(&self, meta: &RunMeta) -> Result<(), StateError> {
        let text = serde_json::to_string_pretty(meta).map_err(|e| StateError::Corrupt {
            path: self.path.join(META_FILE),
            message: e.to_string(),
        })?;
        write_atomic(&self.path.join(META_FILE), text.as_bytes())
    }

    /// Records the end of the current session.
    pub fn record_finish(&self, exit_code: u8) -> Result<(), StateError> {
        let mut meta = self.read_meta()?;
        meta.finished_at = Some(journal::now_text());
        meta.exit_code = Some(exit_code);
        self.write_meta(&meta)
    }

    /// Whether a process is running this run now.
    pub fn is_live(&self) -> bool {
        lock::run_is_live(&self.path)
    }
}

/// Writes `bytes` to `path` so that readers see the old or the new content, never a
/// mix, even across a crash.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(StateError::io("cannot write", path, e));
    }
    // The rename itself is only durable once the folder is.
    if let Ok(folder) = File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

/// How a run ended, for history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// A process runs it now.
    Running,
    /// Exit 0.
    Succeeded,
    /// Exit 1.
    Failed,
    /// Exit 2 or 3: could not run.
    Error,
    /// Exit 130.
    Interrupted,
    /// No end was recorded and no process runs it: killed or crashed; resumable.
    Abandoned,
}

impl RunState {
    /// From a recorded exit code.
    pub fn from_exit(code: u8) -> Self {
        match code {
            0 => RunState::Succeeded,
            1 | 5 => RunState::Failed,
            130 => RunState::Interrupted,
            _ => RunState::Error,
        }
    }

    /// Lower-case label.
    pub fn label(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Error => "error",
            RunState::Interrupted => "interrupted",
            RunState::Abandoned => "abandoned",
        }
    }
}

/// One line of history.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Plan name.
    pub plan: String,
    /// Plan file.
    pub plan_path: String,
    /// Plan hash.
    pub plan_hash: String,
    /// Inputs (secrets masked).
    pub inputs: BTreeMap<String, String>,
    /// First start.
    pub started_at: String,
    /// Latest end.
    pub finished_at: Option<String>,
    /// From the first start to the latest end.
    pub duration_secs: Option<i64>,
    /// State.
    pub state: RunState,
    /// Latest exit code.
    pub exit_code: Option<u8>,
    /// How many times it was resumed.
    pub resumes: usize,
}

fn summarize(dir: &RunDir) -> Option<RunSummary> {
    let meta = dir.read_meta().ok()?;
    let live = dir.is_live();
    let (mut finished_at, mut exit_code) = (meta.finished_at.clone(), meta.exit_code);
    if !live && exit_code.is_none() {
        // The process may have died between its last event and updating run.json.
        if let Some((code, at)) = last_finish(&dir.journal_path()) {
            exit_code = Some(code);
            finished_at = Some(at);
        }
    }
    let state = if live {
        RunState::Running
    } else {
        exit_code.map_or(RunState::Abandoned, RunState::from_exit)
    };
    let duration_secs = match (
        journal::parse_time(&meta.started_at),
        finished_at.as_deref().and_then(journal::parse_time),
    ) {
        (Some(start), Some(end)) if !live => Some((end - start).num_seconds().max(0)),
        _ => None,
    };
    Some(RunSummary {
        run_id: meta.run_id,
        plan: meta.plan,
        plan_path: meta.plan_path,
        plan_hash: meta.fingerprint.hash,
        inputs: meta.inputs,
        started_at: meta.started_at,
        finished_at,
        duration_secs,
        state,
        exit_code,
        resumes: meta.resumed_at.len(),
    })
}

/// The exit code and time of the journal's last session, if it finished.
fn last_finish(journal_path: &Path) -> Option<(u8, String)> {
    let replay = journal::read(journal_path).ok()?;
    let mut last = None;
    for line in &replay.lines {
        match line {
            JournalLine::Marker(Marker::Resumed { .. }) => last = None,
            JournalLine::Event(RunEvent::RunFinished { exit_code, at }) => {
                last = Some((*exit_code, crate::executor::events::format_time(at)));
            }
            _ => {}
        }
    }
    last
}

/// Run ids in the state folder, newest first.
pub fn run_ids(state: &StateDir) -> Vec<String> {
    let Ok(entries) = fs::read_dir(state.runs_dir()) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(META_FILE).is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

/// Every run, newest first.
pub fn list(state: &StateDir) -> Vec<RunSummary> {
    run_ids(state)
        .iter()
        .filter_map(|id| summarize(&RunDir::open(state, id)))
        .collect()
}

/// The run named by `which`: `last` (the newest), a full id, or a unique prefix of one.
pub fn find(state: &StateDir, which: &str) -> Result<RunDir, StateError> {
    let ids = run_ids(state);
    if which == "last" {
        return ids
            .first()
            .map(|id| RunDir::open(state, id))
            .ok_or_else(|| {
                StateError::NoSuchRun(format!(
                    "no runs recorded in {}",
                    state.runs_dir().display()
                ))
            });
    }
    if let Some(id) = ids.iter().find(|id| *id == which) {
        return Ok(RunDir::open(state, id));
    }
    let matching: Vec<&String> = ids.iter().filter(|id| id.starts_with(which)).collect();
    match matching.as_slice() {
        [one] if !which.is_empty() => Ok(RunDir::open(state, one)),
        [] | [_] => Err(StateError::NoSuchRun(format!(
            "no run `{which}` in {} (see `baton runs`)",
            state.runs_dir().display()
        ))),
        many => Err(StateError::NoSuchRun(format!(
            "`{which}` matches {} runs; give more of the id",
            many.len()
        ))),
    }
}

/// The latest succeeded run of the plan at `plan_path` with this plan hash and these
/// inputs that finished at or after `since`.
pub fn last_success(
    state: &StateDir,
    plan_path: &str,
    plan_hash: &str,
    inputs: &BTreeMap<String, String>,
    since: DateTime<Utc>,
) -> Option<RunSummary> {
    list(state).into_iter().find(|run| {
        run.state == RunState::Succeeded
            && run.plan_path == plan_path
            && run.plan_hash == plan_hash
            && &run.inputs == inputs
            && run
                .finished_at
                .as_deref()
                .and_then(journal::parse_time)
                .is_some_and(|at| at >= since)
    })
}

/// What pruning did.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    /// Removed run ids.
    pub removed: Vec<String>,
    /// Runs beyond `keep` left in place because a process runs them.
    pub kept_live: Vec<String>,
}

/// Removes all but the newest `keep` runs. A run whose process is alive is never
/// removed: its liveness lock is taken before its folder is deleted, so a run cannot
/// start (or resume) in a folder being removed.
pub fn prune(state: &StateDir, keep: usize) -> Result<Pruned, StateError> {
    let mut pruned = Pruned::default();
    for id in run_ids(state).into_iter().skip(keep) {
        let dir = RunDir::open(state, &id);
        let Some(guard) = lock::lock_run(dir.path())? else {
            pruned.kept_live.push(id);
            continue;
        };
        fs::remove_dir_all(dir.path())
            .map_err(|e| StateError::io("cannot remove the run folder", dir.path(), e))?;
        drop(guard);
        pruned.removed.push(id);
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, path: &str) -> RunMeta {
        RunMeta::new(
            id,
            "release",
            Path::new(path),
            Fingerprint {
                hash: "h1".into(),
                ..Fingerprint::default()
            },
            BTreeMap::from([("version".into(), "1.0.0".into())]),
            Vec::new(),
        )
    }

    #[test]
    fn state_dir_precedence() {
        let resolve = |flag: Option<&str>, xdg: Option<&str>, home: Option<&str>| {
            StateDir::resolve_from(
                flag.map(PathBuf::from),
                xdg.map(PathBuf::from),
                home.map(PathBuf::from),
            )
            .map(|d| d.root().to_path_buf())
        };
        assert_eq!(
            resolve(Some("/s"), Some("/x"), Some("/h")).unwrap(),
            PathBuf::from("/s")
        );
        assert_eq!(
            resolve(None, Some("/x"), Some("/h")).unwrap(),
            PathBuf::from("/x/baton")
        );
        assert_eq!(
            resolve(None, Some("relative"), Some("/h")).unwrap(),
            PathBuf::from("/h/.local/state/baton")
        );
        assert!(matches!(
            resolve(None, None, None),
            Err(StateError::NoStateDir)
        ));
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_run_id();
        assert!(b > a, "{b} should sort after {a}");
    }

    #[test]
    fn find_last_prefix_and_ambiguity() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        RunDir::create(&state, &meta("0001-aaaa", "/p.yaml"), "x").unwrap();
        RunDir::create(&state, &meta("0002-bbbb", "/p.yaml"), "x").unwrap();
        RunDir::create(&state, &meta("0002-cccc", "/p.yaml"), "x").unwrap();
        assert_eq!(find(&state, "last").unwrap().id(), "0002-cccc");
        assert_eq!(find(&state, "0001").unwrap().id(), "0001-aaaa");
        assert!(
            matches!(find(&state, "0002"), Err(StateError::NoSuchRun(m)) if m.contains("matches 2"))
        );
        assert!(find(&state, "9").is_err());
    }

    #[test]
    fn history_states_and_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let ok = RunDir::create(&state, &meta("0001", "/p.yaml"), "x").unwrap();
        ok.record_finish(0).unwrap();
        let failed = RunDir::create(&state, &meta("0002", "/p.yaml"), "x").unwrap();
        failed.record_finish(1).unwrap();
        let _abandoned = RunDir::create(&state, &meta("0003", "/p.yaml"), "x").unwrap();
        let live = RunDir::create(&state, &meta("0004", "/p.yaml"), "x").unwrap();
        let _guard = lock::lock_run(live.path()).unwrap().unwrap();

        let states: Vec<(String, RunState)> = list(&state)
            .into_iter()
            .map(|r| (r.run_id, r.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("0004".into(), RunState::Running),
                ("0003".into(), RunState::Abandoned),
                ("0002".into(), RunState::Failed),
                ("0001".into(), RunState::Succeeded),
            ]
        );
        let inputs = BTreeMap::from([("version".to_owned(), "1.0.0".to_owned())]);
        let hour_ago = Utc::now() - chrono::Duration::hours(1);
        assert_eq!(
            last_success(&state, "/p.yaml", "h1", &inputs, hour_ago).map(|r| r.run_id),
            Some("0001".into())
        );
        let other_inputs = BTreeMap::from([("version".to_owned(), "2.0.0".to_owned())]);
        assert!(last_success(&state, "/p.yaml", "h1", &other_inputs, hour_ago).is_none());
        assert!(last_success(&state, "/p.yaml", "h2", &inputs, hour_ago).is_none());
        let future = Utc::now() + chrono::Duration::hours(1);
        assert!(last_success(&state, "/p.yaml", "h1", &inputs, future).is_none());
    }

    #[test]
    fn prune_keeps_the_newest_and_live_runs() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let live = RunDir::create(&state, &meta("0001", "/p.yaml"), "x").unwrap();
        let _guard = lock::lock_run(live.path()).unwrap().unwrap();
        for id in ["0002", "0003", "0004"] {
            RunDir::create(&state, &meta(id, "/p.yaml"), "x").unwrap();
        }
        let pruned = prune(&state, 2).unwrap();
        assert_eq!(pruned.removed, vec!["0002".to_owned()]);
        assert_eq!(pruned.kept_live, vec!["0001".to_owned()]);
        assert_eq!(run_ids(&state), vec!["0004", "0003", "0001"]);
    }
}
