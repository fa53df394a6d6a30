//! A submission's answer ([`decode_submit`]): the job instance, its name and, for a
//! single-step job, the step instance, the same `data` on every protocol.

use serde::Deserialize;

use super::envelope::{RawResponse, unwrap_data};
use super::error::ApiError;
use super::wire::{bad, from_data};
use crate::job_api::types::{JobInstanceId, StepInstanceId, Submitted};

#[derive(Deserialize)]
struct SubmitData {
    job_instance_id: Option<u64>,
    job_instance_name: Option<String>,
    step_instance_id: Option<u64>,
}

/// A submission's answer (`fast_*`, `execute_*`): the same `data` on every protocol.
pub fn decode_submit(response: &RawResponse<'_>) -> Result<Submitted, ApiError> {
    let data = unwrap_data(response)?;
    let data: SubmitData = from_data(response.status, data, "submission answer")?;
    let id = data
        .job_instance_id
        .ok_or_else(|| bad(response.status, "the answer has no job_instance_id"))?;
    Ok(Submitted {
        job_instance_id: JobInstanceId(id),
        job_instance_name: data.job_instance_name,
        step_instance_id: data.step_instance_id.map(StepInstanceId),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::decode::test_support::raw;

    #[test]
    fn seed_003_success_has_all_three_ids() {
        let ok = r#"{"data": {"job_instance_name": "API Quick execution script1", "job_instance_id": 10000, "step_instance_id": 10001}}"#;
        assert_eq!(
            decode_submit(&raw(200, ok)).unwrap(),
            Submitted {
                job_instance_id: JobInstanceId(10000),
                job_instance_name: Some("API Quick execution script1".into()),
                step_instance_id: Some(StepInstanceId(10001)),
            }
        );
    }
}
