//! `baton run` controlling running JOB instances, end to end against an emulator in
//! this test process (so its request log and holds are at hand): rolling batch
//! progress, waiting for a person (status 7) with and without `--yes` and at a
//! terminal prompt, `--abort-running`, SIGTERM, `--detach`, a second signal, and the
//! exit codes not covered in `run.rs`.
//!
//! Nothing here waits on a clock: running jobs are held with the emulator's holds and
//! released when baton has said what the test waits for; deadlines only bound polling
//! loops so a broken build fails instead of hanging.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::running::Running;
use crate::support::{BATON, Emulator, app_credentials, baton, step, text};

/// Generous bound for anything baton does in these tests.
const DEADLINE: Duration = Duration::from_secs(90);

const CREDENTIALS: &str = "credentials:\n  apps: [{ code: baton, secret: s3cret }]\n";

/// What these tests read from the shared emulator beyond its own methods.
trait EmulatorExt {
    fn operations(&self, api: &str) -> Vec<i64>;
    fn running_hosts(&self) -> Vec<String>;
}

impl EmulatorExt for Emulator {
    /// The `operation_code`s sent to `api` (`operate_job_instance` / `operate_step_instance`).
    fn operations(&self, api: &str) -> Vec<i64> {
        self.requests(api)
            .iter()
            .filter_map(|r| r["body"]["operation_code"].as_i64())
            .collect()
    }

    /// Hosts of any instance that are RUNNING (a held host stops there).
    fn running_hosts(&self) -> Vec<String> {
        let running = i64::from(baton::job_api::types::host_status::RUNNING);
        let mut hosts = Vec::new();
        for job in &self.instances() {
            for step in job["steps"].as_array().into_iter().flatten() {
                for host in step["hosts"].as_array().into_iter().flatten() {
                    if host["status"].as_i64() == Some(running)
                        && let Some(name) = host["host"].as_str()
                    {
                        hosts.push(name.to_owned());
                    }
                }
            }
        }
        hosts
    }
}

/// A scratch folder with a plan.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(plan: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("plan.yaml"), plan).expect("write plan");
        Scratch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sandbox(&self) -> PathBuf {
        self.path("sandbox")
    }

    /// `baton run plan.yaml --endpoint <emulator>` with app credentials, no TTY.
    fn command(&self, endpoint: &str, extra: &[&str]) -> Command {
        let mut cmd = baton(self.dir.path());
        cmd.arg("run")
            .arg(self.path("plan.yaml"))
            .arg("--endpoint")
            .arg(endpoint)
            .arg("--report")
            .arg(self.path("report.json"))
            .args(extra);
        app_credentials(&mut cmd, "s3cret");
        cmd
    }

    fn run(&self, emulator: &Emulator, extra: &[&str]) -> Output {
        self.command(&emulator.url(), extra)
            .output()
            .expect("run baton")
    }

    fn report(&self) -> Value {
        let text = std::fs::read_to_string(self.path("report.json")).expect("report written");
        serde_json::from_str(&text).expect("report is JSON")
    }
}

// ---------------------------------------------------------------------------
// Rolling batches
// ---------------------------------------------------------------------------

const THREE_HOSTS: [&str; 3] = ["0:10.0.0.1", "0:10.0.0.2", "0:10.0.0.3"];

fn rolling_plan(api: &str, mode: &str) -> String {
    format!(
        r#"version: 1
name: roll
api: {api}
scope: {{ type: biz, id: 2 }}
defaults: {{ account: root, timeout: 120 }}
hosts:
  web: {{ ips: ["0:10.0.0.1", "0:10.0.0.2", "0:10.0.0.3"] }}
steps:
  - id: stop-web
    targets: web
    rolling: {{ expression: "1", mode: {mode} }}
    script: {{ language: shell, content: "echo stopped" }}
"#
    )
}

#[test]
fn rolling_progress_names_each_batch_k_of_n() {
    let r = Scratch::new(&rolling_plan("v3", "pause"));
    let emulator = Emulator::start(CREDENTIALS, &r.sandbox());
    for host in THREE_HOSTS {
        emulator.hold_host(host);
    }
    let mut run = Running::spawn(r.command(&emulator.url(), &[]));
    // Each batch is held on its host until baton has shown it, then released.
    for k in 1..=3 {
        run.wait_for(&format!("step stop-web batch {k}/3:"));
        let end = Instant::now() + DEADLINE;
        loop {
            let running = emulator.running_hosts();
            if !running.is_empty() {
                assert_eq!(running.len(), 1, "one host per batch: {running:?}");
                emulator.release_host(&running[0]);
                break;
            }
            assert!(Instant::now() < end, "batch {k} never ran a host");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (code, seen) = run.finish();
    assert_eq!(code, Some(0), "{seen}");
    assert!(seen.contains("step stop-web succeeded"), "{seen}");
}

#[test]
fn rolling_confirm_without_a_terminal_or_yes_fails_and_terminates() {
    let r = Scratch::new(&rolling_plan("v3", "confirm"));
    let emulator = Emulator::start(CREDENTIALS, &r.sandbox());
    let out = r.run(&emulator, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("waited for confirmation") && all.contains("pass --yes"),
        "says it waited and how to allow it: {all}"
    );
    assert_eq!(emulator.operations("operate_job_instance"), vec![1]);
    assert!(emulator.operations("operate_step_instance").is_empty());
    assert_eq!(step(&r.report(), "stop-web")["status"], "failed");
}

#[test]
fn rolling_confirm_with_yes_continues_each_batch_with_operation_13() {
    let r = Scratch::new(&rolling_plan("v3", "confirm"));
    let emulator = Emulator::start(CREDENTIALS, &r.sandbox());
    let out = r.run(&emulator, &["--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Three batches: two waits for a person, each continued with 13.
    assert_eq!(emulator.operations("operate_step_instance"), vec![13, 13]);
    assert!(emulator.operations("operate_job_instance").is_empty());
    assert!(
        text(&out)
            .contains("waits to start the next rolling batch (batch 1/3 done): confirmed (--yes)"),
        "{}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------
// A job plan with a manual-confirm step
// ---------------------------------------------------------------------------

const CONFIRM_WORLD: &str = r#"credentials:
  apps: [{ code: baton, secret: s3cret }]
plans:
  - id: 100
    name: deploy
    steps:
      - { id: 200, name: before, type: 1,
          script: { content: "echo before", language: 1, account: root },
          targets: { hosts: ["0:10.0.0.1"] } }
      - { id: 201, name: approve, type: 3, confirm: { message: "go?" } }
      - { id: 202, name: after, type: 1,
          script: { content: "echo after", language: 1, account: root },
          targets: { hosts: ["0:10.0.0.1"] } }
"#;

const CONFIRM_PLAN: &str = r#"version: 1
name: approve
api: v3
scope: { type: biz, id: 2 }
steps:
  - id: deploy
    job: { plan_id: 100 }
"#;

#[test]
fn a_manual_confirm_step_without_yes_fails_and_terminates() {
    let r = Scratch::new(CONFIRM_PLAN);
    let emulator = Emulator::start(CONFIRM_WORLD, &r.sandbox());
    let out = r.run(&emulator, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("waited for confirmation (job ")
            && all.contains("waits for a manual confirmation")
            && all.contains("--yes"),
        "{all}"
    );
    assert_eq!(emulator.operations("operate_job_instance"), vec![1]);
    assert!(emulator.operations("operate_step_instance").is_empty());
}

#[test]
fn a_manual_confirm_step_with_yes_is_confirmed_with_operation_6() {
    let r = Scratch::new(CONFIRM_PLAN);
    let emulator = Emulator::start(CONFIRM_WORLD, &r.sandbox());
    let out = r.run(&emulator, &["--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(emulator.operations("operate_step_instance"), vec![6]);
    assert!(emulator.operations("operate_job_instance").is_empty());
}

/// The shell command line for `baton run` under `script`: `script` runs it through a
/// shell, so the environment the other tests get from `support::baton` is spelled out,
/// run records included, which must stay in the test's folder.
fn pty_run_command(r: &Scratch, emulator: &Emulator) -> String {
    format!(
        "BK_APP_CODE=baton BK_APP_SECRET=s3cret BK_USERNAME=admin XDG_CONFIG_HOME={} BATON_STATE_DIR={} {} run {} --endpoint {}",
        shell_quote(&r.path("config").display().to_string()),
        shell_quote(&r.path("state").display().to_string()),
        shell_quote(BATON),
        shell_quote(&r.path("plan.yaml").display().to_string()),
        emulator.url()
    )
}

/// Runs `command` under a pseudo-terminal (`script`), feeding `input` once `prompt`
/// shows up; returns the exit code and everything the terminal showed.
pub(crate) fn under_pty(command: &str, prompt: &str, input: &str) -> (Option<i32>, String) {
    let mut child = Command::new("script")
        .args(["-qfec", command, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = Vec::new();
    let mut fed = false;
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(500)) {
                shown.extend(chunk);
            }
            return (status.code(), String::from_utf8_lossy(&shown).into_owned());
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!(
                "no exit under the terminal:\n{}",
                String::from_utf8_lossy(&shown)
            );
        }
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
            shown.extend(chunk);
        }
        if !fed && String::from_utf8_lossy(&shown).contains(prompt) {
            stdin.write_all(input.as_bytes()).expect("answer");
            stdin.flush().expect("flush");
            fed = true;
        }
    }
}

pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[test]
fn on_a_terminal_baton_asks_and_a_yes_confirms() {
    let r = Scratch::new(CONFIRM_PLAN);
    let emulator = Emulator::start(CONFIRM_WORLD, &r.sandbox());
    let command = pty_run_command(&r, &emulator);
    let (code, shown) = under_pty(&command, "Continue? [y/N]", "y\n");
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("baton: step deploy: job ")
            && shown.contains("waits for a manual confirmation. Continue? [y/N]"),
        "{shown}"
    );
    assert_eq!(emulator.operations("operate_step_instance"), vec![6]);
    assert!(emulator.operations("operate_job_instance").is_empty());
}

#[test]
fn on_a_terminal_a_no_terminates() {
    let r = Scratch::new(CONFIRM_PLAN);
    let emulator = Emulator::start(CONFIRM_WORLD, &r.sandbox());
    let command = pty_run_command(&r, &emulator);
    let (code, shown) = under_pty(&command, "Continue? [y/N]", "n\n");
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains("refused at the prompt"), "{shown}");
    assert_eq!(emulator.operations("operate_job_instance"), vec![1]);
    assert!(emulator.operations("operate_step_instance").is_empty());
}

// ---------------------------------------------------------------------------
// --abort-running
// ---------------------------------------------------------------------------

/// `slow` runs on a held host while `bad` fails on another; `after` needs `slow`.
const ABORT_PLAN: &str = r#"version: 1
name: abort
api: v3
scope: { type: biz, id: 2 }
defaults: { account: root, timeout: 120, on_failure: stop }
steps:
  - id: slow
    targets: { ips: ["0:10.0.0.1"] }
    script: { language: shell, content: "echo slow" }
  - id: bad
    targets: { ips: ["0:10.0.0.2"] }
    script: { language: shell, content: "echo bad; exit 3" }
  - id: after
    needs: [slow]
    targets: { ips: ["0:10.0.0.1"] }
    script: { language: shell, content: "echo after" }
"#;

#[test]
fn abort_running_terminates_the_running_step_after_a_failure() {
    let r = Scratch::new(ABORT_PLAN);
    let emulator = Emulator::start(CREDENTIALS, &r.sandbox());
    emulator.hold_host("0:10.0.0.1");
    let out = r.run(&emulator, &["--abort-running"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(emulator.operations("operate_job_instance"), vec![1]);
    let report = r.report();
    assert_eq!(step(&report, "bad")["status"], "failed");
    assert_eq!(step(&report, "slow")["status"], "interrupted");
    assert!(
        text(&out).contains("step slow interrupted (job ") && text(&out).contains("terminated job"),
        "{}",
        text(&out)
    );
    assert_eq!(step(&report, "after")["status"], "not_run");
    assert_eq!(
        emulator.requests("fast_execute_script").len(),
        2,
        "nothing new started"
    );
}

#[test]
fn without_abort_running_the_running_step_finishes() {
    let r = Scratch::new(ABORT_PLAN);
    let emulator = Emulator::start(CREDENTIALS, &r.sandbox());
    emulator.hold_host("0:10.0.0.1");
    let mut run = Running::spawn(r.command(&emulator.url(), &[]));
    run.wait_for("step bad failed");
    emulator.release_host("0:10.0.0.1");
    let (code, seen) = run.finish();
    assert_eq!(code, Some(1), "{seen}");
    assert!(emulator.operations("operate_job_instance").is_empty());
    let report = r.report();
    assert_eq!(step(&report, "slow")["status"], "succeeded");
    assert_eq!(step(&report, "bad")["status"], "failed");
    assert_eq!(step(&report, "after")["status"], "not_run");
    assert_eq!(emulator.requests("fast_execute_script").len(), 2);
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

const ONE_STEP: &str = r#"version: 1
name: one
api: v3
scope: { type: biz, id: 2 }
defaults: { account: root, timeout: 120 }
steps:
  - id: first
    targets: { ips: ["0:10.0.0.1"] }
    script: { language: shell, content: "echo first" }
  - id: second
    needs: [first]
    targets: { ips: ["0:10.0.0.1"] }
    script: { language: shell, content: "echo second" }
"#;

#[test]
fn sigterm_terminates_running_instances_and_exits_130() {
    let r = Scratch::new(ONE_STEP);
    let emulator = Emulator::start(CREDENTIALS, &r.sandbox());
    emulator.hold_host("0:10.0.0.1");
    let mut run = Running::spawn(r.command(&emulator.url(), &[]));
    run.wait_for("step first submitted (job ");
    run.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, seen) = run.finish();
    assert_eq!(code, Some(130), "{seen}");
    assert!(
        seen.contains("interrupted: terminating running JOB instances"),
        "{seen}"
    );
    assert!(seen.contains("terminated job "), "{seen}");
    assert_eq!(emulator.operations("operate_job_instance"), vec![1]);
    let report = r.report();
    assert_eq!(step(&report, "first")["status"], "interrupted");
    assert_eq!(step(&report, "second")["status"], "not_run");
}

#[test]
fn detach_leaves_instances_running_and_names_them() {
    let r = Scratch::new(ONE_STEP);
    let emulator = Emulator::start(CREDENTIALS, &r.sandbox());
    emulator.hold_host("0:10.0.0.1");
    let mut run = Running::spawn(r.command(&emulator.url(), &["--detach"]));
    run.wait_for("step first submitted (job ");
    let job = emulator.requests("fast_execute_script").len();
    assert_eq!(job, 1);
    let id = emulator.get("/_emulator/instances")[0]["job_instance_id"]
        .as_u64()
        .expect("an instance");
    run.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, seen) = run.finish();
    assert_eq!(code, Some(130), "{seen}");
    assert!(
        seen.contains(&format!("left running (--detach): job {id} (step first)")),
        "{seen}"
    );
    assert!(emulator.operations("operate_job_instance").is_empty());
    // The instance really is still running in JOB.
    assert_eq!(
        emulator.get("/_emulator/instances")[0]["status"].as_i64(),
        Some(2)
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    let r = Scratch::new(ONE_STEP);
    // Terminating hangs: the first signal's clean-up never completes on its own.
    let world = format!(
        "{CREDENTIALS}faults:\n  api:\n    - {{ api: operate_job_instance, kind: latency, latency_ms: 600000 }}\n"
    );
    let emulator = Emulator::start(&world, &r.sandbox());
    emulator.hold_host("0:10.0.0.1");
    let mut run = Running::spawn(r.command(&emulator.url(), &[]));
    run.wait_for("step first submitted (job ");
    run.signal(nix::sys::signal::Signal::SIGTERM);
    run.wait_for("press Ctrl-C again to exit at once");
    // The terminate call is in flight (and hangs) before the second signal.
    let end = Instant::now() + DEADLINE;
    while emulator.requests("operate_job_instance").is_empty() {
        assert!(Instant::now() < end, "terminate never sent");
        std::thread::sleep(Duration::from_millis(50));
    }
    run.signal(nix::sys::signal::Signal::SIGINT);
    let (code, seen) = run.finish();
    assert_eq!(code, Some(130), "{seen}");
    assert!(seen.contains("interrupted again: exiting now"), "{seen}");
}

// ---------------------------------------------------------------------------
// Exit codes (0 and 1 above; 2, 3 and 130 here and in run.rs)
// ---------------------------------------------------------------------------

#[test]
fn bad_usage_exits_2_and_sends_nothing() {
    let r = Scratch::new(ONE_STEP);
    let emulator = Emulator::start(CREDENTIALS, &r.sandbox());
    // Emulator-only flags with an endpoint; a zero parallel limit; an unknown flag.
    let world = r.path("world.yaml");
    std::fs::write(&world, "{}\n").expect("world");
    let world = world.display().to_string();
    for extra in [
        vec!["--world", world.as_str()],
        vec!["--max-parallel", "0"],
        vec!["--no-such-flag"],
    ] {
        let out = r.run(&emulator, &extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", text(&out));
    }
    // An invalid plan against a real endpoint: refused before anything is sent.
    std::fs::write(
        r.path("plan.yaml"),
        "version: 1\nname: bad\nscope: { type: biz, id: 2 }\nsteps:\n  - id: a\n    needs: [ghost]\n    targets: { ips: [\"10.0.0.1\"] }\n    script: { language: shell, content: echo }\n",
    )
    .expect("plan");
    let out = r.run(&emulator, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("ghost"), "{}", text(&out));
    assert_eq!(emulator.all_requests().len(), 0, "nothing was sent");
    assert!(!r.path("report.json").exists());
}

#[test]
fn permission_denied_is_a_preflight_finding_and_exits_3_without_it() {
    let r = Scratch::new(ONE_STEP);
    let world = format!(
        "{CREDENTIALS}  users: [admin, alice]\nscopes:\n  - {{ type: biz, id: \"2\", name: secret-biz, users: [alice] }}\n"
    );
    let emulator = Emulator::start(&world, &r.sandbox());
    // The preflight finds it first: a plan problem at `scope`, nothing submitted.
    let out = r.run(&emulator, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("permission denied") && all.contains("access_business"),
        "{all}"
    );
    assert!(all.contains("scope"), "{all}");
    assert!(emulator.requests("fast_execute_script").is_empty());
    // Without the preflight, the submission itself is refused: exit 3.
    let out = r.run(&emulator, &["--skip-preflight"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("permission denied") && all.contains("access_business"),
        "{all}"
    );
}
