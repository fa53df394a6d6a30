//! What JOB can be asked about a plan before anything is submitted: a job plan's
//! global variables (v3 `get_job_plan_detail`, v2 `get_job_detail`), whether an
//! execution account alias exists (`get_account_list` filtered by alias) and whether a
//! script version exists (`get_script_version_detail`). Requests as pure functions
//! returning [`ApiCall`], answers read into [`PlanVar`], [`bool`] and the like.
//!
//! v2 asks the ESB's `jobv3` APIs beside it where the `job` component has no
//! equivalent (accounts, script versions), like the instance list; v4 asks the
//! gateway's v3 ones.

use serde_json::{Map, Value, json};

use super::build::{ApiCall, BuildError, Errors};
use super::types::{Protocol, Scope, ScopeType};

/// A global variable of a job plan, as JOB describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanVar {
    /// Variable id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// 1 string, 2 namespace, 3 host list, 4 password, 5 / 6 arrays.
    pub kind: u8,
    /// Whether JOB needs a value for it.
    pub required: bool,
    /// Whether the plan gives it a value of its own.
    pub has_default: bool,
}

/// JOB's host-list variable type.
pub const HOST_LIST_VAR: u8 = 3;

fn gateway_scope(scope: Scope) -> Map<String, Value> {
    let mut query = Map::new();
    let kind = match scope.scope_type {
        ScopeType::Biz => "biz",
        ScopeType::BizSet => "biz_set",
    };
    query.insert("bk_scope_type".into(), json!(kind));
    query.insert("bk_scope_id".into(), json!(scope.id.to_string()));
    query
}

/// A gateway GET of `api`; on v2 the same GET on the ESB `jobv3` component.
fn v3_query(protocol: Protocol, api: &'static str, query: Map<String, Value>) -> ApiCall {
    match protocol {
        Protocol::V2 => {
            let mut call = ApiCall::get(Protocol::V2, api, query);
            call.path = format!("/api/c/compapi/v2/jobv3/{api}/");
            call
        }
        Protocol::V3 | Protocol::V4 => ApiCall::get(Protocol::V3, api, query),
    }
}

/// A job plan's detail: v2 `get_job_detail` (POST `bk_biz_id`, `bk_job_id`), else v3
/// `get_job_plan_detail` (GET `job_plan_id`).
pub fn job_plan_detail(
    protocol: Protocol,
    scope: Scope,
    plan_id: u64,
) -> Result<ApiCall, BuildError> {
    match protocol {
        Protocol::V2 => {
            let mut errors = Errors::default();
            let biz = super::build::v2_biz_id(Some(scope), &mut errors);
            if let Some(error) = errors.into_vec().into_iter().next() {
                return Err(error);
            }
            let mut body = Map::new();
            body.insert("bk_biz_id".into(), json!(biz));
            body.insert("bk_job_id".into(), json!(plan_id));
            Ok(ApiCall::post(Protocol::V2, "get_job_detail", body))
        }
        Protocol::V3 | Protocol::V4 => {
            let mut query = gateway_scope(scope);
            query.insert("job_plan_id".into(), json!(plan_id));
            Ok(ApiCall::get(Protocol::V3, "get_job_plan_detail", query))
        }
    }
}

/// The execution accounts with alias `alias` (system accounts, category 1).
pub fn account_list(protocol: Protocol, scope: Scope, alias: &str) -> ApiCall {
    let mut query = gateway_scope(scope);
    query.insert("category".into(), json!(1));
    query.insert("alias".into(), json!(alias));
    query.insert("start".into(), json!(0));
    query.insert("length".into(), json!(1000));
    v3_query(protocol, "get_account_list", query)
}

/// A script version by its id.
pub fn script_version_detail(protocol: Protocol, scope: Scope, version_id: u64) -> ApiCall {
    let mut query = gateway_scope(scope);
    query.insert("id".into(), json!(version_id));
    v3_query(protocol, "get_script_version_detail", query)
}

/// The global variables of a plan detail: v2 `global_vars[]` with `category`, v3
/// `global_var_list[]` with `type` and `required`.
pub fn plan_vars(protocol: Protocol, data: &Value) -> Vec<PlanVar> {
    let (list, kind_key) = match protocol {
        Protocol::V2 => (&data["global_vars"], "category"),
        Protocol::V3 | Protocol::V4 => (&data["global_var_list"], "type"),
    };
    list.as_array()
        .map(|vars| {
            vars.iter()
                .filter_map(|v| {
                    let kind = v[kind_key].as_u64().unwrap_or(1) as u8;
                    let has_default = if kind == HOST_LIST_VAR {
                        let server = if v["server"].is_object() {
                            &v["server"]
                        } else {
                            &v["target_server"]
                        };
                        server.as_object().is_some_and(|s| {
                            s.values()
                                .any(|list| list.as_array().is_some_and(|l| !l.is_empty()))
                        })
                    } else {
                        v["value"].as_str().is_some_and(|s| !s.is_empty())
                    };
                    Some(PlanVar {
                        id: v["id"].as_u64()?,
                        name: v["name"].as_str()?.to_owned(),
                        kind,
                        required: v["required"].as_u64() == Some(1)
                            || v["required"].as_bool() == Some(true),
                        has_default,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an account list answer holds an account with this alias.
pub fn has_account(data: &Value, alias: &str) -> bool {
    data["data"].as_array().is_some_and(|accounts| {
        accounts
            .iter()
            .any(|a| a["alias"].as_str() == Some(alias) || a["account"].as_str() == Some(alias))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIZ: Scope = Scope {
        scope_type: ScopeType::Biz,
        id: 1,
    };

    /// The requests of the documentation's examples.
    #[test]
    fn requests_follow_the_docs() {
        let detail = job_plan_detail(Protocol::V3, BIZ, 100).unwrap();
        assert_eq!(detail.path, "/api/v3/get_job_plan_detail");
        assert_eq!(
            detail.body,
            json!({"bk_scope_type": "biz", "bk_scope_id": "1", "job_plan_id": 100})
        );
        let v2 = job_plan_detail(Protocol::V2, BIZ, 100).unwrap();
        assert_eq!(v2.path, "/api/c/compapi/v2/job/get_job_detail/");
        assert_eq!(v2.body, json!({"bk_biz_id": 1, "bk_job_id": 100}));
        let accounts = account_list(Protocol::V3, BIZ, "root");
        assert_eq!(accounts.path, "/api/v3/get_account_list");
        assert_eq!(accounts.body["alias"], "root");
        assert_eq!(
            account_list(Protocol::V2, BIZ, "root").path,
            "/api/c/compapi/v2/jobv3/get_account_list/"
        );
        let script = script_version_detail(Protocol::V4, BIZ, 1);
        assert_eq!(script.path, "/api/v3/get_script_version_detail");
        assert_eq!(script.body["id"], 1);
    }

    /// The answer of the v3 doc's example variable, and a v2 host variable.
    #[test]
    fn plan_vars_from_both_shapes() {
        let v3 = json!({"global_var_list": [
            {"id": 11, "type": 1, "name": "varName", "value": "value is Me", "description": "hello", "required": 1},
            {"id": 12, "type": 3, "name": "web", "server": {"ip_list": [], "host_id_list": []}, "required": 0}]});
        let vars = plan_vars(Protocol::V3, &v3);
        assert_eq!(vars[0].name, "varName");
        assert!(vars[0].required && vars[0].has_default);
        assert_eq!(vars[1].kind, HOST_LIST_VAR);
        assert!(!vars[1].has_default);
        let v2 = json!({"global_vars": [{"id": 5, "category": 3, "name": "web",
            "target_server": {"ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}]}}]});
        let vars = plan_vars(Protocol::V2, &v2);
        assert_eq!(vars[0].kind, HOST_LIST_VAR);
        assert!(vars[0].has_default && !vars[0].required);
        assert!(has_account(
            &json!({"data": [{"id": 70, "account": "aaa", "alias": "aaa"}]}),
            "aaa"
        ));
    }
}
