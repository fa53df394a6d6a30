//! The answer to operating a job or step instance ([`decode_operation`]): success or the
//! error, nothing else.

use super::envelope::{RawResponse, unwrap_data};
use super::error::ApiError;

/// `operate_job_instance` / `operate_step_instance`: only success or the error.
pub fn decode_operation(response: &RawResponse<'_>) -> Result<(), ApiError> {
    unwrap_data(response).map(|_| ())
}
