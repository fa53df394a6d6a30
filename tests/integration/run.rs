//! End-to-end `baton run` on the emulator, over real HTTP, for v2, v3 and v4: files
//! really pushed into host sandboxes, scripts really run in dependency order, failures
//! reported with their logs, outputs handed on, lost and duplicated callbacks, 5xx and
//! 429 answers, ambiguous submissions, Ctrl-C, and every exit code.
//!
//! Timing is never asserted with sleeps: order is proved by the scripts' own files,
//! running jobs are held with the emulator's `hold` fault, and the interrupt is sent
//! once the run has said the job was submitted.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{Emulator, app_credentials, baton, sandbox_file, step, text};

/// A scratch folder with a plan, an optional world, and a sandbox.
struct Rehearsal {
    dir: tempfile::TempDir,
}

impl Rehearsal {
    fn new(plan: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("plan.yaml"), plan).expect("write plan");
        Rehearsal { dir }
    }

    fn with_world(self, world: &str) -> Self {
        std::fs::write(self.dir.path().join("world.yaml"), world).expect("write world");
        self
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sandbox(&self) -> PathBuf {
        self.path("sandbox")
    }

    fn host_file(&self, host: &str, path: &str) -> Option<String> {
        std::fs::read_to_string(sandbox_file(&self.sandbox(), host, path)).ok()
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = baton(self.dir.path());
        cmd.arg("run")
            .arg(self.path("plan.yaml"))
            .arg("--sandbox")
            .arg(self.sandbox())
            .arg("--report")
            .arg(self.path("report.json"))
            .arg("--junit")
            .arg(self.path("junit.xml"))
            .args(extra);
        cmd
    }

    fn run(&self, extra: &[&str]) -> Output {
        self.command(extra).output().expect("run baton")
    }

    fn report(&self) -> Value {
        let text = std::fs::read_to_string(self.path("report.json")).expect("report written");
        serde_json::from_str(&text).expect("report is JSON")
    }
}

/// Fan-out / fan-in over two web hosts: build a package, push it (v2/v3) or write it
/// in place (v4), two independent branches, then a join that checks both branches ran
/// before it and records the version output of the first step.
fn fan_plan(api: &str) -> String {
    let deliver = if api == "v4" {
        r#"  - id: deliver
    needs: [make]
    targets: web
    script:
      language: shell
      content: "mkdir -p /opt/app && echo payload > /opt/app/app.tar.gz && echo deliver >> /opt/order.log""#
    } else {
        r#"  - id: deliver
    needs: [make]
    targets: web
    push_file:
      sources: [{ files: ["/data/release/app.tar.gz"], from: build }]
      target_path: /opt/app/"#
    };
    format!(
        r#"version: 1
name: fan
api: {api}
scope: {{ type: biz, id: 2 }}
defaults: {{ account: root, timeout: 120 }}
hosts:
  web: {{ ips: ["0:10.0.0.1", "0:10.0.0.2"] }}
  build: {{ ips: ["0:10.9.0.1"] }}
steps:
  - id: make
    targets: build
    outputs: [version]
    script:
      language: shell
      content: |
        mkdir -p /data/release && echo payload > /data/release/app.tar.gz
        echo "<BATON_VAR>version:1.2.3</BATON_VAR>"
{deliver}
  - id: left
    needs: [deliver]
    targets: web
    script:
      language: shell
      content: "test -f /opt/app/app.tar.gz && echo left > /opt/left.txt && echo left >> /opt/order.log"
  - id: right
    needs: [deliver]
    targets: web
    script:
      language: shell
      content: "test -f /opt/app/app.tar.gz && echo right > /opt/right.txt && echo right >> /opt/order.log"
  - id: join
    needs: [left, right]
    targets: web
    script:
      language: shell
      content: "test -f /opt/left.txt && test -f /opt/right.txt && echo 'installed {{{{steps.make.outputs.version}}}}' > /opt/app/installed.txt && echo join >> /opt/order.log"
"#
    )
}

fn fan_out_fan_in(api: &str) {
    let r = Rehearsal::new(&fan_plan(api));
    let out = r.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(
            "baton: rehearsal on the local JOB emulator (not production); host sandboxes in "
        ),
        "{first}"
    );
    assert!(!stdout.contains('\u{1b}'), "plain output has no ANSI codes");
    for host in ["0:10.0.0.1", "0:10.0.0.2"] {
        assert_eq!(
            r.host_file(host, "/opt/app/app.tar.gz").as_deref(),
            Some("payload\n")
        );
        assert_eq!(
            r.host_file(host, "/opt/app/installed.txt").as_deref(),
            Some("installed 1.2.3\n")
        );
        let order = r.host_file(host, "/opt/order.log").unwrap_or_default();
        let lines: Vec<&str> = order.lines().collect();
        assert_eq!(lines.last(), Some(&"join"), "{order}");
        assert!(
            lines.contains(&"left") && lines.contains(&"right"),
            "{order}"
        );
    }
    let report = r.report();
    assert_eq!(report["schema"], "baton.run-report");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["protocol"], api);
    assert_eq!(step(&report, "make")["outputs"]["version"], "1.2.3");
    for id in ["deliver", "left", "right", "join"] {
        let s = step(&report, id);
        assert_eq!(s["status"], "succeeded", "{s}");
        assert!(
            s["timings"]["handoff_ms"].is_u64(),
            "handoff recorded for {id}: {s}"
        );
    }
}

#[test]
fn fan_out_fan_in_v2() {
    fan_out_fan_in("v2");
}

#[test]
fn fan_out_fan_in_v3() {
    fan_out_fan_in("v3");
}

#[test]
fn fan_out_fan_in_v4() {
    fan_out_fan_in("v4");
}

fn two_step_plan(api: &str) -> String {
    format!(
        r#"version: 1
name: pair
api: {api}
scope: {{ type: biz, id: 2 }}
defaults: {{ account: root, timeout: 120 }}
hosts:
  web: {{ ips: ["0:10.0.0.1", "0:10.0.0.2"] }}
steps:
  - id: first
    targets: web
    script: {{ language: shell, content: "mkdir -p /opt && echo ran >> /opt/first.count" }}
  - id: second
    needs: [first]
    targets: web
    script: {{ language: shell, content: "mkdir -p /opt && echo ran >> /opt/second.count" }}
"#
    )
}

#[test]
fn a_failing_host_fails_its_step_with_its_log() {
    for api in ["v2", "v3", "v4"] {
        let r = Rehearsal::new(&two_step_plan(api)).with_world(
            r#"faults:
  hosts:
    - { host: "0:10.0.0.2", status: 104, exit_code: 3, log: "unpacking\nboom: disk full\n" }
"#,
        );
        let out = r.run(&[]);
        assert_eq!(out.status.code(), Some(1), "{api}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("| boom: disk full"),
            "{api}: the table shows the log: {stdout}"
        );
        let report = r.report();
        let first = step(&report, "first");
        assert_eq!(first["status"], "failed");
        let bad = first["hosts"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["host"] == "0:10.0.0.2"))
            .unwrap_or_else(|| panic!("{api}: failed host listed: {first}"));
        assert_eq!(bad["ok"], false);
        assert!(
            bad["log_tail"]
                .as_str()
                .unwrap_or("")
                .contains("boom: disk full"),
            "{bad}"
        );
        assert_eq!(step(&report, "second")["status"], "not_run");
        assert!(
            r.host_file("0:10.0.0.1", "/opt/second.count").is_none(),
            "dependent never ran"
        );
        let junit = std::fs::read_to_string(r.path("junit.xml")).unwrap_or_default();
        assert!(
            junit.contains("<failure") && junit.contains("boom: disk full"),
            "{junit}"
        );
    }
}

#[test]
fn a_lost_callback_still_completes_through_polling() {
    let r = Rehearsal::new(&two_step_plan("v3"))
        .with_world("faults:\n  callbacks:\n    - { kind: lost }\n");
    let out = r.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = r.report();
    assert_eq!(step(&report, "first")["timings"]["observed_via"], "poll");
    assert_eq!(
        r.host_file("0:10.0.0.1", "/opt/second.count").as_deref(),
        Some("ran\n")
    );
}

#[test]
fn a_duplicated_callback_does_not_double_advance() {
    let r = Rehearsal::new(&two_step_plan("v2"))
        .with_world("faults:\n  callbacks:\n    - { kind: twice }\n");
    let out = r.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = r.report();
    for id in ["first", "second"] {
        assert_eq!(step(&report, id)["attempts"], 1);
        assert_eq!(
            step(&report, id)["task_names"].as_array().map(Vec::len),
            Some(1)
        );
    }
    for host in ["0:10.0.0.1", "0:10.0.0.2"] {
        assert_eq!(
            r.host_file(host, "/opt/first.count").as_deref(),
            Some("ran\n")
        );
        assert_eq!(
            r.host_file(host, "/opt/second.count").as_deref(),
            Some("ran\n")
        );
    }
}

#[test]
fn server_errors_and_rate_limits_on_queries_are_survived() {
    for api in ["v2", "v3", "v4"] {
        let r = Rehearsal::new(&two_step_plan(api)).with_world(
            r#"faults:
  api:
    - { api: get_job_instance_status, kind: error, status: 503, count: 2 }
    - { api: get_job_instance_status, kind: rate_limit, reset_secs: 0, count: 2 }
"#,
        );
        let out = r.run(&[]);
        assert_eq!(out.status.code(), Some(0), "{api}: {}", text(&out));
        assert_eq!(
            r.host_file("0:10.0.0.2", "/opt/second.count").as_deref(),
            Some("ran\n")
        );
    }
}

/// `baton run` against an emulator in this test process, so its request log outlives
/// the run.
fn remote(r: &Rehearsal, emulator: &Emulator, extra: &[&str]) -> Output {
    let mut cmd = baton(r.dir.path());
    cmd.arg("run")
        .arg(r.path("plan.yaml"))
        .arg("--endpoint")
        .arg(emulator.url())
        .arg("--report")
        .arg(r.path("report.json"))
        .args(extra);
    app_credentials(&mut cmd, "s3cret");
    cmd.output().expect("run baton")
}

const DROP_SUBMIT: &str = r#"credentials:
  apps: [{ code: baton, secret: s3cret }]
faults:
  api:
    - { api: fast_execute_script, kind: drop, count: 1 }
"#;

#[test]
fn an_ambiguous_submit_is_reconciled_not_repeated_on_v3() {
    let r = Rehearsal::new(&two_step_plan("v3"));
    let emulator = Emulator::start(DROP_SUBMIT, &r.sandbox());
    let out = remote(&r, &emulator, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // One submission per step: the dropped one was found again by its task name.
    assert_eq!(emulator.requests("fast_execute_script").len(), 2);
    assert!(!emulator.requests("get_job_instance_list").is_empty());
    let report = r.report();
    assert_eq!(step(&report, "first")["reconciled"], true);
    assert_eq!(
        r.host_file("0:10.0.0.1", "/opt/first.count").as_deref(),
        Some("ran\n")
    );
}

/// v2 and v4 have no instance list of their own: v2 asks the jobv3 one its ESB serves
/// beside it, v4 the gateway's v3 one.
#[test]
fn an_ambiguous_submit_is_reconciled_through_the_list_beside_v2_and_v4() {
    for (api, list_path) in [
        ("v2", "/api/c/compapi/v2/jobv3/get_job_instance_list/"),
        ("v4", "/api/v3/get_job_instance_list"),
    ] {
        let r = Rehearsal::new(&two_step_plan(api));
        let emulator = Emulator::start(DROP_SUBMIT, &r.sandbox());
        let out = remote(&r, &emulator, &[]);
        assert_eq!(out.status.code(), Some(0), "{api}: {}", text(&out));
        assert_eq!(emulator.requests("fast_execute_script").len(), 2, "{api}");
        let lists = emulator.requests("get_job_instance_list");
        assert!(!lists.is_empty(), "{api}");
        assert!(
            lists.iter().all(|l| l["path"] == list_path),
            "{api}: {lists:?}"
        );
        assert_eq!(step(&r.report(), "first")["reconciled"], true, "{api}");
        assert_eq!(
            r.host_file("0:10.0.0.1", "/opt/first.count").as_deref(),
            Some("ran\n"),
            "{api}"
        );
    }
}

#[test]
fn an_ambiguous_submit_ends_in_doubt_where_it_cannot_be_reconciled() {
    let world =
        format!("{DROP_SUBMIT}    - {{ api: get_job_instance_list, kind: error, status: 404 }}\n");
    for api in ["v2", "v3", "v4"] {
        let r = Rehearsal::new(&two_step_plan(api));
        let emulator = Emulator::start(&world, &r.sandbox());
        let out = remote(&r, &emulator, &[]);
        assert_eq!(out.status.code(), Some(4), "{api}: {}", text(&out));
        assert!(
            text(&out).contains("submission outcome unknown for task `pair [baton "),
            "{api}: {}",
            text(&out)
        );
        assert_eq!(
            emulator.requests("fast_execute_script").len(),
            1,
            "{api}: never resubmitted"
        );
        assert_eq!(step(&r.report(), "first")["status"], "unknown");
        assert_eq!(step(&r.report(), "second")["status"], "not_run");
    }
}

#[test]
fn ctrl_c_terminates_running_jobs_and_exits_130() {
    let r = Rehearsal::new(&two_step_plan("v3"))
        .with_world("faults:\n  hosts:\n    - { host: \"0:10.0.0.1\", hold: true }\n");
    let mut child = r
        .command(&[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("step first submitted (job ") {
            break;
        }
    }
    assert!(seen.contains("submitted"), "{seen}");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    for line in lines {
        seen.push_str(&line.unwrap_or_default());
        seen.push('\n');
    }
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.contains("interrupted") && seen.contains("terminated job"),
        "{seen}"
    );
    let report = r.report();
    assert_eq!(report["exit_code"], 130);
    assert_eq!(step(&report, "first")["status"], "interrupted");
    assert_eq!(step(&report, "second")["status"], "not_run");
}

#[test]
fn an_invalid_plan_exits_2_before_anything_is_sent() {
    let r = Rehearsal::new(
        "version: 1\nname: bad\nscope: { type: biz, id: 2 }\nsteps:\n  - id: a\n    needs: [ghost]\n    targets: { ips: [\"10.0.0.1\"] }\n    script: { language: shell, content: echo }\n",
    );
    let out = r.run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!r.sandbox().exists(), "no emulator was started");
    assert!(!r.path("report.json").exists());
}

#[test]
fn an_unreachable_endpoint_exits_3() {
    let r = Rehearsal::new(&two_step_plan("v3"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let out = baton(r.dir.path())
        .arg("run")
        .arg(r.path("plan.yaml"))
        .arg("--endpoint")
        .arg(format!("http://127.0.0.1:{port}"))
        .env("BK_ACCESS_TOKEN", "tok")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("unreachable"), "{}", text(&out));
}

#[test]
fn refused_credentials_exit_3_with_jobs_message() {
    let r = Rehearsal::new(&two_step_plan("v2"));
    let emulator = Emulator::start(
        "credentials:\n  apps: [{ code: baton, secret: other }]\n",
        &r.sandbox(),
    );
    let out = remote(&r, &emulator, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("refused the credentials"), "{all}");
    assert!(!all.contains("s3cret"), "the secret never appears: {all}");
}
