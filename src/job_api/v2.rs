//! ESB v2 (`/api/c/compapi/v2/job/<name>/`, credentials in the body): the request
//! bodies of the seed pages 000, 001, 002 and 004 (`fast_push_file`,
//! `fast_execute_script`, `execute_job`, `execute_platform_job`), and the v2 shapes
//! of status and log responses.
//!
//! v2 names hosts only by `ip_list` + `custom_query_id`, accounts only by alias, and
//! has no rolling, `start_task`, script versions or Windows options; see the table in
//! [`super::build`].

use chrono::FixedOffset;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::build::{self, ApiCall, BuildError, Errors, reject_job_step_fields};
use super::decode::{self, ApiError, nullable};
use super::hosts;
use super::request::{
    Account, FilePush, FileSource, FileType, Hosts, JobPlanRun, JobRequest, ScriptId, ScriptRun,
    StepOverride, Work,
};
use super::types::{
    HostLog, HostResult, JobInstanceId, JobInstanceInfo, JobStatus, Protocol, StepInstanceId,
    StepLogs, StepStatus,
};

const V2: Protocol = Protocol::V2;

pub(crate) fn encode(request: &JobRequest) -> Result<ApiCall, Vec<BuildError>> {
    let mut errors = Errors::default();
    let call = match &request.work {
        Work::Script(script) => script_call(request, script, &mut errors),
        Work::Push(push) => push_call(request, push, &mut errors),
        Work::Job(job) => job_call(request, job, &mut errors),
        Work::Config(push) => super::config_push::v2_call(request, push, &mut errors),
    };
    errors.finish(call)
}

/// Fields no v2 submission has.
fn reject_gateway_only(request: &JobRequest, api: &str, errors: &mut Errors) {
    if request.start_task.is_some() {
        errors.unsupported(
            "start_task",
            V2,
            api,
            "v2 always starts the job; use protocol v3/v4",
        );
    }
    if request.rolling.is_some() {
        errors.unsupported(
            "rolling",
            V2,
            api,
            "v2 cannot roll; use protocol v3 (or v4 for scripts)",
        );
    }
}

/// The step's targets as `ip_list` / `custom_query_id`; a script or push needs some.
fn write_targets(
    targets: Option<&Hosts>,
    field: &str,
    api: &str,
    object: &mut Map<String, Value>,
    errors: &mut Errors,
) {
    let Some(targets) = targets else {
        errors.add(field, "no target hosts: set `targets`");
        return;
    };
    hosts::check(targets, "the targets name no hosts", errors);
    hosts::write_v2(targets, field, api, object, errors);
}

fn script_call(request: &JobRequest, script: &ScriptRun, errors: &mut Errors) -> ApiCall {
    const API: &str = "fast_execute_script";
    let mut body = Map::new();
    if let Some(biz) = build::v2_biz_id(request.scope, errors) {
        body.insert("bk_biz_id".into(), json!(biz));
    }
    if let Some(id) = &script.script_id {
        match v2_script_id(id) {
            Some(id) => {
                body.insert("script_id".into(), json!(id));
            }
            None => errors.add(
                "script.script_id",
                format!("`{id}` is not an integer: v2's script_id is a script version id (an integer); use protocol v3 for a script's string id"),
            ),
        }
    }
    if script.script_version_id.is_some() {
        errors.unsupported(
            "script.script_version_id",
            V2,
            API,
            "on v2 a script version id is written as `script_id` (an integer)",
        );
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
    build::require_script_source(
        content.is_some() || script.file.is_some() || script.script_id.is_some(),
        errors,
    );
    build::require_language(
        content.is_some(),
        script.script_id.is_some(),
        script.language,
        errors,
    );
    if let Some(params) = &script.params {
        body.insert("script_param".into(), json!(build::base64(params)));
    }
    if let Some(timeout) = request.timeout {
        body.insert("script_timeout".into(), json!(timeout.seconds));
    }
    match &request.account {
        Some(account) => {
            if let Some(alias) = build::v2_account(account, &account.field, API, errors) {
                body.insert("account".into(), alias);
            }
        }
        None => build::missing_account(errors),
    }
    let sensitive = script.sensitive.unwrap_or(false);
    body.insert("is_param_sensitive".into(), json!(u8::from(sensitive)));
    if let Some(language) = script.language {
        body.insert("script_type".into(), json!(build::language_code(language)));
    }
    write_targets(request.targets.as_ref(), "targets", API, &mut body, errors);
    if let Some(name) = &request.task_name {
        body.insert("task_name".into(), json!(name));
    }
    if script.windows_interpreter.is_some() {
        errors.unsupported(
            "script.windows_interpreter",
            V2,
            API,
            "use protocol v3 or v4",
        );
    }
    if !script.host_passwords.is_empty() {
        errors.unsupported("script.host_passwords", V2, API, "use protocol v3 or v4");
    }
    reject_gateway_only(request, API, errors);

    let mut pointers = Vec::new();
    build::sensitive_param_pointer(sensitive, &body, &mut pointers);
    let mut call = ApiCall::post(V2, API, body);
    call.sensitive_pointers = pointers;
    call
}

/// v2's script id is an integer (a script version id); a string is accepted when it
/// is one, so a templated id still works.
fn v2_script_id(id: &ScriptId) -> Option<u64> {
    match id {
        ScriptId::Number(n) => Some(*n),
        ScriptId::Text(text) => text.trim().parse().ok(),
    }
}

fn push_call(request: &JobRequest, push: &FilePush, errors: &mut Errors) -> ApiCall {
    const API: &str = "fast_push_file";
    let mut body = Map::new();
    if let Some(biz) = build::v2_biz_id(request.scope, errors) {
        body.insert("bk_biz_id".into(), json!(biz));
    }
    let step_account = request.account.as_ref();
    match step_account {
        Some(account) => {
            if let Some(alias) = build::v2_account(account, &account.field, API, errors) {
                body.insert("account".into(), alias);
            }
        }
        None => build::missing_account(errors),
    }
    body.insert("file_target_path".into(), json!(push.target_path));
    let sources: Vec<Value> = push
        .sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            file_source(
                source,
                &format!("push_file.sources[{i}]"),
                step_account,
                API,
                errors,
            )
        })
        .collect();
    if sources.is_empty() {
        errors.add("push_file.sources", "no source files");
    }
    body.insert("file_source".into(), Value::Array(sources));
    write_targets(request.targets.as_ref(), "targets", API, &mut body, errors);
    if let Some(timeout) = request.timeout {
        body.insert("timeout".into(), json!(timeout.seconds));
    }
    if let Some(limit) = push.upload_speed_limit {
        body.insert("upload_speed_limit".into(), json!(limit));
    }
    if let Some(limit) = push.download_speed_limit {
        body.insert("download_speed_limit".into(), json!(limit));
    }
    if let Some(name) = &request.task_name {
        body.insert("task_name".into(), json!(name));
    }
    if push.target_name.is_some() {
        errors.unsupported(
            "push_file.target_name",
            V2,
            API,
            "v2 keeps source file names; use protocol v3 to rename",
        );
    }
    if push.transfer_mode.is_some() {
        errors.unsupported(
            "push_file.transfer_mode",
            V2,
            API,
            "v2 always creates missing target folders (force); remove it or use protocol v3",
        );
    }
    reject_gateway_only(request, API, errors);
    ApiCall::post(V2, API, body)
}

/// One v2 `file_source` entry: `{files, account, ip_list?, custom_query_id?}`. v2
/// pushes only files on servers.
fn file_source(
    source: &FileSource,
    prefix: &str,
    fallback_account: Option<&Account>,
    api: &str,
    errors: &mut Errors,
) -> Value {
    let mut object = Map::new();
    object.insert("files".into(), json!(source.files));
    if matches!(source.file_type, Some(t) if t != FileType::Server) {
        errors.unsupported(
            &format!("{prefix}.file_type"),
            V2,
            api,
            "v2 pushes only files on servers; use protocol v3 for local or third-party files",
        );
    }
    if source.file_source_id.is_some() {
        errors.unsupported(
            &format!("{prefix}.file_source_id"),
            V2,
            api,
            "use protocol v3 for third-party file sources",
        );
    }
    if source.file_source_code.is_some() {
        errors.unsupported(
            &format!("{prefix}.file_source_code"),
            V2,
            api,
            "use protocol v3 for third-party file sources",
        );
    }
    let (account, field) = match &source.account {
        Some(account) => (Some(account), account.field.clone()),
        None => (fallback_account, "account".to_owned()),
    };
    match account {
        Some(account) => {
            if let Some(alias) = build::v2_account(account, &field, api, errors) {
                object.insert("account".into(), alias);
            }
        }
        None => errors.add(
            format!("{prefix}.account"),
            "no account to read the source files with: set it on the source or the step",
        ),
    }
    match &source.from {
        Some(from) => {
            hosts::check(from, "the source names no hosts", errors);
            hosts::write_v2(from, &from.field, api, &mut object, errors);
        }
        None => errors.add(
            format!("{prefix}.from"),
            "a server file source needs `from` (the hosts the files are on)",
        ),
    }
    Value::Object(object)
}

fn job_call(request: &JobRequest, job: &JobPlanRun, errors: &mut Errors) -> ApiCall {
    reject_job_step_fields(request, errors);
    let platform = job.source_biz.is_some() || job.target_biz.is_some();
    let api = if platform {
        "execute_platform_job"
    } else {
        "execute_job"
    };
    reject_gateway_only(request, api, errors);
    let mut body = Map::new();
    if platform {
        // The cross-business job names both businesses and no bk_biz_id (seed 004).
        match job.source_biz {
            Some(id) => {
                body.insert("source_bk_biz_id".into(), json!(id));
            }
            None => errors.add(
                "job.source_biz",
                "a cross-business job needs both `source_biz` and `target_biz`",
            ),
        }
        match job.target_biz {
            Some(id) => {
                body.insert("target_bk_biz_id".into(), json!(id));
            }
            None => errors.add(
                "job.target_biz",
                "a cross-business job needs both `source_biz` and `target_biz`",
            ),
        }
        if !job.vars.is_empty() {
            errors.unsupported(
                "job.vars",
                V2,
                api,
                "a cross-business job takes no global variables; override its steps instead",
            );
        }
    } else if let Some(biz) = build::v2_biz_id(request.scope, errors) {
        body.insert("bk_biz_id".into(), json!(biz));
    }
    body.insert("bk_job_id".into(), json!(job.plan_id));
    if !job.vars.is_empty() && !platform {
        let vars = build::global_vars(job, errors, |set, field, object, errors| {
            hosts::write_v2(set, field, api, object, errors);
        });
        body.insert("global_vars".into(), Value::Array(vars));
    }
    if !job.overrides.is_empty() {
        let steps: Vec<Value> = job
            .overrides
            .iter()
            .enumerate()
            .map(|(i, o)| step_override(o, &format!("job.overrides[{i}]"), api, platform, errors))
            .collect();
        body.insert("steps".into(), Value::Array(steps));
    }
    ApiCall::post(V2, api, body)
}

/// One entry of v2's `steps`: only what the override sets, since every absent field
/// keeps the job plan's own value (seed 002's second step has no account).
fn step_override(
    o: &StepOverride,
    prefix: &str,
    api: &str,
    platform: bool,
    errors: &mut Errors,
) -> Value {
    let mut object = Map::new();
    object.insert("step_id".into(), json!(o.step_id));
    if let Some(id) = o.script_id {
        object.insert("script_id".into(), json!(id));
    }
    if let Some(language) = o.language {
        object.insert("script_type".into(), json!(build::language_code(language)));
    }
    if let Some(content) =
        build::script_content(o.content.as_ref(), o.file.as_ref(), prefix, errors)
    {
        object.insert("script_content".into(), json!(content));
    }
    if let Some(params) = &o.params {
        object.insert("script_param".into(), json!(build::base64(params)));
    }
    if let Some(timeout) = o.timeout {
        object.insert("script_timeout".into(), json!(timeout));
    }
    if let Some(account) = &o.account
        && let Some(alias) = build::v2_account(account, &account.field, api, errors)
    {
        object.insert("account".into(), alias);
    }
    if let Some(db_account) = o.db_account_id {
        if platform {
            errors.unsupported(
                &format!("{prefix}.db_account_id"),
                V2,
                api,
                "the cross-business job has no SQL steps",
            );
        } else {
            object.insert("db_account_id".into(), json!(db_account));
        }
    }
    if let Some(path) = &o.target_path {
        object.insert("file_target_path".into(), json!(path));
    }
    if !o.sources.is_empty() {
        let sources: Vec<Value> = o
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                file_source(
                    s,
                    &format!("{prefix}.sources[{i}]"),
                    o.account.as_ref(),
                    api,
                    errors,
                )
            })
            .collect();
        object.insert("file_source".into(), Value::Array(sources));
    }
    if let Some(targets) = &o.targets {
        hosts::check(targets, "the targets name no hosts", errors);
        hosts::write_v2(targets, &targets.field, api, &mut object, errors);
    }
    Value::Object(object)
}

// ---------------------------------------------------------------------------
// Responses: v2 times are `yyyy-MM-dd HH:mm:ss` strings in the user's timezone,
// durations float seconds, and log text is HTML-encoded.
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct StatusData {
    is_finished: bool,
    job_instance: JobInstanceData,
    #[serde(default, deserialize_with = "nullable")]
    blocks: Vec<BlockData>,
}

#[derive(Deserialize)]
struct JobInstanceData {
    job_instance_id: u64,
    name: Option<String>,
    status: u8,
    create_time: Option<Value>,
    start_time: Option<Value>,
    end_time: Option<Value>,
    total_time: Option<f64>,
}

#[derive(Deserialize)]
struct BlockData {
    #[serde(default, deserialize_with = "nullable")]
    step_instances: Vec<StepData>,
}

#[derive(Deserialize)]
struct StepData {
    step_instance_id: u64,
    name: Option<String>,
    #[serde(rename = "type")]
    step_type: Option<u8>,
    status: u8,
    // The code emits `execute_count`; the v2 docs call it `retry_count`.
    execute_count: Option<u32>,
    retry_count: Option<u32>,
    create_time: Option<Value>,
    start_time: Option<Value>,
    end_time: Option<Value>,
    total_time: Option<f64>,
    /// The emulator's non-standard rolling batch (read leniently).
    #[serde(default)]
    rolling_batch: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    step_ip_status: Vec<IpStatusData>,
}

#[derive(Deserialize)]
struct IpStatusData {
    ip: Option<String>,
    bk_cloud_id: Option<u64>,
    bk_host_id: Option<u64>,
    status: u16,
}

/// A v2 time as epoch ms: a string in `offset`, or (leniently) a number already in ms.
fn time(http: u16, value: Option<&Value>, offset: FixedOffset) -> Result<Option<i64>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_i64()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => decode::parse_v2_time(s, offset).map(Some).ok_or_else(|| {
            decode::bad(
                http,
                format!("`{s}` is not a v2 time (yyyy-MM-dd HH:mm:ss)"),
            )
        }),
        Some(other) => Err(decode::bad(http, format!("`{other}` is not a v2 time"))),
    }
}

/// v2 durations are float seconds.
fn seconds_to_millis(seconds: Option<f64>) -> Option<u64> {
    decode::millis(seconds.map(|s| s * 1000.0))
}

pub(crate) fn decode_status(
    http: u16,
    data: Value,
    offset: FixedOffset,
) -> Result<JobStatus, ApiError> {
    let data: StatusData = decode::from_data(http, data, "v2 job status")?;
    let job = data.job_instance;
    let mut steps = Vec::new();
    for step in data.blocks.into_iter().flat_map(|b| b.step_instances) {
        steps.push(StepStatus {
            step_instance_id: StepInstanceId(step.step_instance_id),
            name: step.name,
            step_type: step.step_type,
            status: decode::run_status(http, step.status)?,
            execute_count: step.execute_count.or(step.retry_count).unwrap_or(0),
            create_time_ms: time(http, step.create_time.as_ref(), offset)?,
            start_time_ms: time(http, step.start_time.as_ref(), offset)?,
            end_time_ms: time(http, step.end_time.as_ref(), offset)?,
            total_time_ms: seconds_to_millis(step.total_time),
            batch: decode::rolling_batch(step.rolling_batch.as_ref()),
            hosts: step
                .step_ip_status
                .into_iter()
                .map(|h| HostResult {
                    addr: decode::addr(h.ip, h.bk_cloud_id),
                    host_id: h.bk_host_id,
                    status: h.status,
                    exit_code: None,
                    error_code: None,
                    tag: None,
                    start_time_ms: None,
                    end_time_ms: None,
                    total_time_ms: None,
                })
                .collect(),
        });
    }
    Ok(JobStatus {
        finished: data.is_finished,
        job: JobInstanceInfo {
            job_instance_id: JobInstanceId(job.job_instance_id),
            name: job.name,
            status: decode::run_status(http, job.status)?,
            create_time_ms: time(http, job.create_time.as_ref(), offset)?,
            start_time_ms: time(http, job.start_time.as_ref(), offset)?,
            end_time_ms: time(http, job.end_time.as_ref(), offset)?,
            total_time_ms: seconds_to_millis(job.total_time),
        },
        steps,
    })
}

#[derive(Deserialize)]
struct StepLogData {
    step_instance_id: Option<u64>,
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    step_results: Vec<ResultGroupData>,
}

#[derive(Deserialize)]
struct ResultGroupData {
    ip_status: Option<u16>,
    tag: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    ip_logs: Vec<IpLogData>,
}

#[derive(Deserialize)]
struct IpLogData {
    execute_count: Option<u32>,
    retry_count: Option<u32>,
    ip: Option<String>,
    bk_cloud_id: Option<u64>,
    bk_host_id: Option<u64>,
    exit_code: Option<i32>,
    log_content: Option<String>,
}

/// `get_job_instance_log`: one entry per step, hosts grouped by (status, tag) on the
/// wire and flattened here, log text HTML-decoded.
pub(crate) fn decode_logs(http: u16, data: Value) -> Result<Vec<StepLogs>, ApiError> {
    let steps: Vec<StepLogData> = decode::from_data(http, data, "v2 job log")?;
    Ok(steps
        .into_iter()
        .map(|step| StepLogs {
            step_instance_id: step.step_instance_id.map(StepInstanceId),
            name: step.name,
            log_type: None,
            hosts: step
                .step_results
                .into_iter()
                .flat_map(|group| {
                    let status = group.ip_status;
                    let tag = group.tag;
                    group.ip_logs.into_iter().map(move |log| HostLog {
                        host: decode::addr(log.ip, log.bk_cloud_id),
                        host_id: log.bk_host_id,
                        execute_count: log.execute_count.or(log.retry_count),
                        status,
                        tag: tag.clone(),
                        exit_code: log.exit_code,
                        content: log.log_content.as_deref().map(decode::html_decode),
                        file_logs: Vec::new(),
                    })
                })
                .collect(),
        })
        .collect())
}
