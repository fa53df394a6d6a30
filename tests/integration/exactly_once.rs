//! Exactly once under SIGKILL: the built `baton` runs a three-step chain against the
//! emulator on v2, v3 and v4 and is killed at every moment a submission can be caught
//! in — before JOB looks at a request, after JOB processed it but before the answer
//! arrived (for each of the three steps), while a job runs, and after the last job
//! finished but before its finish was recorded. Then `baton resume last` runs, and a
//! second resume after it. Each step's script appends a line to a file in its host
//! sandbox, so a job that ran twice leaves two lines; the emulator's instance list must
//! hold exactly one instance per step. The kill points are driven by the emulator's
//! request holds (`/_emulator/hold`, `/caught`, `/idle`), never by timing.
//!
//! A job plan cannot be looked up by task name: killed while its answer is held, the
//! step is reported `unknown` (exit 4) by `runs show` and by the resume, is not sent
//! again, and runs again only when the operator says `--step ID --force`.

use std::process::{Child, Output};

use serde_json::{Value, json};

use crate::faults::{APP_SECRET, app_world, eventually, free_port, instance_of};
use crate::support::{Emulator, app_credentials, baton, sandbox_file, text};

const HOST: &str = "0:10.0.0.1";
const STEPS: [&str; 3] = ["first", "second", "third"];

fn chain_plan(api: &str) -> String {
    let step = |id: &str, needs: &str, extra: &str| {
        format!(
            r#"  - id: {id}
{needs}    targets: web
{extra}    script:
      language: shell
      content: |
        mkdir -p /opt/effects
        echo ran >> /opt/effects/{id}
        echo "<BATON_VAR>done:{id}</BATON_VAR>"
"#
        )
    };
    format!(
        "version: 1\nname: once-{api}\napi: {api}\nscope: {{ type: biz, id: 2 }}\ndefaults: {{ account: root, timeout: 120 }}\nhosts:\n  web: {{ ips: [\"{HOST}\"] }}\nsteps:\n{}{}{}",
        step("first", "", ""),
        step("second", "    needs: [first]\n", ""),
        // Declared outputs make baton read the last step's logs after it finished:
        // a kill point after JOB is done and before baton has recorded it.
        step("third", "    needs: [second]\n", "    outputs: [done]\n"),
    )
}

fn log_api(api: &str) -> &'static str {
    match api {
        "v2" => "get_job_instance_log",
        "v3" => "batch_get_job_instance_ip_log",
        _ => "batch_get_job_instance_execute_object_log",
    }
}

/// Where the run is killed.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// The submission of step `n` (0-based) reached the emulator, which has not
    /// looked at it.
    BeforeJobSawSubmit(usize),
    /// JOB processed the submission of step `n`; its answer is held.
    AfterJobProcessedSubmit(usize),
    /// The first step's job runs (its host is held).
    WhileWaiting,
    /// The last job finished; reading its logs is held.
    BeforeFinishRecorded,
}

fn kill_points() -> Vec<KillPoint> {
    let mut points = vec![KillPoint::WhileWaiting, KillPoint::BeforeFinishRecorded];
    for n in 0..STEPS.len() {
        points.push(KillPoint::BeforeJobSawSubmit(n));
        points.push(KillPoint::AfterJobProcessedSubmit(n));
    }
    points
}

struct Scene {
    dir: tempfile::TempDir,
    emu: Emulator,
}

impl Scene {
    fn new(plan: &str, world: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("plan.yaml"), plan).expect("plan");
        let emu = Emulator::start(world, &dir.path().join("sandbox"));
        Scene { dir, emu }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = baton(self.dir.path());
        cmd.args(args);
        if matches!(args.first(), Some(&"run" | &"resume")) {
            let port = free_port();
            cmd.arg("--endpoint")
                .arg(self.emu.url())
                .arg("--callback-listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--callback-url")
                .arg(format!("http://127.0.0.1:{port}"));
        }
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        app_credentials(&mut cmd, APP_SECRET);
        cmd
    }

    fn spawn_run(&self) -> Child {
        let plan = self.dir.path().join("plan.yaml");
        self.command(&["run", plan.to_str().expect("utf-8 path")])
            .spawn()
            .expect("baton run starts")
    }

    /// `baton run` with a JSON report, waited for.
    fn run_to_end(&self) -> Output {
        let plan = self.dir.path().join("plan.yaml");
        let report = self.dir.path().join("report.json");
        self.command(&[
            "run",
            plan.to_str().expect("utf-8 path"),
            "--report",
            report.to_str().expect("utf-8 path"),
        ])
        .output()
        .expect("baton run")
    }

    fn resume(&self, extra: &[&str]) -> Output {
        let report = self.dir.path().join("report.json");
        let mut args = vec![
            "resume",
            "last",
            // The test released every hold and waited until the emulator was idle:
            // nothing can still be on its way, so absence need not be waited out.
            "--settle-after",
            "0s",
            "--report",
            report.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        self.command(&args).output().expect("baton resume runs")
    }

    fn hold(&self, body: Value) {
        self.emu.post("/_emulator/hold", body);
    }

    fn await_caught(&self, api: &str, stage: &str) {
        let answer = self.emu.post(
            "/_emulator/caught",
            json!({"api": api, "stage": stage, "count": 1}),
        );
        assert_eq!(
            answer["caught"], true,
            "no {api} request was caught at {stage}"
        );
    }

    /// Releases everything and waits until the emulator has finished with every
    /// request it held, so what JOB did is final before resuming.
    fn release_all(&self, apis: &[&str]) {
        self.emu.post("/_emulator/release", json!({"all": true}));
        for api in apis {
            let answer = self.emu.post("/_emulator/idle", json!({"api": api}));
            assert_eq!(answer["idle"], true, "{api} still busy");
        }
    }

    fn effects(&self, step: &str) -> usize {
        let path = sandbox_file(
            &self.dir.path().join("sandbox"),
            HOST,
            &format!("/opt/effects/{step}"),
        );
        std::fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    fn instances_of(&self, step: &str) -> usize {
        let marker = format!(" {step}#");
        self.emu
            .instances()
            .iter()
            .filter(|i| i["name"].as_str().is_some_and(|n| n.contains(&marker)))
            .count()
    }

    fn submissions(&self) -> usize {
        self.emu.requests("fast_execute_script").len()
    }

    fn report(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("report.json")).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// Kills `child` with SIGKILL and reaps it.
fn kill(mut child: Child) {
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

fn arm(scene: &Scene, api: &str, point: KillPoint) -> (String, &'static str) {
    match point {
        KillPoint::BeforeJobSawSubmit(n) => {
            scene.hold(json!({"api": "fast_execute_script", "stage": "request", "skip": n}));
            ("fast_execute_script".into(), "request")
        }
        KillPoint::AfterJobProcessedSubmit(n) => {
            scene.hold(json!({"api": "fast_execute_script", "stage": "answer", "skip": n}));
            ("fast_execute_script".into(), "answer")
        }
        KillPoint::BeforeFinishRecorded => {
            // Only the last step declares outputs, so the first log read is its own.
            scene.hold(json!({"api": log_api(api), "stage": "answer"}));
            (log_api(api).into(), "answer")
        }
        KillPoint::WhileWaiting => {
            scene.hold(json!({"host": HOST}));
            (String::new(), "")
        }
    }
}

/// One kill point on one protocol; an error says what went wrong.
fn kill_and_resume(api: &str, point: KillPoint) -> Result<(), String> {
    let scene = Scene::new(&chain_plan(api), &app_world(""));
    let (held_api, stage) = arm(&scene, api, point);
    let child = scene.spawn_run();
    if held_api.is_empty() {
        eventually("the first job to run on its held host", || {
            instance_of(&scene.emu, "first").filter(|i| i["status"] == 2)
        });
    } else {
        scene.await_caught(&held_api, stage);
    }
    kill(child);
    scene.release_all(&["fast_execute_script", log_api(api)]);

    let resumed = scene.resume(&[]);
    let context = || format!("[{api} {point:?}]\n{}", text(&resumed));
    if resumed.status.code() != Some(0) {
        return Err(format!("resume did not finish the plan\n{}", context()));
    }
    let report = scene.report();
    for step in STEPS {
        let s = report["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["id"] == step))
            .cloned()
            .unwrap_or(Value::Null);
        if s["status"] != "succeeded" {
            return Err(format!(
                "{step} is {} after resume\n{}",
                s["status"],
                context()
            ));
        }
    }
    if report["steps"][2]["outputs"]["done"] != "third" {
        return Err(format!(
            "third's output was not restored or read\n{}",
            context()
        ));
    }
    let submissions = scene.submissions();

    let again = scene.resume(&[]);
    if again.status.code() != Some(0) || scene.submissions() != submissions {
        return Err(format!(
            "a second resume sent something or failed\n{}\n{}",
            context(),
            text(&again)
        ));
    }
    for step in STEPS {
        let (effects, instances) = (scene.effects(step), scene.instances_of(step));
        if effects != 1 || instances != 1 {
            return Err(format!(
                "{step} ran {effects} times in {instances} instances\n{}",
                context()
            ));
        }
    }
    Ok(())
}

fn every_kill_point(api: &str) {
    let failures: Vec<String> = kill_points()
        .into_iter()
        .filter_map(|point| kill_and_resume(api, point).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_job_runs_exactly_once_under_sigkill_v2() {
    every_kill_point("v2");
}

#[test]
fn every_job_runs_exactly_once_under_sigkill_v3() {
    every_kill_point("v3");
}

#[test]
fn every_job_runs_exactly_once_under_sigkill_v4() {
    every_kill_point("v4");
}

/// A resume right after the kill, while the request it left may still be on its way,
/// does not take "JOB has no such instance" for proof: it waits out the settle window,
/// looks again, and finds the instance the late request created.
#[test]
fn a_late_submission_is_found_not_sent_twice() {
    let scene = Scene::new(&chain_plan("v3"), &app_world(""));
    arm(&scene, "v3", KillPoint::BeforeJobSawSubmit(0));
    let child = scene.spawn_run();
    scene.await_caught("fast_execute_script", "request");
    kill(child);
    let report = scene.dir.path().join("report.json");
    let mut resume = scene
        .command(&[
            "resume",
            "last",
            "--settle-after",
            "20s",
            "--report",
            report.to_str().expect("utf-8 path"),
        ])
        .spawn()
        .expect("baton resume starts");
    // The held request is still in the emulator: resume must see no instance yet and
    // say it waits, and only then may the request go on.
    let stderr = resume.stderr.take().expect("stderr");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let said = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("may still be on its way"));
    assert!(said.is_some(), "resume did not wait for a late request");
    scene.emu.post(
        "/_emulator/release",
        json!({"api": "fast_execute_script", "stage": "request"}),
    );
    let status = resume.wait().expect("resume ends");
    assert_eq!(status.code(), Some(0));
    for step in STEPS {
        assert_eq!(scene.effects(step), 1, "{step} effects");
        assert_eq!(scene.instances_of(step), 1, "{step} instances");
    }
}

/// Killed after the first step's finish and the second step's intent were written (its
/// request held before JOB saw it): the finish, which had no fsync of its own, is in
/// the journal before the intent whose fsync took it to disk, and resume keeps the
/// first step instead of running it again.
#[test]
fn a_kill_between_a_finish_and_the_dependents_request_keeps_both_on_record() {
    let scene = Scene::new(&chain_plan("v3"), &app_world(""));
    arm(&scene, "v3", KillPoint::BeforeJobSawSubmit(1));
    let child = scene.spawn_run();
    scene.await_caught("fast_execute_script", "request");
    kill(child);
    let journal = crate::faults::read_journal(scene.dir.path()).expect("journal");
    let position = |event: &str, step: &str| {
        journal
            .iter()
            .position(|line| line["event"] == event && line["step"]["id"] == step)
    };
    let finish = position("step_finished", "first").expect("first's finish is journaled");
    let intent = position("step_submitting", "second").expect("second's intent is journaled");
    assert!(finish < intent, "{journal:#?}");
    assert_eq!(journal[finish]["outcome"]["status"], "succeeded");

    scene.release_all(&["fast_execute_script"]);
    let resumed = scene.resume(&[]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    for step in STEPS {
        assert_eq!(scene.effects(step), 1, "{step} effects");
        assert_eq!(scene.instances_of(step), 1, "{step} instances");
    }
}

/// The world of the job-plan case: a plan whose only step appends to a file.
fn job_plan_world() -> String {
    app_world(&format!(
        r#"hosts:
  - {{ host_id: 101, cloud: 0, ip: 10.0.0.1 }}
plans:
  - id: 1001
    name: migrate
    scope: {{ type: biz, id: "2" }}
    steps:
      - id: 1
        name: migrate
        type: 1
        targets: {{ hosts: ["{HOST}"] }}
        script: {{ language: 1, account: root, content: "mkdir -p /opt/effects && echo ran >> /opt/effects/migrate" }}
"#
    ))
}

fn job_plan(api: &str) -> String {
    format!(
        "version: 1\nname: once-job-{api}\napi: {api}\nscope: {{ type: biz, id: 2 }}\ndefaults: {{ account: root, timeout: 120 }}\nsteps:\n  - id: migrate\n    job: {{ plan_id: 1001 }}\n  - id: after\n    needs: [migrate]\n    targets: {{ ips: [\"{HOST}\"] }}\n    script: {{ language: shell, content: \"echo after\" }}\n"
    )
}

fn job_plan_in_doubt(api: &str, submit_api: &str) {
    let scene = Scene::new(&job_plan(api), &job_plan_world());
    scene.hold(json!({"api": submit_api, "stage": "answer"}));
    let child = scene.spawn_run();
    scene.await_caught(submit_api, "answer");
    kill(child);
    scene.release_all(&[submit_api]);

    // The record of the killed run already says what is known.
    let shown = scene
        .command(&["runs", "show", "last", "--json"])
        .output()
        .expect("runs show");
    let record: Value = serde_json::from_slice(&shown.stdout).expect("runs show --json");
    assert_eq!(record["steps"][0]["status"], "unknown", "{}", text(&shown));
    assert!(
        record["steps"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("baton resume")),
        "{record}"
    );
    assert_eq!(record["steps"][1]["status"], "not_run");

    for _ in 0..2 {
        let resumed = scene.resume(&[]);
        let all = text(&resumed);
        assert_eq!(resumed.status.code(), Some(4), "{all}");
        assert!(all.contains("unknown") || all.contains("in doubt"), "{all}");
        assert!(all.contains("--step migrate --force"), "{all}");
        let report = scene.report();
        assert_eq!(report["steps"][0]["status"], "unknown", "{report}");
        assert_eq!(report["steps"][1]["status"], "not_run", "{report}");
        assert_eq!(scene.emu.requests(submit_api).len(), 1, "sent again: {all}");
    }
    assert_eq!(scene.effects("migrate"), 1);

    // The operator checked JOB and decides to run it again.
    let forced = scene.resume(&["--step", "migrate", "--downstream", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert_eq!(scene.emu.requests(submit_api).len(), 2);
    assert_eq!(scene.effects("migrate"), 2, "the operator's explicit rerun");
}

#[test]
fn a_job_plan_in_doubt_is_never_sent_again_v2() {
    job_plan_in_doubt("v2", "execute_job");
}

#[test]
fn a_job_plan_in_doubt_is_never_sent_again_v3() {
    job_plan_in_doubt("v3", "execute_job_plan");
}

/// Protect the fixture: a plan that never reaches a kill point would make the tests
/// above pass vacuously.
#[test]
fn the_chain_plan_is_valid_for_every_protocol() {
    for api in ["v2", "v3", "v4"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plan.yaml");
        std::fs::write(&path, chain_plan(api)).expect("plan");
        let out = baton(dir.path())
            .arg("validate")
            .arg(&path)
            .output()
            .expect("validate");
        assert!(out.status.success(), "{api}: {}", text(&out));
    }
}

/// What was seen on v2: the emulator dropped the connection after processing the
/// submit, the run failed the step "outcome unknown", and a plain `baton resume last`
/// sent it again. Now the run ends `unknown` (exit 4); a resume that still cannot read
/// an instance list keeps it in doubt without sending anything; once the list answers,
/// a resume finds the instance and follows it.
#[test]
fn a_dropped_submit_is_settled_by_a_later_resume_never_resent() {
    let faults = "faults:\n  api:\n    - { api: fast_execute_script, kind: drop, count: 1 }\n    - { api: get_job_instance_list, kind: error, status: 404 }\n";
    let scene = Scene::new(&chain_plan("v2"), &app_world(faults));
    let run = scene.run_to_end();
    assert_eq!(run.status.code(), Some(4), "{}", text(&run));
    assert_eq!(scene.report()["steps"][0]["status"], "unknown");
    assert_eq!(scene.submissions(), 1);

    let still = scene.resume(&[]);
    assert_eq!(still.status.code(), Some(4), "{}", text(&still));
    assert!(
        text(&still).contains("--step first --force"),
        "{}",
        text(&still)
    );
    assert_eq!(scene.submissions(), 1, "resent while in doubt");

    scene.emu.post("/_emulator/faults", json!({}));
    let settled = scene.resume(&[]);
    assert_eq!(settled.status.code(), Some(0), "{}", text(&settled));
    assert!(
        text(&settled).contains("found in JOB as job"),
        "{}",
        text(&settled)
    );
    let lists = scene.emu.requests("get_job_instance_list");
    assert!(
        lists
            .iter()
            .all(|r| r["path"] == "/api/c/compapi/v2/jobv3/get_job_instance_list/"),
        "v2 looks instances up through the ESB's jobv3 list: {lists:?}"
    );
    for step in STEPS {
        assert_eq!(scene.effects(step), 1, "{step} effects");
        assert_eq!(scene.instances_of(step), 1, "{step} instances");
    }
}

/// "Retry failed hosts" whose answer is lost may be running on JOB: the step reads the
/// instance and follows the retry, rather than failing (which a resume would rerun
/// beside the retry).
#[test]
fn an_unanswered_retry_of_failed_hosts_is_followed_not_doubled() {
    let faults = format!(
        "faults:\n  api:\n    - {{ api: operate_step_instance, kind: drop, count: 1 }}\n  hosts:\n    - {{ host: \"{HOST}\", status: 104, exit_code: 3, log: broken }}\n"
    );
    let plan = chain_plan("v3").replace(
        "  - id: first\n    targets: web\n",
        "  - id: first\n    targets: web\n    retries: 1\n",
    );
    let scene = Scene::new(&plan, &app_world(&faults));
    let run = scene.run_to_end();
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let first = &scene.report()["steps"][0];
    assert_eq!(first["status"], "failed", "{first}");
    assert_eq!(first["attempts"], 2, "the retry was followed: {first}");
    assert_eq!(scene.emu.requests("operate_step_instance").len(), 1);
    assert_eq!(scene.submissions(), 1);
    assert!(
        text(&run).contains("broken"),
        "the failed host's log: {}",
        text(&run)
    );
}
