//! The HTTP surface: ESB v2 (`/api/c/compapi/v2/job/<name>/`, body credentials), ESB
//! jobv3 (`/api/c/compapi/v2/jobv3/<name>/`), gateway v3 (`/api/v3/<name>`, also
//! `/api/v3/system/<name>`) and v4 (`/api/v4/<name>`), header credentials, each also
//! under the gateway's `/api/bk-job/<stage>` prefix; the control
//! endpoints under `/_emulator/`; everything else 404 as ESB or the gateway says it.
//! Each API request is recorded as received, then request holds wait, then faults are
//! applied, then credentials checked, then the per-protocol handler runs, then answer
//! holds wait.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any};
use serde_json::Value;

use super::{control, v2, v3, v4};
use crate::emulator::app::App;
use crate::emulator::http::answer_holds::Stage;
use crate::emulator::http::auth;
use crate::emulator::http::context::{ApiKind, Ctx};
use crate::emulator::http::envelope;
use crate::emulator::http::face::{Face, RequestRecord};
use crate::emulator::http::params::Params;
use crate::emulator::model::caller::Caller;
use crate::emulator::model::protocol::Protocol;

/// Which door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    EsbV2,
    EsbV3,
    GatewayV3,
    GatewayV4,
}

impl Door {
    fn protocol(self) -> Protocol {
        match self {
            Door::EsbV2 => Protocol::V2,
            Door::EsbV3 | Door::GatewayV3 => Protocol::V3,
            Door::GatewayV4 => Protocol::V4,
        }
    }

    fn is_esb(self) -> bool {
        matches!(self, Door::EsbV2 | Door::EsbV3)
    }
}

/// The router of a running emulator.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/c/compapi/v2/job/{name}", door(Door::EsbV2))
        .route("/api/c/compapi/v2/job/{name}/", door(Door::EsbV2))
        .route("/api/c/compapi/v2/jobv3/{name}", door(Door::EsbV3))
        .route("/api/c/compapi/v2/jobv3/{name}/", door(Door::EsbV3))
        .route("/api/v3/{name}", door(Door::GatewayV3))
        .route("/api/v3/system/{name}", door(Door::GatewayV3))
        .route("/api/v4/{name}", door(Door::GatewayV4))
        // The gateway's own URL form, `{BKAPI}/api/bk-job/{stage}/api/v3/<name>`, so an
        // SDK whose URL template is `http://<emulator>/api/{api_name}/` needs no change.
        .route("/api/bk-job/{stage}/api/v3/{name}", door(Door::GatewayV3))
        .route(
            "/api/bk-job/{stage}/api/v3/system/{name}",
            door(Door::GatewayV3),
        )
        .route("/api/bk-job/{stage}/api/v4/{name}", door(Door::GatewayV4))
        .nest("/_emulator", control::router())
        .fallback(fallback)
        .with_state(Arc::new(Face::new(app)))
}

async fn fallback(uri: Uri) -> Response {
    envelope::not_found(uri.path())
}

type Parts = (Method, Uri, HeaderMap, Bytes);

/// The handler of one door: every API name of a generation funnels into `handle`.
fn door(door: Door) -> MethodRouter<Arc<Face>> {
    any(
        move |State(face): State<Arc<Face>>,
              Path(mut captured): Path<HashMap<String, String>>,
              method: Method,
              uri: Uri,
              headers: HeaderMap,
              body: Bytes| {
            let name = captured.remove("name").unwrap_or_default();
            handle(face, door, name, (method, uri, headers, body))
        },
    )
}

fn api_kind(door: Door, name: &str) -> Option<ApiKind> {
    match door.protocol() {
        Protocol::V2 => v2::api_kind(name),
        Protocol::V3 => v3::api_kind(name),
        Protocol::V4 => v4::api_kind(name),
    }
}

async fn handle(face: Arc<Face>, door: Door, name: String, parts: Parts) -> Response {
    let (method, uri, headers, body) = parts;
    let protocol = door.protocol();
    record(&face, protocol, &name, &method, &uri, &body);
    let api = name.trim_end_matches('/').to_owned();
    let _busy = face.answer_holds.enter(&api);
    face.answer_holds.pass(&api, Stage::Request).await;

    let decision = face.app.faults.on_api(&name, protocol.as_str());
    if decision.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(decision.latency_ms)).await;
    }
    if let Some(status) = decision.error_status {
        return envelope::server_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        );
    }
    if let Some(reset) = decision.rate_limit_reset {
        return envelope::rate_limited(door.is_esb(), reset);
    }

    let response = answer(
        Arc::clone(&face.app),
        door,
        &name,
        &method,
        &uri,
        &headers,
        &body,
    );
    face.answer_holds.pass(&api, Stage::Answer).await;
    if decision.drop {
        return dropped();
    }
    match door {
        Door::EsbV3 => envelope::esb_relay(response).await,
        Door::EsbV2 => response,
        Door::GatewayV3 | Door::GatewayV4 => envelope::with_gateway_request_id(response),
    }
}

fn answer(
    app: Arc<App>,
    door: Door,
    name: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let protocol = door.protocol();
    let Some(kind) = api_kind(door, name) else {
        return envelope::not_found(uri.path());
    };
    let is_get = method == Method::GET;
    if !door.is_esb() && is_get && kind == ApiKind::Action {
        return envelope::not_found(uri.path());
    }
    if method != Method::GET && method != Method::POST {
        return envelope::not_found(uri.path());
    }
    let params = if is_get {
        Params::from_query(uri.query())
    } else {
        match Params::from_body(body) {
            Ok(params) => params,
            Err(error) if door.is_esb() => {
                return envelope::esb_failure(1_306_406, &error.message);
            }
            Err(error) => return envelope::failure(protocol, &error),
        }
    };
    let caller = if kind == ApiKind::Open {
        Caller {
            app_code: String::new(),
            user: String::new(),
        }
    } else if door.is_esb() {
        let header = headers
            .get("X-Bkapi-Authorization")
            .map(|v| v.to_str().unwrap_or_default());
        match auth::check_esb(&app.inventory, header, &params) {
            Ok(caller) => caller,
            Err(refusal) => return envelope::esb_failure(refusal.code(), &refusal.to_string()),
        }
    } else {
        let header = headers
            .get("X-Bkapi-Authorization")
            .and_then(|v| v.to_str().ok());
        match auth::check_gateway(&app.inventory, header) {
            Ok(caller) => caller,
            Err(refusal) => return envelope::gateway_auth_failure(&refusal.to_string()),
        }
    };
    let ctx = Ctx {
        app,
        caller,
        protocol,
    };
    let result = match protocol {
        Protocol::V2 => v2::dispatch(&ctx, name, &params),
        Protocol::V3 => v3::dispatch(&ctx, name, &params),
        Protocol::V4 => v4::dispatch(&ctx, name, &params),
    };
    match result {
        Ok(data) => envelope::success(protocol, data),
        Err(error) => envelope::failure(protocol, &error),
    }
}

fn record(face: &Face, protocol: Protocol, name: &str, method: &Method, uri: &Uri, body: &Bytes) {
    let body_value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
    };
    face.requests.push(RequestRecord {
        seq: face.request_seq.fetch_add(1, Ordering::Relaxed) + 1,
        time_ms: crate::emulator::model::jobs::now_ms(),
        protocol: protocol.as_str().into(),
        api: name.trim_end_matches('/').to_owned(),
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        body: body_value,
        query_params: Params::from_query(uri.query()).as_value(),
    });
}

/// A body that fails on its first read: hyper then closes the connection without a
/// complete answer, which is what the client of a dropped connection sees.
struct Broken;

impl axum::body::HttpBody for Broken {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "emulator fault: connection dropped",
        ))))
    }
}

fn dropped() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        axum::body::Body::new(Broken),
    )
        .into_response()
}
