//! Every way a JOB call can fail, as the runner sees it: [`ClientError`], and how a
//! decoded JOB refusal ([`decode::ApiError`]) becomes one.

use crate::job_api::decode;

/// Every way a JOB call can fail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// JOB could not be reached (after retries).
    #[error("JOB is unreachable at {url}: {message}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The transport error.
        message: String,
    },
    /// JOB (or the gateway/ESB in front of it) refused our credentials.
    #[error("JOB refused the credentials: {message}")]
    AuthRefused {
        /// JOB's message.
        message: String,
    },
    /// The user lacks IAM permissions.
    #[error("permission denied: {message}{}", actions_suffix(.actions))]
    PermissionDenied {
        /// JOB's message.
        message: String,
        /// The missing IAM actions.
        actions: Vec<String>,
    },
    /// JOB answered with an error for this request.
    #[error("JOB error {code}: {message}")]
    Rejected {
        /// JOB's code (numeric on v2/v3, a name on v4).
        code: String,
        /// JOB's message.
        message: String,
    },
    /// A non-success HTTP status that is not a JOB envelope (after retries).
    #[error("HTTP {status} from {api}: {message}")]
    Http {
        /// The API name.
        api: String,
        /// The HTTP status.
        status: u16,
        /// A short excerpt of the body.
        message: String,
    },
    /// The answer could not be understood.
    #[error("cannot decode the answer of {api}: {message}")]
    Decode {
        /// The API name.
        api: String,
        /// What was wrong.
        message: String,
    },
    /// A submission may or may not have started a job, and it could not be settled.
    #[error("submission outcome unknown{}: {cause}", lookup_suffix(.task_name))]
    SubmissionUnknown {
        /// The unique task name to look for, when the request carried one (job plan
        /// executions carry none).
        task_name: Option<String>,
        /// What happened on the wire.
        cause: String,
    },
    /// An operation on an instance was sent and no answer came back: whether JOB acted
    /// is unknown.
    #[error("no answer to {api}: {cause}; whether JOB acted on it is unknown")]
    OperationUnknown {
        /// The API name.
        api: String,
        /// What happened on the wire.
        cause: String,
    },
    /// JOB (or the gateway) is overloaded or failing: rate limited or a server error
    /// inside a success status (after retries).
    #[error("JOB is busy: {message}")]
    Busy {
        /// What it said.
        message: String,
    },
    /// This protocol has no such operation.
    #[error("{0} is not available on this protocol")]
    Unsupported(&'static str),
}

fn lookup_suffix(task_name: &Option<String>) -> String {
    task_name
        .as_ref()
        .map(|name| format!(" for task `{name}`"))
        .unwrap_or_default()
}

fn actions_suffix(actions: &[String]) -> String {
    if actions.is_empty() {
        String::new()
    } else {
        format!(" (missing actions: {})", actions.join(", "))
    }
}

impl ClientError {
    /// Whether JOB says the job instance does not exist (1244006 on v2/v3, `NOT_FOUND`
    /// on v4): JOB lost it, or another JOB now answers at that address. Reading on is
    /// pointless, and submitting again could run the step twice.
    pub fn is_unknown_instance(&self) -> bool {
        matches!(self, ClientError::Rejected { code, .. } if code == "1244006" || code == "NOT_FOUND")
    }

    /// Whether the run as a whole cannot go on (exit 3) rather than one step failing.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. }
                | ClientError::AuthRefused { .. }
                | ClientError::PermissionDenied { .. }
                | ClientError::Http { .. }
                | ClientError::Decode { .. }
                | ClientError::Busy { .. }
        )
    }
}

impl From<decode::ApiError> for ClientError {
    fn from(error: decode::ApiError) -> Self {
        match error {
            decode::ApiError::AuthRefused { code, message } => ClientError::AuthRefused {
                message: format!("{message} (code {code})"),
            },
            decode::ApiError::PermissionDenied {
                code,
                message,
                actions,
            } => ClientError::PermissionDenied {
                message: format!("{message} (code {code})"),
                actions: actions.iter().map(ToString::to_string).collect(),
            },
            decode::ApiError::Job { code, message } => ClientError::Rejected {
                code: code.to_string(),
                message,
            },
            e @ (decode::ApiError::RateLimited { .. } | decode::ApiError::Server { .. }) => {
                ClientError::Busy {
                    message: e.to_string(),
                }
            }
            decode::ApiError::BadResponse { status, reason } => ClientError::Decode {
                api: format!("HTTP {status}"),
                message: reason,
            },
        }
    }
}
