//! Decoding JOB's answers into protocol-neutral types ([`super::types`]) and typed
//! errors ([`ApiError`]). Decoders take the HTTP status, the one header that matters
//! (`X-Bkapi-RateLimit-Reset`) and the body bytes — no HTTP-client types — so every
//! envelope shape is unit-tested here.
//!
//! Envelopes, recognised by shape because gateway-level failures look the same on v3
//! and v4:
//! - v2 (ESB) and v3: `{result, code, message?, data, request_id?/job_request_id,
//!   permission?}`, nearly always HTTP 200; `code != 0` or `result: false` is an error.
//! - the API gateway itself: non-200 `{code: 16xxxxx, code_name, message, result: false}`.
//! - v4: `{data}` on 2xx, `{error: {code: "NAME", message, data?}}` with the HTTP status.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::fmt;

use super::types::{
    HostAddr, InstanceList, JobInstanceId, JobStatus, RunStatus, StepInstanceId, StepLogs,
    Submitted,
};
use crate::job_api::types::Protocol;

/// The gateway header saying when a rate-limit window resets (seconds).
pub const RATE_LIMIT_RESET_HEADER: &str = "X-Bkapi-RateLimit-Reset";

/// An HTTP answer before decoding.
#[derive(Debug, Clone, Copy)]
pub struct RawResponse<'a> {
    /// HTTP status code.
    pub status: u16,
    /// The value of [`RATE_LIMIT_RESET_HEADER`], if the answer had one.
    pub rate_limit_reset: Option<&'a str>,
    /// The body bytes.
    pub body: &'a [u8],
}

/// A JOB or gateway error code: numeric on v2/v3 and the gateway, a name on v4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// e.g. `1244006`.
    Number(i64),
    /// e.g. `INVALID_ARGUMENT`.
    Name(String),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Number(n) => write!(f, "{n}"),
            ErrorCode::Name(name) => f.write_str(name),
        }
    }
}

/// An IAM action the user lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingAction {
    /// Action id, e.g. `access_business`.
    pub id: String,
    /// Display name, e.g. `业务访问`.
    pub name: Option<String>,
}

impl fmt::Display for MissingAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{} ({name})", self.id),
            None => f.write_str(&self.id),
        }
    }
}

fn actions_suffix(actions: &[MissingAction]) -> String {
    if actions.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = actions.iter().map(ToString::to_string).collect();
        format!("; missing: {}", list.join(", "))
    }
}

fn reset_suffix(reset: &Option<u64>) -> String {
    match reset {
        Some(seconds) => format!(" (resets in {seconds}s)"),
        None => String::new(),
    }
}

/// Every way a JOB answer can be a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The credentials were refused (bad app code/secret, unknown user, no token).
    #[error("JOB refused the credentials ({code}): {message}")]
    AuthRefused {
        /// The code that said so.
        code: ErrorCode,
        /// JOB's message.
        message: String,
    },
    /// The user or app lacks a permission.
    #[error("permission denied ({code}): {message}{}", actions_suffix(actions))]
    PermissionDenied {
        /// The code that said so.
        code: ErrorCode,
        /// JOB's message.
        message: String,
        /// The IAM actions to apply for, when JOB listed them.
        actions: Vec<MissingAction>,
    },
    /// JOB refused the request itself (bad parameter, unknown instance, ...).
    #[error("JOB error {code}: {message}")]
    Job {
        /// JOB's code.
        code: ErrorCode,
        /// JOB's message.
        message: String,
    },
    /// Too many requests.
    #[error("rate limited{}: {message}", reset_suffix(reset_seconds))]
    RateLimited {
        /// Seconds until the window resets, from `X-Bkapi-RateLimit-Reset`.
        reset_seconds: Option<u64>,
        /// The message, if any.
        message: String,
    },
    /// The server (JOB or the gateway in front of it) failed.
    #[error("JOB server error (HTTP {status}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The answer is not one of JOB's shapes.
    #[error("undecodable JOB response (HTTP {status}): {reason}")]
    BadResponse {
        /// HTTP status.
        status: u16,
        /// Why it could not be decoded.
        reason: String,
    },
}

impl ApiError {
    /// Whether waiting and asking again may succeed (for idempotent queries).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::RateLimited { .. } | ApiError::Server { .. })
    }

    /// JOB's numeric code, for errors that have one.
    pub fn job_code(&self) -> Option<i64> {
        match self {
            ApiError::AuthRefused { code, .. }
            | ApiError::PermissionDenied { code, .. }
            | ApiError::Job { code, .. } => match code {
                ErrorCode::Number(n) => Some(*n),
                ErrorCode::Name(_) => None,
            },
            _ => None,
        }
    }
}

/// At most 300 characters of a body, for messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text.to_owned()
    }
}

fn message_of(json: &Value) -> String {
    json.get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `code` as a number; ESB sometimes sends it as a string.
fn code_of(json: &Value) -> Option<i64> {
    match json.get("code")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_reset(header: Option<&str>) -> Option<u64> {
    let seconds: f64 = header?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| seconds.ceil() as u64)
}

fn actions_of(permission: Option<&Value>) -> Vec<MissingAction> {
    permission
        .and_then(|p| p.get("actions"))
        .and_then(Value::as_array)
        .map(|actions| {
            actions
                .iter()
                .filter_map(|a| {
                    Some(MissingAction {
                        id: a.get("id")?.as_str()?.to_owned(),
                        name: a.get("name").and_then(Value::as_str).map(str::to_owned),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A `{result, code, message}` failure: ESB, JOB v2/v3, or the gateway itself.
fn classic_error(status: u16, json: &Value, code: i64) -> ApiError {
    let message = message_of(json);
    let number = ErrorCode::Number(code);
    match code {
        // Gateway INVALID_ARGS (bad or missing X-Bkapi-Authorization), ESB's common
        // error (bad app secret), operator required, JOB's user-not-logged-in.
        1_640_001 | 1_306_000 | 1_306_401 | 1_247_001 => ApiError::AuthRefused {
            code: number,
            message,
        },
        // JOB's IAM denial carries the actions to apply for.
        9_900_403 | 1_238_001 => ApiError::PermissionDenied {
            code: number,
            message,
            actions: actions_of(json.get("permission")),
        },
        1_640_301 | 1_640_302 | 1_306_402 | 1_306_403 => ApiError::PermissionDenied {
            code: number,
            message,
            actions: Vec::new(),
        },
        1_642_902 | 1_642_903 | 1_642_904 | 1_306_429 => ApiError::RateLimited {
            reset_seconds: None,
            message,
        },
        _ if status >= 500 => ApiError::Server {
            status,
            message: format!("{code}: {message}"),
        },
        _ => ApiError::Job {
            code: number,
            message,
        },
    }
}

/// A v4 `{error: {code, message, data}}` failure.
fn v4_error(status: u16, error: &Value) -> ApiError {
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or("UNKNOWN")
        .to_owned();
    let message = message_of(error);
    match code.as_str() {
        "UNAUTHENTICATED" => ApiError::AuthRefused {
            code: ErrorCode::Name(code),
            message,
        },
        "NO_PERMISSION" | "IAM_NO_PERMISSION" => ApiError::PermissionDenied {
            actions: actions_of(error.get("data")),
            code: ErrorCode::Name(code),
            message,
        },
        "RATELIMIT_EXCEED" | "RESOURCE_EXHAUSTED" => ApiError::RateLimited {
            reset_seconds: None,
            message,
        },
        _ if status >= 500 => ApiError::Server {
            status,
            message: format!("{code}: {message}"),
        },
        _ => ApiError::Job {
            code: ErrorCode::Name(code),
            message,
        },
    }
}

/// The envelope's `data`, or the typed error it carries.
pub fn unwrap_data(response: &RawResponse<'_>) -> Result<Value, ApiError> {
    let status = response.status;
    let success = (200..300).contains(&status);
    let json: Option<Value> = serde_json::from_slice(response.body).ok();
    if status == 429 {
        let message = json
            .as_ref()
            .map(|j| {
                let inner = j.get("error").unwrap_or(j);
                message_of(inner)
            })
            .unwrap_or_else(|| excerpt(response.body));
        return Err(ApiError::RateLimited {
            reset_seconds: parse_reset(response.rate_limit_reset),
            message,
        });
    }
    let Some(json) = json else {
        return Err(match status {
            500.. => ApiError::Server {
                status,
                message: excerpt(response.body),
            },
            _ => ApiError::BadResponse {
                status,
                reason: format!("the body is not JSON: {:?}", excerpt(response.body)),
            },
        });
    };
    if let Some(error) = json.get("error").filter(|e| e.is_object()) {
        return Err(v4_error(status, error));
    }
    if json.get("result").is_some() || json.get("code").is_some() {
        let code = code_of(&json);
        let refused = json.get("result").and_then(Value::as_bool) == Some(false);
        if refused || code.is_some_and(|c| c != 0) || !success {
            return Err(classic_error(status, &json, code.unwrap_or(-1)));
        }
        return Ok(json.get("data").cloned().unwrap_or(Value::Null));
    }
    if !success {
        return Err(match status {
            500.. => ApiError::Server {
                status,
                message: excerpt(response.body),
            },
            401 => ApiError::AuthRefused {
                code: ErrorCode::Name("HTTP 401".into()),
                message: excerpt(response.body),
            },
            _ => ApiError::BadResponse {
                status,
                reason: format!(
                    "an error without JOB's envelope: {:?}",
                    excerpt(response.body)
                ),
            },
        });
    }
    match json.get("data") {
        Some(data) => Ok(data.clone()),
        None => Err(ApiError::BadResponse {
            status,
            reason: "no `data` in the answer".into(),
        }),
    }
}

/// Deserializes `data` into a wire struct, or says why not.
pub(crate) fn from_data<T: serde::de::DeserializeOwned>(
    status: u16,
    data: Value,
    what: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(data).map_err(|e| ApiError::BadResponse {
        status,
        reason: format!("{what}: {e}"),
    })
}

/// An undecodable detail of an otherwise valid answer.
pub(crate) fn bad(status: u16, reason: impl Into<String>) -> ApiError {
    ApiError::BadResponse {
        status,
        reason: reason.into(),
    }
}

/// A status code JOB defines, or a [`ApiError::BadResponse`].
pub(crate) fn run_status(status: u16, code: u8) -> Result<RunStatus, ApiError> {
    RunStatus::from_code(code).ok_or_else(|| bad(status, format!("unknown JOB status {code}")))
}

/// A host address from the wire's `ip` + `bk_cloud_id` (cloud 0 when absent).
pub(crate) fn addr(ip: Option<String>, cloud: Option<u64>) -> Option<HostAddr> {
    ip.filter(|ip| !ip.is_empty()).map(|ip| HostAddr {
        cloud_id: cloud.unwrap_or(0),
        ip,
    })
}

/// Treats `null` like a missing field (JOB sends both).
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// Milliseconds from a non-negative float (JOB's durations).
pub(crate) fn millis(value: Option<f64>) -> Option<u64> {
    value
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v.round() as u64)
}

/// The offset of this machine's local time now: v2 writes times in the user's
/// timezone without saying which, and JOB users and servers share one in practice.
pub fn local_offset() -> FixedOffset {
    chrono::Local::now().offset().fix()
}

/// A v2 time (`yyyy-MM-dd HH:mm:ss`, optionally with a `+0800` suffix as old docs
/// show) as epoch ms, reading a bare time in `offset`.
pub fn parse_v2_time(text: &str, offset: FixedOffset) -> Option<i64> {
    let text = text.trim();
    for format in ["%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%z"] {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Some(time.timestamp_millis());
        }
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()?;
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.timestamp_millis())
}

/// Decodes the HTML entities JOB's v2 log API adds (`&lt;`, `&amp;`, `&#39;`, `&#x27;`,
/// ...). `&nbsp;` becomes a plain space, since that is what was encoded. Anything
/// that is not a known entity is kept as written.
pub fn html_decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        // '&' and ';' are single bytes, so these slices stay on char boundaries.
        let decoded = tail[1..]
            .find(';')
            .filter(|end| *end <= 10)
            .and_then(|end| entity(&tail[1..1 + end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &tail[end + 2..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[derive(Deserialize)]
struct SubmitData {
    job_instance_id: Option<u64>,
    job_instance_name: Option<String>,
    step_instance_id: Option<u64>,
}

/// The optional `rolling_batch: {current, total}` of a step's status (see
/// [`super::types::StepStatus::batch`]). Anything else, including a batch outside
/// `1..=total`, reads as "no batch": progress must never fail a status read.
pub(crate) fn rolling_batch(value: Option<&Value>) -> Option<super::types::RollingBatch> {
    let value = value?;
    let number = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    let (current, total) = (number("current")?, number("total")?);
    (current >= 1 && current <= total).then_some(super::types::RollingBatch { current, total })
}

/// A submission's answer (`fast_*`, `execute_*`): the same `data` on every protocol.
pub fn decode_submit(response: &RawResponse<'_>) -> Result<Submitted, ApiError> {
    let data = unwrap_data(response)?;
    let data: SubmitData = from_data(response.status, data, "submission answer")?;
    let id = data
        .job_instance_id
        .ok_or_else(|| bad(response.status, "the answer has no job_instance_id"))?;
    Ok(Submitted {
        job_instance_id: JobInstanceId(id),
        job_instance_name: data.job_instance_name,
        step_instance_id: data.step_instance_id.map(StepInstanceId),
    })
}

/// `get_job_instance_status`. `v2_offset` is the timezone v2's time strings are in
/// (usually [`local_offset`]); v3/v4 times are epoch ms already.
pub fn decode_job_status(
    protocol: Protocol,
    response: &RawResponse<'_>,
    v2_offset: FixedOffset,
) -> Result<JobStatus, ApiError> {
    let data = unwrap_data(response)?;
    match protocol {
        Protocol::V2 => super::v2::decode_status(response.status, data, v2_offset),
        Protocol::V3 | Protocol::V4 => super::v3::decode_status(response.status, data),
    }
}

/// Host logs: v2's `get_job_instance_log` (every step of the job, HTML decoded), v3's
/// `batch_get_job_instance_ip_log` / `get_job_instance_ip_log`, v4's
/// `batch_get_job_instance_execute_object_log` (one step).
pub fn decode_host_logs(
    protocol: Protocol,
    response: &RawResponse<'_>,
) -> Result<Vec<StepLogs>, ApiError> {
    let data = unwrap_data(response)?;
    match protocol {
        Protocol::V2 => super::v2::decode_logs(response.status, data),
        Protocol::V3 => super::v3::decode_logs(response.status, data).map(|s| vec![s]),
        Protocol::V4 => super::v4::decode_logs(response.status, data).map(|s| vec![s]),
    }
}

/// `get_job_instance_list` (v3 `data.data`, v4 `data.job_instance_list`).
pub fn decode_instance_list(
    protocol: Protocol,
    response: &RawResponse<'_>,
) -> Result<InstanceList, ApiError> {
    let data = unwrap_data(response)?;
    match protocol {
        Protocol::V2 => Err(bad(
            response.status,
            "protocol v2 has no get_job_instance_list",
        )),
        Protocol::V3 | Protocol::V4 => super::v3::decode_instance_list(response.status, data),
    }
}

/// `operate_job_instance` / `operate_step_instance`: only success or the error.
pub fn decode_operation(response: &RawResponse<'_>) -> Result<(), ApiError> {
    unwrap_data(response).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::types::LogType;
    use serde_json::json;

    fn raw(status: u16, body: &str) -> RawResponse<'_> {
        RawResponse {
            status,
            rate_limit_reset: None,
            body: body.as_bytes(),
        }
    }

    // The seed 003 page's failure examples, verbatim.
    const SEED_003_400: &str = r#"{
    "error": {
        "code": "INVALID_ARGUMENT",
        "message": "请求参数[bk_scope_type]不合法"
    }
}"#;
    const SEED_003_403: &str = r#"{
    "error": {
        "code": "NO_PERMISSION",
        "message": "用户(张三)权限不足，请前往权限中心确认并申请补充后重试",
        "data": {
            "system_id": "bk_job",
            "system_name": "作业平台",
            "actions": [
                {
                    "id": "access_business",
                    "name": "业务访问",
                    "related_resource_types": [
                        {
                            "type": "biz",
                            "system_id": "bk_cmdb",
                            "system_name": "配置平台",
                            "type_name": "业务",
                            "instances": [[{"id": "1", "type": "business", "name": "blueking", "type_name": "业务"}]]
                        }
                    ]
                }
            ]
        }
    }
}"#;

    #[test]
    fn seed_003_400_is_a_job_error_with_its_name() {
        let error = decode_submit(&raw(400, SEED_003_400)).unwrap_err();
        assert_eq!(
            error,
            ApiError::Job {
                code: ErrorCode::Name("INVALID_ARGUMENT".into()),
                message: "请求参数[bk_scope_type]不合法".into()
            }
        );
        assert!(!error.is_retryable());
    }

    #[test]
    fn seed_003_403_lists_the_missing_actions() {
        let error = decode_submit(&raw(403, SEED_003_403)).unwrap_err();
        match &error {
            ApiError::PermissionDenied { actions, .. } => assert_eq!(
                actions,
                &[MissingAction {
                    id: "access_business".into(),
                    name: Some("业务访问".into())
                }]
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            error
                .to_string()
                .contains("missing: access_business (业务访问)"),
            "{error}"
        );
    }

    #[test]
    fn seed_003_success_has_all_three_ids() {
        let ok = r#"{"data": {"job_instance_name": "API Quick execution script1", "job_instance_id": 10000, "step_instance_id": 10001}}"#;
        assert_eq!(
            decode_submit(&raw(200, ok)).unwrap(),
            Submitted {
                job_instance_id: JobInstanceId(10000),
                job_instance_name: Some("API Quick execution script1".into()),
                step_instance_id: Some(StepInstanceId(10001)),
            }
        );
    }

    #[test]
    fn v2_success_and_esb_bad_secret() {
        let ok = r#"{"result": true, "code": 0, "message": "success", "data": {"job_instance_name": "API Quick Distribution File1521101427176", "job_instance_id": 10000}, "request_id": "ab"}"#;
        let submitted = decode_submit(&raw(200, ok)).unwrap();
        assert_eq!(submitted.job_instance_id, JobInstanceId(10000));
        assert_eq!(submitted.step_instance_id, None);
        let refused = r#"{"result": false, "code": 1306000, "data": null, "message": "APP Secret verification failed, please check bk_app_secret", "request_id": "cd"}"#;
        let error = decode_submit(&raw(200, refused)).unwrap_err();
        assert!(
            matches!(&error, ApiError::AuthRefused { code: ErrorCode::Number(1306000), message } if message.contains("APP Secret")),
            "{error:?}"
        );
    }

    #[test]
    fn v2_code_as_string_is_read() {
        let error = decode_operation(&raw(
            200,
            r#"{"result": false, "code": "1244006", "message": "Task instance does not exist"}"#,
        ))
        .unwrap_err();
        assert_eq!(error.job_code(), Some(1244006));
        assert!(matches!(error, ApiError::Job { .. }));
    }

    #[test]
    fn v3_job_error_and_permission_object() {
        let error = decode_operation(&raw(
            200,
            r#"{"result": false, "code": 1244006, "message": "Task instance does not exist", "job_request_id": "x"}"#,
        ))
        .unwrap_err();
        assert_eq!(
            error,
            ApiError::Job {
                code: ErrorCode::Number(1244006),
                message: "Task instance does not exist".into()
            }
        );
        let denied = json!({"result": false, "code": 9900403, "message": "User (ops) permission not allowed",
            "permission": {"system_id": "bk_job", "actions": [{"id": "execute_script", "name": "脚本执行"}, {"id": "access_business"}]},
            "job_request_id": "y"})
        .to_string();
        match decode_operation(&raw(200, &denied)).unwrap_err() {
            ApiError::PermissionDenied { actions, .. } => {
                assert_eq!(actions.len(), 2);
                assert_eq!(actions[1].name, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v3_success_without_message() {
        let data = unwrap_data(&raw(
            200,
            r#"{"result": true, "code": 0, "data": {"job_instance_id": 1}, "job_request_id": "z"}"#,
        ))
        .unwrap();
        assert_eq!(data, json!({"job_instance_id": 1}));
    }

    #[test]
    fn gateway_invalid_auth_is_an_auth_error() {
        let body = r#"{"code": 1640001, "code_name": "INVALID_ARGS", "data": null, "message": "Parameters error [reason=\"app code cannot be empty\"]", "result": false}"#;
        let error = decode_submit(&raw(400, body)).unwrap_err();
        assert!(
            matches!(
                &error,
                ApiError::AuthRefused {
                    code: ErrorCode::Number(1640001),
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn rate_limits_carry_the_reset() {
        let body = r#"{"code": 1642903, "code_name": "RATE_LIMIT_RESTRICTION", "data": null, "message": "API rate limit exceeded", "result": false}"#;
        let response = RawResponse {
            status: 429,
            rate_limit_reset: Some("12"),
            body: body.as_bytes(),
        };
        let error = decode_job_status(Protocol::V3, &response, local_offset()).unwrap_err();
        assert_eq!(
            error,
            ApiError::RateLimited {
                reset_seconds: Some(12),
                message: "API rate limit exceeded".into()
            }
        );
        assert!(error.is_retryable());
        let esb = decode_operation(&raw(
            200,
            r#"{"result": false, "code": 1306429, "message": "rate limit"}"#,
        ))
        .unwrap_err();
        assert!(matches!(
            esb,
            ApiError::RateLimited {
                reset_seconds: None,
                ..
            }
        ));
    }

    #[test]
    fn server_errors_and_garbage() {
        let html = decode_operation(&raw(502, "<html>Bad Gateway</html>")).unwrap_err();
        assert!(matches!(html, ApiError::Server { status: 502, .. }));
        assert!(html.is_retryable());
        let v4 = decode_operation(&raw(
            500,
            r#"{"error": {"code": "INTERNAL", "message": "boom"}}"#,
        ))
        .unwrap_err();
        assert_eq!(
            v4,
            ApiError::Server {
                status: 500,
                message: "INTERNAL: boom".into()
            }
        );
        let garbage = decode_submit(&raw(200, "not json")).unwrap_err();
        assert!(matches!(garbage, ApiError::BadResponse { status: 200, .. }));
        let no_id = decode_submit(&raw(200, r#"{"data": {}}"#)).unwrap_err();
        assert!(no_id.to_string().contains("job_instance_id"), "{no_id}");
        let unauthenticated = decode_operation(&raw(
            401,
            r#"{"error": {"code": "UNAUTHENTICATED", "message": "who?"}}"#,
        ))
        .unwrap_err();
        assert!(matches!(unauthenticated, ApiError::AuthRefused { .. }));
    }

    #[test]
    fn v2_times_in_the_given_zone_and_with_suffix() {
        let china = FixedOffset::east_opt(8 * 3600).unwrap();
        // 2018-03-15 12:56:35 +08:00 = 2018-03-15 04:56:35 UTC.
        assert_eq!(
            parse_v2_time("2018-03-15 12:56:35", china),
            Some(1_521_089_795_000)
        );
        let utc = FixedOffset::east_opt(0).unwrap();
        assert_eq!(
            parse_v2_time("2018-03-15 12:56:35 +0800", utc),
            Some(1_521_089_795_000)
        );
        assert_eq!(parse_v2_time("15/03/2018", utc), None);
    }

    #[test]
    fn html_entities_are_decoded() {
        assert_eq!(
            html_decode("a &lt;b&gt; &amp;&amp; &quot;c&quot; &#39;d&#x27; e&nbsp;f"),
            "a <b> && \"c\" 'd' e f"
        );
        assert_eq!(
            html_decode("<BATON_VAR>sha256:ab&amp;cd</BATON_VAR>"),
            "<BATON_VAR>sha256:ab&cd</BATON_VAR>"
        );
        assert_eq!(
            html_decode("50% & rising; &unknown; &"),
            "50% & rising; &unknown; &"
        );
        assert_eq!(html_decode("中文&lt;日志&gt;"), "中文<日志>");
    }

    const CHINA: i32 = 8 * 3600;

    #[test]
    fn v2_status_times_counts_and_hosts() {
        let body = json!({"result": true, "code": 0, "message": "success", "request_id": "r", "data": {
            "is_finished": true,
            "job_instance": {"job_instance_id": 100, "bk_biz_id": 1, "name": "API Quick execution script", "operator": "admin",
                "bk_job_id": -1, "start_way": 2, "status": 4, "create_time": "2018-03-15 12:56:35",
                "start_time": "2018-03-15 12:56:35", "end_time": "2018-03-15 12:56:38", "total_time": 3.169,
                "current_step_instance_id": 75},
            "blocks": [{"step_instances": [{"step_instance_id": 75, "step_id": -1, "name": "run", "type": 1,
                "operator": "admin", "status": 4, "retry_count": 1, "create_time": "2018-03-15 12:56:35",
                "start_time": "2018-03-15 12:56:35", "end_time": "", "total_time": 3.169, "pause": null,
                "step_ip_status": [{"ip": "10.0.0.1", "bk_cloud_id": 0, "status": 9},
                                   {"ip": "10.0.0.2", "bk_cloud_id": 0, "status": 104}]}]}]}})
        .to_string();
        let offset = FixedOffset::east_opt(CHINA).unwrap();
        let status = decode_job_status(Protocol::V2, &raw(200, &body), offset).unwrap();
        assert!(status.finished);
        assert_eq!(status.job.status, RunStatus::Fail);
        assert_eq!(status.job.create_time_ms, Some(1_521_089_795_000));
        assert_eq!(status.job.total_time_ms, Some(3169));
        let step = &status.steps[0];
        assert_eq!(step.step_instance_id, StepInstanceId(75));
        assert_eq!(step.execute_count, 1, "the doc's retry_count is read");
        assert_eq!(step.end_time_ms, None);
        assert_eq!(step.hosts.len(), 2);
        assert_eq!(step.hosts[1].status, 104);
        assert_eq!(
            step.hosts[1].addr.as_ref().map(|h| h.ip.as_str()),
            Some("10.0.0.2")
        );
        let bad_time = body.replace("2018-03-15 12:56:38", "yesterday");
        assert!(matches!(
            decode_job_status(Protocol::V2, &raw(200, &bad_time), offset),
            Err(ApiError::BadResponse { .. })
        ));
    }

    #[test]
    fn v3_status_doc_example() {
        let body = json!({"result": true, "code": 0, "job_request_id": "x", "data": {
            "finished": true,
            "job_instance": {"job_instance_id": 100, "bk_scope_type": "biz", "bk_scope_id": "1", "name": "n",
                "create_time": 1605064271000_i64, "status": 4, "start_time": 1605064271000_i64, "end_time": 1605064272000_i64, "total_time": 1000},
            "step_instance_list": [{"step_instance_id": 75, "name": "s", "type": 1, "status": 4, "execute_count": 0,
                "create_time": 1605064271000_i64, "start_time": 1605064271000_i64, "end_time": 1605064272000_i64, "total_time": 1000,
                "step_ip_result_list": [{"bk_host_id": 101, "ip": "127.0.0.1", "bk_cloud_id": 0, "status": 9, "tag": "",
                    "exit_code": 0, "error_code": 0, "start_time": 1605064271000_i64, "end_time": 1605064272000_i64, "total_time": 1000}]}]}})
        .to_string();
        let status = decode_job_status(Protocol::V3, &raw(200, &body), local_offset()).unwrap();
        assert_eq!(status.job.job_instance_id, JobInstanceId(100));
        assert_eq!(status.job.end_time_ms, Some(1_605_064_272_000));
        let host = &status.steps[0].hosts[0];
        assert_eq!(host.host_id, Some(101));
        assert_eq!(host.exit_code, Some(0));
        assert_eq!(host.tag.as_deref(), Some(""));
        assert_eq!(host.total_time_ms, Some(1000));
    }

    #[test]
    fn rolling_batch_is_optional_and_read_leniently() {
        let status_with = |batch: Value| {
            let mut step = json!({"step_instance_id": 75, "name": "s", "type": 1, "status": 15,
                "execute_count": 0, "step_ip_result_list": []});
            if !batch.is_null() {
                step["rolling_batch"] = batch;
            }
            json!({"code": 0, "result": true, "data": {"finished": false,
                "job_instance": {"job_instance_id": 100, "status": 2},
                "step_instance_list": [step]}})
            .to_string()
        };
        let read = |batch: Value| {
            let body = status_with(batch);
            decode_job_status(Protocol::V3, &raw(200, &body), local_offset())
                .map(|s| s.steps[0].batch)
        };
        assert_eq!(
            read(json!({"current": 2, "total": 4})).ok(),
            Some(Some(super::super::types::RollingBatch {
                current: 2,
                total: 4
            }))
        );
        // Absent (JOB itself), malformed or out of range: no batch, and no error.
        for batch in [
            Value::Null,
            json!("2/4"),
            json!({"current": 0, "total": 4}),
            json!({"current": 5, "total": 4}),
            json!({"current": -1, "total": 4}),
        ] {
            assert_eq!(read(batch.clone()).ok(), Some(None), "{batch}");
        }
        // v2 blocks carry it the same way.
        let v2 = json!({"code": 0, "result": true, "data": {"is_finished": false,
            "job_instance": {"job_instance_id": 1, "status": 2},
            "blocks": [{"type": 1, "step_instances": [{"step_instance_id": 2, "type": 1, "status": 2,
                "rolling_batch": {"current": 1, "total": 3}, "step_ip_status": []}]}]}})
        .to_string();
        let status = decode_job_status(Protocol::V2, &raw(200, &v2), local_offset()).unwrap();
        assert_eq!(
            status.steps[0].batch.map(|b| (b.current, b.total)),
            Some((1, 3))
        );
    }

    #[test]
    fn v4_status_with_execute_objects() {
        let body = json!({"data": {"finished": false,
            "job_instance": {"job_instance_id": 7, "name": "n", "status": 2, "create_time": 1, "bk_scope_type": "biz", "bk_scope_id": "1"},
            "step_instance_list": [{"step_instance_id": 8, "type": 2, "name": "push", "status": 2, "execute_count": 2,
                "create_time": 1, "start_time": 2, "end_time": null, "total_time": null,
                "step_execute_object_result_list": [
                    {"execute_object": {"type": 1, "resource_id": "101", "host": {"bk_host_id": 101, "ip": "10.0.0.1", "bk_cloud_id": 0}},
                     "status": 7, "tag": null, "exit_code": null, "start_time": 2, "end_time": null, "total_time": null},
                    {"execute_object": {"type": 1, "resource_id": "102"}, "status": 5}]}]}})
        .to_string();
        let status = decode_job_status(Protocol::V4, &raw(200, &body), local_offset()).unwrap();
        assert!(!status.finished);
        assert_eq!(status.job.status, RunStatus::Running);
        let step = &status.steps[0];
        assert_eq!(step.execute_count, 2);
        assert_eq!(step.hosts[0].host_id, Some(101));
        assert_eq!(
            step.hosts[0]
                .addr
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("0:10.0.0.1")
        );
        assert_eq!(
            step.hosts[1].host_id,
            Some(102),
            "resource_id names the host"
        );
        assert_eq!(step.hosts[1].addr, None);
    }

    #[test]
    fn v2_logs_are_html_decoded_and_flattened() {
        let body = json!({"result": true, "code": 0, "message": "", "data": [
            {"is_finished": true, "step_instance_id": 90000, "name": "build", "status": 3,
             "step_results": [
                {"ip_status": 9, "tag": "ok", "ip_logs": [
                    {"execute_count": 0, "ip": "10.0.0.1", "bk_cloud_id": 0, "exit_code": 0, "error_code": 0,
                     "total_time": 1.5, "start_time": "2018-03-15 14:39:30", "end_time": "2018-03-15 14:40:31",
                     "log_content": "&lt;BATON_VAR&gt;sha256:abc&lt;/BATON_VAR&gt;\n"}]},
                {"ip_status": 104, "tag": "", "ip_logs": [
                    {"execute_count": 0, "ip": "10.0.0.2", "bk_cloud_id": 0, "exit_code": 3, "log_content": "x &amp;&amp; y"}]}]}]})
        .to_string();
        let steps = decode_host_logs(Protocol::V2, &raw(200, &body)).unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].step_instance_id, Some(StepInstanceId(90000)));
        let hosts = &steps[0].hosts;
        assert_eq!(
            hosts[0].content.as_deref(),
            Some("<BATON_VAR>sha256:abc</BATON_VAR>\n")
        );
        assert_eq!(hosts[0].tag.as_deref(), Some("ok"));
        assert_eq!(hosts[1].status, Some(104));
        assert_eq!(hosts[1].exit_code, Some(3));
        assert_eq!(hosts[1].content.as_deref(), Some("x && y"));
    }

    #[test]
    fn v3_batch_logs_script_and_file() {
        let script = json!({"result": true, "code": 0, "data": {"job_instance_id": 100, "step_instance_id": 200, "log_type": 1,
            "script_task_logs": [{"bk_host_id": 101, "ip": "127.0.0.1", "bk_cloud_id": 0, "log_content": "a <b>\n"}]}})
        .to_string();
        let logs = decode_host_logs(Protocol::V3, &raw(200, &script)).unwrap();
        assert_eq!(logs[0].log_type, Some(LogType::Script));
        assert_eq!(
            logs[0].hosts[0].content.as_deref(),
            Some("a <b>\n"),
            "v3 text is raw"
        );
        let file = json!({"result": true, "code": 0, "data": {"job_instance_id": 100, "step_instance_id": 200, "log_type": 2,
            "file_task_logs": [{"bk_host_id": 101, "ip": "10.0.0.1", "bk_cloud_id": 0, "file_logs": [
                {"mode": 1, "src_ip": {"bk_cloud_id": 0, "ip": "10.0.0.2"}, "src_path": "/data/1.log",
                 "dest_ip": {"bk_cloud_id": 0, "ip": "10.0.0.1"}, "dest_path": "/tmp/1.log", "status": 4,
                 "log_content": "done", "size": "9 Bytes", "speed": "1 KB/s", "process": "100%"}]}]}})
        .to_string();
        let logs = decode_host_logs(Protocol::V3, &raw(200, &file)).unwrap();
        let record = &logs[0].hosts[0].file_logs[0];
        assert_eq!(record.mode, Some(1));
        assert_eq!(record.dest_path.as_deref(), Some("/tmp/1.log"));
        assert_eq!(
            record
                .src
                .as_ref()
                .and_then(|s| s.addr.as_ref())
                .map(|a| a.ip.as_str()),
            Some("10.0.0.2")
        );
        assert_eq!(record.progress.as_deref(), Some("100%"));
        let single = json!({"result": true, "code": 0, "data": {"log_type": 1, "bk_host_id": 101, "ip": "10.0.0.1", "bk_cloud_id": 0, "log_content": "hi"}}).to_string();
        let logs = decode_host_logs(Protocol::V3, &raw(200, &single)).unwrap();
        assert_eq!(logs[0].hosts[0].content.as_deref(), Some("hi"));
    }

    #[test]
    fn v4_batch_logs_doc_examples() {
        let script =
            json!({"data": {"job_instance_id": 100, "step_instance_id": 200, "log_type": 1,
            "script_step_execute_object_logs": [{"execute_object": {"type": 1, "resource_id": "1",
                "host": {"bk_host_id": 1, "ip": "127.0.0.1", "bk_cloud_id": 0}},
                "log_content": "[2018-03-15 14:39:30][PID:56875] job_start\n"}]}})
            .to_string();
        let logs = decode_host_logs(Protocol::V4, &raw(200, &script)).unwrap();
        assert_eq!(logs[0].hosts[0].host_id, Some(1));
        assert!(
            logs[0].hosts[0]
                .content
                .as_deref()
                .is_some_and(|c| c.contains("job_start"))
        );
        let file = json!({"data": {"job_instance_id": 100, "step_instance_id": 200, "log_type": 2,
            "file_step_execute_object_logs": [
                {"execute_object": {"type": 1, "resource_id": "1", "host": {"bk_host_id": 1, "ip": "127.0.0.1", "bk_cloud_id": 0}},
                 "download_log": [{"mode": 1, "src_execute_object": {"type": 1, "resource_id": "2"}, "src_path": "/data/1.log",
                    "dest_execute_object": {"type": 1, "resource_id": "1"}, "dest_path": "/tmp/1.log", "status": 4,
                    "log_content": "ok", "size": "1.0 Bytes", "speed": "0 KB/s", "process": "100%"}]},
                {"execute_object": {"type": 1, "resource_id": "2", "host": {"bk_host_id": 2, "ip": "127.0.0.2", "bk_cloud_id": 0}},
                 "upload_log": [{"mode": 0, "src_execute_object": {"type": 1, "resource_id": "2"}, "src_path": "/data/1.log",
                    "status": 4, "log_content": "up", "size": "1.0 Bytes", "speed": "0 KB/s", "process": "100%"}]}]}})
        .to_string();
        let logs = decode_host_logs(Protocol::V4, &raw(200, &file)).unwrap();
        assert_eq!(logs[0].log_type, Some(LogType::File));
        assert_eq!(logs[0].hosts.len(), 2);
        assert_eq!(
            logs[0].hosts[0].file_logs[0]
                .src
                .as_ref()
                .and_then(|s| s.host_id),
            Some(2)
        );
        assert_eq!(logs[0].hosts[1].file_logs[0].mode, Some(0));
    }

    #[test]
    fn instance_lists_v3_and_v4() {
        let v3 = json!({"result": true, "code": 0, "message": "success", "data": {"data": [
            {"bk_scope_type": "biz", "bk_scope_id": "1", "id": 100, "job_template_id": 1, "job_plan_id": 1,
             "name": "baton-web-01", "operator": "admin", "create_time": 1546272000000_i64, "start_time": 1546272000000_i64,
             "end_time": 1546272001000_i64, "total_time": 1000, "launch_mode": 2, "task_status": 3, "task_type": 1}],
            "start": 0, "length": 20, "total": 1}})
        .to_string();
        let list = decode_instance_list(Protocol::V3, &raw(200, &v3)).unwrap();
        assert_eq!(list.total, Some(1));
        let item = &list.instances[0];
        assert_eq!(item.job_instance_id, JobInstanceId(100));
        assert_eq!(item.name, "baton-web-01");
        assert_eq!(item.status, Some(RunStatus::Success));
        assert_eq!(item.task_type, Some(1));
        let v4 = json!({"data": {"job_instance_list": [{"id": 102, "name": "x", "status": 2, "type": 0, "create_time": 5}]}}).to_string();
        let list = decode_instance_list(Protocol::V4, &raw(200, &v4)).unwrap();
        assert_eq!(list.instances[0].status, Some(RunStatus::Running));
        assert_eq!(list.total, None);
    }
}
