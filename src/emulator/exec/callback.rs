//! The finish callback, exactly as JOB's `CallbackListener` sends it: on every finish
//! (including re-finishes after a retry or an ignored error) POST
//! `{job_instance_id, status, step_instances:[{step_instance_id, status}]}` as
//! `application/json`; if the answer is not HTTP 200, one retry with the same body as
//! `application/x-www-form-urlencoded`; a transport error gets no retry; 15 s timeout.
//! `settings.callback_field: step_instance_list` renames the array (the docs' name).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::emulator::app::{App, CallbackRecord};
use crate::emulator::model::jobs::JobState;

/// JOB's callback HTTP timeout.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The callback body for a job's current state.
pub fn body(app: &App, job_id: u64, state: &JobState) -> String {
    let steps: Vec<_> = state
        .steps
        .iter()
        .map(|s| json!({"step_instance_id": s.id, "status": s.status.code()}))
        .collect();
    let field = if app.settings.callback_field == "step_instance_list" {
        "step_instance_list"
    } else {
        "step_instances"
    };
    let mut value = json!({"job_instance_id": job_id, "status": state.status.code()});
    value[field] = json!(steps);
    value.to_string()
}

/// Sends a callback in the background (0, 1 or 2 times, per the callback faults).
pub fn send(app: &Arc<App>, job_id: u64, url: String, body: String) {
    let times = app.faults.on_callback();
    let app = app.clone();
    tokio::spawn(async move {
        for _ in 0..times {
            deliver(&app, job_id, &url, &body).await;
        }
    });
}

async fn deliver(app: &App, job_id: u64, url: &str, body: &str) {
    for content_type in ["application/json", "application/x-www-form-urlencoded"] {
        let result = app
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_owned())
            .timeout(TIMEOUT)
            .send()
            .await;
        let mut record = CallbackRecord {
            job_instance_id: job_id,
            url: url.to_owned(),
            content_type: content_type.to_owned(),
            body: body.to_owned(),
            http_status: None,
            error: None,
        };
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                record.http_status = Some(status);
                app.callbacks.push(record);
                if status == 200 {
                    return;
                }
            }
            Err(error) => {
                record.error = Some(error.to_string());
                app.callbacks.push(record);
                return;
            }
        }
    }
}
