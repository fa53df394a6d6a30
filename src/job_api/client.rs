//! The JOB HTTP client: one pooled reqwest client (rustls with the ring provider),
//! credentials applied per protocol, envelopes decoded into typed errors, and the retry
//! policy — which is the interesting part.
//!
//! Queries (status, logs, instance lists) are idempotent, so they are retried on
//! connect errors, 5xx and 429 with exponential backoff and jitter, honouring
//! `Retry-After` / `X-Bkapi-RateLimit-Reset`, within a bounded number of attempts and
//! time. Submissions start jobs and are not idempotent: one is retried only when it
//! provably never reached JOB (a connect error). An ambiguous submission (a timeout or a
//! reset after the request went out) is reconciled by listing instances by the step's
//! unique task name (v3), and where the protocol has no instance list it fails as
//! "submission outcome unknown" — it is never blindly sent again.
//!
//! The runner sees only the [`JobApi`] trait; request building and envelope decoding
//! per protocol come from a [`ProtocolCodec`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::job_api::auth::{self, Credentials};
use crate::job_api::build::{ApiCall, BuildError, HttpMethod};
use crate::job_api::types::{
    HostAddr, JobInstanceId, JobOperation, RunStatus, StepInstanceId, StepOperation,
};
use crate::job_api::types::{Protocol, Scope};
use crate::job_api::{calls, decode, types};

/// What JOB answered to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The new instance.
    pub job_instance_id: JobInstanceId,
    /// Its step instance, for fast tasks.
    pub step_instance_id: Option<StepInstanceId>,
}

/// A submission's result as the runner sees it.
#[derive(Debug, Clone)]
pub struct SubmitOutcome {
    /// The instance.
    pub submitted: Submitted,
    /// Found through the instance list after an ambiguous submit.
    pub reconciled: bool,
    /// When the (last) request was handed to the network.
    pub sent_at: Instant,
}

/// One host's result inside a step instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostResult {
    /// CMDB host id, when JOB gave one.
    pub host_id: Option<u64>,
    /// Cloud area and IP, when JOB gave them.
    pub addr: Option<HostAddr>,
    /// Host status code (`host_status`).
    pub status: u16,
    /// Script exit code.
    pub exit_code: Option<i64>,
}

impl HostResult {
    /// `cloud:ip`, else `host_id:N`.
    pub fn label(&self) -> String {
        match (&self.addr, self.host_id) {
            (Some(addr), _) => addr.to_string(),
            (None, Some(id)) => format!("host_id:{id}"),
            (None, None) => "unknown host".into(),
        }
    }
}

/// One step instance of a job instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInstanceView {
    /// Its id.
    pub step_instance_id: StepInstanceId,
    /// JOB's step type (`step_type`), when given.
    pub step_type: Option<u8>,
    /// Its status.
    pub status: RunStatus,
    /// Retries so far (`execute_count`).
    pub execute_count: u32,
    /// Rolling batch `(current, total)`, when JOB reports it.
    pub batch: Option<(u32, u32)>,
    /// Per-host results (latest execute count).
    pub hosts: Vec<HostResult>,
}

/// A job instance's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatusView {
    /// `finished` / `is_finished`.
    pub finished: bool,
    /// The job's status.
    pub status: RunStatus,
    /// Its steps.
    pub steps: Vec<StepInstanceView>,
    /// JOB's own start → end of the instance, ms, when it says (how long JOB worked,
    /// as opposed to how long baton waited).
    pub job_ms: Option<u64>,
}

/// One host's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLog {
    /// The host, labelled as [`HostResult::label`].
    pub host: String,
    /// The log text (HTML-decoding, if any, is the reader's job).
    pub content: String,
}

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

/// An HTTP answer before decoding.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers (for rate-limit hints).
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Per protocol: the query calls the runner needs and the decoders of their answers.
pub trait ProtocolCodec: Send + Sync + 'static {
    /// The protocol.
    fn protocol(&self) -> Protocol;
    /// `get_job_instance_status` with per-host results.
    fn status_call(&self, job: JobInstanceId) -> Result<ApiCall, ClientError>;
    /// Log calls for the given hosts of one step instance.
    fn log_calls(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        hosts: &[HostResult],
    ) -> Result<Vec<ApiCall>, ClientError>;
    /// `operate_job_instance`.
    fn operate_job_call(
        &self,
        job: JobInstanceId,
        op: JobOperation,
    ) -> Result<ApiCall, ClientError>;
    /// `operate_step_instance`, where the protocol has it.
    fn operate_step_call(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        op: StepOperation,
    ) -> Option<Result<ApiCall, ClientError>>;
    /// `get_job_instance_list` filtered by task name and creation time, where the
    /// protocol has it (v3).
    fn instance_list_call(
        &self,
        task_name: &str,
        created_after_ms: i64,
        created_before_ms: i64,
    ) -> Option<Result<ApiCall, ClientError>>;
    /// Decodes a submission answer.
    fn decode_submit(&self, api: &str, raw: &RawResponse) -> Result<Submitted, ClientError>;
    /// Decodes a status answer.
    fn decode_status(&self, raw: &RawResponse) -> Result<JobStatusView, ClientError>;
    /// Decodes a log answer, keeping the logs of `step`.
    fn decode_logs(
        &self,
        step: StepInstanceId,
        raw: &RawResponse,
    ) -> Result<Vec<HostLog>, ClientError>;
    /// Decodes an operation answer.
    fn decode_operation(&self, api: &str, raw: &RawResponse) -> Result<(), ClientError>;
    /// Decodes an instance list into `(id, name)` pairs.
    fn decode_instance_list(
        &self,
        raw: &RawResponse,
    ) -> Result<Vec<(JobInstanceId, String)>, ClientError>;
}

/// What the runner needs from JOB, protocol-neutral.
pub trait JobApi: Send + Sync + 'static {
    /// The protocol spoken.
    fn protocol(&self) -> Protocol;
    /// Submits a step. `task_name` is the unique name the request carries, used to
    /// settle an ambiguous answer; `None` where the request carries no task name (job
    /// plan executions), so an ambiguous answer cannot be settled by name.
    fn submit(
        &self,
        call: ApiCall,
        task_name: Option<String>,
    ) -> impl Future<Output = Result<SubmitOutcome, ClientError>> + Send;
    /// Reads a job instance's status.
    fn status(
        &self,
        job: JobInstanceId,
    ) -> impl Future<Output = Result<JobStatusView, ClientError>> + Send;
    /// Reads the logs of some hosts of a step instance.
    fn logs(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        hosts: Vec<HostResult>,
    ) -> impl Future<Output = Result<Vec<HostLog>, ClientError>> + Send;
    /// `operate_job_instance`.
    fn operate_job(
        &self,
        job: JobInstanceId,
        op: JobOperation,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// `operate_step_instance`.
    fn operate_step(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        op: StepOperation,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// Whether `operate_step_instance` exists (v2, v3).
    fn has_step_operations(&self) -> bool;

    /// The instance named exactly `task_name` created since `since_ms` (epoch ms), as
    /// ambiguous submissions are reconciled: for `baton resume`, which finds a
    /// submission intent without its answer. `Unsupported` where the protocol has no
    /// instance list.
    fn find_by_task_name(
        &self,
        task_name: &str,
        since_ms: i64,
    ) -> impl Future<Output = Result<Option<JobInstanceId>, ClientError>> + Send {
        let _ = (task_name, since_ms);
        async { Err(ClientError::Unsupported("get_job_instance_list")) }
    }
}

/// Backoff for idempotent queries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Most attempts per call (≥ 1).
    pub max_attempts: u32,
    /// First pause.
    pub base_delay: Duration,
    /// Longest pause.
    pub max_delay: Duration,
    /// Give up once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry `attempt` (1-based count of failures so far): exponential
    /// with "equal jitter", so concurrent steps do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        let half = exp / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
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
    retry: RetryPolicy,
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

    fn url(&self, call: &ApiCall) -> String {
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
    ) -> Result<(Result<RawResponse, reqwest::Error>, Instant), ClientError> {
        let request = self.request(call, timeout)?;
        // The semaphore is never closed.
        let _permit = self.in_flight.acquire().await.ok();
        let sent_at = Instant::now();
        Ok((Self::exchange(request).await, sent_at))
    }

    async fn exchange(request: reqwest::RequestBuilder) -> Result<RawResponse, reqwest::Error> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Sends an idempotent query, retrying connect errors, timeouts, 5xx and 429.
    pub async fn query(&self, call: &ApiCall) -> Result<RawResponse, ClientError> {
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
    pub async fn submit(&self, call: &ApiCall) -> Result<(RawResponse, Instant), SubmitFailure> {
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

/// `Retry-After` (seconds) or `X-Bkapi-RateLimit-Reset` (seconds to wait, or an epoch).
fn rate_limit_hint(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(secs) = number("retry-after") {
        return Some(Duration::from_secs_f64(secs.min(60.0)));
    }
    let reset = number("x-bkapi-ratelimit-reset")?;
    // Large values are epoch seconds; small ones are a relative wait.
    let wait = if reset > 1_000_000_000.0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(reset);
        (reset - now).max(0.0)
    } else {
        reset
    };
    Some(Duration::from_secs_f64(wait.min(60.0)))
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text.to_owned()
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

/// The reqwest-backed [`JobApi`].
pub struct HttpJobApi<C: ProtocolCodec> {
    transport: Transport,
    codec: C,
    /// Pauses between instance-list reads while reconciling; JOB may still be
    /// committing the instance an ambiguous submit created.
    reconcile_pauses: Vec<Duration>,
}

impl<C: ProtocolCodec> HttpJobApi<C> {
    /// A client over `transport` speaking `codec`.
    pub fn new(transport: Transport, codec: C) -> Self {
        HttpJobApi {
            transport,
            codec,
            reconcile_pauses: vec![
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(3),
            ],
        }
    }

    /// Looks for the instance of `task_name` created since `since_ms`. It is found by
    /// the unique marker its name ends with (`[baton <run> <step>#<attempt>]`), which
    /// carries no secret: the journal keeps task names with secrets masked, and JOB
    /// matches the name filter as a substring.
    async fn reconcile(
        &self,
        task_name: &str,
        since_ms: i64,
    ) -> Result<Option<JobInstanceId>, ClientError> {
        let until_ms = epoch_ms() + 60_000;
        let marker = task_marker(task_name);
        let call = match self.codec.instance_list_call(marker, since_ms, until_ms) {
            Some(call) => call?,
            None => return Err(ClientError::Unsupported("get_job_instance_list")),
        };
        for pause in &self.reconcile_pauses {
            tokio::time::sleep(*pause).await;
            let found = self
                .query_decoded(&call, |raw| self.codec.decode_instance_list(raw))
                .await?;
            if let Some((id, _)) = found.iter().find(|(_, name)| name.ends_with(marker)) {
                return Ok(Some(*id));
            }
        }
        Ok(None)
    }
}

/// The unique tail of a task name baton made (`[baton <run> <step>#<attempt>]`), or the
/// whole name when it has none.
pub fn task_marker(task_name: &str) -> &str {
    task_name
        .rfind("[baton ")
        .map_or(task_name, |start| &task_name[start..])
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl<C: ProtocolCodec> HttpJobApi<C> {
    /// Sends an idempotent query and decodes it; an answer that decodes as "busy"
    /// (rate limited, or a server error inside a 200) is retried like a 5xx.
    async fn query_decoded<T>(
        &self,
        call: &ApiCall,
        decode: impl Fn(&RawResponse) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let policy = self.transport.retry.clone();
        let mut failures = 0u32;
        loop {
            let raw = self.transport.query(call).await?;
            match decode(&raw) {
                Err(ClientError::Busy { message }) => {
                    failures += 1;
                    if failures >= policy.max_attempts {
                        return Err(ClientError::Busy { message });
                    }
                    let delay =
                        rate_limit_hint(&raw.headers).unwrap_or_else(|| policy.delay(failures));
                    tokio::time::sleep(delay.min(Duration::from_secs(60))).await;
                }
                other => return other,
            }
        }
    }
}

impl<C: ProtocolCodec> JobApi for HttpJobApi<C> {
    fn protocol(&self) -> Protocol {
        self.codec.protocol()
    }

    async fn submit(
        &self,
        call: ApiCall,
        task_name: Option<String>,
    ) -> Result<SubmitOutcome, ClientError> {
        // Instance creation times are compared with our clock; allow for skew.
        let since_ms = epoch_ms() - 10 * 60_000;
        let policy = &self.transport.retry;
        let started = Instant::now();
        let mut resent = false;
        let mut rate_limited = 0u32;
        loop {
            let failure = match self.transport.submit(&call).await {
                // A gateway or server error may come after JOB acted: as ambiguous as
                // a timeout.
                Ok((raw, _)) if raw.status >= 500 => {
                    SubmitFailure::Ambiguous(format!("HTTP {} {}", raw.status, excerpt(&raw.body)))
                }
                // The limiter (the gateway's HTTP 429, ESB's 1306429 inside an HTTP 200)
                // answers before JOB sees the request: safe to resend, within the same
                // budget as a query. Past it, the answer decodes as "JOB is busy".
                Ok((raw, _))
                    if is_rate_limited(&raw)
                        && rate_limited + 1 < policy.max_attempts
                        && started.elapsed() < policy.max_elapsed =>
                {
                    rate_limited += 1;
                    let delay = rate_limit_hint(&raw.headers)
                        .unwrap_or_else(|| self.transport.retry.delay(rate_limited));
                    tokio::time::sleep(delay.min(Duration::from_secs(60))).await;
                    continue;
                }
                Ok((raw, sent_at)) => match self.codec.decode_submit(call.api, &raw) {
                    Ok(submitted) => {
                        return Ok(SubmitOutcome {
                            submitted,
                            reconciled: false,
                            sent_at,
                        });
                    }
                    // An answer that does not say what JOB did (not JSON, no instance
                    // id, a server error inside a success) may follow a started job:
                    // as ambiguous as no answer at all.
                    Err(
                        e @ (ClientError::Decode { .. }
                        | ClientError::Busy { .. }
                        | ClientError::Http { .. }),
                    ) => SubmitFailure::Ambiguous(format!("an unreadable answer ({e})")),
                    // JOB's own refusal (a JOB error code, credentials, permissions):
                    // nothing started.
                    Err(e) => return Err(e),
                },
                Err(failure) => failure,
            };
            match failure {
                SubmitFailure::NeverSent(message) => {
                    return Err(ClientError::Unreachable {
                        url: self.transport.url(&call),
                        message,
                    });
                }
                SubmitFailure::Refused(e) => return Err(e),
                SubmitFailure::Ambiguous(cause) => {
                    let unknown = |cause: String| ClientError::SubmissionUnknown {
                        task_name: task_name.clone(),
                        cause,
                    };
                    let Some(name) = task_name.as_deref() else {
                        return Err(unknown(format!(
                            "{cause}; a job plan execution carries no task name to look it up by"
                        )));
                    };
                    tracing::warn!(task_name = name, %cause, "ambiguous submission; reconciling by task name");
                    match self.reconcile(name, since_ms).await {
                        Ok(Some(job_instance_id)) => {
                            return Ok(SubmitOutcome {
                                submitted: Submitted {
                                    job_instance_id,
                                    step_instance_id: None,
                                },
                                reconciled: true,
                                sent_at: Instant::now(),
                            });
                        }
                        // Proven absent after waiting: sending again cannot double-run.
                        // Only once, though: a second ambiguity is reported, not chased.
                        Ok(None) if !resent => {
                            resent = true;
                            continue;
                        }
                        Ok(None) => return Err(unknown(format!("{cause} (twice)"))),
                        Err(ClientError::Unsupported(_)) => {
                            return Err(unknown(format!(
                                "{cause}; protocol {} has no instance list to reconcile with",
                                self.codec.protocol()
                            )));
                        }
                        Err(e) => {
                            return Err(unknown(format!("{cause}; reconciliation failed: {e}")));
                        }
                    }
                }
            }
        }
    }

    async fn find_by_task_name(
        &self,
        task_name: &str,
        since_ms: i64,
    ) -> Result<Option<JobInstanceId>, ClientError> {
        self.reconcile(task_name, since_ms).await
    }

    async fn status(&self, job: JobInstanceId) -> Result<JobStatusView, ClientError> {
        let call = self.codec.status_call(job)?;
        self.query_decoded(&call, |raw| self.codec.decode_status(raw))
            .await
    }

    async fn logs(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        hosts: Vec<HostResult>,
    ) -> Result<Vec<HostLog>, ClientError> {
        let mut logs = Vec::new();
        for call in self.codec.log_calls(job, step, &hosts)? {
            logs.extend(
                self.query_decoded(&call, |raw| self.codec.decode_logs(step, raw))
                    .await?,
            );
        }
        Ok(logs)
    }

    async fn operate_job(&self, job: JobInstanceId, op: JobOperation) -> Result<(), ClientError> {
        let call = self.codec.operate_job_call(job, op)?;
        // Terminating twice is harmless (JOB refuses the second as "wrong state"), so
        // it uses the query retry policy.
        self.query_decoded(&call, |raw| self.codec.decode_operation(call.api, raw))
            .await
    }

    async fn operate_step(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        op: StepOperation,
    ) -> Result<(), ClientError> {
        let call = match self.codec.operate_step_call(job, step, op) {
            Some(call) => call?,
            None => return Err(ClientError::Unsupported("operate_step_instance")),
        };
        // A repeated "retry failed hosts" could re-run hosts twice; send it once.
        let raw = match self.transport.submit(&call).await {
            Ok((raw, _)) => raw,
            Err(SubmitFailure::NeverSent(message)) => {
                return Err(ClientError::Unreachable {
                    url: self.transport.url(&call),
                    message,
                });
            }
            Err(SubmitFailure::Refused(e)) => return Err(e),
            Err(SubmitFailure::Ambiguous(cause)) => {
                return Err(ClientError::OperationUnknown {
                    api: call.api.to_owned(),
                    cause,
                });
            }
        };
        self.codec.decode_operation(call.api, &raw)
    }

    fn has_step_operations(&self) -> bool {
        // v4 has no operation APIs of its own; a v4 plan retries by resubmitting.
        self.codec.protocol() != Protocol::V4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_elapsed: Duration::from_secs(5),
        }
    }

    fn transport(base: &str, timeouts: Timeouts) -> Transport {
        let client = build_http_client(&timeouts).unwrap();
        Transport::new(
            client,
            base,
            Credentials::App {
                app_code: "app".into(),
                app_secret: crate::config::Secret::new("s3cret"),
                user: crate::config::User::Username("admin".into()),
            },
            policy(),
            timeouts,
        )
    }

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        format!("http://{addr}")
    }

    fn call(method: HttpMethod, path: &str) -> ApiCall {
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

    /// A 200 whose body says nothing may follow a started job: it is looked up, not
    /// taken as a failure that a resume would run again.
    #[tokio::test]
    async fn an_unreadable_submit_answer_is_reconciled_not_failed() {
        let submits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&submits);
        let router = Router::new()
            .route(
                "/api/v3/fast_execute_script",
                post(move || {
                    let counted = Arc::clone(&counted);
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        "<html>upstream hiccup</html>"
                    }
                }),
            )
            .route(
                "/api/v3/get_job_instance_list",
                get(|| async {
                    axum::Json(serde_json::json!({"result": true, "code": 0, "message": "",
                        "data": {"data": [{"id": 42, "name": "deploy [baton r s#1]", "status": 2}],
                                 "start": 0, "length": 100, "total": 1}}))
                }),
            );
        let base = serve(router).await;
        let scope = Scope {
            scope_type: crate::job_api::types::ScopeType::Biz,
            id: 2,
        };
        let api = HttpJobApi::new(
            transport(&base, Timeouts::default()),
            JobCodec::new(Protocol::V3, scope),
        );
        let outcome = api
            .submit(
                call(HttpMethod::Post, "/api/v3/fast_execute_script"),
                Some("deploy [baton r s#1]".into()),
            )
            .await
            .unwrap();
        assert!(outcome.reconciled);
        assert_eq!(outcome.submitted.job_instance_id, JobInstanceId(42));
        assert_eq!(submits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let p = RetryPolicy::default();
        for attempt in 1..20 {
            let d = p.delay(attempt);
            assert!(d <= p.max_delay);
        }
        assert!(p.delay(1) <= p.base_delay);
    }
}

/// The [`ProtocolCodec`] built on `job_api::calls` (requests) and `job_api::decode`
/// (answers), for one protocol and one scope.
#[derive(Debug, Clone, Copy)]
pub struct JobCodec {
    protocol: Protocol,
    scope: Scope,
}

impl JobCodec {
    /// A codec for `protocol` in `scope`.
    pub fn new(protocol: Protocol, scope: Scope) -> Self {
        JobCodec { protocol, scope }
    }
}

/// Whether the answer is a rate limiter's refusal, whatever the protocol's way of
/// saying it.
fn is_rate_limited(raw: &RawResponse) -> bool {
    raw.status == 429
        || matches!(
            decode::unwrap_data(&raw_view(raw)),
            Err(decode::ApiError::RateLimited { .. })
        )
}

fn raw_view(raw: &RawResponse) -> decode::RawResponse<'_> {
    decode::RawResponse {
        status: raw.status,
        rate_limit_reset: raw
            .headers
            .get(decode::RATE_LIMIT_RESET_HEADER)
            .and_then(|v| v.to_str().ok()),
        body: &raw.body,
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

fn build_failed(api: &str, error: BuildError) -> ClientError {
    ClientError::Decode {
        api: api.to_owned(),
        message: format!("cannot build the request: {error}"),
    }
}

fn host_view(host: &types::HostResult) -> HostResult {
    HostResult {
        host_id: host.host_id,
        addr: host.host.clone(),
        status: host.status,
        exit_code: host.exit_code.map(i64::from),
    }
}

fn log_label(addr: &Option<HostAddr>, host_id: Option<u64>) -> String {
    HostResult {
        host_id,
        addr: addr.clone(),
        status: 0,
        exit_code: None,
    }
    .label()
}

impl ProtocolCodec for JobCodec {
    fn protocol(&self) -> Protocol {
        self.protocol
    }

    fn status_call(&self, job: JobInstanceId) -> Result<ApiCall, ClientError> {
        calls::get_job_instance_status(self.protocol, self.scope, job)
            .map_err(|e| build_failed("get_job_instance_status", e))
    }

    fn log_calls(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        hosts: &[HostResult],
    ) -> Result<Vec<ApiCall>, ClientError> {
        let refs: Vec<types::HostRef> = hosts
            .iter()
            .map(|h| types::HostRef {
                host_id: h.host_id,
                addr: h.addr.clone(),
            })
            .collect();
        calls::get_host_logs(self.protocol, self.scope, job, step, &refs)
            .map_err(|e| build_failed("logs", e))
    }

    fn operate_job_call(
        &self,
        job: JobInstanceId,
        op: JobOperation,
    ) -> Result<ApiCall, ClientError> {
        calls::operate_job_instance(self.protocol, self.scope, job, op)
            .map_err(|e| build_failed("operate_job_instance", e))
    }

    fn operate_step_call(
        &self,
        job: JobInstanceId,
        step: StepInstanceId,
        op: StepOperation,
    ) -> Option<Result<ApiCall, ClientError>> {
        Some(
            calls::operate_step_instance(self.protocol, self.scope, job, step, op)
                .map_err(|e| build_failed("operate_step_instance", e)),
        )
    }

    fn instance_list_call(
        &self,
        task_name: &str,
        created_after_ms: i64,
        created_before_ms: i64,
    ) -> Option<Result<ApiCall, ClientError>> {
        // v2 asks the ESB's jobv3 list beside it; v4 asks the gateway's v3 list, which
        // the same JOB serves with the same credentials and which decodes as v3.
        let list_protocol = match self.protocol {
            Protocol::V2 => Protocol::V2,
            Protocol::V3 | Protocol::V4 => Protocol::V3,
        };
        let query = calls::InstanceQuery {
            name: Some(task_name.to_owned()),
            create_time_start_ms: created_after_ms,
            create_time_end_ms: created_before_ms,
            start: 0,
            length: 100,
        };
        Some(
            calls::get_job_instance_list(list_protocol, self.scope, &query)
                .map_err(|e| build_failed("get_job_instance_list", e)),
        )
    }

    fn decode_submit(&self, _api: &str, raw: &RawResponse) -> Result<Submitted, ClientError> {
        let submitted = decode::decode_submit(&raw_view(raw))?;
        Ok(Submitted {
            job_instance_id: submitted.job_instance_id,
            step_instance_id: submitted.step_instance_id,
        })
    }

    fn decode_status(&self, raw: &RawResponse) -> Result<JobStatusView, ClientError> {
        let status =
            decode::decode_job_status(self.protocol, &raw_view(raw), decode::local_offset())?;
        let job = &status.job;
        let job_ms = match (job.start_time_ms, job.end_time_ms) {
            (Some(start), Some(end)) if end >= start => u64::try_from(end - start).ok(),
            _ => job.total_time_ms,
        };
        Ok(JobStatusView {
            finished: status.finished,
            status: status.job.status,
            job_ms,
            steps: status
                .steps
                .iter()
                .map(|s| StepInstanceView {
                    step_instance_id: s.step_instance_id,
                    step_type: s.step_type,
                    status: s.status,
                    execute_count: s.execute_count,
                    batch: s.batch.map(|b| (b.current, b.total)),
                    hosts: s.hosts.iter().map(host_view).collect(),
                })
                .collect(),
        })
    }

    fn decode_logs(
        &self,
        step: StepInstanceId,
        raw: &RawResponse,
    ) -> Result<Vec<HostLog>, ClientError> {
        let steps = decode::decode_host_logs(self.protocol, &raw_view(raw))?;
        let mut logs = Vec::new();
        for step_logs in steps {
            // v2 answers with every step of the job.
            if step_logs.step_instance_id.is_some_and(|id| id != step) {
                continue;
            }
            for host in step_logs.hosts {
                let mut content = host.content.unwrap_or_default();
                for file in &host.file_logs {
                    if let Some(text) = &file.content {
                        if !content.is_empty() && !content.ends_with('\n') {
                            content.push('\n');
                        }
                        content.push_str(text);
                    }
                }
                logs.push(HostLog {
                    host: log_label(&host.host, host.host_id),
                    content,
                });
            }
        }
        Ok(logs)
    }

    fn decode_operation(&self, _api: &str, raw: &RawResponse) -> Result<(), ClientError> {
        decode::decode_operation(&raw_view(raw)).map_err(ClientError::from)
    }

    fn decode_instance_list(
        &self,
        raw: &RawResponse,
    ) -> Result<Vec<(JobInstanceId, String)>, ClientError> {
        // Every protocol reads a v3-shaped list (see `instance_list_call`).
        let list = decode::decode_instance_list(Protocol::V3, &raw_view(raw))?;
        Ok(list
            .instances
            .into_iter()
            .map(|i| (i.job_instance_id, i.name))
            .collect())
    }
}
