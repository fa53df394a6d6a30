//! Plans encoded for protocol v2 (ESB): every field a seed page shows, and every
//! field the protocol cannot carry named with its place in the plan.

use serde_json::json;

use super::support::{build_first, fields};
use crate::job_api::build::{ApiCall, BuildError};
use crate::job_api::types::Protocol;

fn build(yaml: &str) -> Result<ApiCall, Vec<BuildError>> {
    build_first(Protocol::V2, yaml)
}

const HEAD: &str = r#"
version: 1
name: t
scope: { type: biz, id: 3 }
defaults: { account: root, timeout: 10m }
hosts:
  web: { ips: ["0:10.0.0.1", "10.0.0.2"], dynamic_groups: ["7"] }
  ids: { host_ids: [101], topo_nodes: [{ node_type: module, id: 9 }] }
"#;

#[test]
fn script_uses_defaults_and_sends_sensitivity_always() {
    let call = build(&format!(
            "{HEAD}steps:\n  - id: s\n    targets: web\n    script: {{ language: python, content: 'print(1)', params: 'a b', sensitive: true }}\n"
        ))
        .unwrap();
    assert_eq!(call.path, "/api/c/compapi/v2/job/fast_execute_script/");
    assert_eq!(
        call.body,
        json!({
            "bk_biz_id": 3,
            "script_content": crate::job_api::build::base64("print(1)"),
            "script_param": "YSBi",
            "script_timeout": 600,
            "account": "root",
            "is_param_sensitive": 1,
            "script_type": 4,
            "ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}, {"bk_cloud_id": 0, "ip": "10.0.0.2"}],
            "custom_query_id": ["7"]
        })
    );
    assert_eq!(call.sensitive_pointers, ["/script_param"]);
    assert_eq!(call.masked_body()["script_param"], "******");
}

#[test]
fn script_not_sensitive_is_zero_and_unmasked() {
    let call = build(&format!(
            "{HEAD}steps:\n  - id: s\n    targets: web\n    task_name: deploy\n    script: {{ script_id: '12', params: p }}\n"
        ))
        .unwrap();
    assert_eq!(call.body["is_param_sensitive"], 0);
    assert_eq!(call.body["script_id"], 12);
    assert_eq!(call.body["task_name"], "deploy");
    assert!(call.sensitive_pointers.is_empty());
}

#[test]
fn everything_v2_cannot_carry_is_reported_at_once() {
    let errors = build(&format!(
        r#"{HEAD}steps:
  - id: s
    targets: [web, ids]
    account: {{ id: 1000 }}
    start_task: false
    rolling: {{ expression: "25%" }}
    script:
      script_id: abc
      script_version_id: 5
      windows_interpreter: 'C:\py.exe'
      host_passwords: [{{ host_id: 101, encrypted_password: x }}]
"#
    ))
    .unwrap_err();
    let got = fields(&errors);
    for want in [
        "script.script_id",
        "script.script_version_id",
        "account.id",
        "targets.host_ids",
        "targets.topo_nodes",
        "script.windows_interpreter",
        "script.host_passwords",
        "start_task",
        "rolling",
    ] {
        assert!(got.contains(&want), "{want} missing from {got:?}");
    }
    let interp = errors
        .iter()
        .find(|e| e.field == "script.windows_interpreter")
        .unwrap();
    assert!(
        interp.message.contains("cannot be sent with protocol v2"),
        "{}",
        interp.message
    );
}

#[test]
fn push_refuses_v3_only_fields() {
    let errors = build(&format!(
        r#"{HEAD}steps:
  - id: p
    targets: web
    push_file:
      target_path: /tmp/
      target_name: x.tgz
      transfer_mode: strict
      sources:
        - {{ files: [/a], from: web, file_type: local }}
        - {{ files: [/b], file_type: third_party, file_source_code: cos }}
"#
    ))
    .unwrap_err();
    let got = fields(&errors);
    for want in [
        "push_file.target_name",
        "push_file.transfer_mode",
        "push_file.sources[0].file_type",
        "push_file.sources[1].file_type",
        "push_file.sources[1].file_source_code",
        "push_file.sources[1].from",
    ] {
        assert!(got.contains(&want), "{want} missing from {got:?}");
    }
}

#[test]
fn push_with_limits_and_timeout() {
    let call = build(&format!(
        r#"{HEAD}steps:
  - id: p
    targets: web
    timeout: 90
    push_file:
      target_path: /data/
      upload_speed_limit: 10
      download_speed_limit: 20
      sources: [{{ files: [/src/a.tgz], from: {{ ips: ["0:10.0.0.9"] }}, account: app }}]
"#
    ))
    .unwrap();
    assert_eq!(call.api, "fast_push_file");
    assert_eq!(call.body["timeout"], 90);
    assert_eq!(call.body["upload_speed_limit"], 10);
    assert_eq!(call.body["download_speed_limit"], 20);
    assert_eq!(
        call.body["file_source"],
        json!([{"files": ["/src/a.tgz"], "account": "app", "ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.9"}]}])
    );
}

#[test]
fn job_step_by_name_and_id_with_host_variable() {
    let call = build(&format!(
        r#"{HEAD}steps:
  - id: j
    job:
      plan_id: 1001
      vars:
        version: "1.2.3"
        7: {{ hosts: web }}
"#
    ))
    .unwrap();
    assert_eq!(call.path, "/api/c/compapi/v2/job/execute_job/");
    assert_eq!(
        call.body,
        json!({
            "bk_biz_id": 3,
            "bk_job_id": 1001,
            "global_vars": [
                {"name": "version", "value": "1.2.3"},
                {"id": 7, "ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}, {"bk_cloud_id": 0, "ip": "10.0.0.2"}], "custom_query_id": ["7"]}
            ]
        })
    );
}

#[test]
fn job_step_refuses_step_level_settings() {
    let errors = build(&format!(
            "{HEAD}steps:\n  - id: j\n    targets: web\n    account: root\n    timeout: 5\n    task_name: x\n    job: {{ plan_id: 1 }}\n"
        ))
        .unwrap_err();
    assert_eq!(
        fields(&errors),
        ["targets", "account", "timeout", "task_name"]
    );
}

#[test]
fn platform_job_needs_both_businesses_and_no_vars() {
    let errors = build(&format!(
            "{HEAD}steps:\n  - id: j\n    job: {{ plan_id: 1, source_biz: 2, vars: {{ a: b }}, overrides: [{{ step_id: 1, db_account_id: 3 }}] }}\n"
        ))
        .unwrap_err();
    assert_eq!(
        fields(&errors),
        [
            "job.target_biz",
            "job.vars",
            "job.overrides[0].db_account_id"
        ]
    );
}

#[test]
fn business_set_scope_only_in_builtin_range() {
    let yaml = |id: u64| {
        format!(
            "version: 1\nname: t\nscope: {{ type: biz_set, id: {id} }}\nsteps:\n  - id: j\n    job: {{ plan_id: 1 }}\n"
        )
    };
    assert_eq!(
        build(&yaml(9_000_001)).unwrap().body["bk_biz_id"],
        9_000_001
    );
    let errors = build(&yaml(5)).unwrap_err();
    assert_eq!(fields(&errors), ["scope.type"]);
    assert!(errors[0].message.contains("protocol v2"));
}

#[test]
fn unread_script_file_is_an_error() {
    let errors = build(&format!(
            "{HEAD}steps:\n  - id: s\n    targets: web\n    script: {{ language: shell, file: scripts/x.sh }}\n"
        ))
        .unwrap_err();
    assert_eq!(fields(&errors), ["script.file"]);
}
