//! Test controls under `/_emulator/` (no auth, not part of JOB):
//!
//! | endpoint | does |
//! |---|---|
//! | `GET /_emulator/health` | `{"ok": true}` |
//! | `GET /_emulator/requests[?api=..&protocol=..]` | every API request as received (api, protocol, method, path, query, body) |
//! | `DELETE /_emulator/requests` | forget them |
//! | `GET /_emulator/instances` | every job instance: id, name, status, scope, steps with status, execute_count and batch |
//! | `GET /_emulator/callbacks` | every callback attempt: url, content type, body, answer |
//! | `GET/POST/DELETE /_emulator/faults` | the fault set (faults.rs shape); POST replaces it |
//! | `POST /_emulator/hold` | hold `{}` (all jobs), `{"job_instance_id": N}` or `{"host": "0:10.0.0.1"}` |
//! | `POST /_emulator/release` | release the same keys; `{"all": true}` releases everything |
//! | `GET /_emulator/holds` | holds in force |

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::App;
use super::clock::HoldKey;
use super::faults::FaultSet;
use crate::job_api::types::HostAddr;

/// The `/_emulator` router.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/health", get(|| async { Json(json!({"ok": true})) }))
        .route("/requests", get(requests).delete(clear_requests))
        .route("/instances", get(instances))
        .route("/callbacks", get(callbacks))
        .route("/faults", get(faults).post(set_faults).delete(clear_faults))
        .route("/hold", axum::routing::post(hold))
        .route("/release", axum::routing::post(release))
        .route("/holds", get(holds))
}

#[derive(Debug, Deserialize)]
struct RequestFilter {
    api: Option<String>,
    protocol: Option<String>,
}

async fn requests(State(app): State<Arc<App>>, Query(filter): Query<RequestFilter>) -> Response {
    let list: Vec<_> = app
        .requests
        .all()
        .into_iter()
        .filter(|r| filter.api.as_ref().is_none_or(|a| &r.api == a))
        .filter(|r| filter.protocol.as_ref().is_none_or(|p| &r.protocol == p))
        .collect();
    Json(json!(list)).into_response()
}

async fn clear_requests(State(app): State<Arc<App>>) -> Response {
    app.requests.clear();
    Json(json!({"ok": true})).into_response()
}

async fn instances(State(app): State<Arc<App>>) -> Response {
    let list: Vec<Value> = app
        .store
        .all()
        .iter()
        .map(|job| {
            let state = job.lock();
            json!({
                "job_instance_id": job.id, "name": state.name, "status": state.status.code(),
                "protocol": job.protocol, "scopes": job.scopes, "operator": state.operator,
                "plan_id": state.plan_id, "create_time": state.create_ms,
                "current_step_instance_id": state.steps.get(state.current).map(|s| s.id),
                "callbacks_sent": state.finishes,
                "steps": state.steps.iter().map(|s| json!({
                    "step_instance_id": s.id, "step_id": s.step_id, "name": s.name,
                    "status": s.status.code(), "execute_count": s.execute_count,
                    "batch": s.batch + 1, "batches": s.batches.len(),
                    "hosts": s.hosts.iter().map(|h| json!({
                        "host": h.host.addr.to_string(), "bk_host_id": h.host.host_id,
                        "status": h.status, "exit_code": h.exit_code,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!(list)).into_response()
}

async fn callbacks(State(app): State<Arc<App>>) -> Response {
    Json(json!(app.callbacks.all())).into_response()
}

async fn faults(State(app): State<Arc<App>>) -> Response {
    Json(json!(app.faults.current())).into_response()
}

async fn set_faults(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<FaultSet>(&body) {
        Ok(set) => {
            let previous = app.faults.held_hosts();
            app.faults.replace(set);
            for host in previous {
                app.gates.release(&HoldKey::Host(host));
            }
            for host in app.faults.held_hosts() {
                app.gates.hold(HoldKey::Host(host));
            }
            Json(json!({"ok": true})).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error": error.to_string()})),
        )
            .into_response(),
    }
}

async fn clear_faults(State(app): State<Arc<App>>) -> Response {
    for host in app.faults.held_hosts() {
        app.gates.release(&HoldKey::Host(host));
    }
    app.faults.replace(FaultSet::default());
    Json(json!({"ok": true})).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRequest {
    #[serde(default)]
    job_instance_id: Option<u64>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    all: bool,
}

fn hold_key(body: &[u8]) -> Result<(HoldKey, bool), String> {
    let request: HoldRequest = if body.iter().all(u8::is_ascii_whitespace) {
        HoldRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())?
    };
    let key = match (request.job_instance_id, request.host) {
        (Some(id), _) => HoldKey::Job(id),
        (None, Some(host)) => HoldKey::Host(
            HostAddr::parse(&host).ok_or_else(|| format!("`{host}` is not cloud:ip"))?,
        ),
        (None, None) => HoldKey::All,
    };
    Ok((key, request.all))
}

async fn hold(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    match hold_key(&body) {
        Ok((key, _)) => {
            app.gates.hold(key);
            Json(json!({"ok": true})).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error": error})),
        )
            .into_response(),
    }
}

async fn release(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    match hold_key(&body) {
        Ok((_, true)) => {
            app.gates.release_all();
            Json(json!({"ok": true})).into_response()
        }
        Ok((key, false)) => {
            let released = app.gates.release(&key);
            Json(json!({"ok": true, "released": released})).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error": error})),
        )
            .into_response(),
    }
}

async fn holds(State(app): State<Arc<App>>) -> Response {
    Json(json!(app.gates.list())).into_response()
}
