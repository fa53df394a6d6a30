//! [`ApiError`]: every way a JOB answer can be a failure — JOB's own refusals with their
//! [`ErrorCode`] (a number on v2/v3 and the gateway, a name on v4), missing IAM
//! permissions as [`MissingAction`]s, authentication, rate limits, server errors and
//! answers that cannot be read.

use std::fmt;

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
