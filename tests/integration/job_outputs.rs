//! A job plan's global variables flowing to later steps: a plan's shell step assigns a
//! changeable string variable the way JOB lets it, baton reads the values back with
//! `get_job_instance_global_var_value` (v2 ESB and v3 gateway, in the documented
//! shapes), hands the declared ones to a later step as `{{steps.<id>.vars.<name>}}`,
//! and masks a password variable everywhere it writes.

use serde_json::json;

use crate::support::{Emulator, app_credentials, baton, step, text};

const WORLD: &str = r##"credentials:
  apps: [{ code: baton, secret: s3cret }]
plans:
  - id: 100
    name: migrate-db
    global_vars:
      - { id: 1, name: schema, type: 1, value: "0", changeable: true }
      - { id: 2, name: db_token, type: 4, value: "tok-secret-42" }
      - { id: 3, name: untouched, type: 1, value: "fixed" }
    steps:
      - id: 200
        name: migrate
        type: 1
        script: { language: 1, content: "#!/bin/bash\nschema=$((schema + 7))\nuntouched=changed\necho migrated to $schema\n" }
        targets: { hosts: ["0:10.0.0.9"] }
"##;

fn plan(api: &str) -> String {
    format!(
        r#"version: 1
name: migrate
api: {api}
scope: {{ type: biz, id: 2 }}
defaults: {{ account: root }}
hosts: {{ db: {{ ips: ["0:10.0.0.9"] }} }}
steps:
  - id: migrate
    job:
      plan_id: 100
      vars: {{ schema: "5" }}
      exports: [schema, untouched, {{ name: db_token }}]
  - id: record
    needs: [migrate]
    targets: db
    script:
      language: shell
      content: |
        echo '{{{{steps.migrate.vars.schema}}}} {{{{steps.migrate.vars.untouched}}}}' > /tmp/schema.txt
        echo '{{{{steps.migrate.vars.db_token}}}}' > /tmp/token.txt
"#
    )
}

fn run_on(api: &str) -> (tempfile::TempDir, Emulator, std::process::Output) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.yaml"), plan(api)).expect("plan");
    let emulator = Emulator::start(WORLD, &dir.path().join("sandbox"));
    let mut cmd = baton(dir.path());
    cmd.arg("run")
        .arg(dir.path().join("plan.yaml"))
        .arg("--endpoint")
        .arg(emulator.url())
        .arg("--report")
        .arg(dir.path().join("report.json"));
    app_credentials(&mut cmd, "s3cret");
    let output = cmd.output().expect("run baton");
    (dir, emulator, output)
}

fn assert_flow(api: &str) {
    let (dir, emulator, output) = run_on(api);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // Only a changeable variable takes the shell step's assignment.
    assert_eq!(
        std::fs::read_to_string(emulator.host_path("0:10.0.0.9", "/tmp/schema.txt")).unwrap(),
        "12 fixed\n"
    );
    assert_eq!(
        std::fs::read_to_string(emulator.host_path("0:10.0.0.9", "/tmp/token.txt")).unwrap(),
        "tok-secret-42\n"
    );
    let reads = emulator.requests("get_job_instance_global_var_value");
    assert_eq!(reads.len(), 1, "{reads:?}");
    let job = emulator.instances()[0]["job_instance_id"].clone();
    if api == "v2" {
        // The v2 doc's request: bk_biz_id and job_instance_id in the body.
        assert_eq!(reads[0]["method"], "POST");
        let body = &reads[0]["body"];
        assert_eq!(body["bk_biz_id"], 2);
        assert_eq!(body["job_instance_id"], job);
    } else {
        // The gateway doc's request: a GET with the scope and the instance.
        assert_eq!(reads[0]["method"], "GET");
        let query = &reads[0]["query_params"];
        assert_eq!(query["bk_scope_type"], "biz");
        assert_eq!(query["bk_scope_id"], "2");
        assert_eq!(query["job_instance_id"], job.to_string());
    }
    let report = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
    assert!(!report.contains("tok-secret-42"), "secret in the report");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("tok-secret-42")
            && !String::from_utf8_lossy(&output.stderr).contains("tok-secret-42")
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let outputs = &step(&report, "migrate")["outputs"];
    assert_eq!(outputs["vars.schema"], "12", "{outputs}");
    assert_eq!(outputs["vars.db_token"], "******");
}

#[test]
fn a_job_plans_changed_variable_reaches_a_later_step_on_v3() {
    assert_flow("v3");
}

#[test]
fn a_job_plans_changed_variable_reaches_a_later_step_on_v2() {
    assert_flow("v2");
}

#[test]
fn the_emulator_answers_in_the_documented_shapes() {
    let (_dir, emulator, output) = run_on("v3");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let job = emulator.instances()[0]["job_instance_id"].as_u64().unwrap();
    let auth = json!({"bk_app_code": "baton", "bk_app_secret": "s3cret", "bk_username": "admin"});
    let client = crate::support::control_client();
    let v3: serde_json::Value = emulator.runtime().block_on(async {
        client
            .get(format!(
                "{}/api/v3/get_job_instance_global_var_value?bk_scope_type=biz&bk_scope_id=2&job_instance_id={job}",
                emulator.url()
            ))
            .header("X-Bkapi-Authorization", auth.to_string())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let step_vars = &v3["data"]["step_instance_var_list"][0];
    assert!(step_vars["step_instance_id"].as_u64().is_some(), "{v3}");
    assert_eq!(
        step_vars["global_var_list"][0],
        json!({"name": "schema", "value": "12", "type": 1})
    );
    assert_eq!(step_vars["global_var_list"][1]["type"], 4);
    let mut body = auth.clone();
    body["bk_biz_id"] = json!(2);
    body["job_instance_id"] = json!(job);
    let v2: serde_json::Value = emulator.runtime().block_on(async {
        client
            .post(format!(
                "{}/api/c/compapi/v2/job/get_job_instance_global_var_value/",
                emulator.url()
            ))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let first = &v2["data"]["job_instance_var_values"][0]["step_instance_var_values"][0];
    assert_eq!(
        *first,
        json!({"name": "schema", "value": "12", "category": 1}),
        "{v2}"
    );
}
