//! The plan lock's exit-75 message names the live holder: fifty `baton run`s of one
//! plan started together, one wins and is held inside its run at the emulator's host
//! checkpoint, and every loser names the winner's run id, pid and start time, never a
//! dead run and never nobody, even with a dead run's record and an older baton's lock
//! content lying beside the lock.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use regex::Regex;
use serde_json::json;

use crate::support::{Emulator, app_credentials, baton, text};

const HELD: &str = "0:10.0.0.2";

const WORLD: &str = "credentials:\n  apps: [{ code: baton, secret: s3cret }]\n";

const PLAN: &str = r#"version: 1
name: held
scope: { type: biz, id: 2 }
defaults: { account: root }
hosts:
  two: { ips: ["0:10.0.0.2"] }
steps:
  - id: a
    targets: two
    script:
      language: shell
      content: "echo a >> /tmp/ran"
"#;

/// How many runs start together.
const RUNS: usize = 50;

/// Only guards against a hang (two winners both held); nothing waits on it otherwise.
const HANG_GUARD: Duration = Duration::from_secs(300);

fn run_cmd(dir: &Path, emulator: &Emulator) -> Command {
    let mut cmd = baton(dir);
    cmd.args(["run", dir.join("plan.yaml").to_str().expect("utf-8 path")])
        .env("BATON_ENDPOINT", emulator.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    app_credentials(&mut cmd, "s3cret");
    cmd
}

/// Starts `count` runs, each reaped on its own thread; their pids and a channel on
/// which each reports its pid and output as it ends.
fn start_runs(
    dir: &Path,
    emulator: &Emulator,
    count: usize,
) -> (Vec<u32>, mpsc::Receiver<(u32, Output)>) {
    let children: Vec<Child> = (0..count)
        .map(|_| run_cmd(dir, emulator).spawn().expect("spawn baton"))
        .collect();
    let (tx, rx) = mpsc::channel();
    let pids = children.iter().map(Child::id).collect();
    for child in children {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let pid = child.id();
            let output = child.wait_with_output().expect("wait for baton");
            let _ = tx.send((pid, output));
        });
    }
    (pids, rx)
}

/// The next `count` runs to end, which must all be refused with 75.
fn losers(rx: &mpsc::Receiver<(u32, Output)>, count: usize) -> Vec<(u32, String)> {
    (0..count)
        .map(|_| {
            let (pid, output) = rx
                .recv_timeout(HANG_GUARD)
                .expect("a loser ends while the winner is held");
            assert_eq!(
                output.status.code(),
                Some(75),
                "pid {pid} was not refused:\n{}",
                text(&output)
            );
            (pid, String::from_utf8_lossy(&output.stderr).into_owned())
        })
        .collect()
}

fn lock_file(state: &Path) -> PathBuf {
    let locks: Vec<PathBuf> = std::fs::read_dir(state.join("locks"))
        .expect("locks folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "lock"))
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    locks[0].clone()
}

fn holders_dir(lock: &Path) -> PathBuf {
    lock.with_extension("holders")
}

/// A pid that names no process: a child already reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait true");
    pid
}

#[test]
fn fifty_runs_at_once_every_loser_names_the_live_winner() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.yaml"), PLAN).expect("write plan");
    let state = dir.path().join("state");
    let emulator = Emulator::start(WORLD, &dir.path().join("sandbox"));
    emulator.hold_host(HELD);

    let (pids, rx) = start_runs(dir.path(), &emulator, RUNS);
    let mut refused = losers(&rx, RUNS - 1);
    let lost: Vec<u32> = refused.iter().map(|(pid, _)| *pid).collect();
    let winner: Vec<u32> = pids.iter().copied().filter(|p| !lost.contains(p)).collect();
    assert_eq!(winner.len(), 1, "exactly one run holds the lock");
    let winner = winner[0];

    // A dead run's record, a record whose pid lives on in another process (this one)
    // with another start time, and an older baton's holder written inside the lock
    // file: none of them may be named.
    let lock = lock_file(&state);
    let holders = holders_dir(&lock);
    let dead_run = "0190aaaa-dead-7000-8000-00000000dead";
    let reused_run = "0190bbbb-feed-7000-8000-00000000feed";
    let old_run = "0190cccc-0bad-7000-8000-000000000bad";
    let dead = dead_pid();
    std::fs::create_dir_all(&holders).expect("holders folder");
    for (run, pid) in [(dead_run, dead), (reused_run, std::process::id())] {
        let record = json!({
            "run_id": run, "pid": pid, "started_at": "2020-01-01T00:00:00Z",
            "plan_path": "/elsewhere/plan.yaml", "proc_start": 1,
        });
        std::fs::write(holders.join(format!("{pid}.json")), record.to_string())
            .expect("write a stale record");
    }
    let old = json!({
        "run_id": old_run, "pid": dead, "started_at": "2020-01-01T00:00:00Z",
        "plan_path": "/elsewhere/plan.yaml",
    });
    std::fs::write(&lock, old.to_string()).expect("write old lock content");
    let (_, late_rx) = start_runs(dir.path(), &emulator, 3);
    refused.extend(losers(&late_rx, 3));

    emulator.release_host(HELD);
    let (pid, output) = rx.recv_timeout(HANG_GUARD).expect("the winner ends");
    assert_eq!(pid, winner);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    let runs: Vec<String> = std::fs::read_dir(state.join("runs"))
        .expect("runs folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs.len(), 1, "only the winner ran: {runs:?}");
    let winner_run = &runs[0];
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(winner_run.as_str()),
        "{}",
        text(&output)
    );

    let uuid =
        Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").expect("regex");
    let named = Regex::new(&format!(
        r"plan held is already being run by run {winner_run} \(pid {winner}, started (\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d[^)]*)\); try later"
    ))
    .expect("regex");
    let mut started = None;
    for (pid, stderr) in &refused {
        let found = named
            .captures(stderr)
            .unwrap_or_else(|| panic!("pid {pid} does not name the winner:\n{stderr}"));
        let at = found[1].to_owned();
        assert_eq!(
            started.get_or_insert_with(|| at.clone()),
            &at,
            "one start time"
        );
        for id in uuid.find_iter(stderr) {
            assert_eq!(
                id.as_str(),
                winner_run,
                "pid {pid} names another run:\n{stderr}"
            );
        }
    }
    assert_eq!(emulator.instances().len(), 1, "one job, the winner's");

    // Losers took their records with them; the winner took its own and swept the
    // dead ones.
    let left: Vec<PathBuf> = std::fs::read_dir(&holders)
        .expect("holders folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "records left behind: {left:?}");
}
