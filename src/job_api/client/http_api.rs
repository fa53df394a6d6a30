//! The reqwest-backed [`JobApi`], [`HttpJobApi`]: queries decoded and retried while
//! JOB is busy, and submissions that are never blindly sent twice.
//!
//! Queries (status, logs, instance lists) are idempotent, so they are retried on
//! connect errors, 5xx and 429 with exponential backoff and jitter, honouring
//! `Retry-After` / `X-Bkapi-RateLimit-Reset`, within a bounded number of attempts and
//! time. Submissions start jobs and are not idempotent: one is retried only when it
//! provably never reached JOB (a connect error). An ambiguous submission (a timeout or a
//! reset after the request went out) is reconciled by listing instances by the step's
//! unique task name (v3), and where the protocol has no instance list it fails as
//! "submission outcome unknown" — it is never blindly sent again.

use std::time::{Duration, Instant};

use super::api::{GlobalVarValue, HostLog, JobApi, JobStatusView, SubmitOutcome};
use super::codec::ProtocolCodec;
use super::error::ClientError;
use super::retry::{is_rate_limited, rate_limit_hint};
use super::transport::{SubmitFailure, Transport};
use crate::job_api::build::ApiCall;
use crate::job_api::decode::{RawResponse, excerpt};
use crate::job_api::types::Protocol;
use crate::job_api::types::{
    HostResult, JobInstanceId, JobOperation, StepInstanceId, StepOperation, Submitted,
};

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
        decode: impl Fn(&RawResponse<'_>) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let policy = self.transport.retry.clone();
        let mut failures = 0u32;
        loop {
            let raw = self.transport.query(call).await?;
            match decode(&raw.raw()) {
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

impl<C: ProtocolCodec> HttpJobApi<C> {
    /// Sends a read-only lookup (see `job_api::lookups`) and returns its `data`.
    pub async fn lookup(&self, call: &ApiCall) -> Result<serde_json::Value, ClientError> {
        self.query_decoded(call, |raw| {
            crate::job_api::decode::unwrap_data(raw).map_err(ClientError::from)
        })
        .await
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
                    if is_rate_limited(&raw.raw())
                        && rate_limited + 1 < policy.max_attempts
                        && started.elapsed() < policy.max_elapsed =>
                {
                    rate_limited += 1;
                    let delay = rate_limit_hint(&raw.headers)
                        .unwrap_or_else(|| self.transport.retry.delay(rate_limited));
                    tokio::time::sleep(delay.min(Duration::from_secs(60))).await;
                    continue;
                }
                Ok((raw, sent_at)) => match self.codec.decode_submit(call.api, &raw.raw()) {
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
                                    job_instance_name: None,
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

    async fn global_vars(&self, job: JobInstanceId) -> Result<Vec<GlobalVarValue>, ClientError> {
        let call = self.codec.global_vars_call(job)?;
        self.query_decoded(&call, |raw| self.codec.decode_global_vars(raw))
            .await
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
        self.codec.decode_operation(call.api, &raw.raw())
    }

    fn has_step_operations(&self) -> bool {
        // v4 has no operation APIs of its own; a v4 plan retries by resubmitting.
        self.codec.protocol() != Protocol::V4
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::JobCodec;
    use super::super::transport::Timeouts;
    use super::super::transport::tests::{call, serve, transport};
    use super::*;
    use crate::job_api::build::HttpMethod;
    use crate::job_api::types::Scope;
    use axum::Router;
    use axum::routing::{get, post};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
}
