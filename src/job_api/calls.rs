//! The calls around a submission, as pure functions returning [`ApiCall`]: status
//! polling, host logs, job and step operations, and the instance list used to find an
//! ambiguous submission again by its unique task name.
//!
//! v2 queries are POSTs with a body (ESB); gateway queries are GETs whose parameters
//! are the members of the call's flat `body` ([`ApiCall::query_pairs`]). v4 has no
//! operation APIs: operations on a v4 plan use the gateway's v3 ones, which take the
//! same ids and header auth ([`ApiCall::protocol`] then says v3; decode with it).

use serde_json::{Map, Value, json};

use super::build::{self, ApiCall, BuildError, Errors};
use super::hosts::ip_objects;
use super::rules::MAX_LOG_BATCH_HOSTS;
use super::types::{HostRef, JobInstanceId, JobOperation, StepInstanceId, StepOperation};
use crate::job_api::types::{Protocol, Scope, ScopeType};

/// v4's batch log API takes at most 100 hosts per call (its doc), v3's 500.
pub const MAX_V4_LOG_BATCH_HOSTS: usize = 100;

/// The scope fields of a query body (v2 `bk_biz_id`, gateway `bk_scope_*`).
fn scope_body(protocol: Protocol, scope: Scope) -> Result<Map<String, Value>, BuildError> {
    let mut errors = Errors::default();
    let mut body = Map::new();
    match protocol {
        Protocol::V2 => {
            if let Some(biz) = build::v2_biz_id(Some(scope), &mut errors) {
                body.insert("bk_biz_id".into(), json!(biz));
            }
        }
        Protocol::V3 | Protocol::V4 => {
            build::write_gateway_scope(Some(scope), &mut body, &mut errors)
        }
    }
    match errors.into_vec().into_iter().next() {
        Some(error) => Err(error),
        None => Ok(body),
    }
}

/// The gateway scope as GET parameters.
fn scope_query(scope: Scope) -> Map<String, Value> {
    let scope_type = match scope.scope_type {
        ScopeType::Biz => "biz",
        ScopeType::BizSet => "biz_set",
    };
    let mut query = Map::new();
    query.insert("bk_scope_type".into(), json!(scope_type));
    query.insert("bk_scope_id".into(), json!(scope.id.to_string()));
    query
}

/// `get_job_instance_status` with per-host results: v2 POST; v3 GET with
/// `return_ip_result=true`; v4 GET with `return_execute_object_result=true`.
pub fn get_job_instance_status(
    protocol: Protocol,
    scope: Scope,
    job: JobInstanceId,
) -> Result<ApiCall, BuildError> {
    const API: &str = "get_job_instance_status";
    match protocol {
        Protocol::V2 => {
            let mut body = scope_body(protocol, scope)?;
            body.insert("job_instance_id".into(), json!(job.0));
            Ok(ApiCall::post(protocol, API, body))
        }
        Protocol::V3 | Protocol::V4 => {
            let flag = if protocol == Protocol::V3 {
                "return_ip_result"
            } else {
                "return_execute_object_result"
            };
            let mut query = scope_query(scope);
            query.insert("job_instance_id".into(), json!(job.0));
            query.insert(flag.into(), json!(true));
            Ok(ApiCall::get(protocol, API, query))
        }
    }
}

/// The calls that fetch the logs of `hosts` in one step.
///
/// - v2: one `get_job_instance_log` for the whole job (v2 has no per-host query); its
///   decoded result holds every step, so pick the step by id.
/// - v3: `batch_get_job_instance_ip_log`, at most 500 hosts per call.
/// - v4: `batch_get_job_instance_execute_object_log`, at most 100 hosts per call.
///
/// On the gateway a call carries either `host_id_list` or `ip_list` (JOB ignores the
/// IPs when both are present), so hosts with an id and hosts without one go in
/// separate calls. Hosts with neither are skipped; no hosts means no calls (except v2).
pub fn get_host_logs(
    protocol: Protocol,
    scope: Scope,
    job: JobInstanceId,
    step: StepInstanceId,
    hosts: &[HostRef],
) -> Result<Vec<ApiCall>, BuildError> {
    let mut base = scope_body(protocol, scope)?;
    base.insert("job_instance_id".into(), json!(job.0));
    if protocol == Protocol::V2 {
        return Ok(vec![ApiCall::post(protocol, "get_job_instance_log", base)]);
    }
    base.insert("step_instance_id".into(), json!(step.0));
    let (api, limit) = match protocol {
        Protocol::V3 => ("batch_get_job_instance_ip_log", MAX_LOG_BATCH_HOSTS),
        _ => (
            "batch_get_job_instance_execute_object_log",
            MAX_V4_LOG_BATCH_HOSTS,
        ),
    };
    let ids: Vec<u64> = hosts.iter().filter_map(|h| h.host_id).collect();
    let addrs: Vec<_> = hosts
        .iter()
        .filter(|h| h.host_id.is_none())
        .filter_map(|h| h.addr.clone())
        .collect();
    let mut calls = Vec::new();
    for chunk in ids.chunks(limit) {
        let mut body = base.clone();
        body.insert("host_id_list".into(), json!(chunk));
        calls.push(ApiCall::post(protocol, api, body));
    }
    for chunk in addrs.chunks(limit) {
        let mut body = base.clone();
        body.insert("ip_list".into(), ip_objects(chunk));
        calls.push(ApiCall::post(protocol, api, body));
    }
    Ok(calls)
}

/// The protocol an operation goes out on: v4 has none, so the gateway's v3 one.
fn operation_protocol(protocol: Protocol) -> Protocol {
    match protocol {
        Protocol::V4 => Protocol::V3,
        other => other,
    }
}

/// `operate_job_instance`: terminate (1) or start (2) a job instance.
pub fn operate_job_instance(
    protocol: Protocol,
    scope: Scope,
    job: JobInstanceId,
    operation: JobOperation,
) -> Result<ApiCall, BuildError> {
    let protocol = operation_protocol(protocol);
    let mut body = scope_body(protocol, scope)?;
    body.insert("job_instance_id".into(), json!(job.0));
    body.insert("operation_code".into(), json!(operation.code()));
    Ok(ApiCall::post(protocol, "operate_job_instance", body))
}

/// `operate_step_instance`: retry, ignore an error, confirm, skip, continue rolling.
pub fn operate_step_instance(
    protocol: Protocol,
    scope: Scope,
    job: JobInstanceId,
    step: StepInstanceId,
    operation: StepOperation,
) -> Result<ApiCall, BuildError> {
    let protocol = operation_protocol(protocol);
    let mut body = scope_body(protocol, scope)?;
    body.insert("job_instance_id".into(), json!(job.0));
    body.insert("step_instance_id".into(), json!(step.0));
    body.insert("operation_code".into(), json!(operation.code()));
    Ok(ApiCall::post(protocol, "operate_step_instance", body))
}

/// `get_job_instance_global_var_value`: v2 POST (ESB `job`), gateway GET. v4 has none;
/// a v4 plan asks the gateway's v3 one, like its operations.
pub fn get_job_instance_global_var_value(
    protocol: Protocol,
    scope: Scope,
    job: JobInstanceId,
) -> Result<ApiCall, BuildError> {
    const API: &str = "get_job_instance_global_var_value";
    match protocol {
        Protocol::V2 => {
            let mut body = scope_body(protocol, scope)?;
            body.insert("job_instance_id".into(), json!(job.0));
            Ok(ApiCall::post(protocol, API, body))
        }
        Protocol::V3 | Protocol::V4 => {
            let mut query = scope_query(scope);
            query.insert("job_instance_id".into(), json!(job.0));
            Ok(ApiCall::get(Protocol::V3, API, query))
        }
    }
}

/// What to list: instances created in a time window, optionally by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceQuery {
    /// Task name (JOB matches it as a substring, so check the names returned).
    pub name: Option<String>,
    /// Window start, epoch ms (inclusive).
    pub create_time_start_ms: i64,
    /// Window end, epoch ms (inclusive).
    pub create_time_end_ms: i64,
    /// First record (v3 `start`, v4 `offset`).
    pub start: u32,
    /// Page size (v3 max 1000, v4 max 200).
    pub length: u32,
}

/// `get_job_instance_list` (GET). The ESB v2 job API has none, but a JOB 3.x ESB that
/// answers v2 also serves the v3 one as `jobv3` beside it, with the same credentials:
/// that is what a v2 call goes to (`/api/c/compapi/v2/jobv3/get_job_instance_list/`).
pub fn get_job_instance_list(
    protocol: Protocol,
    scope: Scope,
    query: &InstanceQuery,
) -> Result<ApiCall, BuildError> {
    const API: &str = "get_job_instance_list";
    let offset_key = match protocol {
        Protocol::V2 | Protocol::V3 => "start",
        Protocol::V4 => "offset",
    };
    let mut params = scope_query(scope);
    params.insert(
        "create_time_start".into(),
        json!(query.create_time_start_ms),
    );
    params.insert("create_time_end".into(), json!(query.create_time_end_ms));
    if let Some(name) = &query.name {
        params.insert("name".into(), json!(name));
    }
    params.insert(offset_key.into(), json!(query.start));
    params.insert("length".into(), json!(query.length));
    let mut call = ApiCall::get(protocol, API, params);
    if protocol == Protocol::V2 {
        call.path = format!("/api/c/compapi/v2/jobv3/{API}/");
    }
    Ok(call)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::build::HttpMethod;
    use crate::job_api::types::HostAddr;

    const BIZ: Scope = Scope {
        scope_type: ScopeType::Biz,
        id: 2,
    };

    #[test]
    fn status_per_protocol() {
        let v2 = get_job_instance_status(Protocol::V2, BIZ, JobInstanceId(9)).unwrap();
        assert_eq!(v2.method, HttpMethod::Post);
        assert_eq!(v2.path, "/api/c/compapi/v2/job/get_job_instance_status/");
        assert_eq!(v2.body, json!({"bk_biz_id": 2, "job_instance_id": 9}));
        let v3 = get_job_instance_status(Protocol::V3, BIZ, JobInstanceId(9)).unwrap();
        assert_eq!(v3.method, HttpMethod::Get);
        assert_eq!(v3.path, "/api/v3/get_job_instance_status");
        assert_eq!(
            v3.body,
            json!({"bk_scope_type": "biz", "bk_scope_id": "2", "job_instance_id": 9, "return_ip_result": true})
        );
        assert!(
            v3.query_pairs()
                .contains(&("return_ip_result".into(), "true".into()))
        );
        let v4 = get_job_instance_status(Protocol::V4, BIZ, JobInstanceId(9)).unwrap();
        assert_eq!(v4.path, "/api/v4/get_job_instance_status");
        assert_eq!(v4.body["return_execute_object_result"], true);
        assert!(v4.body.get("return_ip_result").is_none());
    }

    #[test]
    fn v3_logs_split_by_500_and_by_naming() {
        let mut hosts: Vec<HostRef> = (0..501)
            .map(|i| HostRef {
                host_id: Some(i),
                addr: None,
            })
            .collect();
        hosts.push(HostRef {
            host_id: None,
            addr: HostAddr::parse("0:10.0.0.1"),
        });
        hosts.push(HostRef {
            host_id: None,
            addr: None,
        });
        let calls = get_host_logs(
            Protocol::V3,
            BIZ,
            JobInstanceId(1),
            StepInstanceId(2),
            &hosts,
        )
        .unwrap();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].path, "/api/v3/batch_get_job_instance_ip_log");
        assert_eq!(
            calls[0].body["host_id_list"].as_array().map(Vec::len),
            Some(500)
        );
        assert_eq!(calls[1].body["host_id_list"], json!([500]));
        assert_eq!(
            calls[2].body,
            json!({"bk_scope_type": "biz", "bk_scope_id": "2", "job_instance_id": 1, "step_instance_id": 2,
                   "ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}]})
        );
        assert!(
            calls
                .iter()
                .all(|c| c.body.get("ip_list").is_none() || c.body.get("host_id_list").is_none())
        );
    }

    #[test]
    fn v4_logs_split_by_100_and_v2_is_one_job_call() {
        let hosts: Vec<HostRef> = (0..150)
            .map(|i| HostRef {
                host_id: Some(i),
                addr: None,
            })
            .collect();
        let v4 = get_host_logs(
            Protocol::V4,
            BIZ,
            JobInstanceId(1),
            StepInstanceId(2),
            &hosts,
        )
        .unwrap();
        assert_eq!(v4.len(), 2);
        assert_eq!(
            v4[0].path,
            "/api/v4/batch_get_job_instance_execute_object_log"
        );
        let v2 = get_host_logs(
            Protocol::V2,
            BIZ,
            JobInstanceId(1),
            StepInstanceId(2),
            &hosts,
        )
        .unwrap();
        assert_eq!(v2.len(), 1);
        assert_eq!(v2[0].body, json!({"bk_biz_id": 2, "job_instance_id": 1}));
    }

    #[test]
    fn operations_and_v4_fallback_to_v3() {
        let call = operate_step_instance(
            Protocol::V4,
            BIZ,
            JobInstanceId(1),
            StepInstanceId(2),
            StepOperation::RollingContinue,
        )
        .unwrap();
        assert_eq!(call.protocol(), Protocol::V3);
        assert_eq!(call.path, "/api/v3/operate_step_instance");
        assert_eq!(
            call.body,
            json!({"bk_scope_type": "biz", "bk_scope_id": "2", "job_instance_id": 1, "step_instance_id": 2, "operation_code": 13})
        );
        let call =
            operate_job_instance(Protocol::V2, BIZ, JobInstanceId(1), JobOperation::Terminate)
                .unwrap();
        assert_eq!(call.path, "/api/c/compapi/v2/job/operate_job_instance/");
        assert_eq!(
            call.body,
            json!({"bk_biz_id": 2, "job_instance_id": 1, "operation_code": 1})
        );
    }

    #[test]
    fn instance_list_by_name_and_window() {
        let query = InstanceQuery {
            name: Some("baton-release-web-01J".into()),
            create_time_start_ms: 1_000,
            create_time_end_ms: 2_000,
            start: 0,
            length: 50,
        };
        let v3 = get_job_instance_list(Protocol::V3, BIZ, &query).unwrap();
        assert_eq!(v3.method, HttpMethod::Get);
        assert_eq!(v3.path, "/api/v3/get_job_instance_list");
        assert_eq!(
            v3.body,
            json!({"bk_scope_type": "biz", "bk_scope_id": "2", "create_time_start": 1000,
                   "create_time_end": 2000, "name": "baton-release-web-01J", "start": 0, "length": 50})
        );
        let v4 = get_job_instance_list(Protocol::V4, BIZ, &query).unwrap();
        assert_eq!(v4.body["offset"], 0);
        assert!(v4.body.get("start").is_none());
        let v2 = get_job_instance_list(Protocol::V2, BIZ, &query).unwrap();
        assert_eq!(v2.method, HttpMethod::Get);
        assert_eq!(v2.path, "/api/c/compapi/v2/jobv3/get_job_instance_list/");
        assert_eq!(
            v2.protocol(),
            Protocol::V2,
            "ESB credentials, not the gateway header"
        );
        assert_eq!(v2.body, v3.body);
    }

    /// The requests of the documentation's examples.
    #[test]
    fn global_var_values_per_protocol() {
        let v2 = get_job_instance_global_var_value(Protocol::V2, BIZ, JobInstanceId(100)).unwrap();
        assert_eq!(
            v2.path,
            "/api/c/compapi/v2/job/get_job_instance_global_var_value/"
        );
        assert_eq!(v2.body, json!({"bk_biz_id": 2, "job_instance_id": 100}));
        let v4 = get_job_instance_global_var_value(Protocol::V4, BIZ, JobInstanceId(100)).unwrap();
        assert_eq!(v4.method, HttpMethod::Get);
        assert_eq!(v4.path, "/api/v3/get_job_instance_global_var_value");
        assert_eq!(
            v4.body,
            json!({"bk_scope_type": "biz", "bk_scope_id": "2", "job_instance_id": 100})
        );
    }

    #[test]
    fn v2_queries_refuse_a_business_set_outside_the_builtin_range() {
        let set = Scope {
            scope_type: ScopeType::BizSet,
            id: 3,
        };
        assert!(get_job_instance_status(Protocol::V2, set, JobInstanceId(1)).is_err());
        assert!(get_job_instance_status(Protocol::V3, set, JobInstanceId(1)).is_ok());
    }
}
