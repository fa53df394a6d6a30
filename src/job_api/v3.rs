//! API gateway v3 (`/api/v3/<name>`, `X-Bkapi-Authorization` header): the request
//! bodies of `fast_execute_script`, `fast_transfer_file` and `execute_job_plan`, and
//! the v3 shapes of status, log and instance-list responses.
//!
//! v3 has scopes, account ids, host ids, topology nodes, rolling (over targets and,
//! for pushes, over source files), `start_task` and the Windows options; it has no
//! job-plan step overrides and no cross-business job. See the table in
//! [`super::build`].

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::build::{self, ApiCall, BuildError, Errors, reject_job_step_fields};
use super::decode::{self, ApiError, nullable};
use super::hosts;
use super::request::{
    FilePush, FileType, HostPassword, JobPlanRun, JobRequest, Rolling, ScriptId, ScriptRun,
    TransferMode, Work,
};
use super::types::{
    FileLog, HostLog, HostRef, HostResult, InstanceList, InstanceSummary, JobInstanceId,
    JobInstanceInfo, JobStatus, LogType, Protocol, StepInstanceId, StepLogs, StepStatus,
};

const V3: Protocol = Protocol::V3;

pub(crate) fn encode(request: &JobRequest) -> Result<ApiCall, Vec<BuildError>> {
    let mut errors = Errors::default();
    let call = match &request.work {
        Work::Script(script) => script_call(request, script, &mut errors),
        Work::Push(push) => push_call(request, push, &mut errors),
        Work::Job(job) => job_call(request, job, &mut errors),
        Work::Config(push) => super::config_push::v3_call(request, push, &mut errors),
    };
    errors.finish(call)
}

/// The target server object of a script or push; such a step needs some hosts.
pub(crate) fn target_server(request: &JobRequest, errors: &mut Errors) -> Option<Value> {
    let Some(targets) = &request.targets else {
        errors.add("targets", "no target hosts: set `targets`");
        return None;
    };
    hosts::check(targets, "the targets name no hosts", errors);
    Some(hosts::v3_server(targets, "targets", errors))
}

/// The gateway's script id is the script's string id. An integer is refused: on v2 an
/// integer `script_id` is a script *version* id, so carrying it over unchanged would
/// silently run a different script.
pub(crate) fn gateway_script_id(
    id: &ScriptId,
    protocol: Protocol,
    errors: &mut Errors,
) -> Option<String> {
    match id {
        ScriptId::Text(text) => Some(text.clone()),
        ScriptId::Number(n) => {
            errors.add(
                "script.script_id",
                format!(
                    "an integer script_id ({n}) cannot be sent with protocol {protocol}: there script_id is the \
                     script's string id, while v2's integer script_id is a version id; write \
                     `script_version_id: {n}` for that version, or quote the script's id"
                ),
            );
            None
        }
    }
}

/// `host_password_list`; every password is a sensitive pointer.
pub(crate) fn host_passwords(
    passwords: &[HostPassword],
    body: &mut Map<String, Value>,
    pointers: &mut Vec<String>,
    errors: &mut Errors,
) {
    if passwords.is_empty() {
        return;
    }
    let list: Vec<Value> = passwords
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut object = Map::new();
            if let Some(id) = p.host_id {
                object.insert("host_id".into(), json!(id));
            }
            if let Some(text) = &p.ip {
                match super::types::HostAddr::parse(text) {
                    Some(addr) => {
                        object.insert("bk_cloud_id".into(), json!(addr.cloud_id));
                        object.insert("ip".into(), json!(addr.ip));
                    }
                    None => errors.add(
                        format!("script.host_passwords[{i}].ip"),
                        format!("`{text}` is not a host: write `cloud:ip` or an IPv4 address"),
                    ),
                }
            }
            if p.host_id.is_none() && p.ip.is_none() {
                errors.add(
                    format!("script.host_passwords[{i}]"),
                    "a host password needs `host_id` or `ip`",
                );
            }
            object.insert("encrypted_password".into(), json!(p.encrypted_password));
            pointers.push(format!("/host_password_list/{i}/encrypted_password"));
            Value::Object(object)
        })
        .collect();
    body.insert("host_password_list".into(), Value::Array(list));
}

/// `rolling_config` over the targets: `{expression, mode}`.
pub(crate) fn target_rolling(rolling: &Rolling, errors: &mut Errors) -> Value {
    if rolling.files.is_some() {
        errors.add(
            "rolling.files",
            "only file pushes roll over source files; a script rolls over its targets (`expression`)",
        );
    }
    let mut config = Map::new();
    match &rolling.expression {
        Some(expression) => {
            config.insert("expression".into(), json!(expression));
        }
        None => errors.add(
            "rolling.expression",
            "rolling over targets needs an `expression` (e.g. `25%`)",
        ),
    }
    config.insert("mode".into(), json!(build::rolling_mode(rolling.mode)));
    Value::Object(config)
}

/// Script fields v3 and v4 share, written into `body`. Returns the sensitive pointers.
pub(crate) fn script_common(
    request: &JobRequest,
    script: &ScriptRun,
    protocol: Protocol,
    body: &mut Map<String, Value>,
    errors: &mut Errors,
) -> Vec<String> {
    let mut pointers = Vec::new();
    build::write_gateway_scope(request.scope, body, errors);
    if let Some(version) = script.script_version_id {
        body.insert("script_version_id".into(), json!(version));
    }
    let script_id = script
        .script_id
        .as_ref()
        .and_then(|id| gateway_script_id(id, protocol, errors));
    if let Some(id) = &script_id {
        body.insert("script_id".into(), json!(id));
    }
    let content = build::script_content(
        script.content.as_ref(),
        script.file.as_ref(),
        "script",
        errors,
    );
    if let Some(content) = &content {
        body.insert("script_content".into(), json!(content));
    }
    let has_id = script.script_id.is_some() || script.script_version_id.is_some();
    build::require_script_source(content.is_some() || script.file.is_some() || has_id, errors);
    build::require_language(content.is_some(), has_id, script.language, errors);
    if let Some(language) = script.language {
        body.insert(
            "script_language".into(),
            json!(build::language_code(language)),
        );
    }
    if let Some(params) = &script.params {
        body.insert("script_param".into(), json!(build::base64(params)));
    }
    if let Some(timeout) = request.timeout {
        body.insert("timeout".into(), json!(timeout.seconds));
    }
    match &request.account {
        Some(account) => build::write_gateway_account(account, body),
        None => build::missing_account(errors),
    }
    if let Some(interpreter) = &script.windows_interpreter {
        body.insert("windows_interpreter".into(), json!(interpreter));
    }
    if let Some(rolling) = &request.rolling {
        body.insert("rolling_config".into(), target_rolling(rolling, errors));
    }
    host_passwords(&script.host_passwords, body, &mut pointers, errors);
    if let Some(start) = request.start_task {
        body.insert("start_task".into(), json!(start));
    }
    if let Some(name) = &request.task_name {
        body.insert("task_name".into(), json!(name));
    }
    pointers
}

fn script_call(request: &JobRequest, script: &ScriptRun, errors: &mut Errors) -> ApiCall {
    let mut body = Map::new();
    let mut pointers = script_common(request, script, V3, &mut body, errors);
    let sensitive = script.sensitive.unwrap_or(false);
    body.insert("is_param_sensitive".into(), json!(u8::from(sensitive)));
    if let Some(server) = target_server(request, errors) {
        body.insert("target_server".into(), server);
    }
    build::sensitive_param_pointer(sensitive, &body, &mut pointers);
    let mut call = ApiCall::post(V3, "fast_execute_script", body);
    call.sensitive_pointers = pointers;
    call
}

fn push_call(request: &JobRequest, push: &FilePush, errors: &mut Errors) -> ApiCall {
    let mut body = Map::new();
    build::write_gateway_scope(request.scope, &mut body, errors);
    let step_account = request.account.as_ref();
    match step_account {
        Some(account) => build::write_gateway_account(account, &mut body),
        None => build::missing_account(errors),
    }
    body.insert("file_target_path".into(), json!(push.target_path));
    if let Some(name) = &push.target_name {
        body.insert("file_target_name".into(), json!(name));
    }
    let mut all_server_files = true;
    let sources: Vec<Value> = push
        .sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            let prefix = format!("push_file.sources[{i}]");
            let file_type = source.file_type.unwrap_or(FileType::Server);
            all_server_files &= file_type == FileType::Server;
            let mut object = Map::new();
            object.insert("file_list".into(), json!(source.files));
            if let Some(t) = source.file_type {
                let code = match t {
                    FileType::Server => 1,
                    FileType::Local => 2,
                    FileType::ThirdParty => 3,
                };
                object.insert("file_type".into(), json!(code));
            }
            let account = source.account.as_ref().or(step_account);
            match (file_type, account) {
                (_, Some(account)) if source.account.is_some() || file_type == FileType::Server => {
                    let mut account_object = Map::new();
                    if let Some(id) = account.id {
                        account_object.insert("id".into(), json!(id));
                    }
                    if let Some(alias) = &account.alias {
                        account_object.insert("alias".into(), json!(alias));
                    }
                    object.insert("account".into(), Value::Object(account_object));
                }
                (FileType::Server, None) => errors.add(
                    format!("{prefix}.account"),
                    "no account to read the source files with: set it on the source or the step",
                ),
                _ => {}
            }
            match (&source.from, file_type) {
                (Some(from), FileType::Server) => {
                    hosts::check(from, "the source names no hosts", errors);
                    object.insert("server".into(), hosts::v3_server(from, &from.field, errors));
                }
                (None, FileType::Server) => errors.add(
                    format!("{prefix}.from"),
                    "a server file source needs `from` (the hosts the files are on)",
                ),
                (Some(_), _) => errors.add(
                    format!("{prefix}.from"),
                    "only server files come from hosts; local and third-party sources take no `from`",
                ),
                (None, _) => {}
            }
            if source.file_source_id.is_some() || source.file_source_code.is_some() {
                if file_type != FileType::ThirdParty {
                    errors.add(
                        format!("{prefix}.file_source_id"),
                        "file_source_id/file_source_code name a third-party file source: set `file_type: third_party`",
                    );
                }
                if let Some(id) = source.file_source_id {
                    object.insert("file_source_id".into(), json!(id));
                }
                if let Some(code) = &source.file_source_code {
                    object.insert("file_source_code".into(), json!(code));
                }
            } else if file_type == FileType::ThirdParty {
                errors.add(
                    format!("{prefix}.file_source_code"),
                    "a third-party source needs `file_source_id` or `file_source_code`",
                );
            }
            Value::Object(object)
        })
        .collect();
    if sources.is_empty() {
        errors.add("push_file.sources", "no source files");
    }
    body.insert("file_source_list".into(), Value::Array(sources));
    if let Some(mode) = push.transfer_mode {
        let code = match mode {
            TransferMode::Strict => 1,
            TransferMode::Force => 2,
        };
        body.insert("transfer_mode".into(), json!(code));
    }
    if let Some(timeout) = request.timeout {
        body.insert("timeout".into(), json!(timeout.seconds));
    }
    if let Some(limit) = push.upload_speed_limit {
        body.insert("upload_speed_limit".into(), json!(limit));
    }
    if let Some(limit) = push.download_speed_limit {
        body.insert("download_speed_limit".into(), json!(limit));
    }
    if let Some(server) = target_server(request, errors) {
        body.insert("target_server".into(), server);
    }
    if let Some(rolling) = &request.rolling {
        let config = match &rolling.files {
            Some(files) => {
                // Source-file rolling (type 2) cannot be combined with target rolling
                // and accepts only server files (JOB 1244035).
                if rolling.expression.is_some() {
                    errors.add(
                        "rolling.expression",
                        "JOB cannot roll over targets and source files at once: set `expression` or `files`, not both",
                    );
                }
                if !all_server_files {
                    errors.add(
                        "rolling.files",
                        "rolling over source files works only when every source is a server file",
                    );
                }
                let mut file_source = Map::new();
                if let Some(n) = files.max_hosts_per_batch {
                    file_source.insert("max_execute_object_num_in_batch".into(), json!(n));
                }
                if let Some(n) = files.max_files_per_host {
                    file_source.insert("max_file_num_of_single_execute_object".into(), json!(n));
                }
                json!({
                    "type": 2,
                    "mode": build::rolling_mode(rolling.mode),
                    "file_source": Value::Object(file_source),
                })
            }
            None => target_rolling(rolling, errors),
        };
        body.insert("rolling_config".into(), config);
    }
    if let Some(start) = request.start_task {
        body.insert("start_task".into(), json!(start));
    }
    if let Some(name) = &request.task_name {
        body.insert("task_name".into(), json!(name));
    }
    ApiCall::post(V3, "fast_transfer_file", body)
}

fn job_call(request: &JobRequest, job: &JobPlanRun, errors: &mut Errors) -> ApiCall {
    const API: &str = "execute_job_plan";
    reject_job_step_fields(request, errors);
    let mut body = Map::new();
    build::write_gateway_scope(request.scope, &mut body, errors);
    body.insert("job_plan_id".into(), json!(job.plan_id));
    if !job.vars.is_empty() {
        let vars = build::global_vars(job, errors, |set, field, object, errors| {
            object.insert("server".into(), hosts::v3_server(set, field, errors));
        });
        body.insert("global_var_list".into(), Value::Array(vars));
    }
    if !job.overrides.is_empty() {
        errors.unsupported(
            "job.overrides",
            V3,
            API,
            "v3 runs a job plan as saved; change the plan in JOB, pass values through `job.vars`, or use protocol v2",
        );
    }
    if job.source_biz.is_some() {
        errors.unsupported(
            "job.source_biz",
            V3,
            API,
            "cross-business jobs exist only on v2 (execute_platform_job)",
        );
    }
    if job.target_biz.is_some() {
        errors.unsupported(
            "job.target_biz",
            V3,
            API,
            "cross-business jobs exist only on v2 (execute_platform_job)",
        );
    }
    if let Some(start) = request.start_task {
        body.insert("start_task".into(), json!(start));
    }
    ApiCall::post(V3, API, body)
}

// ---------------------------------------------------------------------------
// Responses: gateway times are epoch ms and durations ms. v4's status answer has the
// same shape with per-host results under other names, so it is decoded here too.
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct StatusData {
    finished: bool,
    job_instance: JobInstanceData,
    #[serde(default, deserialize_with = "nullable")]
    step_instance_list: Vec<StepData>,
}

#[derive(Deserialize)]
struct JobInstanceData {
    job_instance_id: u64,
    name: Option<String>,
    status: u8,
    create_time: Option<i64>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    total_time: Option<f64>,
}

#[derive(Deserialize)]
struct StepData {
    step_instance_id: u64,
    name: Option<String>,
    #[serde(rename = "type")]
    step_type: Option<u8>,
    status: u8,
    execute_count: Option<u32>,
    create_time: Option<i64>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    total_time: Option<f64>,
    /// The emulator's non-standard rolling batch (read leniently).
    #[serde(default)]
    rolling_batch: Option<Value>,
    /// v3 (and one v4 doc revision).
    #[serde(default, deserialize_with = "nullable")]
    step_ip_result_list: Vec<HostResultData>,
    /// v4.
    #[serde(default, deserialize_with = "nullable")]
    step_execute_object_result_list: Vec<HostResultData>,
    /// v4, another doc revision.
    #[serde(default, deserialize_with = "nullable")]
    execute_object_result_list: Vec<HostResultData>,
}

/// One host's result: v3 puts the host fields inline, v4 in `execute_object`.
#[derive(Deserialize)]
struct HostResultData {
    bk_host_id: Option<u64>,
    ip: Option<String>,
    bk_cloud_id: Option<u64>,
    execute_object: Option<ExecuteObject>,
    status: u16,
    tag: Option<String>,
    exit_code: Option<i32>,
    error_code: Option<i32>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    total_time: Option<f64>,
}

/// v4's execute object (a host, or a container, which baton does not target).
#[derive(Deserialize)]
pub(crate) struct ExecuteObject {
    #[serde(rename = "type")]
    kind: Option<u8>,
    resource_id: Option<String>,
    host: Option<IpObject>,
}

/// `{bk_host_id?, bk_cloud_id, ip}` as the gateway writes hosts.
#[derive(Deserialize)]
pub(crate) struct IpObject {
    bk_host_id: Option<u64>,
    bk_cloud_id: Option<u64>,
    ip: Option<String>,
}

impl IpObject {
    pub(crate) fn host_ref(self) -> HostRef {
        HostRef {
            host_id: self.bk_host_id,
            addr: decode::addr(self.ip, self.bk_cloud_id),
        }
    }
}

impl ExecuteObject {
    /// The host it names; a host's `resource_id` is its `bk_host_id`.
    pub(crate) fn host_ref(self) -> HostRef {
        let from_resource = match self.kind {
            Some(1) | None => self.resource_id.as_deref().and_then(|r| r.parse().ok()),
            Some(_) => None,
        };
        match self.host {
            Some(host) => {
                let mut host = host.host_ref();
                host.host_id = host.host_id.or(from_resource);
                host
            }
            None => HostRef {
                host_id: from_resource,
                addr: None,
            },
        }
    }
}

pub(crate) fn decode_status(http: u16, data: Value) -> Result<JobStatus, ApiError> {
    let data: StatusData = decode::from_data(http, data, "job status")?;
    let job = data.job_instance;
    let mut steps = Vec::new();
    for step in data.step_instance_list {
        let results = step
            .step_ip_result_list
            .into_iter()
            .chain(step.step_execute_object_result_list)
            .chain(step.execute_object_result_list);
        steps.push(StepStatus {
            step_instance_id: StepInstanceId(step.step_instance_id),
            name: step.name,
            step_type: step.step_type,
            status: decode::run_status(http, step.status)?,
            execute_count: step.execute_count.unwrap_or(0),
            create_time_ms: step.create_time,
            start_time_ms: step.start_time,
            end_time_ms: step.end_time,
            total_time_ms: decode::millis(step.total_time),
            batch: decode::rolling_batch(step.rolling_batch.as_ref()),
            hosts: results
                .map(|r| {
                    let inline = HostRef {
                        host_id: r.bk_host_id,
                        addr: decode::addr(r.ip, r.bk_cloud_id),
                    };
                    let host = match r.execute_object {
                        Some(object) => object.host_ref(),
                        None => inline,
                    };
                    HostResult {
                        addr: host.addr,
                        host_id: host.host_id,
                        status: r.status,
                        exit_code: r.exit_code.map(i64::from),
                        error_code: r.error_code,
                        tag: r.tag,
                        start_time_ms: r.start_time,
                        end_time_ms: r.end_time,
                        total_time_ms: decode::millis(r.total_time),
                    }
                })
                .collect(),
        });
    }
    Ok(JobStatus {
        finished: data.finished,
        job: JobInstanceInfo {
            job_instance_id: JobInstanceId(job.job_instance_id),
            name: job.name,
            status: decode::run_status(http, job.status)?,
            create_time_ms: job.create_time,
            start_time_ms: job.start_time,
            end_time_ms: job.end_time,
            total_time_ms: decode::millis(job.total_time),
        },
        steps,
    })
}

/// `batch_get_job_instance_ip_log` (lists) or `get_job_instance_ip_log` (one host
/// inline): both decode here.
#[derive(Deserialize)]
struct LogData {
    step_instance_id: Option<u64>,
    log_type: Option<u8>,
    #[serde(default, deserialize_with = "nullable")]
    script_task_logs: Vec<HostLogData>,
    #[serde(default, deserialize_with = "nullable")]
    file_task_logs: Vec<HostLogData>,
    bk_host_id: Option<u64>,
    ip: Option<String>,
    bk_cloud_id: Option<u64>,
    log_content: Option<String>,
    file_logs: Option<Vec<FileLogData>>,
}

#[derive(Deserialize)]
struct HostLogData {
    bk_host_id: Option<u64>,
    ip: Option<String>,
    bk_cloud_id: Option<u64>,
    log_content: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    file_logs: Vec<FileLogData>,
}

#[derive(Deserialize)]
struct FileLogData {
    mode: Option<u8>,
    src_ip: Option<IpObject>,
    src_path: Option<String>,
    dest_ip: Option<IpObject>,
    dest_path: Option<String>,
    status: Option<u8>,
    log_content: Option<String>,
    size: Option<String>,
    speed: Option<String>,
    process: Option<String>,
}

pub(crate) fn log_type(code: Option<u8>) -> Option<LogType> {
    match code {
        Some(1) => Some(LogType::Script),
        Some(2) => Some(LogType::File),
        _ => None,
    }
}

fn file_log(log: FileLogData) -> FileLog {
    FileLog {
        mode: log.mode,
        src: log.src_ip.map(IpObject::host_ref),
        src_path: log.src_path,
        dest: log.dest_ip.map(IpObject::host_ref),
        dest_path: log.dest_path,
        status: log.status,
        content: log.log_content,
        size: log.size,
        speed: log.speed,
        progress: log.process,
    }
}

fn host_log(log: HostLogData) -> HostLog {
    HostLog {
        host: decode::addr(log.ip, log.bk_cloud_id),
        host_id: log.bk_host_id,
        execute_count: None,
        status: None,
        tag: None,
        exit_code: None,
        content: log.log_content,
        file_logs: log.file_logs.into_iter().map(file_log).collect(),
    }
}

pub(crate) fn decode_logs(http: u16, data: Value) -> Result<StepLogs, ApiError> {
    let data: LogData = decode::from_data(http, data, "host logs")?;
    let mut hosts: Vec<HostLog> = data
        .script_task_logs
        .into_iter()
        .chain(data.file_task_logs)
        .map(host_log)
        .collect();
    if data.ip.is_some() || data.bk_host_id.is_some() {
        hosts.push(host_log(HostLogData {
            bk_host_id: data.bk_host_id,
            ip: data.ip,
            bk_cloud_id: data.bk_cloud_id,
            log_content: data.log_content,
            file_logs: data.file_logs.unwrap_or_default(),
        }));
    }
    Ok(StepLogs {
        step_instance_id: data.step_instance_id.map(StepInstanceId),
        name: None,
        log_type: log_type(data.log_type),
        hosts,
    })
}

#[derive(Deserialize)]
struct InstanceListData {
    /// v3.
    #[serde(default, deserialize_with = "nullable")]
    data: Vec<InstanceData>,
    /// v4.
    #[serde(default, deserialize_with = "nullable")]
    job_instance_list: Vec<InstanceData>,
    total: Option<u64>,
}

#[derive(Deserialize)]
struct InstanceData {
    id: u64,
    #[serde(default)]
    name: String,
    operator: Option<String>,
    create_time: Option<i64>,
    // The docs' table says `status`/`type`, their examples `task_status`/`task_type`.
    status: Option<u8>,
    task_status: Option<u8>,
    #[serde(rename = "type")]
    kind: Option<u8>,
    task_type: Option<u8>,
    launch_mode: Option<u8>,
}

pub(crate) fn decode_instance_list(http: u16, data: Value) -> Result<InstanceList, ApiError> {
    let data: InstanceListData = decode::from_data(http, data, "instance list")?;
    let mut instances = Vec::new();
    for item in data.data.into_iter().chain(data.job_instance_list) {
        let status = match item.status.or(item.task_status) {
            Some(code) => Some(decode::run_status(http, code)?),
            None => None,
        };
        instances.push(InstanceSummary {
            job_instance_id: JobInstanceId(item.id),
            name: item.name,
            status,
            operator: item.operator,
            create_time_ms: item.create_time,
            task_type: item.kind.or(item.task_type),
            launch_mode: item.launch_mode,
        });
    }
    Ok(InstanceList {
        instances,
        total: data.total,
    })
}
