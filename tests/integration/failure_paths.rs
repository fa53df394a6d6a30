//! Failure paths and gates, rehearsed with the shipped canary runbook
//! (`plans/release-web-canary.yaml`) on the embedded emulator: a failed smoke test
//! rolls back exactly the hosts that took the release and still exits 1, the reports
//! show the failure and the handler that ran because of it, an approval gate waits for
//! `baton approve` from another process, times out without an answer (`--yes` does not
//! pass it), and `baton resume` continues from it once approved.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::running::Running;
use crate::support::{baton, sandbox_file, step, text};

const CANARY: &str = "0:10.0.2.1";
const REST: [&str; 3] = ["0:10.0.2.2", "0:10.0.2.3", "0:10.0.2.4"];

fn plans() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plans")
}

/// A scratch folder with the sandbox, state, and reports.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Scratch(tempfile::tempdir().expect("scratch"))
    }
    fn dir(&self) -> &Path {
        self.0.path()
    }
    fn sandbox(&self) -> PathBuf {
        self.dir().join("sandbox")
    }
    fn file(&self, host: &str, path: &str) -> PathBuf {
        sandbox_file(&self.sandbox(), host, path)
    }
    fn read(&self, host: &str, path: &str) -> String {
        let file = self.file(host, path);
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .trim()
            .to_owned()
    }
    /// Makes `host`'s smoke test fail, as a host where the new release does not come up.
    fn unhealthy(&self, host: &str) {
        let marker = self.file(host, "/opt/app/UNHEALTHY");
        std::fs::create_dir_all(marker.parent().expect("parent")).expect("mkdir");
        std::fs::write(marker, "").expect("marker");
    }
    fn report(&self) -> Value {
        let text = std::fs::read_to_string(self.dir().join("report.json")).expect("report");
        serde_json::from_str(&text).expect("report is JSON")
    }
    fn junit(&self) -> String {
        std::fs::read_to_string(self.dir().join("junit.xml")).expect("junit")
    }
    fn journal(&self) -> String {
        let runs = self.dir().join("state/runs");
        let run = std::fs::read_dir(&runs)
            .expect("runs")
            .filter_map(Result::ok)
            .next()
            .expect("one run");
        std::fs::read_to_string(run.path().join("journal.jsonl")).expect("journal")
    }
    /// `baton run` of `plan` with the release version, sandbox and reports.
    fn run(&self, plan: &Path, extra: &[&str]) -> Command {
        let mut cmd = baton(self.dir());
        cmd.arg("run")
            .arg(plan)
            .args(["--var", "version=1.5.0", "--sandbox"])
            .arg(self.sandbox())
            .arg("--report")
            .arg(self.dir().join("report.json"))
            .arg("--junit")
            .arg(self.dir().join("junit.xml"))
            .args(extra);
        cmd
    }
}

/// The canary runbook copied beside its scripts and world, with the gate's timeout
/// replaced, so a test can see it run out.
fn canary_with_gate_timeout(scratch: &Scratch, timeout: &str) -> PathBuf {
    let dir = scratch.dir().join("plans");
    std::fs::create_dir_all(dir.join("scripts")).expect("mkdir");
    for entry in std::fs::read_dir(plans().join("scripts")).expect("scripts") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.join("scripts").join(entry.file_name())).expect("copy");
    }
    std::fs::copy(plans().join("world.yaml"), dir.join("world.yaml")).expect("world");
    let text = std::fs::read_to_string(plans().join("release-web-canary.yaml")).expect("plan");
    assert!(text.contains("timeout: 30m"), "the gate's timeout moved");
    let path = dir.join("release-web-canary.yaml");
    std::fs::write(
        &path,
        text.replace("timeout: 30m", &format!("timeout: {timeout}")),
    )
    .expect("write plan");
    path
}

fn on_release(scratch: &Scratch, host: &str, version: &str) {
    assert_eq!(
        scratch.read(host, "/opt/app/current_version"),
        version,
        "{host}"
    );
}

fn untouched(scratch: &Scratch, host: &str) {
    on_release(scratch, host, "1.4.1");
    for path in [
        "/opt/app/releases",
        "/opt/app/versions/1.5.0",
        "/opt/app/previous_version",
        "/opt/app/rollback.log",
    ] {
        assert!(
            !scratch.file(host, path).exists(),
            "{host} was touched: {path}"
        );
    }
}

#[test]
fn a_failed_smoke_test_rolls_back_the_hosts_that_took_the_release_and_exits_1() {
    let scratch = Scratch::new();
    scratch.unhealthy("0:10.0.2.3");
    let output = scratch
        .run(
            &plans().join("release-web-canary.yaml"),
            &["--approve", "approve-rollout"],
        )
        .output()
        .expect("baton runs");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));

    // Every host that took 1.5.0 is back on 1.4.1, the failing one included.
    for host in [CANARY].into_iter().chain(REST) {
        on_release(&scratch, host, "1.4.1");
        assert_eq!(
            scratch.read(host, "/opt/app/rollback.log"),
            "rolled back 1.5.0 -> 1.4.1"
        );
    }
    // Hosts outside the release were not touched.
    assert!(
        !scratch
            .file("0:10.0.0.1", "/opt/app/current_version")
            .exists()
    );

    let report = scratch.report();
    assert_eq!(report["exit_code"], 1);
    let smoke = step(&report, "smoke-rest");
    assert_eq!(smoke["status"], "failed");
    let failed: Vec<&Value> = smoke["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter(|h| h["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{smoke}");
    assert_eq!(failed[0]["host"], "0:10.0.2.3");
    assert!(
        failed[0]["log_tail"]
            .as_str()
            .expect("log")
            .contains("FAIL health check passes")
    );
    for id in ["rollback-rest", "rollback-canary"] {
        let rollback = step(&report, id);
        assert_eq!(rollback["status"], "succeeded", "{rollback}");
        assert_eq!(rollback["handler"]["condition"], "failure()");
        assert_eq!(rollback["handler"]["because"], "`smoke-rest` failed");
    }
    assert_eq!(
        step(&report, "rollback-rest")["hosts"]
            .as_array()
            .expect("hosts")
            .len(),
        3
    );
    assert_eq!(step(&report, "record")["handler"]["condition"], "always()");
    let gate = &step(&report, "approve-rollout")["gate"];
    assert_eq!(gate["decision"], "approved");
    assert_eq!(gate["via"], "--approve");

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("handler: ran because `smoke-rest` failed (if: failure())"),
        "{stdout}"
    );
    let junit = scratch.junit();
    assert!(
        junit.contains("<testcase classname=\"release-web-canary\" name=\"smoke-rest\""),
        "{junit}"
    );
    assert!(junit.contains("FAIL health check passes"), "{junit}");
    assert!(
        junit.contains("handler: ran because `smoke-rest` failed"),
        "{junit}"
    );
}

#[test]
fn a_failed_canary_is_rolled_back_and_the_rest_is_never_touched() {
    let scratch = Scratch::new();
    scratch.unhealthy(CANARY);
    let output = scratch
        .run(&plans().join("release-web-canary.yaml"), &[])
        .output()
        .expect("baton runs");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    on_release(&scratch, CANARY, "1.4.1");
    assert_eq!(
        scratch.read(CANARY, "/opt/app/rollback.log"),
        "rolled back 1.5.0 -> 1.4.1"
    );
    for host in REST {
        untouched(&scratch, host);
    }
    let report = scratch.report();
    assert_eq!(step(&report, "smoke-canary")["status"], "failed");
    assert_eq!(step(&report, "approve-rollout")["status"], "not_run");
    assert_eq!(step(&report, "rollback-canary")["status"], "succeeded");
    let rest = step(&report, "rollback-rest");
    assert_eq!(rest["status"], "skipped");
    assert_eq!(
        rest["reason"],
        "no targets: `deploy-rest` has no succeeded hosts"
    );
}

#[test]
fn a_gate_waits_for_baton_approve_from_another_process() {
    let scratch = Scratch::new();
    let mut running = Running::spawn(scratch.run(&plans().join("release-web-canary.yaml"), &[]));
    let line = running.wait_for("step approve-rollout waits for approval");
    // The journal says so before the line is printed.
    assert!(scratch.journal().contains("\"event\":\"gate_waiting\""));
    let command = line
        .split("answer with `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("the line names the command");
    let run_id = command
        .split_whitespace()
        .nth(2)
        .expect("run id")
        .to_owned();
    // Nothing went past the gate while it waited.
    for host in REST {
        untouched(&scratch, host);
    }
    let approve = baton(scratch.dir())
        .args(["approve", &run_id, "approve-rollout", "--by", "ana"])
        .output()
        .expect("baton approve");
    assert_eq!(approve.status.code(), Some(0), "{}", text(&approve));
    let (code, seen) = running.finish();
    assert_eq!(code, Some(0), "{seen}");
    for host in [CANARY].into_iter().chain(REST) {
        on_release(&scratch, host, "1.5.0");
    }
    let report = scratch.report();
    let gate = &step(&report, "approve-rollout")["gate"];
    assert_eq!(gate["decision"], "approved");
    assert_eq!(gate["by"], "ana");
    assert_eq!(gate["via"], "baton approve");
    assert_eq!(step(&report, "rollback-canary")["status"], "skipped");
    assert!(scratch.journal().contains("\"by\":\"ana\""));

    let wrong = baton(scratch.dir())
        .args(["approve", &run_id, "deploy-rest"])
        .output()
        .expect("baton approve");
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("its gates: approve-rollout"));

    let misspelt = scratch
        .run(
            &plans().join("release-web-canary.yaml"),
            &["--approve", "approve-rollot"],
        )
        .output()
        .expect("baton run");
    assert_eq!(misspelt.status.code(), Some(2), "{}", text(&misspelt));
    assert!(
        String::from_utf8_lossy(&misspelt.stderr)
            .contains("plan release-web-canary has no approval gate `approve-rollot`"),
        "{}",
        text(&misspelt)
    );
}

#[test]
fn an_unanswered_gate_times_out_even_with_yes_and_resume_goes_on_once_approved() {
    let scratch = Scratch::new();
    let plan = canary_with_gate_timeout(&scratch, "1s");
    let output = scratch.run(&plan, &["--yes"]).output().expect("baton runs");
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    let report = scratch.report();
    let gate = step(&report, "approve-rollout");
    assert_eq!(gate["status"], "timed_out", "{gate}");
    assert!(
        gate["reason"]
            .as_str()
            .expect("reason")
            .starts_with("no approval within 1s")
    );
    // The canary went back; the rest never started.
    assert_eq!(
        step(&report, "rollback-canary")["handler"]["because"],
        "`approve-rollout` failed"
    );
    on_release(&scratch, CANARY, "1.4.1");
    for host in REST {
        untouched(&scratch, host);
    }

    let approve = baton(scratch.dir())
        .args(["approve", "last", "approve-rollout", "--by", "ana"])
        .output()
        .expect("baton approve");
    assert_eq!(approve.status.code(), Some(0), "{}", text(&approve));
    assert!(String::from_utf8_lossy(&approve.stdout).contains("continues from the gate"));
    let resumed = baton(scratch.dir())
        .args(["resume", "last", "--sandbox"])
        .arg(scratch.sandbox())
        .arg("--report")
        .arg(scratch.dir().join("report.json"))
        .output()
        .expect("baton resume");
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    for host in REST {
        on_release(&scratch, host, "1.5.0");
    }
    // The rollback that ran is not run again.
    assert_eq!(
        scratch.read(CANARY, "/opt/app/rollback.log"),
        "rolled back 1.5.0 -> 1.4.1"
    );
    let report = scratch.report();
    assert_eq!(step(&report, "approve-rollout")["gate"]["by"], "ana");
    let submitted = scratch
        .journal()
        .lines()
        .filter(|l| l.contains("\"step_submitted\"") && l.contains("\"rollback-canary\""))
        .count();
    assert_eq!(submitted, 1, "the rollback ran once");
}

#[test]
fn plan_and_graph_show_conditions_handlers_and_gates() {
    let scratch = Scratch::new();
    let canary = plans().join("release-web-canary.yaml");
    let plan = baton(scratch.dir())
        .arg("plan")
        .arg(&canary)
        .args(["--var", "version=1.5.0", "--format", "json"])
        .output()
        .expect("baton plan");
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let document: Value = serde_json::from_slice(&plan.stdout).expect("JSON");
    let rollback = step(&document, "rollback-rest");
    assert_eq!(rollback["if"], "failure()");
    assert_eq!(rollback["handler"], true);
    assert_eq!(rollback["targets_from"]["from"], "deploy-rest");
    // Shown with the most hosts it can have: those `deploy-rest` targets.
    assert_eq!(
        rollback["body"]["target_server"]["ip_list"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "{rollback}"
    );
    let gate = step(&document, "approve-rollout");
    assert_eq!(gate["gate"]["timeout_secs"], 1800);
    assert!(gate.get("body").is_none(), "a gate sends nothing: {gate}");

    let graph = baton(scratch.dir())
        .arg("graph")
        .arg(&canary)
        .args(["--format", "dot"])
        .output()
        .expect("baton graph");
    let dot = String::from_utf8_lossy(&graph.stdout);
    assert!(dot.contains("7 -> 8 [ style=dashed]"), "{dot}");
    assert!(dot.contains("6 -> 7 [ ]"), "{dot}");
    assert!(
        dot.contains("label = \"approve-rollout\" shape=hexagon"),
        "{dot}"
    );
}

const CREDENTIALS: &str = "credentials:\n  apps: [{ code: baton, secret: s3cret }]\n";

/// `deploy` fails on 10.0.0.1 until `/opt/fixed` exists there; `slow` runs on
/// 10.0.0.2 (held by the tests); `rollback` reacts to `deploy`'s failure on 10.0.0.3.
const RESUME_PLAN: &str = r#"version: 1
name: resume-handlers
api: v3
scope: { type: biz, id: 2 }
defaults: { account: root, timeout: 120 }
steps:
  - id: deploy
    targets: { ips: ["0:10.0.0.1"] }
    script: { language: shell, content: "test -e /opt/fixed" }
  - id: slow
    targets: { ips: ["0:10.0.0.2"] }
    script: { language: shell, content: "echo slow" }
  - id: rollback
    needs: [deploy, slow]
    if: failure(deploy)
    targets: { ips: ["0:10.0.0.3"] }
    script: { language: shell, content: "mkdir -p /opt && echo undone >> /opt/rollback.log" }
"#;

fn against(scratch: &Scratch, emulator: &crate::support::Emulator, command: &[&str]) -> Command {
    std::fs::write(scratch.dir().join("plan.yaml"), RESUME_PLAN).expect("plan");
    let mut cmd = baton(scratch.dir());
    cmd.args(command)
        .arg("--endpoint")
        .arg(emulator.url())
        .arg("--report")
        .arg(scratch.dir().join("report.json"));
    crate::support::app_credentials(&mut cmd, "s3cret");
    cmd
}

fn rollback_submissions(emulator: &crate::support::Emulator) -> usize {
    emulator
        .requests("fast_execute_script")
        .iter()
        .filter(|r| {
            r["body"]["task_name"]
                .as_str()
                .is_some_and(|t| t.contains(" rollback#"))
        })
        .count()
}

#[test]
fn a_runner_killed_during_a_rollback_resumes_by_attaching_to_it_not_resending_it() {
    let scratch = Scratch::new();
    let emulator = crate::support::Emulator::start(CREDENTIALS, &scratch.sandbox());
    emulator.hold_host("0:10.0.0.3");
    let plan = scratch.dir().join("plan.yaml");
    let mut running = Running::spawn(against(
        &scratch,
        &emulator,
        &["run", plan.to_str().expect("path")],
    ));
    running.wait_for("step rollback submitted (job ");
    running.signal(nix::sys::signal::Signal::SIGKILL);
    let (code, _) = running.finish();
    assert_eq!(code, None, "killed");
    emulator.release_host("0:10.0.0.3");

    let resumed = against(&scratch, &emulator, &["resume", "last"])
        .output()
        .expect("resume");
    assert_eq!(resumed.status.code(), Some(1), "{}", text(&resumed));
    assert_eq!(
        rollback_submissions(&emulator),
        1,
        "the rollback was sent once"
    );
    assert_eq!(
        std::fs::read_to_string(scratch.file("0:10.0.0.3", "/opt/rollback.log")).expect("log"),
        "undone\n"
    );
    let report = scratch.report();
    assert_eq!(step(&report, "rollback")["status"], "succeeded");
    assert_eq!(step(&report, "deploy")["status"], "failed");

    // Resuming again keeps the rollback that ran.
    let again = against(&scratch, &emulator, &["resume", "last"])
        .output()
        .expect("resume");
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert_eq!(rollback_submissions(&emulator), 1);
}

#[test]
fn resuming_a_failed_step_that_now_succeeds_skips_its_failure_handler() {
    let scratch = Scratch::new();
    let emulator = crate::support::Emulator::start(CREDENTIALS, &scratch.sandbox());
    emulator.hold_host("0:10.0.0.2");
    let plan = scratch.dir().join("plan.yaml");
    let mut running = Running::spawn(against(
        &scratch,
        &emulator,
        &["run", plan.to_str().expect("path")],
    ));
    running.wait_for("step deploy failed");
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, seen) = running.finish();
    assert_eq!(code, Some(130), "{seen}");
    assert!(
        seen.contains("step rollback not run: interrupted"),
        "{seen}"
    );

    // The operator fixes the host and resumes.
    let fixed = scratch.file("0:10.0.0.1", "/opt/fixed");
    std::fs::create_dir_all(fixed.parent().expect("parent")).expect("mkdir");
    std::fs::write(&fixed, "").expect("fix");
    emulator.release_host("0:10.0.0.2");
    let resumed = against(&scratch, &emulator, &["resume", "last"])
        .output()
        .expect("resume");
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let report = scratch.report();
    assert_eq!(step(&report, "deploy")["status"], "succeeded");
    let rollback = step(&report, "rollback");
    assert_eq!(rollback["status"], "skipped");
    assert_eq!(rollback["reason"], "`if: failure(deploy)` was false");
    assert_eq!(rollback_submissions(&emulator), 0);
}

const GATE_PLAN: &str = r#"version: 1
name: gated
api: v3
scope: { type: biz, id: 2 }
defaults: { account: root, timeout: 120 }
steps:
  - id: first
    targets: { ips: ["0:10.0.0.1"] }
    script: { language: shell, content: "echo first" }
  - id: go
    needs: [first]
    approve: { message: "Ship it?", timeout: 10m }
  - id: second
    needs: [go]
    targets: { ips: ["0:10.0.0.1"] }
    script: { language: shell, content: "echo second" }
  - id: cleanup
    needs: [second]
    if: always()
    targets: { ips: ["0:10.0.0.2"] }
    script: { language: shell, content: "mkdir -p /opt && echo cleaned > /opt/cleaned" }
"#;

#[test]
fn on_a_terminal_the_gate_asks_and_the_answer_is_recorded() {
    use crate::run_control::{shell_quote, under_pty};
    for (answer, code, decision) in [("y\n", 0, "approved"), ("n\n", 5, "rejected")] {
        let scratch = Scratch::new();
        let emulator = crate::support::Emulator::start(CREDENTIALS, &scratch.sandbox());
        std::fs::write(scratch.dir().join("plan.yaml"), GATE_PLAN).expect("plan");
        let command = format!(
            "USER=ana BK_APP_CODE=baton BK_APP_SECRET=s3cret BK_USERNAME=admin XDG_CONFIG_HOME={} BATON_STATE_DIR={} {} run {} --endpoint {} --report {}",
            shell_quote(&scratch.dir().join("config").display().to_string()),
            shell_quote(&scratch.dir().join("state").display().to_string()),
            shell_quote(crate::support::BATON),
            shell_quote(&scratch.dir().join("plan.yaml").display().to_string()),
            emulator.url(),
            shell_quote(&scratch.dir().join("report.json").display().to_string()),
        );
        let (exit, shown) = under_pty(&command, "Approve? [y/N]", answer);
        assert_eq!(exit, Some(code), "{shown}");
        assert!(shown.contains("baton: gate go: Ship it?"), "{shown}");
        let report = scratch.report();
        let gate = &step(&report, "go")["gate"];
        assert_eq!(gate["decision"], decision, "{gate}");
        assert_eq!(gate["by"], "ana");
        assert_eq!(gate["via"], "terminal");
        // `always()` runs either way.
        assert_eq!(step(&report, "cleanup")["status"], "succeeded");
    }
}

#[test]
fn after_ctrl_c_an_always_handler_still_runs() {
    let scratch = Scratch::new();
    let emulator = crate::support::Emulator::start(CREDENTIALS, &scratch.sandbox());
    emulator.hold_host("0:10.0.0.1");
    std::fs::write(scratch.dir().join("plan.yaml"), GATE_PLAN).expect("plan");
    let plan = scratch.dir().join("plan.yaml");
    let mut running = Running::spawn(against_plan(&scratch, &emulator, &plan));
    running.wait_for("step first submitted (job ");
    running.signal(nix::sys::signal::Signal::SIGINT);
    let (code, seen) = running.finish();
    assert_eq!(code, Some(130), "{seen}");
    let report = scratch.report();
    assert_eq!(step(&report, "first")["status"], "interrupted");
    assert_eq!(step(&report, "go")["status"], "not_run");
    assert_eq!(step(&report, "second")["status"], "not_run");
    let cleanup = step(&report, "cleanup");
    assert_eq!(cleanup["status"], "succeeded", "{seen}");
    assert_eq!(cleanup["handler"]["because"], "it always runs");
    assert_eq!(
        std::fs::read_to_string(scratch.file("0:10.0.0.2", "/opt/cleaned")).expect("cleaned"),
        "cleaned\n"
    );
}

fn against_plan(scratch: &Scratch, emulator: &crate::support::Emulator, plan: &Path) -> Command {
    let mut cmd = baton(scratch.dir());
    cmd.arg("run")
        .arg(plan)
        .arg("--endpoint")
        .arg(emulator.url())
        .arg("--report")
        .arg(scratch.dir().join("report.json"));
    crate::support::app_credentials(&mut cmd, "s3cret");
    cmd
}
