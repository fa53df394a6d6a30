//! Plans encoded for protocol v3 (gateway): every field a seed page shows, and every
//! field the protocol cannot carry named with its place in the plan.

use serde_json::json;

use super::support::{build_first, fields};
use crate::job_api::build::{ApiCall, BuildError};
use crate::job_api::types::Protocol;

fn build(yaml: &str) -> Result<ApiCall, Vec<BuildError>> {
    build_first(Protocol::V3, yaml)
}

const HEAD: &str = r#"
version: 1
name: t
scope: { type: biz_set, id: 9991001 }
defaults: { account: { id: 1000 }, timeout: 1h }
hosts:
  web: { ips: ["0:10.0.0.1"], dynamic_groups: ["g"], topo_nodes: [{ node_type: set, id: 4 }] }
  ids: { host_ids: [101, 102] }
  src: { ips: ["0:10.0.0.9"] }
"#;

#[test]
fn script_maps_every_field() {
    let call = build(&format!(
        r#"{HEAD}steps:
  - id: s
    targets: web
    task_name: t1
    start_task: false
    rolling: {{ expression: "25%", mode: confirm }}
    script:
      language: powershell
      content: "Write-Host 1"
      params: "-x secret"
      sensitive: true
      script_id: "a1b2"
      script_version_id: 12
      windows_interpreter: 'C:\pwsh.exe'
      host_passwords:
        - {{ host_id: 101, encrypted_password: "ENC1" }}
        - {{ ip: "2:10.0.0.5", encrypted_password: "ENC2" }}
"#
    ))
    .unwrap();
    assert_eq!(call.path, "/api/v3/fast_execute_script");
    assert_eq!(
        call.body,
        json!({
            "bk_scope_type": "biz_set",
            "bk_scope_id": "9991001",
            "script_version_id": 12,
            "script_id": "a1b2",
            "script_content": crate::job_api::build::base64("Write-Host 1"),
            "script_language": 5,
            "script_param": crate::job_api::build::base64("-x secret"),
            "timeout": 3600,
            "account_id": 1000,
            "is_param_sensitive": 1,
            "windows_interpreter": "C:\\pwsh.exe",
            "target_server": {
                "ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}],
                "dynamic_group_list": [{"id": "g"}],
                "topo_node_list": [{"id": 4, "node_type": "set"}]
            },
            "rolling_config": {"expression": "25%", "mode": 3},
            "host_password_list": [
                {"host_id": 101, "encrypted_password": "ENC1"},
                {"bk_cloud_id": 2, "ip": "10.0.0.5", "encrypted_password": "ENC2"}
            ],
            "start_task": false,
            "task_name": "t1"
        })
    );
    let masked = call.masked_body();
    assert_eq!(masked["script_param"], "******");
    assert_eq!(
        masked["host_password_list"][0]["encrypted_password"],
        "******"
    );
    assert_eq!(
        masked["host_password_list"][1]["encrypted_password"],
        "******"
    );
}

#[test]
fn integer_script_id_is_refused_with_a_hint() {
    let errors = build(&format!(
        "{HEAD}steps:\n  - id: s\n    targets: ids\n    script: {{ script_id: 1 }}\n"
    ))
    .unwrap_err();
    assert_eq!(fields(&errors), ["script.script_id"]);
    assert!(errors[0].message.contains("script_version_id: 1"));
}

#[test]
fn mixed_ids_and_ips_are_refused() {
    let errors = build(&format!(
        "{HEAD}steps:\n  - id: s\n    targets: [web, ids]\n    script: {{ script_version_id: 1 }}\n"
    ))
    .unwrap_err();
    assert_eq!(fields(&errors), ["targets"]);
}

#[test]
fn push_with_source_file_rolling() {
    let call = build(&format!(
            r#"{HEAD}steps:
  - id: p
    targets: ids
    account: {{ alias: app }}
    rolling: {{ mode: ignore, files: {{ max_hosts_per_batch: 1, max_files_per_host: 2 }} }}
    push_file:
      target_path: /opt/app/
      target_name: app.tgz
      transfer_mode: strict
      download_speed_limit: 5
      sources:
        - {{ files: [/build/app.tgz], from: src }}
        - {{ files: [/build/b.tgz], from: src, account: {{ id: 7, alias: root }}, file_type: server }}
"#
        ))
        .unwrap();
    assert_eq!(call.path, "/api/v3/fast_transfer_file");
    assert_eq!(
        call.body,
        json!({
            "bk_scope_type": "biz_set",
            "bk_scope_id": "9991001",
            "account_alias": "app",
            "file_target_path": "/opt/app/",
            "file_target_name": "app.tgz",
            "file_source_list": [
                {"file_list": ["/build/app.tgz"], "account": {"alias": "app"},
                 "server": {"ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.9"}]}},
                {"file_list": ["/build/b.tgz"], "file_type": 1, "account": {"id": 7, "alias": "root"},
                 "server": {"ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.9"}]}}
            ],
            "transfer_mode": 1,
            "timeout": 3600,
            "download_speed_limit": 5,
            "target_server": {"host_id_list": [101, 102]},
            "rolling_config": {"type": 2, "mode": 2, "file_source": {
                "max_execute_object_num_in_batch": 1, "max_file_num_of_single_execute_object": 2}}
        })
    );
}

#[test]
fn push_third_party_and_local_sources() {
    let call = build(&format!(
        r#"{HEAD}steps:
  - id: p
    targets: ids
    push_file:
      target_path: /opt/
      sources:
        - {{ files: [bucket/a.txt], file_type: third_party, file_source_code: cos-main }}
        - {{ files: [/upload/b.txt], file_type: local }}
"#
    ))
    .unwrap();
    assert_eq!(
        call.body["file_source_list"],
        json!([
            {"file_list": ["bucket/a.txt"], "file_type": 3, "file_source_code": "cos-main"},
            {"file_list": ["/upload/b.txt"], "file_type": 2}
        ])
    );
}

#[test]
fn file_rolling_refusals() {
    let errors = build(&format!(
        r#"{HEAD}steps:
  - id: p
    targets: ids
    rolling: {{ expression: "1", files: {{ max_hosts_per_batch: 1 }} }}
    push_file:
      target_path: /opt/
      sources: [{{ files: [/upload/b.txt], file_type: local, from: src }}]
"#
    ))
    .unwrap_err();
    assert_eq!(
        fields(&errors),
        [
            "push_file.sources[0].from",
            "rolling.expression",
            "rolling.files"
        ]
    );
}

#[test]
fn job_plan_with_vars_and_refusals() {
    let call = build(&format!(
            "{HEAD}steps:\n  - id: j\n    start_task: true\n    job: {{ plan_id: 100, vars: {{ 436: {{ hosts: ids }}, param_name: param_value }} }}\n"
        ))
        .unwrap();
    assert_eq!(call.path, "/api/v3/execute_job_plan");
    assert_eq!(
        call.body,
        json!({
            "bk_scope_type": "biz_set", "bk_scope_id": "9991001", "job_plan_id": 100,
            "global_var_list": [{"id": 436, "server": {"host_id_list": [101, 102]}},
                                {"name": "param_name", "value": "param_value"}],
            "start_task": true
        })
    );
    let errors = build(&format!(
            "{HEAD}steps:\n  - id: j\n    job: {{ plan_id: 1, source_biz: 1, target_biz: 2, overrides: [{{ step_id: 1 }}] }}\n"
        ))
        .unwrap_err();
    assert_eq!(
        fields(&errors),
        ["job.overrides", "job.source_biz", "job.target_biz"]
    );
    assert!(errors.iter().all(|e| e.message.contains("protocol v3")));
}

#[test]
fn missing_scope_account_and_targets() {
    let errors = build(
        "version: 1\nname: t\nsteps:\n  - id: s\n    script: { language: shell, content: ls }\n",
    )
    .unwrap_err();
    assert_eq!(fields(&errors), ["scope", "account", "targets"]);
}
