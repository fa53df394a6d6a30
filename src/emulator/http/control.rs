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
//! | `POST /_emulator/hold` | hold `{}` (all jobs), `{"job_instance_id": N}` or `{"host": "0:10.0.0.1"}`; or requests of one API: `{"api": "fast_execute_script", "stage": "request"\|"answer", "skip": N}` (`request`: held before JOB looks at it; `answer`, the default: processed, answer held; the first `skip` requests pass) |
//! | `POST /_emulator/release` | release the same keys; `{"all": true}` releases everything |
//! | `GET /_emulator/holds` | holds in force (request holds with how many requests each has caught) |
//! | `POST /_emulator/caught` | `{"api", "stage", "count"}`: answers once that many requests are caught by the request hold (`{"caught": true}`), or after 30 s (`{"caught": false}`) |
//! | `POST /_emulator/idle` | `{"api"}`: answers once no request to that API is being handled (`{"idle": true}`), or after 30 s |

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::emulator::http::answer_holds::Stage;
use crate::emulator::http::face::Face;
use crate::emulator::model::clock::HoldKey;
use crate::emulator::model::faults::FaultSet;
use crate::job_api::types::HostAddr;

/// The `/_emulator` router.
pub fn router() -> Router<Arc<Face>> {
    Router::new()
        .route("/health", get(|| async { Json(json!({"ok": true})) }))
        .route("/requests", get(requests).delete(clear_requests))
        .route("/instances", get(instances))
        .route("/callbacks", get(callbacks))
        .route("/faults", get(faults).post(set_faults).delete(clear_faults))
        .route("/hold", axum::routing::post(hold))
        .route("/release", axum::routing::post(release))
        .route("/holds", get(holds))
        .route("/caught", axum::routing::post(caught))
        .route("/idle", axum::routing::post(idle))
}

#[derive(Debug, Deserialize)]
struct RequestFilter {
    api: Option<String>,
    protocol: Option<String>,
}

async fn requests(State(face): State<Arc<Face>>, Query(filter): Query<RequestFilter>) -> Response {
    let list: Vec<_> = face
        .requests
        .all()
        .into_iter()
        .filter(|r| filter.api.as_ref().is_none_or(|a| &r.api == a))
        .filter(|r| filter.protocol.as_ref().is_none_or(|p| &r.protocol == p))
        .collect();
    Json(json!(list)).into_response()
}

async fn clear_requests(State(face): State<Arc<Face>>) -> Response {
    face.requests.clear();
    Json(json!({"ok": true})).into_response()
}

async fn instances(State(face): State<Arc<Face>>) -> Response {
    let list: Vec<Value> = face
        .app
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

async fn callbacks(State(face): State<Arc<Face>>) -> Response {
    Json(json!(face.app.callbacks.all())).into_response()
}

async fn faults(State(face): State<Arc<Face>>) -> Response {
    Json(json!(face.app.faults.current())).into_response()
}

async fn set_faults(State(face): State<Arc<Face>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<FaultSet>(&body) {
        Ok(set) => {
            let previous = face.app.faults.held_hosts();
            face.app.faults.replace(set);
            for host in previous {
                face.app.gates.release(&HoldKey::Host(host));
            }
            for host in face.app.faults.held_hosts() {
                face.app.gates.hold(HoldKey::Host(host));
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

async fn clear_faults(State(face): State<Arc<Face>>) -> Response {
    for host in face.app.faults.held_hosts() {
        face.app.gates.release(&HoldKey::Host(host));
    }
    face.app.faults.replace(FaultSet::default());
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
    #[serde(default)]
    api: Option<String>,
    #[serde(default)]
    stage: Option<Stage>,
    #[serde(default)]
    skip: usize,
}

/// Why a hold or release body was refused.
#[derive(Debug, thiserror::Error)]
enum BadHold {
    /// Not JSON of the hold shape.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A host that is not `cloud:ip`.
    #[error("`{0}` is not cloud:ip")]
    Host(String),
}

/// What a hold or release names.
enum HoldTarget {
    /// Job execution (clock.rs).
    Job(HoldKey),
    /// Requests of one API, after letting some through.
    Api(String, Stage, usize),
}

fn hold_key(body: &[u8]) -> Result<(HoldTarget, bool), BadHold> {
    let request: HoldRequest = if body.iter().all(u8::is_ascii_whitespace) {
        HoldRequest::default()
    } else {
        serde_json::from_slice(body)?
    };
    let key = match (request.api, request.job_instance_id, request.host) {
        (Some(api), _, _) => {
            HoldTarget::Api(api, request.stage.unwrap_or(Stage::Answer), request.skip)
        }
        (None, Some(id), _) => HoldTarget::Job(HoldKey::Job(id)),
        (None, None, Some(host)) => HoldTarget::Job(HoldKey::Host(
            HostAddr::parse(&host).ok_or(BadHold::Host(host))?,
        )),
        (None, None, None) => HoldTarget::Job(HoldKey::All),
    };
    Ok((key, request.all))
}

async fn hold(State(face): State<Arc<Face>>, body: axum::body::Bytes) -> Response {
    match hold_key(&body) {
        Ok((HoldTarget::Job(key), _)) => {
            face.app.gates.hold(key);
            Json(json!({"ok": true})).into_response()
        }
        Ok((HoldTarget::Api(api, stage, skip), _)) => {
            face.answer_holds.hold(&api, stage, skip);
            Json(json!({"ok": true})).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error": error.to_string()})),
        )
            .into_response(),
    }
}

async fn release(State(face): State<Arc<Face>>, body: axum::body::Bytes) -> Response {
    match hold_key(&body) {
        Ok((_, true)) => {
            face.app.gates.release_all();
            face.answer_holds.release_all();
            Json(json!({"ok": true})).into_response()
        }
        Ok((HoldTarget::Job(key), false)) => {
            let released = face.app.gates.release(&key);
            Json(json!({"ok": true, "released": released})).into_response()
        }
        Ok((HoldTarget::Api(api, stage, _), false)) => {
            let released = face.answer_holds.release(&api, stage);
            Json(json!({"ok": true, "released": released})).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error": error.to_string()})),
        )
            .into_response(),
    }
}

async fn holds(State(face): State<Arc<Face>>) -> Response {
    Json(json!({"jobs": face.app.gates.list(), "requests": face.answer_holds.list()}))
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaughtRequest {
    api: String,
    #[serde(default)]
    stage: Option<Stage>,
    #[serde(default)]
    count: Option<usize>,
}

/// Long-polls until a request hold has caught enough requests: a test's kill point.
async fn caught(State(face): State<Arc<Face>>, Json(request): Json<CaughtRequest>) -> Response {
    let caught = face
        .answer_holds
        .caught(
            &request.api,
            request.stage.unwrap_or(Stage::Answer),
            request.count.unwrap_or(1),
            std::time::Duration::from_secs(30),
        )
        .await;
    Json(json!({"caught": caught})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdleRequest {
    api: String,
}

/// Long-polls until no request to an API is being handled: after releasing a hold, what
/// JOB did with the held request is then final.
async fn idle(State(face): State<Arc<Face>>, Json(request): Json<IdleRequest>) -> Response {
    let idle = face
        .answer_holds
        .idle(&request.api, std::time::Duration::from_secs(30))
        .await;
    Json(json!({"idle": idle})).into_response()
}
