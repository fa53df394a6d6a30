//! How job instances look on the wire: v2 status (`is_finished`, `blocks`, string times,
//! float-second `total_time`), v3 status (`finished`, `step_instance_list`, epoch ms,
//! hosts only with `return_ip_result`), v4 status (`step_execute_object_result_list`),
//! and the host log shapes of each generation. Rolling steps carry a non-standard
//! `rolling_batch: {current, total}` (1-based) so batch progress is visible.

use serde_json::{Value, json};

use crate::emulator::model::host_result::FileLogEntry;
use crate::emulator::model::inventory::Inventory;
use crate::emulator::model::job_error::JobError;
use crate::emulator::model::jobs::{
    HostRun, JobInstance, JobState, StepInstance, StepKind, now_ms,
};
use crate::job_api::types::{HostAddr, RunStatus, host_status};

/// v2 time: `yyyy-MM-dd HH:mm:ss` in local time, or null.
pub fn v2_time(ms: Option<i64>) -> Value {
    match ms.and_then(chrono::DateTime::from_timestamp_millis) {
        Some(t) => json!(
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        ),
        None => Value::Null,
    }
}

/// Elapsed ms: end − start, or now − start while running.
pub fn total_ms(start: Option<i64>, end: Option<i64>) -> Option<i64> {
    let start = start?;
    Some((end.unwrap_or_else(now_ms) - start).max(0))
}

fn v2_total(start: Option<i64>, end: Option<i64>) -> Value {
    match total_ms(start, end) {
        Some(ms) => json!(ms as f64 / 1000.0),
        None => Value::Null,
    }
}

/// The per-host `error_code` of the v3 docs: 0 done, 115 running, 126 terminated.
fn error_code(status: u16) -> i64 {
    match status {
        host_status::WAITING | host_status::RUNNING => 115,
        host_status::TERMINATE_SUCCESS | host_status::SCRIPT_TERMINATED => 126,
        host_status::SUCCESS | host_status::LAST_SUCCESS => 0,
        _ => -1,
    }
}

/// File steps list their download side only; the rows are the step's host runs.
fn host_rows(step: &StepInstance) -> &[HostRun] {
    &step.hosts
}

fn rolling_batch(step: &StepInstance) -> Option<Value> {
    step.is_rolling()
        .then(|| json!({"current": step.batch + 1, "total": step.batches.len()}))
}

/// v2 `get_job_instance_status` data.
pub fn v2_status(job: &JobInstance, state: &JobState) -> Value {
    let scope = &job.scopes[0];
    let current = state.steps.get(state.current).map(|s| s.id);
    let blocks: Vec<Value> = state
        .steps
        .iter()
        .map(|step| {
            let hosts: Vec<Value> = host_rows(step)
                .iter()
                .map(|h| json!({"ip": h.host.addr.ip, "bk_cloud_id": h.host.addr.cloud_id, "status": h.status}))
                .collect();
            let mut value = json!({
                "step_instance_id": step.id, "step_id": step.step_id, "name": step.name,
                "type": step.type_code(), "operator": state.operator, "status": step.status.code(),
                "execute_count": step.execute_count, "create_time": v2_time(Some(step.create_ms)),
                "start_time": v2_time(step.start_ms), "end_time": v2_time(step.end_ms),
                "total_time": v2_total(step.start_ms, step.end_ms), "pause": null,
                "step_ip_status": hosts,
            });
            if let Some(batch) = rolling_batch(step) {
                value["rolling_batch"] = batch;
            }
            json!({"type": step.type_code(), "step_instances": [value]})
        })
        .collect();
    json!({
        "is_finished": state.status.is_finished(),
        "job_instance": {
            "job_instance_id": job.id, "bk_biz_id": scope.biz_id(), "bk_scope_type": scope.kind,
            "bk_scope_id": scope.id, "name": state.name, "operator": state.operator,
            "bk_job_id": state.plan_id, "start_way": 2, "status": state.status.code(),
            "create_time": v2_time(Some(state.create_ms)), "start_time": v2_time(state.start_ms),
            "end_time": v2_time(state.end_ms), "total_time": v2_total(state.start_ms, state.end_ms),
            "current_step_instance_id": current,
        },
        "blocks": blocks,
    })
}

fn job_instance_v3(job: &JobInstance, state: &JobState) -> Value {
    let scope = &job.scopes[0];
    json!({
        "job_instance_id": job.id, "bk_scope_type": scope.kind, "bk_scope_id": scope.id,
        "name": state.name, "create_time": state.create_ms, "status": state.status.code(),
        "start_time": state.start_ms, "end_time": state.end_ms,
        "total_time": total_ms(state.start_ms, state.end_ms),
        "current_step_instance_id": state.steps.get(state.current).map(|s| s.id),
    })
}

fn step_v3(step: &StepInstance) -> Value {
    let mut value = json!({
        "step_instance_id": step.id, "name": step.name, "type": step.type_code(),
        "status": step.status.code(), "execute_count": step.execute_count,
        "create_time": step.create_ms, "start_time": step.start_ms, "end_time": step.end_ms,
        "total_time": total_ms(step.start_ms, step.end_ms),
    });
    if let Some(batch) = rolling_batch(step) {
        value["rolling_batch"] = batch;
    }
    value
}

fn host_result_v3(step: &StepInstance, h: &HostRun) -> Value {
    let mut value = json!({
        "bk_host_id": h.host.host_id, "ip": h.host.addr.ip, "bk_cloud_id": h.host.addr.cloud_id,
        "status": h.status, "error_code": error_code(h.status), "start_time": h.start_ms,
        "end_time": h.end_ms, "total_time": total_ms(h.start_ms, h.end_ms),
    });
    if matches!(step.kind, StepKind::Script(_)) {
        value["tag"] = json!(h.tag);
        value["exit_code"] = json!(h.exit_code.unwrap_or(0));
    }
    value
}

/// v3 `get_job_instance_status` data.
pub fn v3_status(job: &JobInstance, state: &JobState, with_hosts: bool) -> Value {
    let steps: Vec<Value> = state
        .steps
        .iter()
        .map(|step| {
            let mut value = step_v3(step);
            if with_hosts {
                value["step_ip_result_list"] = host_rows(step)
                    .iter()
                    .map(|h| host_result_v3(step, h))
                    .collect();
            }
            value
        })
        .collect();
    json!({
        "finished": state.status.is_finished(),
        "job_instance": job_instance_v3(job, state),
        "step_instance_list": steps,
    })
}

/// A v4 `execute_object`: a host (type 1), or a container (type 2) for the hosts that
/// stand for the world's containers.
pub fn execute_object(inventory: &Inventory, host_id: u64, addr: &HostAddr) -> Value {
    if let Some(c) = inventory.container(host_id) {
        let mut container = json!({
            "id": c.id, "container_id": c.container_id, "name": c.name,
        });
        if let Some(node) = c.node_host_id {
            container["node_host_id"] = json!(node);
        }
        return json!({"type": 2, "resource_id": c.id.to_string(), "container": container});
    }
    json!({
        "type": 1, "resource_id": host_id.to_string(),
        "host": {"bk_host_id": host_id, "ip": addr.ip, "bk_cloud_id": addr.cloud_id},
    })
}

/// v4 `get_job_instance_status` data (`return_execute_object_result`; the older
/// `return_ip_result` flag gives the v3-style list too).
pub fn v4_status(
    inventory: &Inventory,
    job: &JobInstance,
    state: &JobState,
    objects: bool,
    ips: bool,
) -> Value {
    let mut data = v3_status(job, state, ips);
    if objects && let Some(steps) = data["step_instance_list"].as_array_mut() {
        for (value, step) in steps.iter_mut().zip(&state.steps) {
            value["step_execute_object_result_list"] = host_rows(step)
                .iter()
                .map(|h| {
                    let mut row = host_result_v3(step, h);
                    if let Some(map) = row.as_object_mut() {
                        for key in ["bk_host_id", "ip", "bk_cloud_id"] {
                            map.remove(key);
                        }
                    }
                    row["execute_object"] = execute_object(inventory, h.host.host_id, &h.host.addr);
                    row
                })
                .collect();
        }
    }
    data
}

/// Minimal HTML encoding, as JOB's `Utils.htmlEncode` does for v2 logs.
pub fn html_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The log text of a host run: script output, or the file log lines.
pub fn log_text(run: &HostRun) -> String {
    if run.file_logs.is_empty() {
        return run.log.clone();
    }
    let mut text = run.log.clone();
    for entry in &run.file_logs {
        text.push_str(&entry.log_content);
        if !entry.log_content.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

/// v2 `get_job_instance_log` data: one element per step, hosts grouped by status/tag.
pub fn v2_log(state: &JobState) -> Value {
    let steps: Vec<Value> = state
        .steps
        .iter()
        .map(|step| {
            let mut groups: Vec<((u16, String), Vec<Value>)> = Vec::new();
            for h in host_rows(step) {
                let key = (h.status, h.tag.clone());
                let log = json!({
                    "execute_count": step.execute_count, "ip": h.host.addr.ip,
                    "bk_cloud_id": h.host.addr.cloud_id, "error_code": error_code(h.status),
                    "exit_code": h.exit_code.unwrap_or(0), "start_time": v2_time(h.start_ms),
                    "end_time": v2_time(h.end_ms), "total_time": v2_total(h.start_ms, h.end_ms),
                    "log_content": html_encode(&log_text(h)),
                });
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, logs)) => logs.push(log),
                    None => groups.push((key, vec![log])),
                }
            }
            let results: Vec<Value> = groups
                .into_iter()
                .map(|((status, tag), logs)| json!({"ip_status": status, "tag": tag, "ip_logs": logs}))
                .collect();
            json!({
                "is_finished": step.status.is_finished(), "step_instance_id": step.id,
                "name": step.name, "status": step.status.code(), "step_results": results,
            })
        })
        .collect();
    json!(steps)
}

fn file_log_v3(inventory: &Inventory, entry: &FileLogEntry) -> Value {
    let host_json = |addr: &HostAddr| {
        json!({
            "bk_host_id": inventory.lookup(addr).map(|h| h.host_id),
            "bk_cloud_id": addr.cloud_id, "ip": addr.ip,
        })
    };
    let mut value = json!({
        "mode": entry.mode, "src_ip": host_json(&entry.src_host), "src_path": entry.src_path,
        "status": entry.status, "log_content": entry.log_content, "size": entry.size,
        "speed": entry.speed, "process": entry.process,
    });
    if let Some(dest) = &entry.dest_host {
        value["dest_ip"] = host_json(dest);
    }
    if let Some(path) = &entry.dest_path {
        value["dest_path"] = json!(path);
    }
    value
}

/// File log entries about `addr` in a step: its download entries as a target, and the
/// upload entries (mode 0) where it is the source.
pub fn file_entries<'a>(step: &'a StepInstance, addr: &HostAddr) -> Vec<&'a FileLogEntry> {
    let mut out = Vec::new();
    for run in &step.hosts {
        for entry in &run.file_logs {
            let as_target = &run.host.addr == addr && entry.mode == 1;
            let as_source = &entry.src_host == addr && entry.mode == 0;
            if (as_target || as_source) && !out.contains(&entry) {
                out.push(entry);
            }
        }
    }
    out
}

/// One host's v3 log object.
pub fn v3_host_log(inventory: &Inventory, step: &StepInstance, addr: &HostAddr) -> Value {
    let host_id = inventory.lookup(addr).map(|h| h.host_id);
    let base = json!({"bk_host_id": host_id, "ip": addr.ip, "bk_cloud_id": addr.cloud_id});
    let mut value = base;
    match step.kind {
        StepKind::File(_) => {
            value["log_type"] = json!(2);
            value["file_logs"] = file_entries(step, addr)
                .into_iter()
                .map(|e| file_log_v3(inventory, e))
                .collect();
        }
        _ => {
            value["log_type"] = json!(1);
            let text = step
                .hosts
                .iter()
                .find(|h| &h.host.addr == addr)
                .map(|h| h.log.clone())
                .unwrap_or_default();
            value["log_content"] = json!(text);
        }
    }
    value
}

/// One host's v4 log object.
pub fn v4_host_log(inventory: &Inventory, step: &StepInstance, addr: &HostAddr) -> Value {
    let host_id = inventory.lookup(addr).map(|h| h.host_id).unwrap_or(0);
    let object = |a: &HostAddr| {
        let id = inventory.lookup(a).map(|h| h.host_id).unwrap_or(0);
        execute_object(inventory, id, a)
    };
    let mut value = json!({"execute_object": execute_object(inventory, host_id, addr)});
    match step.kind {
        StepKind::File(_) => {
            let mut upload = Vec::new();
            let mut download = Vec::new();
            for e in file_entries(step, addr) {
                let mut row = json!({
                    "mode": e.mode, "src_execute_object": object(&e.src_host), "src_path": e.src_path,
                    "status": e.status, "log_content": e.log_content, "size": e.size,
                    "speed": e.speed, "process": e.process,
                });
                if let Some(dest) = &e.dest_host {
                    row["dest_execute_object"] = object(dest);
                }
                if let Some(path) = &e.dest_path {
                    row["dest_path"] = json!(path);
                }
                if e.mode == 0 {
                    upload.push(row);
                } else {
                    download.push(row);
                }
            }
            if !upload.is_empty() {
                value["upload_log"] = json!(upload);
            }
            if !download.is_empty() {
                value["download_log"] = json!(download);
            }
        }
        _ => {
            let text = step
                .hosts
                .iter()
                .find(|h| &h.host.addr == addr)
                .map(|h| h.log.clone())
                .unwrap_or_default();
            value["log_content"] = json!(text);
        }
    }
    value
}

/// The step with `id`, or 1244007.
pub fn step_by_id(state: &JobState, id: i64) -> Result<&StepInstance, JobError> {
    state
        .steps
        .iter()
        .find(|s| s.id as i64 == id)
        .ok_or_else(JobError::step_not_found)
}

/// Whether a status means the job may be listed as finished.
pub fn is_finished(status: RunStatus) -> bool {
    status.is_finished()
}
