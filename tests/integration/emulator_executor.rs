//! Integration tests: emulator_executor. Attempts to break the long-lived per-host
//! executor: scripts sharing it, escaping the host folder through it, and daemons
//! outliving their script, its timeout, its cancel, or the executor itself.

use std::path::Path;
use std::time::Duration;

use baton::emulator::exec::sandbox::{HostSandboxes, Isolation};
use baton::emulator::exec::script::{ScriptRun, run_script};
use baton::emulator::model::host_result::HostResult;
use baton::job_api::types::{HostAddr, host_status};
use tokio_util::sync::CancellationToken;

fn namespaced(dir: &Path) -> HostSandboxes {
    HostSandboxes::new(
        dir,
        Isolation::Namespace {
            helper: env!("CARGO_BIN_EXE_baton").into(),
        },
    )
    .expect("mount namespaces are available on the test machine")
}

fn host(text: &str) -> HostAddr {
    HostAddr::parse(text).unwrap()
}

fn script(content: &str) -> ScriptRun {
    ScriptRun {
        language: 1,
        content: content.as_bytes().to_vec(),
        params: String::new(),
        timeout: Duration::from_secs(60),
        env: Vec::new(),
        account: "root".into(),
        capture: Vec::new(),
    }
}

async fn run_on(sb: &HostSandboxes, on: &str, job: &ScriptRun) -> HostResult {
    run_script(sb, &host(on), job, CancellationToken::new()).await
}

/// The log's lines without their `[yyyy-MM-dd HH:mm:ss] ` prefixes.
fn lines(log: &str) -> Vec<String> {
    log.lines()
        .map(|line| {
            line.split_once("] ")
                .map_or(line, |(_, rest)| rest)
                .to_owned()
        })
        .collect()
}

/// A marker no other process on this machine has in its command line.
fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}.{:09}", 4000 + std::process::id() % 1000, nanos)
}

/// Processes of this machine whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) {
            found.push(format!("{name}: {text}"));
        }
    }
    found
}

/// Waits (bounded) until a process with `needle` in its command line exists.
async fn appears(needle: &str) -> bool {
    for _ in 0..3000 {
        if !processes_with(needle).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Waits (bounded) until no process with `needle` in its command line is left, and
/// returns those that are.
async fn gone(needle: &str) -> Vec<String> {
    for _ in 0..3000 {
        let left = processes_with(needle);
        if left.is_empty() {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    processes_with(needle)
}

#[tokio::test]
async fn scripts_of_a_host_share_one_executor_but_not_their_pid_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    // Field 22 of /proc/1/stat is the start time of the host's PID 1, the executor.
    let job = script("echo pid=$$; cut -d' ' -f22 /proc/1/stat");
    let first = run_on(&sb, "0:10.0.0.1", &job).await;
    let second = run_on(&sb, "0:10.0.0.1", &job).await;
    let other = run_on(&sb, "0:10.0.0.2", &job).await;
    for result in [&first, &second, &other] {
        assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
        assert_eq!(lines(&result.log)[0], "pid=1");
    }
    assert_eq!(lines(&first.log)[1], lines(&second.log)[1]);
    let executors = processes_with("--executor");
    let ours: Vec<_> = executors
        .iter()
        .filter(|p| p.contains(&dir.path().canonicalize().unwrap().display().to_string()))
        .collect();
    // Stage 1 and the executor, for each of the two hosts.
    assert_eq!(ours.len(), 4, "{ours:#?}");
}

#[tokio::test]
async fn the_executor_is_no_way_out_of_the_host_folder() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let escape = format!(
        "for p in /proc/[0-9]*; do echo x > $p/root/../../escaped 2>/dev/null; \
         echo x > $p/cwd/../../escaped 2>/dev/null; done; \
         echo x > /proc/1/root{out}/escaped 2>/dev/null; \
         ls /proc/1/root{out} 2>/dev/null && echo SAW-OUTSIDE; \
         kill -9 1 2>/dev/null; kill -9 -1 2>/dev/null; echo alive",
        out = outside.display()
    );
    let result = run_on(&sb, "0:10.0.0.1", &script(&escape)).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    let seen = lines(&result.log);
    assert_eq!(seen.last().map(String::as_str), Some("alive"), "{seen:?}");
    assert!(!seen.iter().any(|l| l == "SAW-OUTSIDE"), "{seen:?}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!dir.path().join("escaped").exists());
    assert!(!dir.path().join("hosts/escaped").exists());
    // What landed, landed in the host's own folder.
    let host_dir = sb.host_dir(&host("0:10.0.0.1")).unwrap();
    assert!(host_dir.join("escaped").is_file());
    // The executor survived `kill -9 1` and serves the next script.
    let next = run_on(&sb, "0:10.0.0.1", &script("echo again")).await;
    assert_eq!(lines(&next.log), vec!["again"]);
}

#[tokio::test]
async fn scripts_cannot_reach_another_hosts_folder_through_the_proc_of_their_host() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let tag = marker();
    let sleeper = script(&format!("exec sleep {tag}"));
    let busy = {
        let sb = sb.clone();
        tokio::spawn(async move { run_on(&sb, "0:10.0.0.2", &sleeper).await })
    };
    assert!(appears(&tag).await, "the other host's script never started");
    let probe = run_on(
        &sb,
        "0:10.0.0.1",
        &script(
            "for p in /proc/[0-9]*; do echo x > $p/root/tmp/from-a 2>/dev/null; done; \
             grep -l 'slee[p]' /proc/[0-9]*/cmdline 2>/dev/null | wc -l",
        ),
    )
    .await;
    assert_eq!(probe.status, host_status::SUCCESS, "{}", probe.log);
    assert_eq!(
        lines(&probe.log),
        vec!["0"],
        "host A sees host B's processes"
    );
    let b_dir = sb.host_dir(&host("0:10.0.0.2")).unwrap();
    assert!(!b_dir.join("tmp/from-a").exists());
    busy.abort();
}

#[tokio::test]
async fn a_daemon_dies_with_the_script_that_started_it() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let tag = marker();
    let job = script(&format!(
        "setsid sleep {tag} </dev/null >/dev/null 2>&1 &\n\
         ( nohup sleep {tag} </dev/null >/dev/null 2>&1 & ) \n\
         echo started"
    ));
    let result = run_on(&sb, "0:10.0.0.1", &job).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    assert_eq!(lines(&result.log), vec!["started"]);
    assert_eq!(processes_with(&tag), Vec::<String>::new());
}

#[tokio::test]
async fn a_timeout_kills_the_script_and_its_daemons() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let tag = marker();
    let mut job = script(&format!(
        "setsid sleep {tag} </dev/null >/dev/null 2>&1 &\necho started\nsleep 30\necho never"
    ));
    job.timeout = Duration::from_secs(1);
    let result = run_on(&sb, "0:10.0.0.1", &job).await;
    assert_eq!(result.status, host_status::SCRIPT_TIMEOUT, "{}", result.log);
    assert!(!result.log.contains("never"));
    assert_eq!(processes_with(&tag), Vec::<String>::new());
}

#[tokio::test]
async fn cancelling_the_hosts_job_kills_the_script_and_its_daemons() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let tag = marker();
    let job = script(&format!(
        "setsid sleep {tag} </dev/null >/dev/null 2>&1 &\nsleep 30"
    ));
    let cancel = CancellationToken::new();
    let running = {
        let (sb, cancel) = (sb.clone(), cancel.clone());
        tokio::spawn(async move { run_script(&sb, &host("0:10.0.0.1"), &job, cancel).await })
    };
    assert!(appears(&tag).await, "the daemon never started");
    cancel.cancel();
    let result = running.await.unwrap();
    assert_eq!(
        result.status,
        host_status::TERMINATE_SUCCESS,
        "{}",
        result.log
    );
    assert_eq!(processes_with(&tag), Vec::<String>::new());
}

#[tokio::test]
async fn a_killed_executor_takes_its_scripts_down_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let tag = marker();
    let job = script(&format!(
        "setsid sleep {tag} </dev/null >/dev/null 2>&1 &\nsleep 30"
    ));
    let running = {
        let sb = sb.clone();
        tokio::spawn(async move { run_on(&sb, "0:10.0.0.1", &job).await })
    };
    assert!(appears(&tag).await, "the daemon never started");
    let root = dir.path().canonicalize().unwrap().display().to_string();
    for process in processes_with("--executor") {
        if process.contains(&root) {
            let pid: i32 = process.split(':').next().unwrap().parse().unwrap();
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let result = running.await.unwrap();
    assert_eq!(result.status, host_status::SCRIPT_FAILED, "{}", result.log);
    assert!(result.log.contains("executor went away"), "{}", result.log);
    // The kernel kills the rest of a PID namespace when its first process dies, after
    // that process has closed its files: the daemon goes a moment after the socket.
    assert_eq!(gone(&tag).await, Vec::<String>::new());
    let next = run_on(&sb, "0:10.0.0.1", &script("echo back")).await;
    assert_eq!(next.status, host_status::SUCCESS, "{}", next.log);
    assert_eq!(lines(&next.log), vec!["back"]);
}
