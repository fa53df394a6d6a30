//! Reading the fields of JOB's wire structs once the envelope is off: deserializing
//! `data` ([`from_data`]), JOB's status codes, host addresses, `null` as absent and
//! durations, each failure an [`ApiError::BadResponse`].

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::error::ApiError;
use crate::job_api::types::{HostAddr, RunStatus};

/// Deserializes `data` into a wire struct, or says why not.
pub(crate) fn from_data<T: serde::de::DeserializeOwned>(
    status: u16,
    data: Value,
    what: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(data).map_err(|e| ApiError::BadResponse {
        status,
        reason: format!("{what}: {e}"),
    })
}

/// An undecodable detail of an otherwise valid answer.
pub(crate) fn bad(status: u16, reason: impl Into<String>) -> ApiError {
    ApiError::BadResponse {
        status,
        reason: reason.into(),
    }
}

/// A status code JOB defines, or a [`ApiError::BadResponse`].
pub(crate) fn run_status(status: u16, code: u8) -> Result<RunStatus, ApiError> {
    RunStatus::from_code(code).ok_or_else(|| bad(status, format!("unknown JOB status {code}")))
}

/// A host address from the wire's `ip` + `bk_cloud_id` (cloud 0 when absent).
pub(crate) fn addr(ip: Option<String>, cloud: Option<u64>) -> Option<HostAddr> {
    ip.filter(|ip| !ip.is_empty()).map(|ip| HostAddr {
        cloud_id: cloud.unwrap_or(0),
        ip,
    })
}

/// Treats `null` like a missing field (JOB sends both).
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// Milliseconds from a non-negative float (JOB's durations).
pub(crate) fn millis(value: Option<f64>) -> Option<u64> {
    value
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v.round() as u64)
}
