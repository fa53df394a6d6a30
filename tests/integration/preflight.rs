//! The preflight against a JOB served on its own: job plans, their global variables,
//! accounts and script versions are checked before the first submission; every
//! problem is reported together at its plan line with what JOB said, the run exits 2,
//! and the emulator's request log shows lookups only, no submission.

use std::process::Output;

use crate::support::{Emulator, app_credentials, baton, text};

const WORLD: &str = r#"credentials:
  apps: [{ code: baton, secret: s3cret }]
accounts:
  - { id: 1000, alias: root }
scripts:
  - { version_id: 5, script_id: s-hello, language: 1, content: "echo hello" }
plans:
  - id: 100
    name: migrate
    global_vars:
      - { id: 1, name: version, type: 1, required: true }
      - { id: 2, name: web, type: 3 }
      - { id: 3, name: schema, type: 1, value: "0" }
    steps:
      - { id: 200, name: hello, type: 1, script: { content: "echo $version" }, targets: { hosts: ["0:10.0.0.1"] } }
"#;

const BAD: &str = r#"version: 1
name: release
api: API
scope: { type: biz, id: 2 }
defaults: { account: root }
hosts: { web: { ips: ["0:10.0.0.1"] } }
steps:
  - id: stop
    targets: web
    account: deploy
    script: { language: shell, content: "echo stop" }
  - id: migrate
    needs: [stop]
    job:
      plan_id: 100
      vars:
        versoin: "1.2.3"
        web: "10.0.0.1"
      exports: [nope]
  - id: other
    needs: [stop]
    job: { plan_id: 999 }
  - id: stored
    needs: [stop]
    targets: web
    script: { script_version_id: 77 }
"#;

const GOOD: &str = r#"version: 1
name: release
api: v3
scope: { type: biz, id: 2 }
defaults: { account: root }
hosts: { web: { ips: ["0:10.0.0.1"] } }
steps:
  - id: stored
    targets: web
    script: { script_version_id: 5 }
  - id: migrate
    needs: [stored]
    job:
      plan_id: 100
      vars: { version: "1.2.3", web: { hosts: web } }
      exports: [schema]
"#;

fn baton_with(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = baton(dir);
    cmd.args(args);
    app_credentials(&mut cmd, "s3cret");
    cmd.output().expect("run baton")
}

fn submissions(emulator: &Emulator) -> Vec<serde_json::Value> {
    [
        "fast_execute_script",
        "execute_job_plan",
        "execute_job",
        "fast_push_file",
    ]
    .iter()
    .flat_map(|api| emulator.requests(api))
    .collect()
}

fn assert_all_findings(all: &str) {
    for expected in [
        "plan.yaml:10:14: steps[0].account: JOB has no execution account `deploy`",
        "plan.yaml:17:18: steps[1].job.vars.versoin: job plan 100 has no global variable `versoin`",
        "did you mean `version`?",
        "plan.yaml:18:14: steps[1].job.vars.web: `web` is a host-list variable in job plan 100",
        "steps[1].job: job plan 100 requires global variable `version`",
        "steps[1].job.exports[0]: job plan 100 has no global variable `nope`",
        "plan.yaml:22:21: steps[2].job.plan_id: job plan 999 is not in this scope: JOB said JOB error 1243009",
        "plan.yaml:26:34: steps[3].script.script_version_id: JOB has no script version 77",
    ] {
        assert!(all.contains(expected), "missing `{expected}` in\n{all}");
    }
}

#[test]
fn a_run_is_refused_with_every_finding_and_nothing_submitted_v3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.yaml"), BAD.replace("API", "v3")).unwrap();
    let emulator = Emulator::start(WORLD, &dir.path().join("sandbox"));
    let plan = dir.path().join("plan.yaml").display().to_string();
    let out = baton_with(dir.path(), &["run", &plan, "--endpoint", &emulator.url()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_all_findings(&text(&out));
    assert!(submissions(&emulator).is_empty(), "nothing submitted");
    // What JOB was asked, in the docs' shapes.
    let detail = emulator.requests("get_job_plan_detail");
    assert_eq!(detail[0]["method"], "GET");
    assert_eq!(detail[0]["query_params"]["job_plan_id"], "100");
    assert_eq!(detail[0]["query_params"]["bk_scope_id"], "2");
    let accounts = emulator.requests("get_account_list");
    assert!(
        accounts
            .iter()
            .any(|a| a["query_params"]["alias"] == "deploy")
    );
}

#[test]
fn a_v2_run_asks_get_job_detail_and_is_refused_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = BAD
        .replace("API", "v2")
        .replace("script_version_id: 77", "script_id: 77");
    std::fs::write(dir.path().join("plan.yaml"), v2).unwrap();
    let emulator = Emulator::start(WORLD, &dir.path().join("sandbox"));
    let plan = dir.path().join("plan.yaml").display().to_string();
    let out = baton_with(dir.path(), &["run", &plan, "--endpoint", &emulator.url()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("has no global variable `versoin`"), "{all}");
    assert!(
        all.contains("JOB has no execution account `deploy`"),
        "{all}"
    );
    // On v2 an integer `script_id` is a script version, checked through ESB jobv3.
    assert!(
        all.contains("steps[3].script.script_id: JOB has no script version 77"),
        "{all}"
    );
    assert!(submissions(&emulator).is_empty(), "nothing submitted");
    let detail = emulator.requests("get_job_detail");
    assert_eq!(detail[0]["body"]["bk_job_id"], 100);
    assert_eq!(detail[0]["body"]["bk_biz_id"], 2);
}

#[test]
fn validate_online_reports_the_same_and_a_sound_plan_passes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.yaml"), BAD.replace("API", "v3")).unwrap();
    let emulator = Emulator::start(WORLD, &dir.path().join("sandbox"));
    let plan = dir.path().join("plan.yaml").display().to_string();
    let out = baton_with(
        dir.path(),
        &["validate", &plan, "--online", "--endpoint", &emulator.url()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_all_findings(&text(&out));
    // Without --online nothing is asked, and the plan is sound on its own.
    let before = emulator.all_requests().len();
    let out = baton_with(dir.path(), &["validate", &plan]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(emulator.all_requests().len(), before);

    std::fs::write(dir.path().join("plan.yaml"), GOOD).unwrap();
    let out = baton_with(
        dir.path(),
        &["validate", &plan, "--online", "--endpoint", &emulator.url()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(submissions(&emulator).is_empty());
}

#[test]
fn a_sound_plan_runs_after_its_preflight() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.yaml"), GOOD).unwrap();
    let emulator = Emulator::start(WORLD, &dir.path().join("sandbox"));
    let plan = dir.path().join("plan.yaml").display().to_string();
    let out = baton_with(dir.path(), &["run", &plan, "--endpoint", &emulator.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(emulator.requests("fast_execute_script").len(), 1);
    assert_eq!(emulator.requests("execute_job_plan").len(), 1);
}
