//! The fault matrix: `baton run` against an emulator that misbehaves, for v2, v3 and
//! v4. Every row × protocol proves the same three things — the run ends with the right
//! status and exit code, no job is started twice (submissions counted per task name in
//! `/_emulator/requests`, instances per name in `/_emulator/instances`), and the report
//! is complete (every step has a final status) — plus what is particular to the fault.
//!
//! Rows run concurrently, each with its own emulator (in this process, so its request
//! log outlives baton) and its own `baton run` child. Nothing waits on a clock: held
//! hosts keep a step running while the test acts, and loops poll with generous
//! deadlines. The emulator-restart case runs the emulator as a separate `baton
//! emulator` child, since only a process can be killed and started again on its port.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{BATON, Emulator, app_credentials, baton, control_client};

/// The app secret every emulator of these tests accepts.
pub(crate) const APP_SECRET: &str = "faults-app-secret-4b1d";
const HELD_HOST: &str = "0:10.0.0.1";

/// A world with app `baton` (secret [`APP_SECRET`]), user `admin` and the given
/// `faults:` YAML body.
pub(crate) fn app_world(faults: &str) -> String {
    format!(
        "credentials:\n  apps: [{{ code: baton, secret: {APP_SECRET} }}]\n  users: [admin]\n{faults}"
    )
}

fn control_get(rt: &tokio::runtime::Runtime, client: &reqwest::Client, url: &str) -> Value {
    rt.block_on(async {
        match client.get(url).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    })
}

fn control_post(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    url: &str,
    body: Value,
) -> Value {
    rt.block_on(async {
        match client.post(url).json(&body).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    })
}

/// Submissions (requests carrying a `task_name`) counted per task name.
pub(crate) fn submissions_per_task(requests: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in requests {
        if let Some(name) = r["body"]["task_name"].as_str() {
            *counts.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// Job instances counted per name: what JOB actually started.
pub(crate) fn instances_per_name(instances: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for i in instances {
        if let Some(name) = i["name"].as_str() {
            *counts.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// The callback URL baton submitted (`callback_url` on v3/v4, `bk_callback_url` on v2).
pub(crate) fn submitted_callback_url(requests: &[Value]) -> Option<String> {
    requests.iter().find_map(|r| {
        r["body"]["callback_url"]
            .as_str()
            .or_else(|| r["body"]["bk_callback_url"].as_str())
            .map(str::to_owned)
    })
}

/// Polls `probe` until it yields, or panics with `what` after a generous deadline.
pub(crate) fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The instance of `step` (first attempt), once the emulator has it.
pub(crate) fn instance_of(emu: &Emulator, step: &str) -> Option<Value> {
    let needle = format!(" {step}#1]");
    emu.instances()
        .into_iter()
        .find(|i| i["name"].as_str().is_some_and(|n| n.contains(&needle)))
}

/// A `baton run` of `plan` against an endpoint, with app credentials in the environment.
/// A remote JOB needs a public callback URL, else baton only polls: the receiver gets a
/// fixed loopback port so the emulator can call it back.
pub(crate) fn baton_run(dir: &Path, endpoint: &str, extra: &[&str]) -> Command {
    let port = free_port();
    let mut cmd = baton(dir);
    cmd.arg("run")
        .arg("--callback-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--callback-url")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(dir.join("plan.yaml"))
        .arg("--endpoint")
        .arg(endpoint)
        .arg("--report")
        .arg(dir.join("report.json"))
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    app_credentials(&mut cmd, APP_SECRET);
    cmd
}

/// Waits for a spawned run in a thread, so the test can act while it runs.
pub(crate) fn collect(child: Child) -> std::thread::JoinHandle<Output> {
    std::thread::spawn(move || child.wait_with_output().expect("baton runs"))
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub(crate) fn read_report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

pub(crate) fn report_step<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .unwrap_or(&Value::Null)
}

const FINAL: [&str; 6] = [
    "succeeded",
    "failed",
    "skipped",
    "not_run",
    "interrupted",
    "unknown",
];

/// The run's journal (`<state>/runs/<id>/journal.jsonl`), one JSON value per line.
pub(crate) fn read_journal(dir: &Path) -> Result<Vec<Value>, String> {
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.join("state").join("runs"))
        .map_err(|e| format!("no run folder: {e}"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    let [run] = runs.as_slice() else {
        return Err(format!("expected one run folder, found {runs:?}"));
    };
    let text = std::fs::read_to_string(run.join("journal.jsonl"))
        .map_err(|e| format!("no journal: {e}"))?;
    text.lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("journal line {l:?}: {e}")))
        .collect()
}

/// The journal says what the report says: it ends with the run's exit code, and each
/// step's last final event (finished or not run) carries the report's status.
fn check_journal(dir: &Path, report: &Value, code: Option<i32>) -> Result<(), String> {
    let journal = read_journal(dir)?;
    let last = journal.last().ok_or("empty journal")?;
    if last["event"] != "run_finished" || last["exit_code"].as_i64().map(|c| c as i32) != code {
        return Err(format!(
            "the journal does not end with run_finished {code:?}: {last}"
        ));
    }
    for step in report["steps"].as_array().into_iter().flatten() {
        let id = &step["id"];
        let status = step["status"].as_str().unwrap_or("");
        let final_event = journal
            .iter()
            .rev()
            .find(|e| {
                e["step"]["id"] == *id
                    && matches!(e["event"].as_str(), Some("step_finished" | "step_not_run"))
            })
            .ok_or_else(|| format!("the journal has no final event for step {id}"))?;
        let agrees = match final_event["event"].as_str() {
            Some("step_finished") => final_event["outcome"]["status"] == status,
            _ => matches!(status, "not_run" | "skipped"),
        };
        if !agrees {
            return Err(format!(
                "journal and report disagree on step {id}: {final_event} vs {status}"
            ));
        }
    }
    Ok(())
}

/// The record of the run is complete: the report and the journal exist, carry the exit
/// code, and every step has a final status (and a reason when it did not succeed) on
/// which they agree.
pub(crate) fn check_record_complete(dir: &Path, code: Option<i32>) -> Result<Value, String> {
    let report = read_report(dir);
    if report.is_null() {
        return Err("no JSON report written".into());
    }
    if report["exit_code"].as_i64().map(|c| c as i32) != code {
        return Err(format!(
            "report exit_code {} but the process exited {code:?}",
            report["exit_code"]
        ));
    }
    if report["finished_at"].is_null() {
        return Err("report has no finished_at".into());
    }
    let steps = report["steps"].as_array().cloned().unwrap_or_default();
    if steps.is_empty() {
        return Err("report has no steps".into());
    }
    for s in &steps {
        let status = s["status"].as_str().unwrap_or("");
        if !FINAL.contains(&status) {
            return Err(format!("step {} has no final status: {s}", s["id"]));
        }
        if status != "succeeded" && s["reason"].as_str().is_none_or(str::is_empty) {
            return Err(format!(
                "step {} is {status} without a reason: {s}",
                s["id"]
            ));
        }
    }
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap_or_default();
    if !junit.contains("<testsuite") {
        return Err("no JUnit report written".into());
    }
    check_journal(dir, &report, code)?;
    Ok(report)
}

/// Make a package on the build host, deliver it to two web hosts (a file push on v2/v3,
/// a script on v4, which has no file steps), then check it arrived.
pub(crate) fn three_step_plan(api: &str) -> String {
    let ship = if api == "v4" {
        r#"  - id: ship
    needs: [make]
    targets: web
    script: { language: shell, content: "mkdir -p /opt/app && echo pkg > /opt/app/pkg.txt" }"#
    } else {
        r#"  - id: ship
    needs: [make]
    targets: web
    push_file:
      sources: [{ files: ["/data/pkg.txt"], from: build }]
      target_path: /opt/app/"#
    };
    format!(
        r#"version: 1
name: matrix
api: {api}
scope: {{ type: biz, id: 2 }}
defaults: {{ account: root, timeout: 120 }}
hosts:
  web: {{ ips: ["{HELD_HOST}", "0:10.0.0.2"] }}
  build: {{ ips: ["0:10.9.0.1"] }}
steps:
  - id: make
    targets: build
    script: {{ language: shell, content: "mkdir -p /data && echo pkg > /data/pkg.txt" }}
{ship}
  - id: check
    needs: [ship]
    targets: web
    script: {{ language: shell, content: "test -f /opt/app/pkg.txt" }}
"#
    )
}

/// What one row saw.
struct Seen {
    output: Output,
    report: Value,
    requests: Vec<Value>,
    instances: Vec<Value>,
}

impl Seen {
    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    fn statuses(&self) -> Vec<String> {
        ["make", "ship", "check"]
            .iter()
            .map(|id| {
                report_step(&self.report, id)["status"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    }

    fn expect_success(&self) -> Result<(), String> {
        if self.code() != Some(0) || self.statuses() != ["succeeded"; 3] {
            return Err(format!(
                "expected success, got {:?} with {:?}",
                self.code(),
                self.statuses()
            ));
        }
        for id in ["make", "ship", "check"] {
            if report_step(&self.report, id)["attempts"] != 1 {
                return Err(format!("{id} was attempted more than once"));
            }
        }
        Ok(())
    }

    /// The first step ended in doubt, loudly (exit 4, status `unknown`, the operator's
    /// command in the reason); nothing after it ran.
    fn expect_unknown_submission(&self) -> Result<(), String> {
        let reason = report_step(&self.report, "make")["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let all = text(&self.output);
        if self.code() != Some(4)
            || self.statuses() != ["unknown", "not_run", "not_run"]
            || !reason.contains("submission outcome unknown")
            || !reason.contains("--step make --force")
            || !all.contains("submission outcome unknown")
        {
            return Err(format!(
                "expected a loud unknown submission (exit 4), got {:?} {:?}: {reason}",
                self.code(),
                self.statuses()
            ));
        }
        Ok(())
    }

    fn submits_of(&self, step: &str) -> usize {
        let needle = format!(" {step}#1]");
        submissions_per_task(&self.requests)
            .iter()
            .filter(|(name, _)| name.contains(&needle))
            .map(|(_, n)| *n)
            .sum()
    }
}

/// Checks every row shares: the record is complete, no instance started twice, and
/// without a fault that answers before processing, no task name sent twice.
fn common_checks(seen: &Seen, dir: &Path, resend_allowed: bool) -> Result<(), String> {
    check_record_complete(dir, seen.code())?;
    for (name, n) in instances_per_name(&seen.instances) {
        if n > 1 {
            return Err(format!("{n} instances of `{name}`"));
        }
    }
    if !resend_allowed {
        for (name, n) in submissions_per_task(&seen.requests) {
            if n > 1 {
                return Err(format!("`{name}` submitted {n} times"));
            }
        }
    }
    if !matches!(seen.code(), Some(0 | 1 | 4)) {
        return Err(format!("unexpected exit code {:?}", seen.code()));
    }
    Ok(())
}

type Hook = fn(&Emulator, &str) -> Result<(), String>;
type Check = fn(&Seen) -> Result<(), String>;

/// One row of the matrix.
struct Case {
    name: &'static str,
    /// The world's `faults:` section.
    faults: &'static str,
    /// Whether a task name may be sent more than once (only after an answer that
    /// proves the request was not processed: an injected 5xx / 429).
    resend_allowed: bool,
    /// Runs while baton runs, with the web host held until it returns (then released).
    during: Option<Hook>,
    check: Check,
}

fn success(seen: &Seen) -> Result<(), String> {
    seen.expect_success()
}

/// Every protocol settles an ambiguous submit through an instance list (v3 its own,
/// v2 the ESB's jobv3 one, v4 the gateway's v3 one) and follows the instance it finds.
fn reconciled(seen: &Seen) -> Result<(), String> {
    seen.expect_success()?;
    if report_step(&seen.report, "make")["reconciled"] != true {
        return Err("the dropped submit was not reconciled".into());
    }
    match seen.submits_of("make") {
        1 => Ok(()),
        n => Err(format!("make submitted {n} times")),
    }
}

/// A 5xx to a submission is ambiguous in general (a gateway may answer after JOB
/// acted): the instance list proves that nothing started, then it is sent once more.
fn submit_5xx(seen: &Seen) -> Result<(), String> {
    seen.expect_success()?;
    if seen.submits_of("make") != 2 {
        return Err(format!(
            "make sent {} times, expected 2 (refused, then resent)",
            seen.submits_of("make")
        ));
    }
    Ok(())
}

/// The submit's connection is cut after JOB acted and no instance list can be read:
/// the step ends in doubt and is not sent again.
fn unsettled(seen: &Seen) -> Result<(), String> {
    seen.expect_unknown_submission()?;
    match seen.submits_of("make") {
        1 => Ok(()),
        n => Err(format!("make submitted {n} times")),
    }
}

/// Under 20 % seeded 5xx on every answer, queries always recover; a submission hit by
/// a 5xx is either resent after proof or ends in doubt (exit 4). Either way the
/// only acceptable failure is "submission outcome unknown", and nothing runs twice.
fn random_5xx(seen: &Seen) -> Result<(), String> {
    if seen.code() == Some(0) {
        return seen.expect_success();
    }
    let failed: Vec<String> = seen.report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["status"] != "succeeded" && s["status"] != "not_run")
        .map(|s| s["reason"].as_str().unwrap_or("").to_owned())
        .collect();
    if seen.code() == Some(4)
        && failed.len() == 1
        && failed[0].contains("submission outcome unknown")
    {
        Ok(())
    } else {
        Err(format!(
            "exit {:?}; failures other than an unknown submission: {failed:?}",
            seen.code()
        ))
    }
}

fn lost_callbacks(seen: &Seen) -> Result<(), String> {
    seen.expect_success()?;
    for id in ["make", "ship", "check"] {
        let via = &report_step(&seen.report, id)["timings"]["observed_via"];
        if via != "poll" {
            return Err(format!("{id} observed via {via} with every callback lost"));
        }
    }
    Ok(())
}

/// While `ship` is held running: send every callback the emulator has delivered so
/// far again, newest first (stale callbacks for a finished job, arriving after newer
/// ones), each twice; `ship` must still be running afterwards.
fn replay_reversed(emu: &Emulator, _callback_url: &str) -> Result<(), String> {
    let mut sent = emu.callbacks();
    if sent.is_empty() {
        return Err("no callback delivered before ship ran".into());
    }
    sent.reverse();
    for cb in &sent {
        let url = cb["url"].as_str().unwrap_or_default();
        let body = cb["body"].as_str().unwrap_or_default().as_bytes().to_vec();
        for _ in 0..2 {
            let status = emu.send_raw(url, "application/json", body.clone());
            if status != 200 {
                return Err(format!("a replayed genuine callback got HTTP {status}"));
            }
        }
    }
    still_held(emu)
}

/// Forged callbacks while `ship` is held: a wrong token (404, ignored), an unknown
/// instance with the right token (accepted as a hint, changes nothing), a huge body
/// (413), and a "finished successfully" body for the held job (only a hint).
fn forge(emu: &Emulator, callback_url: &str) -> Result<(), String> {
    let ship = instance_of(emu, "ship").ok_or("ship has no instance")?;
    let job = ship["job_instance_id"].as_u64().ok_or("no job id")?;
    let (base, token) = callback_url
        .rsplit_once('/')
        .ok_or("callback URL has no token")?;
    let wrong_token = format!("{base}/{}", "f".repeat(token.len()));
    let success_body =
        json!({"job_instance_id": job, "status": 3, "step_instances": [{"step_instance_id": 1, "status": 3}]})
            .to_string()
            .into_bytes();
    let status = emu.send_raw(&wrong_token, "application/json", success_body.clone());
    if status != 404 && status != 403 {
        return Err(format!("wrong token answered {status}"));
    }
    let unknown = json!({"job_instance_id": 987_654_321u64, "status": 3, "step_instances": []})
        .to_string()
        .into_bytes();
    let status = emu.send_raw(callback_url, "application/json", unknown);
    if status != 200 {
        return Err(format!("unknown instance answered {status}"));
    }
    let mut huge = br#"{"job_instance_id": 1, "status": 3, "pad": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    huge.extend(br#""}"#);
    // The receiver answers 413 as soon as it sees the size and closes the connection
    // without reading the rest; a client still writing 2 MiB may see that as a reset
    // (0) instead of the 413. Either way the body was refused: the next callback on a
    // fresh connection must still be served, and the held step must be untouched.
    // (`callback_surface` pins the exact 413 with a body that fits in the socket.)
    let status = emu.send_raw(callback_url, "application/json", huge);
    if status != 413 && status != 0 {
        return Err(format!("a 2 MiB body answered {status}"));
    }
    let status = emu.send_raw(callback_url, "application/json", success_body);
    if status != 200 {
        return Err(format!("forged success answered {status}"));
    }
    still_held(emu)
}

/// `ship` is still running in the emulator (nothing above finished it).
fn still_held(emu: &Emulator) -> Result<(), String> {
    let ship = instance_of(emu, "ship").ok_or("ship has no instance")?;
    if ship["status"] != 2 {
        return Err(format!("ship is no longer running: {ship}"));
    }
    Ok(())
}

fn forged_then_success(seen: &Seen) -> Result<(), String> {
    seen.expect_success()?;
    if report_step(&seen.report, "check")["status"] != "succeeded" {
        return Err("check did not run after ship".into());
    }
    Ok(())
}

/// Every query answer the runner reads, across protocols (a name a protocol does not
/// have simply never matches).
const QUERY_5XX: &str = r#"faults:
  seed: 11
  api:
    - { api: get_job_instance_status, kind: error, status: 503, fraction: 0.2 }
    - { api: get_job_instance_log, kind: error, status: 502, fraction: 0.2 }
    - { api: get_job_instance_ip_log, kind: error, status: 502, fraction: 0.2 }
    - { api: batch_get_job_instance_ip_log, kind: error, status: 502, fraction: 0.2 }
    - { api: batch_get_job_instance_execute_object_log, kind: error, status: 502, fraction: 0.2 }
"#;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "no fault",
            faults: "",
            resend_allowed: false,
            during: None,
            check: success,
        },
        Case {
            name: "20% of query answers 5xx (seeded)",
            faults: QUERY_5XX,
            resend_allowed: false,
            during: None,
            check: success,
        },
        Case {
            name: "20% of all answers 5xx (seeded)",
            faults: "faults:\n  seed: 5\n  api:\n    - { kind: error, status: 503, fraction: 0.2 }\n",
            resend_allowed: true,
            during: None,
            check: random_5xx,
        },
        Case {
            name: "5xx on the first submit",
            faults: "faults:\n  api:\n    - { api: fast_execute_script, kind: error, status: 502, count: 1 }\n",
            resend_allowed: true,
            during: None,
            check: submit_5xx,
        },
        Case {
            name: "429 burst with reset header",
            faults: "faults:\n  api:\n    - { kind: rate_limit, reset_secs: 1, count: 5 }\n",
            resend_allowed: true,
            during: None,
            check: success,
        },
        Case {
            name: "2 s latency on answers",
            faults: "faults:\n  api:\n    - { kind: latency, latency_ms: 2000, count: 4 }\n",
            resend_allowed: false,
            during: None,
            check: success,
        },
        Case {
            name: "connection dropped after a submit was processed",
            faults: "faults:\n  api:\n    - { api: fast_execute_script, kind: drop, count: 1 }\n",
            resend_allowed: false,
            during: None,
            check: reconciled,
        },
        Case {
            name: "connection dropped after a submit was processed, no instance list",
            faults: "faults:\n  api:\n    - { api: fast_execute_script, kind: drop, count: 1 }\n    - { api: get_job_instance_list, kind: error, status: 404 }\n",
            resend_allowed: false,
            during: None,
            check: unsettled,
        },
        Case {
            name: "connection dropped after a status query was processed",
            faults: "faults:\n  api:\n    - { api: get_job_instance_status, kind: drop, count: 2 }\n",
            resend_allowed: false,
            during: None,
            check: success,
        },
        Case {
            name: "every callback lost",
            faults: "faults:\n  callbacks:\n    - { kind: lost }\n",
            resend_allowed: false,
            during: None,
            check: lost_callbacks,
        },
        Case {
            name: "callbacks duplicated and replayed out of order",
            faults: "faults:\n  callbacks:\n    - { kind: twice }\n",
            resend_allowed: false,
            during: Some(replay_reversed),
            check: success,
        },
        Case {
            name: "forged callbacks",
            faults: "",
            resend_allowed: false,
            during: Some(forge),
            check: forged_then_success,
        },
    ]
}

/// Runs one row for one protocol; an error says what was wrong.
fn run_case(case: &Case, api: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("plan.yaml"), three_step_plan(api))
        .map_err(|e| e.to_string())?;
    let mut faults = case.faults.to_owned();
    if case.during.is_some() {
        // The held host keeps `ship` running while the hook acts.
        let hold = format!("  hosts:\n    - {{ host: \"{HELD_HOST}\", hold: true }}\n");
        if faults.is_empty() {
            faults = format!("faults:\n{hold}");
        } else {
            faults.push_str(&hold);
        }
    }
    let emu = Emulator::start(&app_world(&faults), &dir.path().join("sandbox"));
    let child = baton_run(dir.path(), &emu.url(), &[])
        .spawn()
        .map_err(|e| e.to_string())?;
    let waiter = collect(child);
    let mut hook_result = Ok(());
    if let Some(during) = case.during {
        eventually("ship to be submitted and held", || {
            instance_of(&emu, "ship").filter(|i| i["status"] == 2)
        });
        let url = submitted_callback_url(&emu.all_requests()).unwrap_or_default();
        hook_result = during(&emu, &url);
        emu.release_host(HELD_HOST);
    }
    let output = waiter.join().map_err(|_| "the waiting thread panicked")?;
    let seen = Seen {
        report: read_report(dir.path()),
        requests: emu.all_requests(),
        instances: emu.instances(),
        output,
    };
    let outcome = hook_result
        .and_then(|()| common_checks(&seen, dir.path(), case.resend_allowed))
        .and_then(|()| (case.check)(&seen));
    outcome.map_err(|e| format!("{e}\n{}", text(&seen.output)))
}

/// Runs every row for `api` concurrently and reports all failures at once.
fn matrix(api: &str) {
    let cases = cases();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|case| (case.name, scope.spawn(move || run_case(case, api))))
            .collect();
        handles
            .into_iter()
            .filter_map(|(name, h)| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("[{api}] {name}: {e}")),
                Err(_) => Some(format!("[{api}] {name}: panicked")),
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn fault_matrix_v2() {
    matrix("v2");
}

#[test]
fn fault_matrix_v3() {
    matrix("v3");
}

#[test]
fn fault_matrix_v4() {
    matrix("v4");
}

/// `baton emulator` as a child process on a fixed port, so it can be killed and
/// started again on the same address.
struct EmulatorProcess {
    child: Child,
}

impl EmulatorProcess {
    fn start(addr: &str, root: &Path, world: &Path) -> Self {
        let mut child = Command::new(BATON)
            .arg("emulator")
            .arg("--listen")
            .arg(addr)
            .arg("--root")
            .arg(root)
            .arg("--world")
            .arg(world)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the emulator");
        // Its first line says it listens; reading it is the readiness signal.
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        assert!(
            first.starts_with("baton emulator listening on"),
            "emulator did not start: {first:?}"
        );
        EmulatorProcess { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port free now, for a process started next to listen on. It is drawn
/// below the kernel's ephemeral range (32768–60999): a port from `bind(:0)` is in that
/// range, and the many client sockets of tests running in parallel can take it before
/// the process binds it. Each call in this test process gets a different port.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        let port = FIRST + (offset + n) % SPAN;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {}", FIRST + SPAN)
}

/// The emulator restarts while a step is held running. The new emulator does not know
/// the instance: the step must fail loudly saying so (exit 1), the dependent step must
/// not run, and nothing is submitted again — neither to the old emulator nor the new.
fn restart_mid_run(api: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("plan.yaml"), three_step_plan(api))
        .map_err(|e| e.to_string())?;
    let world = dir.path().join("world.yaml");
    std::fs::write(
        &world,
        format!(
            "credentials:\n  apps: [{{ code: baton, secret: {APP_SECRET} }}]\n  users: [admin]\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let root = dir.path().join("sandbox");
    let mut emulator = EmulatorProcess::start(&addr, &root, &world);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = control_client();
    // Everything is held: `make` is submitted and stays running.
    control_post(&rt, &client, &format!("{base}/_emulator/hold"), json!({}));

    let child = baton_run(dir.path(), &base, &[])
        .spawn()
        .map_err(|e| e.to_string())?;
    let waiter = collect(child);
    let before = eventually("make to be submitted", || {
        let list = control_get(&rt, &client, &format!("{base}/_emulator/instances"));
        list.as_array()
            .filter(|l| {
                l.iter()
                    .any(|i| i["name"].as_str().is_some_and(|n| n.contains(" make#1]")))
            })
            .cloned()
    });
    let requests_before = control_get(&rt, &client, &format!("{base}/_emulator/requests"));
    let requests_before = requests_before.as_array().cloned().unwrap_or_default();

    emulator.kill();
    let emulator_again = EmulatorProcess::start(&addr, &root, &world);
    let output = waiter.join().map_err(|_| "the waiting thread panicked")?;
    let requests_after = control_get(&rt, &client, &format!("{base}/_emulator/requests"));
    let requests_after = requests_after.as_array().cloned().unwrap_or_default();
    drop(emulator_again);

    let all = text(&output);
    let fail = |what: &str| Err(format!("[{api}] {what}\n{all}"));
    if before.len() != 1 {
        return fail("expected exactly one instance before the restart");
    }
    if output.status.code() != Some(1) {
        return fail("expected exit 1");
    }
    let report = check_record_complete(dir.path(), output.status.code())
        .map_err(|e| format!("[{api}] {e}\n{all}"))?;
    let make = report_step(&report, "make");
    let reason = make["reason"].as_str().unwrap_or("");
    if make["status"] != "failed" || !reason.contains("instance unknown") {
        return fail(&format!(
            "make should fail saying the instance is unknown: {make}"
        ));
    }
    if !all.contains("instance unknown") {
        return fail("the output does not say the instance is unknown");
    }
    if report_step(&report, "ship")["status"] != "not_run"
        || report_step(&report, "check")["status"] != "not_run"
    {
        return fail("dependents must not run");
    }
    let submits: usize = submissions_per_task(&requests_before)
        .values()
        .chain(submissions_per_task(&requests_after).values())
        .sum();
    if submits != 1 {
        return fail(&format!(
            "{submits} submissions across both emulators, expected 1"
        ));
    }
    if requests_after
        .iter()
        .all(|r| r["api"] != "get_job_instance_status")
    {
        return fail(&format!(
            "the restarted emulator was never asked about the job: {requests_after:?}"
        ));
    }
    Ok(())
}

#[test]
fn an_emulator_restart_mid_run_fails_the_step_loudly() {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["v2", "v3", "v4"]
            .into_iter()
            .map(|api| scope.spawn(move || restart_mid_run(api)))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("panicked".into()),
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
