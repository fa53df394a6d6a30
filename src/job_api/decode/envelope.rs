//! The envelope around every answer, [`RawResponse`] → `data` ([`unwrap_data`]), or the
//! typed error it carries. Decoders take the HTTP status, the one header that matters
//! (`X-Bkapi-RateLimit-Reset`) and the body bytes — no HTTP-client types — so every
//! envelope shape is unit-tested here.
//!
//! Envelopes, recognised by shape because gateway-level failures look the same on v3
//! and v4:
//! - v2 (ESB) and v3: `{result, code, message?, data, request_id?/job_request_id,
//!   permission?}`, nearly always HTTP 200; `code != 0` or `result: false` is an error.
//! - the API gateway itself: non-200 `{code: 16xxxxx, code_name, message, result: false}`.
//! - v4: `{data}` on 2xx, `{error: {code: "NAME", message, data?}}` with the HTTP status.

use serde_json::Value;

use super::error::{ApiError, ErrorCode, MissingAction};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::decode::test_support::raw;
    use crate::job_api::decode::{
        decode_job_status, decode_operation, decode_submit, local_offset,
    };
    use crate::job_api::types::{JobInstanceId, Protocol};
    use serde_json::json;

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
}
