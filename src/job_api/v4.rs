//! API gateway v4 (`/api/v4/<name>`, HTTP-status errors): the request body of
//! `fast_execute_script` exactly as seed 003 shows it (`execute_target`, boolean
//! `param_sensitive`), and the v4 shapes of status and log responses.
//!
//! v4 has no file-push or plan-run API: those steps are refused with the protocol
//! named, so the author can choose v3 for them.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::build::{self, ApiCall, BuildError, Errors};
use super::decode::{self, ApiError, nullable};
use super::hosts;
use super::request::{JobRequest, ScriptRun, Work};
use super::types::Protocol;
use super::types::{FileLog, HostLog, StepInstanceId, StepLogs};
use super::v3::{self, ExecuteObject};

const V4: Protocol = Protocol::V4;

pub(crate) fn encode(request: &JobRequest) -> Result<ApiCall, Vec<BuildError>> {
    let mut errors = Errors::default();
    match &request.work {
        Work::Script(script) => {
            let call = script_call(request, script, &mut errors);
            errors.finish(call)
        }
        Work::Push(_) => {
            errors.add(
                "push_file",
                "a file push cannot be sent with protocol v4: v4 has no file-transfer API; use protocol v3 (fast_transfer_file) or v2",
            );
            Err(errors.into_vec())
        }
        Work::Config(_) => {
            errors.add(
                "push_config",
                "a config push cannot be sent with protocol v4: v4 has no push_config_file; use protocol v3 or v2",
            );
            Err(errors.into_vec())
        }
        Work::Job(_) => {
            errors.add(
                "job",
                "a job plan cannot be started with protocol v4: v4 has no plan-run API; use protocol v3 (execute_job_plan) or v2",
            );
            Err(errors.into_vec())
        }
    }
}

fn script_call(request: &JobRequest, script: &ScriptRun, errors: &mut Errors) -> ApiCall {
    let mut body = Map::new();
    let mut pointers = v3::script_common(request, script, V4, &mut body, errors);
    let sensitive = script.sensitive.unwrap_or(false);
    // v4 renamed v3's 0/1 `is_param_sensitive` to a boolean; sent always, as in seed 003.
    body.insert("param_sensitive".into(), json!(sensitive));
    match &request.targets {
        Some(targets) => {
            hosts::check(targets, "the targets name no hosts", errors);
            body.insert("execute_target".into(), hosts::v4_execute_target(targets));
        }
        None => errors.add("targets", "no target hosts: set `targets`"),
    }
    build::sensitive_param_pointer(sensitive, &body, &mut pointers);
    let mut call = ApiCall::post(V4, "fast_execute_script", body);
    call.sensitive_pointers = pointers;
    call
}

// ---------------------------------------------------------------------------
// Responses: `batch_get_job_instance_execute_object_log`. The status answer shares
// v3's decoder.
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct LogData {
    step_instance_id: Option<u64>,
    log_type: Option<u8>,
    #[serde(default, deserialize_with = "nullable")]
    script_step_execute_object_logs: Vec<ScriptLogData>,
    #[serde(default, deserialize_with = "nullable")]
    file_step_execute_object_logs: Vec<FileObjectLogData>,
}

#[derive(Deserialize)]
struct ScriptLogData {
    execute_object: Option<ExecuteObject>,
    log_content: Option<String>,
}

#[derive(Deserialize)]
struct FileObjectLogData {
    execute_object: Option<ExecuteObject>,
    #[serde(default, deserialize_with = "nullable")]
    upload_log: Vec<FileLogData>,
    #[serde(default, deserialize_with = "nullable")]
    download_log: Vec<FileLogData>,
}

#[derive(Deserialize)]
struct FileLogData {
    mode: Option<u8>,
    src_execute_object: Option<ExecuteObject>,
    src_path: Option<String>,
    dest_execute_object: Option<ExecuteObject>,
    dest_path: Option<String>,
    status: Option<u8>,
    log_content: Option<String>,
    size: Option<String>,
    speed: Option<String>,
    process: Option<String>,
}

fn host_log(
    object: Option<ExecuteObject>,
    content: Option<String>,
    files: Vec<FileLog>,
) -> HostLog {
    let host = object.map(ExecuteObject::host_ref);
    HostLog {
        host: host.as_ref().and_then(|h| h.addr.clone()),
        host_id: host.and_then(|h| h.host_id),
        execute_count: None,
        status: None,
        tag: None,
        exit_code: None,
        content,
        file_logs: files,
    }
}

pub(crate) fn decode_logs(http: u16, data: Value) -> Result<StepLogs, ApiError> {
    let data: LogData = decode::from_data(http, data, "host logs")?;
    let mut hosts: Vec<HostLog> = data
        .script_step_execute_object_logs
        .into_iter()
        .map(|log| host_log(log.execute_object, log.log_content, Vec::new()))
        .collect();
    for object in data.file_step_execute_object_logs {
        let files = object
            .upload_log
            .into_iter()
            .chain(object.download_log)
            .map(|log| FileLog {
                mode: log.mode,
                src: log.src_execute_object.map(ExecuteObject::host_ref),
                src_path: log.src_path,
                dest: log.dest_execute_object.map(ExecuteObject::host_ref),
                dest_path: log.dest_path,
                status: log.status,
                content: log.log_content,
                size: log.size,
                speed: log.speed,
                progress: log.process,
            })
            .collect();
        hosts.push(host_log(object.execute_object, None, files));
    }
    Ok(StepLogs {
        step_instance_id: data.step_instance_id.map(StepInstanceId),
        name: None,
        log_type: v3::log_type(data.log_type),
        hosts,
    })
}
