//! Encodes a [`JobRequest`] into the HTTP request JOB receives, per protocol, and owns
//! [`ApiCall`], the protocol-neutral description of one JOB call that the runner sends
//! and `baton plan` prints.
//!
//! A plan must send exactly what it says: a field the chosen protocol cannot carry is
//! a [`BuildError`] naming the field and the protocol, never silently dropped. Every
//! error of a step is returned at once.
//!
//! # What each protocol can carry
//!
//! Derived from the seed pages and `bkjob-api.md` (§3–§6, §14). "—" means the protocol
//! has no field for it, which is a `BuildError`.
//!
//! | plan field | v2 (ESB) | v3 (gateway) | v4 (gateway) |
//! |---|---|---|---|
//! | `script` step | `fast_execute_script` | `fast_execute_script` | `fast_execute_script` |
//! | `push_file` step | `fast_push_file` | `fast_transfer_file` | — (v4 has no file API) |
//! | `job` step | `execute_job` | `execute_job_plan` | — (v4 has no plan-run API) |
//! | `job` with `source_biz`/`target_biz` | `execute_platform_job` | — | — |
//! | `scope` | `bk_biz_id` (a `biz_set` only with a built-in set id 8000000–9999999) | `bk_scope_type`+`bk_scope_id` | same as v3 |
//! | `task_name` (script, push) | `task_name` | `task_name` | `task_name` |
//! | `task_name` (job) | — | — | — |
//! | `account` alias / `{id}` | `account` / — | `account_alias` / `account_id` | same as v3 |
//! | `timeout` | `script_timeout` (script), `timeout` (push) | `timeout` | `timeout` |
//! | `start_task` | — | `start_task` | `start_task` |
//! | `rolling` (targets) | — | `rolling_config{expression, mode}` | same as v3 (script) |
//! | `rolling.files` | — | `rolling_config{type: 2, mode, file_source}` (push only) | — |
//! | targets `ips` / `dynamic_groups` | `ip_list` / `custom_query_id` | `ip_list` / `dynamic_group_list` | `host_list` / `dynamic_group_list` |
//! | targets `host_ids` / `topo_nodes` | — | `host_id_list` / `topo_node_list` (ids and ips not mixed: JOB ignores `ip_list` then) | `host_list[{bk_host_id}]` / `topo_node_list` |
//! | `script.script_id` | integer (a script *version* id) | string (the script's id) | string |
//! | `script.script_version_id` | — | `script_version_id` | `script_version_id` |
//! | `script.sensitive` | `is_param_sensitive` 0/1, always sent | `is_param_sensitive` 0/1, always sent | `param_sensitive` bool, always sent |
//! | `script.windows_interpreter` | — | `windows_interpreter` | `windows_interpreter` |
//! | `script.host_passwords` | — | `host_password_list` | `host_password_list` |
//! | `push_file.target_name` | — | `file_target_name` | — |
//! | `push_file.transfer_mode` | — (v2 always creates folders) | `transfer_mode` 1/2 | — |
//! | `push_file` speed limits | `upload/download_speed_limit` | same | — |
//! | source `file_type` other than `server`, `file_source_id/code` | — | `file_type`, `file_source_id/code` | — |
//! | `job.vars` | `global_vars[{id|name, value | ip_list, custom_query_id}]` | `global_var_list[{id|name, value | server}]` | — |
//! | `job.vars` on a cross-business job | — | — | — |
//! | `job.overrides` | `steps[]` (`db_account_id` not on the cross-business job) | — | — |
//!
//! `targets`, `account`, `timeout` and `rolling` set on a `job` step itself are refused
//! on every protocol: a job plan brings its own; override them per plan step instead.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use super::request::{
    Account, Hosts, JobPlanRun, JobRequest, Language, RollingMode, VarKey, VarValue,
};
use super::types::{Protocol, Scope, ScopeType};

/// HTTP method of a JOB call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HttpMethod {
    /// GET with query parameters.
    Get,
    /// POST with a JSON body.
    Post,
}

/// One JOB call, without credentials (added by the client from configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    /// JOB's API name, e.g. `fast_execute_script`.
    pub api: &'static str,
    /// HTTP method.
    pub method: HttpMethod,
    /// Path below the endpoint base URL, e.g. `/api/c/compapi/v2/job/fast_execute_script/`.
    pub path: String,
    /// The JSON body exactly as sent (base64 done), minus auth fields. For a GET, a
    /// flat object whose members are the query parameters (see
    /// [`ApiCall::query_pairs`]).
    pub body: serde_json::Value,
    /// JSON pointers into `body` whose values are masked as `******` for display.
    pub sensitive_pointers: Vec<String>,
}

/// The text that replaces a masked value.
pub const MASK: &str = "******";

impl ApiCall {
    /// A POST of `body` to `api` on `protocol`.
    pub(crate) fn post(protocol: Protocol, api: &'static str, body: Map<String, Value>) -> Self {
        ApiCall {
            api,
            method: HttpMethod::Post,
            path: api_path(protocol, api),
            body: Value::Object(body),
            sensitive_pointers: Vec::new(),
        }
    }

    /// A GET of `api` on `protocol`; `query` holds the parameters as a flat object.
    pub(crate) fn get(protocol: Protocol, api: &'static str, query: Map<String, Value>) -> Self {
        ApiCall {
            api,
            method: HttpMethod::Get,
            path: api_path(protocol, api),
            body: Value::Object(query),
            sensitive_pointers: Vec::new(),
        }
    }

    /// The protocol of the path, and so of the response envelope: decode the answer
    /// with this one. It differs from the plan's protocol only where v4 has no API and
    /// the gateway's v3 one is used (operations).
    pub fn protocol(&self) -> Protocol {
        if self.path.starts_with("/api/v4/") {
            Protocol::V4
        } else if self.path.starts_with("/api/v3/") {
            Protocol::V3
        } else {
            Protocol::V2
        }
    }

    /// A GET's query parameters: the body's members as text (strings as they
    /// are, numbers and booleans as JSON writes them). Empty for a POST.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        if self.method != HttpMethod::Get {
            return Vec::new();
        }
        let Some(object) = self.body.as_object() else {
            return Vec::new();
        };
        object
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }

    /// The body with every sensitive value replaced by [`MASK`], for display.
    pub fn masked_body(&self) -> Value {
        let mut body = self.body.clone();
        for pointer in &self.sensitive_pointers {
            if let Some(value) = body.pointer_mut(pointer) {
                *value = Value::String(MASK.into());
            }
        }
        body
    }

    /// Sets the completion callback: `bk_callback_url` on v2, `callback_url` on v3/v4.
    /// Returns `false` (and changes nothing) for calls that take no callback, i.e.
    /// anything but a submission.
    pub fn set_callback_url(&mut self, url: &str) -> bool {
        if !is_submission(self.api) {
            return false;
        }
        if self.method != HttpMethod::Post {
            return false;
        }
        let key = match self.protocol() {
            Protocol::V2 => "bk_callback_url",
            Protocol::V3 | Protocol::V4 => "callback_url",
        };
        match self.body.as_object_mut() {
            Some(body) => {
                body.insert(key.into(), Value::String(url.to_owned()));
                true
            }
            None => false,
        }
    }

    /// Sets `task_name` (the runner makes it unique per run so an ambiguous submit can
    /// be found again). Returns `false` for APIs without a task name: the plan-run
    /// APIs (`execute_job`, `execute_platform_job`, `execute_job_plan`) and queries.
    pub fn set_task_name(&mut self, name: &str) -> bool {
        if !carries_task_name(self.api) {
            return false;
        }
        match self.body.as_object_mut() {
            Some(body) => {
                body.insert("task_name".into(), Value::String(name.to_owned()));
                true
            }
            None => false,
        }
    }
}

/// Whether `api` starts a job instance (and so takes a callback URL).
fn is_submission(api: &str) -> bool {
    matches!(
        api,
        "fast_execute_script"
            | "fast_push_file"
            | "fast_transfer_file"
            | "execute_job"
            | "execute_platform_job"
            | "execute_job_plan"
            | "push_config_file"
    )
}

/// Whether `api` has a `task_name` field.
pub fn carries_task_name(api: &str) -> bool {
    matches!(
        api,
        "fast_execute_script" | "fast_push_file" | "fast_transfer_file" | "push_config_file"
    )
}

/// The path of `api` on `protocol`: ESB paths end in a slash, gateway paths do not.
pub fn api_path(protocol: Protocol, api: &str) -> String {
    match protocol {
        Protocol::V2 => format!("/api/c/compapi/v2/job/{api}/"),
        Protocol::V3 => format!("/api/v3/{api}"),
        Protocol::V4 => format!("/api/v4/{api}"),
    }
}

/// A field a protocol cannot carry, or a value it cannot encode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BuildError {
    /// Field path relative to the step, e.g. `script.windows_interpreter`.
    pub field: String,
    /// What is wrong, naming the protocol where that is the reason.
    pub message: String,
}

/// Every error of one step's request, shown joined by `; `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct BuildErrors(pub Vec<BuildError>);

/// Encodes `request` for `protocol`.
pub fn encode(request: &JobRequest, protocol: Protocol) -> Result<ApiCall, Vec<BuildError>> {
    match protocol {
        Protocol::V2 => super::v2::encode(request),
        Protocol::V3 => super::v3::encode(request),
        Protocol::V4 => super::v4::encode(request),
    }
}

// ---------------------------------------------------------------------------
// Shared by the protocol modules.
// ---------------------------------------------------------------------------

/// Collects every error of one step so they are reported together.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<BuildError>);

impl Errors {
    pub(crate) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(BuildError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// `field` has no counterpart in `api` on `protocol`; `hint` says what to do.
    pub(crate) fn unsupported(&mut self, field: &str, protocol: Protocol, api: &str, hint: &str) {
        let leaf = field.rsplit('.').next().unwrap_or(field);
        self.add(
            field,
            format!(
                "`{leaf}` cannot be sent with protocol {protocol}: {api} has no such field; {hint}"
            ),
        );
    }

    /// Adds problems found before encoding (while resolving hosts).
    pub(crate) fn extend(&mut self, problems: &[BuildError]) {
        self.0.extend_from_slice(problems);
    }

    pub(crate) fn into_vec(self) -> Vec<BuildError> {
        self.0
    }

    /// `Ok(value)` when nothing went wrong, else every error.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, Vec<BuildError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// v2's `bk_biz_id`. JOB reads a `bk_biz_id` in its built-in business-set range as a
/// business set, so such a set can be addressed; any other business set cannot.
pub(crate) fn v2_biz_id(scope: Option<Scope>, errors: &mut Errors) -> Option<u64> {
    const BIZ_SET_IDS: std::ops::RangeInclusive<u64> = 8_000_000..=9_999_999;
    match scope {
        None => {
            errors.add(
                "scope",
                "the plan has no `scope`: JOB needs the business (`scope: {type: biz, id: N}`)",
            );
            None
        }
        Some(scope)
            if scope.scope_type == ScopeType::BizSet && !BIZ_SET_IDS.contains(&scope.id) =>
        {
            errors.add(
                "scope.type",
                format!(
                    "a business set cannot be sent with protocol v2: v2 has only `bk_biz_id`, which JOB reads as a \
                     business set only for ids 8000000-9999999 (this one is {}); use protocol v3",
                    scope.id
                ),
            );
            None
        }
        Some(scope) => Some(scope.id),
    }
}

/// v3/v4's `bk_scope_type` and `bk_scope_id` written into `body`.
pub(crate) fn write_gateway_scope(
    scope: Option<Scope>,
    body: &mut Map<String, Value>,
    errors: &mut Errors,
) {
    match scope {
        None => errors.add(
            "scope",
            "the plan has no `scope`: JOB needs the business (`scope: {type: biz, id: N}`)",
        ),
        Some(scope) => {
            let scope_type = match scope.scope_type {
                ScopeType::Biz => "biz",
                ScopeType::BizSet => "biz_set",
            };
            body.insert("bk_scope_type".into(), Value::String(scope_type.into()));
            body.insert("bk_scope_id".into(), Value::String(scope.id.to_string()));
        }
    }
}

/// The error for a step without any account.
pub(crate) fn missing_account(errors: &mut Errors) {
    errors.add(
        "account",
        "no execution account: set `account` on the step or `defaults.account`",
    );
}

/// Writes v3/v4's `account_id` and/or `account_alias` (both when both are given; JOB
/// prefers the id).
pub(crate) fn write_gateway_account(account: &Account, body: &mut Map<String, Value>) {
    if let Some(id) = account.id {
        body.insert("account_id".into(), Value::from(id));
    }
    if let Some(alias) = &account.alias {
        body.insert("account_alias".into(), Value::String(alias.clone()));
    }
}

/// v2's account: an alias string. An account id has no v2 form.
pub(crate) fn v2_account(
    account: &Account,
    field: &str,
    api: &str,
    errors: &mut Errors,
) -> Option<Value> {
    if account.id.is_some() {
        errors.unsupported(
            &format!("{field}.id"),
            Protocol::V2,
            api,
            "v2 names accounts by alias only; write the alias (e.g. `account: root`) or use protocol v3/v4",
        );
    }
    account.alias.clone().map(Value::String)
}

/// Base64 of the whole text (JOB wants the whole parameter string encoded at once).
pub(crate) fn base64(text: &str) -> String {
    BASE64.encode(text.as_bytes())
}

/// JOB's language code.
pub(crate) fn language_code(language: Language) -> u8 {
    use super::types::language_code as code;
    match language {
        Language::Shell => code::SHELL,
        Language::Bat => code::BAT,
        Language::Perl => code::PERL,
        Language::Python => code::PYTHON,
        Language::Powershell => code::POWERSHELL,
        Language::Sql => code::SQL,
    }
}

/// JOB's rolling `mode`; `pause` when unset, JOB's own default, sent because the
/// gateway docs mark `mode` required.
pub(crate) fn rolling_mode(mode: Option<RollingMode>) -> u8 {
    match mode.unwrap_or(RollingMode::Pause) {
        RollingMode::Pause => 1,
        RollingMode::Ignore => 2,
        RollingMode::Confirm => 3,
    }
}

/// The base64 `script_content` of a script (or override), refusing a `file` that the
/// loader did not inline, since its text would otherwise be silently missing.
pub(crate) fn script_content(
    content: Option<&String>,
    file: Option<&String>,
    prefix: &str,
    errors: &mut Errors,
) -> Option<String> {
    match (content, file) {
        (Some(content), _) => Some(base64(content)),
        (None, Some(file)) => {
            errors.add(
                format!("{prefix}.file"),
                format!(
                    "script file `{file}` was not read into `content` before building the request"
                ),
            );
            None
        }
        (None, None) => None,
    }
}

/// Checks a script step names a script one way or another.
pub(crate) fn require_script_source(has_source: bool, errors: &mut Errors) {
    if !has_source {
        errors.add(
            "script",
            "no script to run: set `content`, `file`, `script_id` or `script_version_id`",
        );
    }
}

/// Checks `language` is given where JOB needs it: with inline content and no script id.
pub(crate) fn require_language(
    has_content: bool,
    has_id: bool,
    language: Option<Language>,
    errors: &mut Errors,
) {
    if has_content && !has_id && language.is_none() {
        errors.add(
            "script.language",
            "a script given as `content` or `file` needs `language` (shell, bat, perl, python, powershell or sql)",
        );
    }
}

/// Refusals shared by every protocol for fields a `job` step cannot have.
pub(crate) fn reject_job_step_fields(request: &JobRequest, errors: &mut Errors) {
    let why = "a job plan runs with its own steps' settings; override them per plan step (`job.overrides`, v2) or through `job.vars`";
    if request.targets.is_some() {
        errors.add("targets", format!("a job step takes no `targets`: {why}"));
    }
    if request
        .account
        .as_ref()
        .is_some_and(|a| a.field == "account")
    {
        errors.add("account", format!("a job step takes no `account`: {why}"));
    }
    if request.timeout.is_some_and(|t| t.field == "timeout") {
        errors.add("timeout", format!("a job step takes no `timeout`: {why}"));
    }
    if request.rolling.is_some() {
        errors.add(
            "rolling",
            "a job step cannot roll: rolling is configured on the job plan's steps in JOB",
        );
    }
    if request.task_name.is_some() {
        errors.add(
            "task_name",
            "a job step takes no `task_name`: JOB names a job instance after its plan (no plan-run API has task_name)",
        );
    }
}

/// A job plan's global variables in the shape v2 (`global_vars`) and v3
/// (`global_var_list`) share: each names its variable by `id` or `name` and carries a
/// `value`, or hosts that `write_hosts` writes in the protocol's own form.
pub(crate) fn global_vars(
    job: &JobPlanRun,
    errors: &mut Errors,
    mut write_hosts: impl FnMut(&Hosts, &str, &mut Map<String, Value>, &mut Errors),
) -> Vec<Value> {
    job.vars
        .iter()
        .map(|var| {
            let mut object = Map::new();
            match &var.key {
                VarKey::Id(id) => object.insert("id".into(), Value::from(*id)),
                VarKey::Name(name) => object.insert("name".into(), Value::from(name.clone())),
            };
            match &var.value {
                VarValue::Text(text) => {
                    object.insert("value".into(), Value::from(text.clone()));
                }
                VarValue::Hosts(hosts) => {
                    super::hosts::check(hosts, "the host variable names no hosts", errors);
                    write_hosts(hosts, &hosts.field, &mut object, errors);
                }
            }
            Value::Object(object)
        })
        .collect()
}

/// The sensitive pointer for `script_param` when the params are sensitive.
pub(crate) fn sensitive_param_pointer(
    sensitive: bool,
    body: &Map<String, Value>,
    pointers: &mut Vec<String>,
) {
    if sensitive && body.contains_key("script_param") {
        pointers.push("/script_param".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masked_body_hides_sensitive_values_only() {
        let mut call = ApiCall::post(
            Protocol::V3,
            "fast_execute_script",
            json!({"script_param": "c2VjcmV0", "timeout": 10})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        call.sensitive_pointers.push("/script_param".into());
        call.sensitive_pointers.push("/missing".into());
        assert_eq!(
            call.masked_body(),
            json!({"script_param": "******", "timeout": 10})
        );
        assert_eq!(call.body["script_param"], "c2VjcmV0");
    }

    #[test]
    fn callback_and_task_name_use_each_protocols_field() {
        let mut v2 = ApiCall::post(Protocol::V2, "execute_job", Map::new());
        assert!(v2.set_callback_url("http://cb/1"));
        assert_eq!(v2.body["bk_callback_url"], "http://cb/1");
        assert!(!v2.set_task_name("x"), "execute_job has no task_name");
        let mut v3 = ApiCall::post(Protocol::V3, "fast_transfer_file", Map::new());
        assert!(v3.set_callback_url("http://cb/2"));
        assert!(v3.set_task_name("baton-run-1"));
        assert_eq!(v3.body["callback_url"], "http://cb/2");
        assert_eq!(v3.body["task_name"], "baton-run-1");
        let mut get = ApiCall::get(Protocol::V3, "get_job_instance_status", Map::new());
        assert!(!get.set_callback_url("http://cb/3"));
    }

    #[test]
    fn paths_per_protocol() {
        assert_eq!(
            api_path(Protocol::V2, "fast_push_file"),
            "/api/c/compapi/v2/job/fast_push_file/"
        );
        assert_eq!(
            api_path(Protocol::V3, "fast_transfer_file"),
            "/api/v3/fast_transfer_file"
        );
        assert_eq!(
            api_path(Protocol::V4, "fast_execute_script"),
            "/api/v4/fast_execute_script"
        );
    }

    #[test]
    fn base64_encodes_params_as_one_string() {
        assert_eq!(base64("echo $1"), "ZWNobyAkMQ==");
        assert_eq!(base64("hello"), "aGVsbG8=");
        assert_eq!(base64("a b"), "YSBi");
    }
}
