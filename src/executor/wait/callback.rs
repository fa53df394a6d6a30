//! The callback receiver: an axum server JOB posts to when an instance finishes.
//!
//! Each submission carries `{public base}/callback/{run}/{token}`, where the token is
//! 128 random bits per run, compared in constant time. A callback is only a hint: it
//! wakes the step's waiter, which then reads the status from JOB — the payload's status
//! is never trusted. So forged, late, duplicate and unknown callbacks change nothing.
//! Both `step_instances` and `step_instance_list` bodies, JSON and JOB's form-encoded
//! retry (the same JSON string under `application/x-www-form-urlencoded`) are accepted.
//! Any other content type is refused (415): JOB sends nothing else, so anything else
//! is not JOB. Callbacks that arrive before the submit response has been processed are
//! buffered and delivered when the step registers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use rand::RngCore;
use tokio::sync::Notify;

/// Largest accepted callback body; JOB's are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most buffered early callbacks; older ones are forgotten (polling still covers them).
const MAX_EARLY: usize = 4096;

/// Counters for the report and for tests.
#[derive(Debug, Default)]
pub struct CallbackStats {
    /// Well-formed callbacks with the right token.
    pub accepted: AtomicU64,
    /// Requests refused (bad token, bad body, wrong run).
    pub refused: AtomicU64,
}

/// One waiting job instance.
#[derive(Debug, Default)]
pub struct Waiter {
    notify: Notify,
    last_at: Mutex<Option<Instant>>,
}

impl Waiter {
    /// Waits for the next callback (or returns at once if one came since the last call).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// When the latest callback for this instance arrived.
    pub fn last_callback_at(&self) -> Option<Instant> {
        self.last_at.lock().ok().and_then(|g| *g)
    }

    /// Simulates a callback arriving now (unit tests of the wait loop).
    #[cfg(test)]
    pub fn notified_now_for_test(&self) {
        self.wake(Instant::now());
    }

    fn wake(&self, at: Instant) {
        if let Ok(mut last) = self.last_at.lock() {
            *last = Some(at);
        }
        self.notify.notify_one();
    }
}

#[derive(Debug, Default)]
struct HubState {
    waiters: HashMap<u64, Arc<Waiter>>,
    early: HashMap<u64, Instant>,
    early_order: VecDeque<u64>,
    done: HashSet<u64>,
}

/// Routes callbacks to the steps waiting for them.
#[derive(Debug)]
pub struct CallbackHub {
    run_id: String,
    token: String,
    state: Mutex<HubState>,
    /// Counters.
    pub stats: CallbackStats,
}

impl CallbackHub {
    /// A hub for one run, with a fresh unguessable token.
    pub fn new(run_id: &str) -> Arc<Self> {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Arc::new(CallbackHub {
            run_id: run_id.to_owned(),
            token,
            state: Mutex::new(HubState::default()),
            stats: CallbackStats::default(),
        })
    }

    /// The URL path JOB must post to.
    pub fn path(&self) -> String {
        format!("/callback/{}/{}", self.run_id, self.token)
    }

    /// The secret part of the path, so output can be scrubbed of it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Starts waiting for callbacks about `job`. A callback that already arrived is
    /// delivered at once.
    pub fn register(&self, job: u64) -> Arc<Waiter> {
        let waiter = Arc::new(Waiter::default());
        let Ok(mut state) = self.state.lock() else {
            return waiter;
        };
        state.done.remove(&job);
        if let Some(at) = state.early.remove(&job) {
            waiter.wake(at);
        }
        state.waiters.insert(job, Arc::clone(&waiter));
        waiter
    }

    /// Stops waiting for `job`; later callbacks about it are dropped.
    pub fn unregister(&self, job: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.waiters.remove(&job);
            state.done.insert(job);
        }
    }

    fn deliver(&self, job: u64, at: Instant) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(waiter) = state.waiters.get(&job) {
            waiter.wake(at);
        } else if !state.done.contains(&job) {
            // The submit answer may still be on its way: keep it for `register`.
            if state.early.insert(job, at).is_none() {
                state.early_order.push_back(job);
            }
            while state.early_order.len() > MAX_EARLY {
                if let Some(old) = state.early_order.pop_front() {
                    state.early.remove(&old);
                }
            }
        }
    }
}

/// Compares without an early exit, so the token cannot be guessed byte by byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The job instance a callback body names, if it is well formed.
pub fn parse_callback(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let id = value.get("job_instance_id")?;
    let id = id.as_u64().or_else(|| id.as_str()?.trim().parse().ok())?;
    // Accept either list name, but require the body to look like JOB's.
    let has_steps =
        value.get("step_instances").is_some() || value.get("step_instance_list").is_some();
    (has_steps || value.get("status").is_some()).then_some(id)
}

/// Whether the request says it is JSON or JOB's form-encoded retry (parameters such as
/// `charset` allowed).
fn is_job_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("application/json")
        || mime.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

async fn receive(
    State(hub): State<Arc<CallbackHub>>,
    Path((run, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let at = Instant::now();
    if !constant_time_eq(run.as_bytes(), hub.run_id.as_bytes())
        | !constant_time_eq(token.as_bytes(), hub.token.as_bytes())
    {
        hub.stats.refused.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::NOT_FOUND, "unknown callback");
    }
    if !is_job_content_type(&headers) {
        hub.stats.refused.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/json or application/x-www-form-urlencoded",
        );
    }
    match parse_callback(&body) {
        Some(job) => {
            hub.stats.accepted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(job, "callback received");
            hub.deliver(job, at);
            (StatusCode::OK, "{\"result\":true}")
        }
        None => {
            hub.stats.refused.fetch_add(1, Ordering::Relaxed);
            (StatusCode::BAD_REQUEST, "not a JOB callback")
        }
    }
}

/// The receiver's routes.
pub fn router(hub: Arc<CallbackHub>) -> Router {
    Router::new()
        .route("/callback/{run}/{token}", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(hub)
}

/// A running receiver.
#[derive(Debug)]
pub struct Receiver {
    /// Where it listens.
    pub local_addr: SocketAddr,
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Stops the server.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Binds `listen` and serves callbacks for `hub` until shut down.
pub async fn start(listen: SocketAddr, hub: Arc<CallbackHub>) -> std::io::Result<Receiver> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local_addr = listener.local_addr()?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, router(hub))
            .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = serve.await {
            tracing::warn!("callback receiver stopped: {e}");
        }
    });
    Ok(Receiver {
        local_addr,
        shutdown,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn post(url: &str, content_type: &str, body: Vec<u8>) -> u16 {
        crate::job_api::client::install_crypto_provider();
        reqwest::Client::new()
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn accepts_both_shapes_and_refuses_forgeries() {
        let hub = CallbackHub::new("run1");
        let receiver = start("127.0.0.1:0".parse().unwrap(), Arc::clone(&hub))
            .await
            .unwrap();
        let base = format!("http://{}", receiver.local_addr);
        let good = format!("{base}{}", hub.path());

        // Early: arrives before registration, delivered on register.
        let body = br#"{"job_instance_id":10,"status":3,"step_instances":[{"step_instance_id":1,"status":3}]}"#;
        assert_eq!(post(&good, "application/json", body.to_vec()).await, 200);
        let waiter = hub.register(10);
        tokio::time::timeout(Duration::from_secs(1), waiter.notified())
            .await
            .unwrap();
        assert!(waiter.last_callback_at().is_some());

        // Form-encoded retry with the doc's list name.
        let waiter = hub.register(11);
        let body = br#"{"job_instance_id":11,"status":4,"step_instance_list":[]}"#;
        assert_eq!(
            post(&good, "application/x-www-form-urlencoded", body.to_vec()).await,
            200
        );
        tokio::time::timeout(Duration::from_secs(1), waiter.notified())
            .await
            .unwrap();

        // Forged token, wrong run, garbage, oversize.
        let forged = format!("{base}/callback/run1/{}", "0".repeat(32));
        assert_eq!(post(&forged, "application/json", body.to_vec()).await, 404);
        let wrong_run = format!("{base}/callback/other/{}", hub.token());
        assert_eq!(
            post(&wrong_run, "application/json", body.to_vec()).await,
            404
        );
        assert_eq!(
            post(&good, "application/json", b"hello".to_vec()).await,
            400
        );
        assert_eq!(post(&good, "text/plain", body.to_vec()).await, 415);
        assert_eq!(post(&good, "application/xml", body.to_vec()).await, 415);
        assert_eq!(
            post(&good, "application/json", vec![b' '; MAX_BODY_BYTES + 1]).await,
            413
        );
        assert_eq!(hub.stats.accepted.load(Ordering::Relaxed), 2);

        // Late callbacks after unregistering are dropped, not buffered.
        hub.unregister(11);
        assert_eq!(post(&good, "application/json", body.to_vec()).await, 200);
        assert!(hub.state.lock().unwrap().early.is_empty());
        receiver.shutdown().await;
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = CallbackHub::new("r");
        let b = CallbackHub::new("r");
        assert_eq!(a.token().len(), 32);
        assert_ne!(a.token(), b.token());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
