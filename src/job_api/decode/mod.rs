//! Decoding JOB's answers into protocol-neutral types ([`super::types`]) and typed
//! errors ([`ApiError`]): the envelope and its errors, then one file per kind of answer
//! (submissions, job status, host logs, instance lists, operations), with the wire
//! helpers and v2's times and HTML entities they share.

mod envelope;
mod error;
mod global_vars;
mod html;
mod instances;
mod logs;
mod operation;
mod status;
mod submit;
#[cfg(test)]
mod test_support;
mod time;
mod wire;

pub(crate) use envelope::excerpt;
pub use envelope::{RATE_LIMIT_RESET_HEADER, RawResponse, unwrap_data};
pub use error::{ApiError, ErrorCode, MissingAction};
pub use global_vars::{
    GlobalVarValue, PASSWORD_VAR, StepVarValues, decode_global_var_values, final_values,
};
pub use html::html_decode;
pub use instances::decode_instance_list;
pub use logs::decode_host_logs;
pub use operation::decode_operation;
pub use status::decode_job_status;
pub(crate) use status::rolling_batch;
pub use submit::decode_submit;
pub use time::{local_offset, parse_v2_time};
pub(crate) use wire::{addr, bad, from_data, millis, nullable, run_status};
