//! JOB's response envelopes and error vocabulary, per protocol generation: the ESB v2
//! body (`result/code/message/data/request_id`), the gateway v3 body (`result/code/data/
//! job_request_id`, `message` only on failure), the ESB jobv3 body (JOB's v3 body with
//! ESB's `request_id` and `message`, `""` when JOB gave none: `format_resp_dict` in
//! ESB's `response.py`), v4's `{data}` / `{error}` with real HTTP statuses, and the
//! gateway's and ESB's own failures (auth, unknown path, rate limit). Gateway-made
//! failures carry `X-Bkapi-Error-Code` / `X-Bkapi-Error-Message`, which is how
//! `bkapi-client-core` tells them from JOB's own answers; every gateway answer carries
//! `X-Bkapi-Request-Id`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::emulator::model::job_error::{JobError, code};
use crate::emulator::model::protocol::Protocol;

/// The v4 error code string and HTTP status for this error.
pub fn v4_status(error: &JobError) -> (&'static str, StatusCode) {
    match error.code {
        code::BK_PERMISSION_DENIED => ("NO_PERMISSION", StatusCode::FORBIDDEN),
        code::TASK_INSTANCE_NOT_EXIST
        | code::STEP_INSTANCE_NOT_EXIST
        | code::TASK_PLAN_NOT_EXIST => ("NOT_FOUND", StatusCode::NOT_FOUND),
        code::UNSUPPORTED_OPERATION | code::REPEAT_START_JOB => {
            ("FAILED_PRECONDITION", StatusCode::BAD_REQUEST)
        }
        code::EXCEED_MAX_ALLOWED_BATCH_SIZE => ("OUT_OF_RANGE", StatusCode::BAD_REQUEST),
        code::INTERNAL_ERROR => ("INTERNAL", StatusCode::INTERNAL_SERVER_ERROR),
        _ => ("INVALID_ARGUMENT", StatusCode::BAD_REQUEST),
    }
}

/// v4's message: the Chinese parameter form where a parameter is named, as the v4
/// docs show it, else the English message.
fn v4_message(error: &JobError) -> String {
    match (&error.param, error.code) {
        (Some(param), code::MISSING_PARAM_WITH_NAME) => format!("缺少请求参数[{param}]"),
        (Some(param), _) => format!("请求参数[{param}]不合法"),
        (None, _) => error.message.clone(),
    }
}

/// A fresh ESB / gateway request id (32 hex digits).
pub fn request_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Renders a successful answer in `protocol`'s envelope.
pub fn success(protocol: Protocol, data: Value) -> Response {
    let body = match protocol {
        Protocol::V2 => json!({
            "result": true, "code": 0, "message": "success", "data": data,
            "request_id": request_id(), "job_request_id": request_id(),
        }),
        Protocol::V3 => json!({
            "result": true, "code": 0, "data": data, "job_request_id": request_id(),
        }),
        Protocol::V4 => json!({ "data": data }),
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Renders a JOB-level failure in `protocol`'s envelope: HTTP 200 for v2/v3, the v4
/// status otherwise.
pub fn failure(protocol: Protocol, error: &JobError) -> Response {
    match protocol {
        Protocol::V2 | Protocol::V3 => {
            let mut body = json!({
                "result": false, "code": error.code, "message": error.message,
                "data": null, "job_request_id": request_id(),
            });
            if protocol == Protocol::V2 {
                body["request_id"] = json!(request_id());
            }
            if let Some(permission) = &error.permission {
                body["permission"] = permission.clone();
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Protocol::V4 => {
            let (code, status) = v4_status(error);
            let mut inner = json!({ "code": code, "message": v4_message(error) });
            if let Some(permission) = &error.permission {
                inner["data"] = permission.clone();
            }
            (status, axum::Json(json!({ "error": inner }))).into_response()
        }
    }
}

/// JOB's v3 answer as ESB relays it on `/api/c/compapi/v2/jobv3/`: ESB sets its own
/// `request_id` and fills a missing `message` with `""`.
pub async fn esb_relay(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    map.insert("request_id".into(), json!(request_id()));
    map.entry("message").or_insert_with(|| json!(""));
    let bytes = serde_json::to_vec(&Value::Object(map)).unwrap_or_default();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Adds the gateway's `X-Bkapi-Request-Id` to an answer that lacks one.
pub fn with_gateway_request_id(mut response: Response) -> Response {
    if !response.headers().contains_key("X-Bkapi-Request-Id")
        && let Ok(value) = HeaderValue::from_str(&request_id())
    {
        response.headers_mut().insert("X-Bkapi-Request-Id", value);
    }
    response
}

/// ESB's own failure body (auth, unknown component): HTTP 200 with a 1306xxx code.
pub fn esb_failure(code: i64, message: &str) -> Response {
    let body = json!({
        "result": false, "code": code, "data": null, "message": message,
        "request_id": request_id(),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The gateway's own failure body: non-200 HTTP with a 16xxxxx code and `code_name`,
/// and the same code and message in `X-Bkapi-Error-Code` / `X-Bkapi-Error-Message`
/// (the gateway's error-code table: "a 7-digit integer string").
pub fn gateway_failure(status: StatusCode, code: i64, code_name: &str, message: &str) -> Response {
    let body = json!({
        "code": code, "code_name": code_name, "data": null, "message": message, "result": false,
    });
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&code.to_string()) {
        headers.insert("X-Bkapi-Error-Code", value);
    }
    // Header values must be visible ASCII; the gateway's own messages are.
    let ascii: String = message
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&ascii) {
        headers.insert("X-Bkapi-Error-Message", value);
    }
    with_gateway_request_id(response)
}

/// Gateway 400 `INVALID_ARGS` for authentication problems.
pub fn gateway_auth_failure(reason: &str) -> Response {
    gateway_failure(
        StatusCode::BAD_REQUEST,
        1_640_001,
        "INVALID_ARGS",
        &format!("Parameters error [reason=\"{reason}\"]"),
    )
}

/// Unknown path: ESB `1306404` or gateway 404 `1640401`.
pub fn not_found(path: &str) -> Response {
    if path.starts_with("/api/c/compapi") {
        esb_failure(
            1_306_404,
            &format!("Component not found, please check the request path [path={path}]"),
        )
    } else {
        gateway_failure(
            StatusCode::NOT_FOUND,
            1_640_401,
            "API_NOT_FOUND",
            "API not found [method/path not matched]",
        )
    }
}

/// A rate-limit answer, as the gateway (429 with `X-Bkapi-RateLimit-*`) or ESB
/// (`1306429`, HTTP 200) gives it.
pub fn rate_limited(esb: bool, reset_secs: u64) -> Response {
    match esb {
        true => esb_failure(
            1_306_429,
            "Request rate exceeds the limit, please try again later",
        ),
        false => {
            let mut response = gateway_failure(
                StatusCode::TOO_MANY_REQUESTS,
                1_642_903,
                "RATE_LIMIT_RESTRICTION",
                "App has exceeded the resource rate limit",
            );
            let headers = response.headers_mut();
            headers.insert("X-Bkapi-RateLimit-Limit", HeaderValue::from_static("10"));
            headers.insert("X-Bkapi-RateLimit-Remaining", HeaderValue::from_static("0"));
            headers.insert(
                "X-Bkapi-RateLimit-Plugin",
                HeaderValue::from_static("bk-rate-limit"),
            );
            if let Ok(value) = HeaderValue::from_str(&reset_secs.to_string()) {
                headers.insert("X-Bkapi-RateLimit-Reset", value);
            }
            response
        }
    }
}

/// An injected server error with the given HTTP status: the gateway's "request backend
/// service failed".
pub fn server_error(status: StatusCode) -> Response {
    gateway_failure(
        status,
        1_650_201,
        "ERROR_REQUESTING_BACKEND",
        "Request backend service failed",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_maps_codes_to_http() {
        assert_eq!(
            v4_status(&JobError::illegal("bk_scope_type")).1,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            v4_message(&JobError::illegal("bk_scope_type")),
            "请求参数[bk_scope_type]不合法"
        );
        assert_eq!(v4_status(&JobError::job_not_found()).0, "NOT_FOUND");
    }
}
