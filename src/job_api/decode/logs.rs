//! Host logs ([`decode_host_logs`]): every step of a job on v2, one step on v3 and v4,
//! as [`StepLogs`].

use super::envelope::{RawResponse, unwrap_data};
use super::error::ApiError;
use crate::job_api::types::{Protocol, StepLogs};

/// Host logs: v2's `get_job_instance_log` (every step of the job, HTML decoded), v3's
/// `batch_get_job_instance_ip_log` / `get_job_instance_ip_log`, v4's
/// `batch_get_job_instance_execute_object_log` (one step).
pub fn decode_host_logs(
    protocol: Protocol,
    response: &RawResponse<'_>,
) -> Result<Vec<StepLogs>, ApiError> {
    let data = unwrap_data(response)?;
    match protocol {
        Protocol::V2 => crate::job_api::v2::decode_logs(response.status, data),
        Protocol::V3 => crate::job_api::v3::decode_logs(response.status, data).map(|s| vec![s]),
        Protocol::V4 => crate::job_api::v4::decode_logs(response.status, data).map(|s| vec![s]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::decode::test_support::raw;
    use crate::job_api::types::{LogType, StepInstanceId};
    use serde_json::json;

    #[test]
    fn v2_logs_are_html_decoded_and_flattened() {
        let body = json!({"result": true, "code": 0, "message": "", "data": [
            {"is_finished": true, "step_instance_id": 90000, "name": "build", "status": 3,
             "step_results": [
                {"ip_status": 9, "tag": "ok", "ip_logs": [
                    {"execute_count": 0, "ip": "10.0.0.1", "bk_cloud_id": 0, "exit_code": 0, "error_code": 0,
                     "total_time": 1.5, "start_time": "2018-03-15 14:39:30", "end_time": "2018-03-15 14:40:31",
                     "log_content": "&lt;BATON_VAR&gt;sha256:abc&lt;/BATON_VAR&gt;\n"}]},
                {"ip_status": 104, "tag": "", "ip_logs": [
                    {"execute_count": 0, "ip": "10.0.0.2", "bk_cloud_id": 0, "exit_code": 3, "log_content": "x &amp;&amp; y"}]}]}]})
        .to_string();
        let steps = decode_host_logs(Protocol::V2, &raw(200, &body)).unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].step_instance_id, Some(StepInstanceId(90000)));
        let hosts = &steps[0].hosts;
        assert_eq!(
            hosts[0].content.as_deref(),
            Some("<BATON_VAR>sha256:abc</BATON_VAR>\n")
        );
        assert_eq!(hosts[0].tag.as_deref(), Some("ok"));
        assert_eq!(hosts[1].status, Some(104));
        assert_eq!(hosts[1].exit_code, Some(3));
        assert_eq!(hosts[1].content.as_deref(), Some("x && y"));
    }

    #[test]
    fn v3_batch_logs_script_and_file() {
        let script = json!({"result": true, "code": 0, "data": {"job_instance_id": 100, "step_instance_id": 200, "log_type": 1,
            "script_task_logs": [{"bk_host_id": 101, "ip": "127.0.0.1", "bk_cloud_id": 0, "log_content": "a <b>\n"}]}})
        .to_string();
        let logs = decode_host_logs(Protocol::V3, &raw(200, &script)).unwrap();
        assert_eq!(logs[0].log_type, Some(LogType::Script));
        assert_eq!(
            logs[0].hosts[0].content.as_deref(),
            Some("a <b>\n"),
            "v3 text is raw"
        );
        let file = json!({"result": true, "code": 0, "data": {"job_instance_id": 100, "step_instance_id": 200, "log_type": 2,
            "file_task_logs": [{"bk_host_id": 101, "ip": "10.0.0.1", "bk_cloud_id": 0, "file_logs": [
                {"mode": 1, "src_ip": {"bk_cloud_id": 0, "ip": "10.0.0.2"}, "src_path": "/data/1.log",
                 "dest_ip": {"bk_cloud_id": 0, "ip": "10.0.0.1"}, "dest_path": "/tmp/1.log", "status": 4,
                 "log_content": "done", "size": "9 Bytes", "speed": "1 KB/s", "process": "100%"}]}]}})
        .to_string();
        let logs = decode_host_logs(Protocol::V3, &raw(200, &file)).unwrap();
        let record = &logs[0].hosts[0].file_logs[0];
        assert_eq!(record.mode, Some(1));
        assert_eq!(record.dest_path.as_deref(), Some("/tmp/1.log"));
        assert_eq!(
            record
                .src
                .as_ref()
                .and_then(|s| s.addr.as_ref())
                .map(|a| a.ip.as_str()),
            Some("10.0.0.2")
        );
        assert_eq!(record.progress.as_deref(), Some("100%"));
        let single = json!({"result": true, "code": 0, "data": {"log_type": 1, "bk_host_id": 101, "ip": "10.0.0.1", "bk_cloud_id": 0, "log_content": "hi"}}).to_string();
        let logs = decode_host_logs(Protocol::V3, &raw(200, &single)).unwrap();
        assert_eq!(logs[0].hosts[0].content.as_deref(), Some("hi"));
    }

    #[test]
    fn v4_batch_logs_doc_examples() {
        let script =
            json!({"data": {"job_instance_id": 100, "step_instance_id": 200, "log_type": 1,
            "script_step_execute_object_logs": [{"execute_object": {"type": 1, "resource_id": "1",
                "host": {"bk_host_id": 1, "ip": "127.0.0.1", "bk_cloud_id": 0}},
                "log_content": "[2018-03-15 14:39:30][PID:56875] job_start\n"}]}})
            .to_string();
        let logs = decode_host_logs(Protocol::V4, &raw(200, &script)).unwrap();
        assert_eq!(logs[0].hosts[0].host_id, Some(1));
        assert!(
            logs[0].hosts[0]
                .content
                .as_deref()
                .is_some_and(|c| c.contains("job_start"))
        );
        let file = json!({"data": {"job_instance_id": 100, "step_instance_id": 200, "log_type": 2,
            "file_step_execute_object_logs": [
                {"execute_object": {"type": 1, "resource_id": "1", "host": {"bk_host_id": 1, "ip": "127.0.0.1", "bk_cloud_id": 0}},
                 "download_log": [{"mode": 1, "src_execute_object": {"type": 1, "resource_id": "2"}, "src_path": "/data/1.log",
                    "dest_execute_object": {"type": 1, "resource_id": "1"}, "dest_path": "/tmp/1.log", "status": 4,
                    "log_content": "ok", "size": "1.0 Bytes", "speed": "0 KB/s", "process": "100%"}]},
                {"execute_object": {"type": 1, "resource_id": "2", "host": {"bk_host_id": 2, "ip": "127.0.0.2", "bk_cloud_id": 0}},
                 "upload_log": [{"mode": 0, "src_execute_object": {"type": 1, "resource_id": "2"}, "src_path": "/data/1.log",
                    "status": 4, "log_content": "up", "size": "1.0 Bytes", "speed": "0 KB/s", "process": "100%"}]}]}})
        .to_string();
        let logs = decode_host_logs(Protocol::V4, &raw(200, &file)).unwrap();
        assert_eq!(logs[0].log_type, Some(LogType::File));
        assert_eq!(logs[0].hosts.len(), 2);
        assert_eq!(
            logs[0].hosts[0].file_logs[0]
                .src
                .as_ref()
                .and_then(|s| s.host_id),
            Some(2)
        );
        assert_eq!(logs[0].hosts[1].file_logs[0].mode, Some(0));
    }
}
