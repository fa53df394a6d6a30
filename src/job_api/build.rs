//! Builds the HTTP request JOB receives for one rendered plan step, per protocol.

use crate::plan::model::{Plan, Protocol, Step};

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
    /// The JSON body exactly as sent (base64 done), minus auth fields.
    pub body: serde_json::Value,
    /// JSON pointers into `body` whose values are masked as `******` for display.
    pub sensitive_pointers: Vec<String>,
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

/// What a request needs from the plan besides the step itself.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'a> {
    /// The protocol to encode for.
    pub protocol: Protocol,
    /// The plan (scope, host sets, defaults).
    pub plan: &'a Plan,
}

/// Builds the request for `step`, whose templates are already rendered and whose
/// script `file` is already read into `content`.
pub fn build_request(_ctx: &BuildContext<'_>, _step: &Step) -> Result<ApiCall, Vec<BuildError>> {
    Err(vec![BuildError {
        field: String::new(),
        message: "request building is not implemented yet".into(),
    }])
}
