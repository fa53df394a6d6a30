//! The list of job instances a scope holds ([`decode_instance_list`]), which v2 does not
//! offer.

use super::envelope::{RawResponse, unwrap_data};
use super::error::ApiError;
use super::wire::bad;
use crate::job_api::types::{InstanceList, Protocol};

/// `get_job_instance_list` (v3 `data.data`, v4 `data.job_instance_list`).
pub fn decode_instance_list(
    protocol: Protocol,
    response: &RawResponse<'_>,
) -> Result<InstanceList, ApiError> {
    let data = unwrap_data(response)?;
    match protocol {
        Protocol::V2 => Err(bad(
            response.status,
            "protocol v2 has no get_job_instance_list",
        )),
        Protocol::V3 | Protocol::V4 => {
            crate::job_api::v3::decode_instance_list(response.status, data)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::decode::test_support::raw;
    use crate::job_api::types::{JobInstanceId, RunStatus};
    use serde_json::json;

    #[test]
    fn instance_lists_v3_and_v4() {
        let v3 = json!({"result": true, "code": 0, "message": "success", "data": {"data": [
            {"bk_scope_type": "biz", "bk_scope_id": "1", "id": 100, "job_template_id": 1, "job_plan_id": 1,
             "name": "baton-web-01", "operator": "admin", "create_time": 1546272000000_i64, "start_time": 1546272000000_i64,
             "end_time": 1546272001000_i64, "total_time": 1000, "launch_mode": 2, "task_status": 3, "task_type": 1}],
            "start": 0, "length": 20, "total": 1}})
        .to_string();
        let list = decode_instance_list(Protocol::V3, &raw(200, &v3)).unwrap();
        assert_eq!(list.total, Some(1));
        let item = &list.instances[0];
        assert_eq!(item.job_instance_id, JobInstanceId(100));
        assert_eq!(item.name, "baton-web-01");
        assert_eq!(item.status, Some(RunStatus::Success));
        assert_eq!(item.task_type, Some(1));
        let v4 = json!({"data": {"job_instance_list": [{"id": 102, "name": "x", "status": 2, "type": 0, "create_time": 5}]}}).to_string();
        let list = decode_instance_list(Protocol::V4, &raw(200, &v4)).unwrap();
        assert_eq!(list.instances[0].status, Some(RunStatus::Running));
        assert_eq!(list.total, None);
    }
}
