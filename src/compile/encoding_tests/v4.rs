//! Plans encoded for protocol v4 (gateway): every field a seed page shows, and every
//! field the protocol cannot carry named with its place in the plan.

use serde_json::json;

use super::support::build_first;
use crate::job_api::build::{ApiCall, BuildError};
use crate::job_api::types::Protocol;

fn build(yaml: &str) -> Result<ApiCall, Vec<BuildError>> {
    build_first(Protocol::V4, yaml)
}

const HEAD: &str =
    "version: 1\nname: t\nscope: { type: biz, id: 2 }\ndefaults: { account: root }\n";

#[test]
fn script_with_mixed_hosts_rolling_and_passwords() {
    let call = build(&format!(
        r#"{HEAD}steps:
  - id: s
    targets: {{ host_ids: [101], ips: ["1:10.0.0.2"] }}
    start_task: false
    rolling: {{ expression: "1 +1" }}
    script:
      script_id: "abc"
      params: p
      sensitive: true
      host_passwords: [{{ host_id: 101, encrypted_password: E }}]
"#
    ))
    .unwrap();
    assert_eq!(call.path, "/api/v4/fast_execute_script");
    assert_eq!(
        call.body,
        json!({
            "bk_scope_type": "biz", "bk_scope_id": "2",
            "script_id": "abc",
            "script_param": "cA==",
            "account_alias": "root",
            "param_sensitive": true,
            "execute_target": {"host_list": [{"bk_host_id": 101}, {"bk_cloud_id": 1, "ip": "10.0.0.2"}]},
            "rolling_config": {"expression": "1 +1", "mode": 1},
            "host_password_list": [{"host_id": 101, "encrypted_password": "E"}],
            "start_task": false
        })
    );
    assert_eq!(
        call.sensitive_pointers,
        ["/host_password_list/0/encrypted_password", "/script_param"]
    );
}

#[test]
fn push_and_job_steps_name_the_protocol() {
    let push = build(&format!(
            "{HEAD}steps:\n  - id: p\n    targets: {{ ips: [10.0.0.1] }}\n    push_file: {{ target_path: /tmp/, sources: [{{ files: [/a], from: {{ ips: [10.0.0.2] }} }}] }}\n"
        ))
        .unwrap_err();
    assert_eq!(push[0].field, "push_file");
    assert!(push[0].message.contains("protocol v4"));
    let job = build(&format!(
        "{HEAD}steps:\n  - id: j\n    job: {{ plan_id: 1 }}\n"
    ))
    .unwrap_err();
    assert_eq!(job[0].field, "job");
}

#[test]
fn integer_script_id_and_file_rolling_are_refused() {
    let errors = build(&format!(
            "{HEAD}steps:\n  - id: s\n    targets: {{ ips: [10.0.0.1] }}\n    rolling: {{ expression: '1', files: {{ max_hosts_per_batch: 1 }} }}\n    script: {{ script_id: 5 }}\n"
        ))
        .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["script.script_id", "rolling.files"]);
    assert!(errors[0].message.contains("protocol v4"));
}
