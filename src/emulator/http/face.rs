//! The state of the emulator's HTTP face ([`Face`]): the emulator's [`App`], the log of
//! API requests as received, and the holds that pause requests before or after they
//! are answered. Kept apart from [`App`] so that what runs jobs never holds HTTP state.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde::Serialize;
use serde_json::Value;

use crate::emulator::app::{App, Log};
use crate::emulator::http::answer_holds::AnswerHolds;

/// What the doors and the control endpoints share.
pub struct Face {
    /// The emulator behind the face.
    pub app: Arc<App>,
    /// Request holds (`/_emulator/holds` with `api`).
    pub answer_holds: AnswerHolds,
    /// API requests as received.
    pub requests: Log<RequestRecord>,
    /// Last request sequence number.
    pub request_seq: AtomicU64,
}

impl Face {
    /// A face for `app`, with no holds and an empty request log.
    pub fn new(app: Arc<App>) -> Self {
        let requests = Log::new(app.settings.max_logged_requests);
        Face {
            app,
            answer_holds: AnswerHolds::default(),
            requests,
            request_seq: AtomicU64::new(0),
        }
    }
}

/// One API request as received (for `GET /_emulator/requests`).
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// Arrival order, from 1.
    pub seq: u64,
    /// Arrival, epoch ms.
    pub time_ms: i64,
    /// `v2`, `v3`, `v4`, or `unknown`.
    pub protocol: String,
    /// API name (`fast_execute_script`).
    pub api: String,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// The body: JSON when it parses, else the text.
    pub body: Value,
    /// The query string as an object.
    pub query_params: Value,
}
