//! A job instance's status ([`decode_job_status`]), per protocol, with the optional
//! rolling batch of a step read leniently ([`rolling_batch`]).

use chrono::FixedOffset;
use serde_json::Value;

use super::envelope::{RawResponse, unwrap_data};
use super::error::ApiError;
use crate::job_api::types::{JobStatus, Protocol};

/// The optional `rolling_batch: {current, total}` of a step's status (see
/// [`crate::job_api::types::StepStatus::batch`]). Anything else, including a batch outside
/// `1..=total`, reads as "no batch": progress must never fail a status read.
pub(crate) fn rolling_batch(value: Option<&Value>) -> Option<crate::job_api::types::RollingBatch> {
    let value = value?;
    let number = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    let (current, total) = (number("current")?, number("total")?);
    (current >= 1 && current <= total)
        .then_some(crate::job_api::types::RollingBatch { current, total })
}

/// `get_job_instance_status`. `v2_offset` is the timezone v2's time strings are in
/// (usually [`local_offset`]); v3/v4 times are epoch ms already.
pub fn decode_job_status(
    protocol: Protocol,
    response: &RawResponse<'_>,
    v2_offset: FixedOffset,
) -> Result<JobStatus, ApiError> {
    let data = unwrap_data(response)?;
    match protocol {
        Protocol::V2 => crate::job_api::v2::decode_status(response.status, data, v2_offset),
        Protocol::V3 | Protocol::V4 => crate::job_api::v3::decode_status(response.status, data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::decode::local_offset;
    use crate::job_api::decode::test_support::raw;
    use crate::job_api::types::{JobInstanceId, RunStatus, StepInstanceId};
    use serde_json::json;

    const CHINA: i32 = 8 * 3600;

    #[test]
    fn v2_status_times_counts_and_hosts() {
        let body = json!({"result": true, "code": 0, "message": "success", "request_id": "r", "data": {
            "is_finished": true,
            "job_instance": {"job_instance_id": 100, "bk_biz_id": 1, "name": "API Quick execution script", "operator": "admin",
                "bk_job_id": -1, "start_way": 2, "status": 4, "create_time": "2018-03-15 12:56:35",
                "start_time": "2018-03-15 12:56:35", "end_time": "2018-03-15 12:56:38", "total_time": 3.169,
                "current_step_instance_id": 75},
            "blocks": [{"step_instances": [{"step_instance_id": 75, "step_id": -1, "name": "run", "type": 1,
                "operator": "admin", "status": 4, "retry_count": 1, "create_time": "2018-03-15 12:56:35",
                "start_time": "2018-03-15 12:56:35", "end_time": "", "total_time": 3.169, "pause": null,
                "step_ip_status": [{"ip": "10.0.0.1", "bk_cloud_id": 0, "status": 9},
                                   {"ip": "10.0.0.2", "bk_cloud_id": 0, "status": 104}]}]}]}})
        .to_string();
        let offset = FixedOffset::east_opt(CHINA).unwrap();
        let status = decode_job_status(Protocol::V2, &raw(200, &body), offset).unwrap();
        assert!(status.finished);
        assert_eq!(status.job.status, RunStatus::Fail);
        assert_eq!(status.job.create_time_ms, Some(1_521_089_795_000));
        assert_eq!(status.job.total_time_ms, Some(3169));
        let step = &status.steps[0];
        assert_eq!(step.step_instance_id, StepInstanceId(75));
        assert_eq!(step.execute_count, 1, "the doc's retry_count is read");
        assert_eq!(step.end_time_ms, None);
        assert_eq!(step.hosts.len(), 2);
        assert_eq!(step.hosts[1].status, 104);
        assert_eq!(
            step.hosts[1].addr.as_ref().map(|h| h.ip.as_str()),
            Some("10.0.0.2")
        );
        let bad_time = body.replace("2018-03-15 12:56:38", "yesterday");
        assert!(matches!(
            decode_job_status(Protocol::V2, &raw(200, &bad_time), offset),
            Err(ApiError::BadResponse { .. })
        ));
    }

    #[test]
    fn v3_status_doc_example() {
        let body = json!({"result": true, "code": 0, "job_request_id": "x", "data": {
            "finished": true,
            "job_instance": {"job_instance_id": 100, "bk_scope_type": "biz", "bk_scope_id": "1", "name": "n",
                "create_time": 1605064271000_i64, "status": 4, "start_time": 1605064271000_i64, "end_time": 1605064272000_i64, "total_time": 1000},
            "step_instance_list": [{"step_instance_id": 75, "name": "s", "type": 1, "status": 4, "execute_count": 0,
                "create_time": 1605064271000_i64, "start_time": 1605064271000_i64, "end_time": 1605064272000_i64, "total_time": 1000,
                "step_ip_result_list": [{"bk_host_id": 101, "ip": "127.0.0.1", "bk_cloud_id": 0, "status": 9, "tag": "",
                    "exit_code": 0, "error_code": 0, "start_time": 1605064271000_i64, "end_time": 1605064272000_i64, "total_time": 1000}]}]}})
        .to_string();
        let status = decode_job_status(Protocol::V3, &raw(200, &body), local_offset()).unwrap();
        assert_eq!(status.job.job_instance_id, JobInstanceId(100));
        assert_eq!(status.job.end_time_ms, Some(1_605_064_272_000));
        let host = &status.steps[0].hosts[0];
        assert_eq!(host.host_id, Some(101));
        assert_eq!(host.exit_code, Some(0));
        assert_eq!(host.tag.as_deref(), Some(""));
        assert_eq!(host.total_time_ms, Some(1000));
    }

    #[test]
    fn rolling_batch_is_optional_and_read_leniently() {
        let status_with = |batch: Value| {
            let mut step = json!({"step_instance_id": 75, "name": "s", "type": 1, "status": 15,
                "execute_count": 0, "step_ip_result_list": []});
            if !batch.is_null() {
                step["rolling_batch"] = batch;
            }
            json!({"code": 0, "result": true, "data": {"finished": false,
                "job_instance": {"job_instance_id": 100, "status": 2},
                "step_instance_list": [step]}})
            .to_string()
        };
        let read = |batch: Value| {
            let body = status_with(batch);
            decode_job_status(Protocol::V3, &raw(200, &body), local_offset())
                .map(|s| s.steps[0].batch)
        };
        assert_eq!(
            read(json!({"current": 2, "total": 4})).ok(),
            Some(Some(crate::job_api::types::RollingBatch {
                current: 2,
                total: 4
            }))
        );
        // Absent (JOB itself), malformed or out of range: no batch, and no error.
        for batch in [
            Value::Null,
            json!("2/4"),
            json!({"current": 0, "total": 4}),
            json!({"current": 5, "total": 4}),
            json!({"current": -1, "total": 4}),
        ] {
            assert_eq!(read(batch.clone()).ok(), Some(None), "{batch}");
        }
        // v2 blocks carry it the same way.
        let v2 = json!({"code": 0, "result": true, "data": {"is_finished": false,
            "job_instance": {"job_instance_id": 1, "status": 2},
            "blocks": [{"type": 1, "step_instances": [{"step_instance_id": 2, "type": 1, "status": 2,
                "rolling_batch": {"current": 1, "total": 3}, "step_ip_status": []}]}]}})
        .to_string();
        let status = decode_job_status(Protocol::V2, &raw(200, &v2), local_offset()).unwrap();
        assert_eq!(
            status.steps[0].batch.map(|b| (b.current, b.total)),
            Some((1, 3))
        );
    }

    #[test]
    fn v4_status_with_execute_objects() {
        let body = json!({"data": {"finished": false,
            "job_instance": {"job_instance_id": 7, "name": "n", "status": 2, "create_time": 1, "bk_scope_type": "biz", "bk_scope_id": "1"},
            "step_instance_list": [{"step_instance_id": 8, "type": 2, "name": "push", "status": 2, "execute_count": 2,
                "create_time": 1, "start_time": 2, "end_time": null, "total_time": null,
                "step_execute_object_result_list": [
                    {"execute_object": {"type": 1, "resource_id": "101", "host": {"bk_host_id": 101, "ip": "10.0.0.1", "bk_cloud_id": 0}},
                     "status": 7, "tag": null, "exit_code": null, "start_time": 2, "end_time": null, "total_time": null},
                    {"execute_object": {"type": 1, "resource_id": "102"}, "status": 5}]}]}})
        .to_string();
        let status = decode_job_status(Protocol::V4, &raw(200, &body), local_offset()).unwrap();
        assert!(!status.finished);
        assert_eq!(status.job.status, RunStatus::Running);
        let step = &status.steps[0];
        assert_eq!(step.execute_count, 2);
        assert_eq!(step.hosts[0].host_id, Some(101));
        assert_eq!(
            step.hosts[0]
                .addr
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("0:10.0.0.1")
        );
        assert_eq!(
            step.hosts[1].host_id,
            Some(102),
            "resource_id names the host"
        );
        assert_eq!(step.hosts[1].addr, None);
    }
}
