//! JOB's answer when a request cannot be served ([`JobError`]): the numeric code and
//! English message JOB gives whatever the protocol, the parameter at fault and IAM's
//! permission data. Each protocol's envelope renders it (`http::envelope`).

use serde_json::Value;

use crate::job_api::rules::MAX_ROLLING_BATCHES;

/// JOB error codes the emulator answers with (bkjob-api §12).
pub mod code {
    /// Permission denied, with a `permission` object.
    pub const BK_PERMISSION_DENIED: i64 = 9_900_403;
    /// Internal error.
    pub const INTERNAL_ERROR: i64 = 1_240_002;
    /// Bean-validation failure.
    pub const BAD_REQUEST: i64 = 1_240_003;
    /// Invalid request parameters.
    pub const ILLEGAL_PARAM: i64 = 1_241_002;
    /// Unsupported operation (wrong status for an operation).
    pub const UNSUPPORTED_OPERATION: i64 = 1_241_003;
    /// Missing request parameter [x].
    pub const MISSING_PARAM_WITH_NAME: i64 = 1_241_004;
    /// Invalid request parameter [x].
    pub const ILLEGAL_PARAM_WITH_NAME: i64 = 1_241_005;
    /// Missing or invalid request parameter [x].
    pub const MISSING_OR_ILLEGAL_PARAM_WITH_NAME: i64 = 1_241_007;
    /// Repeated start of a job.
    pub const REPEAT_START_JOB: i64 = 1_241_015;
    /// Body is not JSON.
    pub const BODY_FORMAT_ERROR: i64 = 1_241_022;
    /// Job plan does not exist.
    pub const TASK_PLAN_NOT_EXIST: i64 = 1_243_009;
    /// Host list is empty.
    pub const SERVER_EMPTY: i64 = 1_244_001;
    /// Hosts invalid.
    pub const HOST_INVALID: i64 = 1_244_002;
    /// Account does not exist.
    pub const ACCOUNT_NOT_EXIST: i64 = 1_244_003;
    /// Task instance does not exist.
    pub const TASK_INSTANCE_NOT_EXIST: i64 = 1_244_006;
    /// Step instance does not exist.
    pub const STEP_INSTANCE_NOT_EXIST: i64 = 1_244_007;
    /// Host variable does not exist.
    pub const HOST_VAR_NOT_EXIST: i64 = 1_244_008;
    /// Not in the confirm user list.
    pub const NOT_IN_CONFIRM_USER_LIST: i64 = 1_244_016;
    /// Too many file tasks.
    pub const FILE_TASKS_EXCEEDS_LIMIT: i64 = 1_244_021;
    /// A plan step's target is empty.
    pub const STEP_TARGET_EMPTY: i64 = 1_244_028;
    /// Invalid rolling expression.
    pub const INVALID_ROLLING_EXPR: i64 = 1_244_026;
    /// Too many rolling batches.
    pub const EXCEED_MAX_ALLOWED_BATCH_SIZE: i64 = 1_244_027;
    /// Source-file rolling with non-server files.
    pub const FILE_SOURCE_ROLLING_ONLY_SERVER_FILE: i64 = 1_244_035;
}

/// A JOB-level failure, rendered by each protocol in its own envelope.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("JOB error {code}: {message}")]
pub struct JobError {
    /// JOB's numeric code (v2/v3).
    pub code: i64,
    /// English message, as JOB renders it for `Accept-Language: en`.
    pub message: String,
    /// The parameter at fault, for v4's "请求参数[x]不合法".
    pub param: Option<String>,
    /// IAM permission data (code 9900403).
    pub permission: Option<Value>,
}

impl JobError {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        JobError {
            code,
            message: message.into(),
            param: None,
            permission: None,
        }
    }

    /// 1241004 `Missing request parameter [x]`.
    pub fn missing(param: &str) -> Self {
        JobError {
            param: Some(param.to_owned()),
            ..Self::new(
                code::MISSING_PARAM_WITH_NAME,
                format!("Missing request parameter [{param}]"),
            )
        }
    }

    /// 1241005 `Invalid request parameter [x]`.
    pub fn illegal(param: &str) -> Self {
        JobError {
            param: Some(param.to_owned()),
            ..Self::new(
                code::ILLEGAL_PARAM_WITH_NAME,
                format!("Invalid request parameter [{param}]"),
            )
        }
    }

    /// 1241007 `Missing or invalid request parameter [x]`.
    pub fn missing_or_illegal(param: &str) -> Self {
        JobError {
            param: Some(param.to_owned()),
            ..Self::new(
                code::MISSING_OR_ILLEGAL_PARAM_WITH_NAME,
                format!("Missing or invalid request parameter [{param}]"),
            )
        }
    }

    /// 1241002 `Invalid request parameters`.
    pub fn illegal_params() -> Self {
        Self::new(code::ILLEGAL_PARAM, "Invalid request parameters")
    }

    /// 1241003 `Unsupported operation`.
    pub fn unsupported_operation() -> Self {
        Self::new(code::UNSUPPORTED_OPERATION, "Unsupported operation")
    }

    /// 1244006 `Task instance does not exist`.
    pub fn job_not_found() -> Self {
        Self::new(
            code::TASK_INSTANCE_NOT_EXIST,
            "Task instance does not exist",
        )
    }

    /// 1244007 `Task step instance does not exist`.
    pub fn step_not_found() -> Self {
        Self::new(
            code::STEP_INSTANCE_NOT_EXIST,
            "Task step instance does not exist",
        )
    }

    /// 1244026 `Invalid rolling strategy`.
    pub fn invalid_rolling() -> Self {
        Self::new(code::INVALID_ROLLING_EXPR, "Invalid rolling strategy")
    }

    /// 1244027, more rolling batches than JOB allows.
    pub fn too_many_batches() -> Self {
        Self::new(
            code::EXCEED_MAX_ALLOWED_BATCH_SIZE,
            format!("Rolling batch can not be greater than {MAX_ROLLING_BATCHES}"),
        )
    }

    /// 1244001 `Host is empty`.
    pub fn server_empty() -> Self {
        Self::new(code::SERVER_EMPTY, "Host is empty")
    }

    /// 1243009 `Job plan does not exist`.
    pub fn plan_missing() -> Self {
        Self::new(code::TASK_PLAN_NOT_EXIST, "Job plan does not exist")
    }
}
