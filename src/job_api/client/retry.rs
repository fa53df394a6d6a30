//! When an idempotent query is asked again: the [`RetryPolicy`] (bounded exponential
//! backoff with jitter) and the rate-limit hints JOB's gateway sends
//! (`Retry-After`, `X-Bkapi-RateLimit-Reset`).

use std::time::Duration;

use rand::Rng;
use reqwest::header::HeaderMap;

use crate::job_api::decode::{self, RawResponse};

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

/// `Retry-After` (seconds) or `X-Bkapi-RateLimit-Reset` (seconds to wait, or an epoch).
pub(super) fn rate_limit_hint(headers: &HeaderMap) -> Option<Duration> {
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

/// Whether the answer is a rate limiter's refusal, whatever the protocol's way of
/// saying it.
pub(super) fn is_rate_limited(raw: &RawResponse<'_>) -> bool {
    raw.status == 429
        || matches!(
            decode::unwrap_data(raw),
            Err(decode::ApiError::RateLimited { .. })
        )
}

#[cfg(test)]
mod tests {
    use super::*;

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
