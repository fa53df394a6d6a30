//! Sending [`ApiCall`]s to JOB: the [`Transport`] (one pooled reqwest client, rustls
//! with the ring provider, credentials applied per protocol, at most [`MAX_IN_FLIGHT`]
//! requests at once), its [`Timeouts`], and the line between a query, retried while
//! safe, and a submission, sent again only when it provably never left
//! ([`SubmitFailure`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::error::ClientError;
use super::retry::{RetryPolicy, rate_limit_hint};
use crate::job_api::auth;
use crate::job_api::build::{ApiCall, HttpMethod};
use crate::job_api::credentials::Credentials;
use crate::job_api::decode::{self, RawResponse, excerpt};

/// What came back over the wire: the status, every header (the retry policy reads its
/// hints from them) and the body. Decoders read it through [`HttpAnswer::raw`].
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// HTTP status.
    pub status: u16,
    /// Headers (for rate-limit hints).
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The answer as JOB's decoders take it.
    pub fn raw(&self) -> RawResponse<'_> {
        RawResponse {
            status: self.status,
            rate_limit_reset: self
                .headers
                .get(decode::RATE_LIMIT_RESET_HEADER)
                .and_then(|v| v.to_str().ok()),
            body: &self.body,
        }
    }
}

/// Timeouts of the HTTP client.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// TCP/TLS connect.
    pub connect: Duration,
    /// Whole query request.
    pub query: Duration,
    /// Whole submission request.
    pub submit: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            query: Duration::from_secs(20),
            submit: Duration::from_secs(30),
        }
    }
}

/// Installs rustls' ring provider as the process default. Idempotent; must run before
/// the first reqwest client is built (reqwest is built without a provider of its own).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Most requests to JOB in flight at once, and so most connections a run opens: a run
/// tracking a thousand instances must not open a thousand sockets (the gateway would
/// rate-limit or refuse them) when a few dozen pooled ones carry the same reads.
pub const MAX_IN_FLIGHT: usize = 32;

/// Builds the one pooled HTTP client of a run.
pub fn build_http_client(timeouts: &Timeouts) -> Result<reqwest::Client, ClientError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.query.max(timeouts.submit))
        .pool_idle_timeout(Duration::from_secs(60))
        // Every permitted request can find an idle connection to reuse.
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Unreachable {
            url: String::new(),
            message: format!("cannot build the HTTP client: {e}"),
        })
}

/// Why a submission did not produce an answer.
#[derive(Debug)]
pub enum SubmitFailure {
    /// The request never left (connect errors on every attempt).
    NeverSent(String),
    /// The request may have reached JOB.
    Ambiguous(String),
    /// The request could not even be prepared (credentials unusable for the protocol).
    Refused(ClientError),
}

/// Sends [`ApiCall`]s with credentials over one pooled client.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    base_url: String,
    credentials: Arc<Credentials>,
    pub(super) retry: RetryPolicy,
    timeouts: Timeouts,
    /// Bounds requests in flight ([`MAX_IN_FLIGHT`]); shared by clones.
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base_url", &self.base_url)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport to `base_url`.
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        credentials: Credentials,
        retry: RetryPolicy,
        timeouts: Timeouts,
    ) -> Self {
        Transport {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials: Arc::new(credentials),
            retry,
            timeouts,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    pub(super) fn url(&self, call: &ApiCall) -> String {
        format!("{}{}", self.base_url, call.path)
    }

    fn request(
        &self,
        call: &ApiCall,
        timeout: Duration,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let authorized =
            auth::authorize(call, &self.credentials).map_err(|e| ClientError::AuthRefused {
                message: e.to_string(),
            })?;
        let url = format!("{}{}", self.base_url, authorized.path);
        let mut builder = match authorized.method {
            HttpMethod::Get => self.client.get(&url),
            HttpMethod::Post => self.client.post(&url),
        };
        builder = builder.timeout(timeout);
        for (name, value) in &authorized.headers {
            let (Ok(name), Ok(mut value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::from_str(value),
            ) else {
                continue;
            };
            // Keeps the credentials header out of reqwest's own debug output.
            if name.as_str().eq_ignore_ascii_case(auth::AUTH_HEADER) {
                value.set_sensitive(true);
            }
            builder = builder.header(name, value);
        }
        if !authorized.query.is_empty() {
            builder = builder.query(&authorized.query);
        }
        if let Some(body) = &authorized.body {
            builder = builder.body(body.to_string());
        }
        Ok(builder)
    }

    /// One request, once a slot is free; also says when it was handed to the network
    /// (after the wait for a slot, which neither counts against its timeout nor makes
    /// it ambiguous).
    async fn send_once(
        &self,
        call: &ApiCall,
        timeout: Duration,
    ) -> Result<(Result<HttpAnswer, reqwest::Error>, Instant), ClientError> {
        let request = self.request(call, timeout)?;
        // The semaphore is never closed.
        let _permit = self.in_flight.acquire().await.ok();
        let sent_at = Instant::now();
        Ok((Self::exchange(request).await, sent_at))
    }

    async fn exchange(request: reqwest::RequestBuilder) -> Result<HttpAnswer, reqwest::Error> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(HttpAnswer {
            status,
            headers,
            body,
        })
    }

    /// Sends an idempotent query, retrying connect errors, timeouts, 5xx and 429.
    pub async fn query(&self, call: &ApiCall) -> Result<HttpAnswer, ClientError> {
        let started = Instant::now();
        let mut failures = 0u32;
        loop {
            let (result, _) = self.send_once(call, self.timeouts.query).await?;
            let (retry_hint, error) = match result {
                Ok(raw) if raw.status == 429 || raw.status >= 500 => (
                    rate_limit_hint(&raw.headers),
                    ClientError::Http {
                        api: call.api.to_owned(),
                        status: raw.status,
                        message: excerpt(&raw.body),
                    },
                ),
                Ok(raw) => return Ok(raw),
                Err(e) => (
                    None,
                    ClientError::Unreachable {
                        url: self.url(call),
                        message: error_chain(&e),
                    },
                ),
            };
            failures += 1;
            let delay = retry_hint
                .unwrap_or_else(|| self.retry.delay(failures))
                .min(Duration::from_secs(60));
            if failures >= self.retry.max_attempts
                || started.elapsed() + delay > self.retry.max_elapsed
            {
                return Err(error);
            }
            tracing::debug!(api = call.api, attempt = failures, ?delay, %error, "retrying query");
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends a submission. Retried only on connect errors, which prove it never left.
    pub async fn submit(&self, call: &ApiCall) -> Result<(HttpAnswer, Instant), SubmitFailure> {
        let mut failures = 0u32;
        loop {
            let (attempt, sent_at) = match self.send_once(call, self.timeouts.submit).await {
                Ok(attempt) => attempt,
                Err(e) => return Err(SubmitFailure::Refused(e)),
            };
            match attempt {
                Ok(raw) => return Ok((raw, sent_at)),
                Err(e) if e.is_connect() => {
                    failures += 1;
                    if failures >= self.retry.max_attempts.min(4) {
                        return Err(SubmitFailure::NeverSent(error_chain(&e)));
                    }
                    tokio::time::sleep(self.retry.delay(failures)).await;
                }
                Err(e) => return Err(SubmitFailure::Ambiguous(error_chain(&e))),
            }
        }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// The error with its causes: reqwest's own message alone ("error sending request")
/// does not say what went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(in crate::job_api::client) fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_elapsed: Duration::from_secs(5),
        }
    }
    pub(in crate::job_api::client) fn transport(base: &str, timeouts: Timeouts) -> Transport {
        let client = build_http_client(&timeouts).unwrap();
        Transport::new(
            client,
            base,
            Credentials::App {
                app_code: "app".into(),
                app_secret: crate::job_api::credentials::Secret::new("s3cret"),
                user: crate::job_api::credentials::User::Username("admin".into()),
            },
            policy(),
            timeouts,
        )
    }
    pub(in crate::job_api::client) async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        format!("http://{addr}")
    }
    pub(in crate::job_api::client) fn call(method: HttpMethod, path: &str) -> ApiCall {
        ApiCall {
            api: "test_api",
            method,
            path: path.into(),
            body: serde_json::json!({"job_instance_id": 7, "bk_scope_type": "biz"}),
            sensitive_pointers: vec![],
        }
    }

    #[test]
    fn client_builds_with_the_ring_provider() {
        assert!(build_http_client(&Timeouts::default()).is_ok());
    }

    #[tokio::test]
    async fn queries_survive_5xx_and_429() {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let router = Router::new().route(
            "/api/v3/q",
            get(move |headers: axum::http::HeaderMap| {
                let counter = Arc::clone(&counter);
                async move {
                    assert!(headers.get("x-bkapi-authorization").is_some());
                    match counter.fetch_add(1, Ordering::SeqCst) {
                        0 => StatusCode::BAD_GATEWAY.into_response(),
                        1 => (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("X-Bkapi-RateLimit-Reset", "0")],
                            "slow down",
                        )
                            .into_response(),
                        _ => "{\"result\":true}".into_response(),
                    }
                }
            }),
        );
        let base = serve(router).await;
        let t = transport(&base, Timeouts::default());
        let raw = t.query(&call(HttpMethod::Get, "/api/v3/q")).await.unwrap();
        assert_eq!(raw.status, 200);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn queries_give_up_after_bounded_attempts() {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let router = Router::new().route(
            "/api/v3/q",
            get(move || {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }),
        );
        let base = serve(router).await;
        let t = transport(&base, Timeouts::default());
        let err = t
            .query(&call(HttpMethod::Get, "/api/v3/q"))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Http { status: 503, .. }));
        assert_eq!(hits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_slow_submit_is_ambiguous_and_not_resent() {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let router = Router::new().route(
            "/api/v3/s",
            post(move || {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    "{}"
                }
            }),
        );
        let base = serve(router).await;
        let timeouts = Timeouts {
            submit: Duration::from_millis(200),
            ..Timeouts::default()
        };
        let t = transport(&base, timeouts);
        let result = t.submit(&call(HttpMethod::Post, "/api/v3/s")).await;
        assert!(matches!(result, Err(SubmitFailure::Ambiguous(_))));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_connection_is_never_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let t = transport(&format!("http://{addr}"), Timeouts::default());
        let result = t.submit(&call(HttpMethod::Post, "/api/v3/s")).await;
        assert!(matches!(result, Err(SubmitFailure::NeverSent(_))));
    }

    #[tokio::test]
    async fn v2_puts_credentials_in_the_body() {
        let router = Router::new().route(
            "/api/c/compapi/v2/job/b/",
            post(|body: String| async move {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["bk_app_code"], "app");
                assert_eq!(v["bk_username"], "admin");
                assert_eq!(v["job_instance_id"], 7);
                "ok"
            }),
        );
        let base = serve(router).await;
        let t = transport(&base, Timeouts::default());
        let raw = t
            .query(&call(HttpMethod::Post, "/api/c/compapi/v2/job/b/"))
            .await
            .unwrap();
        assert_eq!(raw.body, b"ok");
    }
}
