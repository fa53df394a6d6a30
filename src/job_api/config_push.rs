//! `push_config_file`: small text files written to the targets, and JOB's rules for
//! them checked before sending (bk-job `EsbPushConfigFileResourceV3Impl`: a target
//! path, an account, hosts, and at least one file, each with a name and non-blank
//! content). v2 (ESB `job`) takes the account by name and `ip_list` only; v3 the
//! gateway's account and `target_server`; v4 has no such API.
//!
//! Beyond JOB's own checks: a file name is a name, not a path (JOB writes it under the
//! target folder), names are unique within a push, and the encoded files stay under
//! the gateway's 40 MB request limit.

use serde_json::{Map, Value, json};

use super::build::{self, ApiCall, Errors};
use super::hosts;
use super::request::{ConfigPush, JobRequest};
use super::types::Protocol;

const API: &str = "push_config_file";

/// The gateway refuses bodies over 40 MB; base64 content counts towards it.
pub const MAX_ENCODED_BYTES: usize = 40 * 1024 * 1024;

fn check_files(push: &ConfigPush, errors: &mut Errors) -> Vec<Value> {
    if push.target_path.trim().is_empty() {
        errors.add("push_config.target_path", "JOB needs a target folder");
    } else if !push.target_path.starts_with('/') && !push.target_path.contains(":\\") {
        errors.add(
            "push_config.target_path",
            format!("`{}` is not an absolute folder", push.target_path),
        );
    }
    if push.files.is_empty() {
        errors.add("push_config.files", "no files: JOB needs at least one");
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut total = 0usize;
    let mut list = Vec::new();
    for (i, (name, content)) in push.files.iter().enumerate() {
        let field = format!("push_config.files[{i}]");
        if name.trim().is_empty() {
            errors.add(format!("{field}.name"), "JOB needs a file name");
        } else if name.contains('/') || name.contains('\\') || name == "." || name == ".." {
            errors.add(
                format!("{field}.name"),
                format!("`{name}` is not a file name: put folders in `target_path`"),
            );
        } else if seen.contains(&name.as_str()) {
            errors.add(
                format!("{field}.name"),
                format!("`{name}` is pushed twice to the same folder"),
            );
        }
        seen.push(name);
        if content.trim().is_empty() {
            errors.add(
                format!("{field}.content"),
                "JOB refuses a blank config file (file_list.content)",
            );
        }
        let encoded = build::base64(content);
        total += encoded.len();
        list.push(json!({"file_name": name, "content": encoded}));
    }
    if total > MAX_ENCODED_BYTES {
        errors.add(
            "push_config.files",
            format!(
                "the files encode to {total} bytes, over the gateway's {MAX_ENCODED_BYTES}-byte request limit; push big files with `push_file`"
            ),
        );
    }
    list
}

/// What a config push cannot carry: rolling, and a timeout of its own (JOB uses its
/// default for these tasks).
fn refuse_extras(request: &JobRequest, errors: &mut Errors) {
    if request.rolling.is_some() {
        errors.add("rolling", "push_config_file has no rolling execution");
    }
    if let Some(timeout) = request.timeout
        && timeout.field == "timeout"
    {
        errors.add(
            "timeout",
            "push_config_file takes no timeout (JOB applies its default)",
        );
    }
}

/// The v3 (gateway and ESB jobv3) request.
pub(crate) fn v3_call(request: &JobRequest, push: &ConfigPush, errors: &mut Errors) -> ApiCall {
    let mut body = Map::new();
    build::write_gateway_scope(request.scope, &mut body, errors);
    match &request.account {
        Some(account) => build::write_gateway_account(account, &mut body),
        None => build::missing_account(errors),
    }
    body.insert("file_target_path".into(), json!(push.target_path));
    body.insert("file_list".into(), Value::Array(check_files(push, errors)));
    match &request.targets {
        Some(targets) => {
            hosts::check(targets, "the targets name no hosts", errors);
            body.insert(
                "target_server".into(),
                hosts::v3_server(targets, "targets", errors),
            );
        }
        None => errors.add("targets", "no target hosts: set `targets`"),
    }
    refuse_extras(request, errors);
    ApiCall::post(Protocol::V3, API, body)
}

/// The ESB v2 request: `account` by name, `ip_list` only.
pub(crate) fn v2_call(request: &JobRequest, push: &ConfigPush, errors: &mut Errors) -> ApiCall {
    let mut body = Map::new();
    if let Some(biz) = build::v2_biz_id(request.scope, errors) {
        body.insert("bk_biz_id".into(), json!(biz));
    }
    match &request.account {
        Some(account) => {
            if let Some(alias) = build::v2_account(account, &account.field, API, errors) {
                body.insert("account".into(), alias);
            }
        }
        None => build::missing_account(errors),
    }
    body.insert("file_target_path".into(), json!(push.target_path));
    body.insert("file_list".into(), Value::Array(check_files(push, errors)));
    match &request.targets {
        Some(targets) => {
            hosts::check(targets, "the targets name no hosts", errors);
            if !targets.host_ids.is_empty()
                || !targets.dynamic_groups.is_empty()
                || !targets.topo_nodes.is_empty()
            {
                errors.unsupported(
                    &targets.field,
                    Protocol::V2,
                    API,
                    "v2's push_config_file takes `ip_list` only: name the targets by `ips`, or use protocol v3",
                );
            }
            body.insert("ip_list".into(), hosts::ip_objects(&targets.ips));
        }
        None => errors.add("targets", "no target hosts: set `targets`"),
    }
    refuse_extras(request, errors);
    ApiCall::post(Protocol::V2, API, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::request::{Account, Hosts, Work};
    use crate::job_api::types::{HostAddr, Scope, ScopeType};

    fn request(files: Vec<(&str, &str)>) -> (JobRequest, ConfigPush) {
        let push = ConfigPush {
            target_path: "/tmp/".into(),
            files: files
                .into_iter()
                .map(|(n, c)| (n.to_owned(), c.to_owned()))
                .collect(),
        };
        let request = JobRequest {
            scope: Some(Scope {
                scope_type: ScopeType::Biz,
                id: 1,
            }),
            work: Work::Config(push.clone()),
            targets: Some(Hosts {
                field: "targets".into(),
                ips: vec![HostAddr::parse("0:10.0.0.1").unwrap()],
                ..Hosts::default()
            }),
            account: Some(Account {
                id: None,
                alias: Some("root".into()),
                field: "account".into(),
            }),
            timeout: None,
            rolling: None,
            start_task: None,
            task_name: None,
        };
        (request, push)
    }

    /// The bodies of the documentation's examples.
    #[test]
    fn doc_examples() {
        let (request, push) = request(vec![("a.txt", "hello world!")]);
        let mut errors = Errors::default();
        let v2 = v2_call(&request, &push, &mut errors);
        assert_eq!(v2.path, "/api/c/compapi/v2/job/push_config_file/");
        assert_eq!(
            v2.body,
            json!({"bk_biz_id": 1, "account": "root", "file_target_path": "/tmp/",
                   "file_list": [{"file_name": "a.txt", "content": "aGVsbG8gd29ybGQh"}],
                   "ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}]})
        );
        let v3 = v3_call(&request, &push, &mut errors);
        assert_eq!(v3.path, "/api/v3/push_config_file");
        assert_eq!(v3.body["account_alias"], "root");
        assert_eq!(v3.body["bk_scope_id"], "1");
        assert_eq!(v3.body["file_list"][0]["content"], "aGVsbG8gd29ybGQh");
        assert!(errors.into_vec().is_empty());
    }

    #[test]
    fn names_contents_and_paths_are_checked() {
        let (mut request, mut push) = request(vec![
            ("a/b.conf", "x"),
            ("c.conf", "  "),
            ("d", "y"),
            ("d", "z"),
        ]);
        push.target_path = "relative/".into();
        request.work = Work::Config(push.clone());
        let mut errors = Errors::default();
        v3_call(&request, &push, &mut errors);
        let fields: Vec<String> = errors.into_vec().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "push_config.target_path",
                "push_config.files[0].name",
                "push_config.files[1].content",
                "push_config.files[3].name"
            ]
        );
    }
}
