//! What more than one protocol's routes do the same way: operating a job or a step
//! instance (v2 and v3, which differ only in how a bad `step_instance_id` is named),
//! finding a job plan in scope, the script fields and submit of a v3/v4
//! fast_execute_script, accounts by id or alias, and the hosts a log query names.

use serde_json::{Value, json};

use crate::emulator::exec::ops;
use crate::emulator::exec::submit::{self, Submitted};
use crate::emulator::http::context::Ctx;
use crate::emulator::http::params::{Params, value_i64};
use crate::emulator::http::wire;
use crate::emulator::model::inventory::{Account, Host, HostSel, Inventory, TargetSpec};
use crate::emulator::model::job_error::JobError;
use crate::emulator::model::jobs::{FileSource, ScriptStep, StepKind};
use crate::emulator::model::new_job::{NewJob, NewStep, RollingSpec};
use crate::emulator::model::plans::{self, PlanRun};
use crate::emulator::model::protocol::Protocol;
use crate::emulator::model::scope::Scope;
use crate::emulator::model::values::{self, ScriptSource};
use crate::emulator::model::world::PlanDef;
use crate::job_api::rules::MAX_WINDOWS_INTERPRETER_CHARS;
use crate::job_api::types::HostAddr;

/// A v3 `file_source_list` entry of `file_type` 3: a third-party file source named by
/// `file_source_id` or `file_source_code`; its objects arrive under `account`.
pub fn third_party_source(
    ctx: &Ctx,
    source: &Params,
    account: &Account,
) -> Result<FileSource, JobError> {
    let id = source.opt_i64("file_source_id")?;
    let code = source.opt_str("file_source_code")?;
    if id.is_none() && code.is_none() {
        return Err(JobError::missing("file_source_id|file_source_code"));
    }
    let objects = wire::object_names("file_source.file_list", source.opt_array("file_list")?)?;
    plans::third_party_source(
        &ctx.app.inventory,
        id,
        code.as_deref(),
        &objects,
        account.clone(),
    )
}

/// `operate_job_instance`: the operation in `operation_code` on the job named by
/// `job_instance_id`.
pub fn operate_job(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let job = ctx.job(p, &scope)?;
    let op = operation_code(p)?;
    ops::operate_job(&ctx.app, &job, op)?;
    Ok(json!({"job_instance_id": job.id}))
}

/// `operate_step_instance`: the operation in `operation_code` on one step of a job.
pub fn operate_step(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let job = ctx.job(p, &scope)?;
    let step = step_id(p, ctx.protocol)?;
    let op = operation_code(p)?;
    ops::operate_step(&ctx.app, &job, step as u64, op, &ctx.caller)?;
    Ok(json!({"job_instance_id": job.id, "step_instance_id": step}))
}

fn operation_code(p: &Params) -> Result<i64, JobError> {
    p.opt_i64("operation_code")?
        .ok_or_else(JobError::illegal_params)
}

/// `step_instance_id`, positive. ESB v2 names a missing or bad one with one code; the
/// gateway tells missing from invalid.
pub fn step_id(p: &Params, protocol: Protocol) -> Result<i64, JobError> {
    match (p.opt_i64("step_instance_id")?, protocol) {
        (Some(id), _) if id > 0 => Ok(id),
        (_, Protocol::V2) => Err(JobError::missing_or_illegal("step_instance_id")),
        (Some(_), _) => Err(JobError::illegal("step_instance_id")),
        (None, _) => Err(JobError::missing("step_instance_id")),
    }
}

/// The job plan `id` of `scope`, or JOB's 1243009.
pub fn plan<'a>(ctx: &'a Ctx, scope: &Scope, id: i64) -> Result<&'a PlanDef, JobError> {
    ctx.app
        .inventory
        .plan(id, &scope.kind, &scope.id)
        .ok_or_else(JobError::plan_missing)
}

/// `account_id` (wins) or `account_alias`.
pub fn account(inventory: &Inventory, p: &Params) -> Result<Account, JobError> {
    if let Some(id) = p.opt_i64("account_id")? {
        return inventory.account_by_id(id);
    }
    if let Some(alias) = p.opt_str("account_alias")? {
        return inventory.account_by_alias(&alias);
    }
    Err(JobError::missing("account_id|account_alias"))
}

/// Shared by v3 and v4 fast_execute_script: everything but the target.
pub struct ScriptBasics {
    /// Name.
    pub name: String,
    /// Script step.
    pub script: ScriptStep,
    /// Callback.
    pub callback_url: Option<String>,
    /// Rolling.
    pub rolling: Option<RollingSpec>,
    /// `start_task`.
    pub start: bool,
}

/// Reads the script fields of a v3/v4 fast_execute_script.
pub fn script_basics(ctx: &Ctx, p: &Params, sensitive: bool) -> Result<ScriptBasics, JobError> {
    let inventory = &ctx.app.inventory;
    let name = values::task_name(p.opt_str("task_name")?, "API Quick execution script")?;
    let (language, content) = values::script(
        inventory,
        ScriptSource {
            version_id: p.opt_i64("script_version_id")?,
            script_id: p.opt_str("script_id")?,
            content: p.opt_str("script_content")?,
            language: p.opt_i64("script_language")?,
            names: (
                "script_version_id",
                "script_id",
                "script_content",
                "script_language",
            ),
            missing: "script_version_id|script_id|script_content",
        },
    )?;
    let params = values::script_param("script_param", p.opt_str("script_param")?, sensitive)?;
    let timeout = values::timeout("timeout", p.opt_i64("timeout")?)?;
    let account = account(inventory, p)?;
    if let Some(interpreter) = p.opt_str("windows_interpreter")?
        && (!interpreter.trim().ends_with(".exe")
            || interpreter.chars().count() > MAX_WINDOWS_INTERPRETER_CHARS)
    {
        return Err(JobError::illegal("windows_interpreter"));
    }
    Ok(ScriptBasics {
        name,
        script: ScriptStep {
            language,
            content,
            params,
            timeout_secs: timeout,
            account,
            sensitive,
            env: Vec::new(),
        },
        callback_url: values::callback_url("callback_url", p.opt_str("callback_url")?)?,
        rolling: wire::rolling(p)?,
        start: p.opt_bool("start_task")?.unwrap_or(true),
    })
}

/// Creates a fast script job and answers with its ids.
pub fn submit_script(
    ctx: &Ctx,
    scope: Scope,
    basics: ScriptBasics,
    spec: &TargetSpec,
) -> Result<Value, JobError> {
    let targets = ctx.app.inventory.resolve_targets(spec)?;
    let submitted = submit_fast(
        ctx,
        FastTask {
            scope,
            name: basics.name,
            kind: StepKind::Script(basics.script),
            targets,
            rolling: basics.rolling,
            callback_url: basics.callback_url,
            start: basics.start,
        },
    )?;
    Ok(answer(&submitted, true))
}

/// A fast script or file task as the routes read it: one step, no job plan.
pub struct FastTask {
    /// The scope it runs in.
    pub scope: Scope,
    /// Task and step name.
    pub name: String,
    /// The script or the file copy.
    pub kind: StepKind,
    /// Resolved targets.
    pub targets: Vec<Host>,
    /// Rolling, where the protocol has it.
    pub rolling: Option<RollingSpec>,
    /// Callback URL.
    pub callback_url: Option<String>,
    /// `start_task`.
    pub start: bool,
}

/// Creates the job of a fast task for the caller, in the request's protocol.
pub fn submit_fast(ctx: &Ctx, task: FastTask) -> Result<Submitted, JobError> {
    let task_type = match task.kind {
        StepKind::File(_) => 2,
        _ => 1,
    };
    submit::create(
        &ctx.app,
        NewJob {
            name: task.name.clone(),
            scopes: vec![task.scope],
            operator: ctx.caller.user.clone(),
            plan_id: -1,
            task_type,
            callback_url: task.callback_url,
            protocol: ctx.protocol,
            start: task.start,
            steps: vec![NewStep {
                step_id: -1,
                name: task.name,
                kind: task.kind,
                targets: task.targets,
                rolling: task.rolling,
            }],
            vars: Vec::new(),
        },
    )
}

/// A job plan's run created, answered as v2 and v3 answer it.
pub fn submit_plan(ctx: &Ctx, plan: &PlanDef, run: PlanRun) -> Result<Value, JobError> {
    let job = plans::build(&ctx.app.inventory, plan, run)?;
    let submitted = submit::create(&ctx.app, job)?;
    Ok(answer(&submitted, false))
}

/// The answer to a submit: the instance's name and id, and its first step's id where
/// the API gives it.
pub fn answer(submitted: &Submitted, with_step: bool) -> Value {
    let mut answer = json!({
        "job_instance_name": submitted.name,
        "job_instance_id": submitted.job_instance_id,
    });
    if with_step {
        answer["step_instance_id"] = json!(submitted.step_instance_id);
    }
    answer
}

/// The hosts a log query names: `host_id_list` (wins) or `ip_list`.
pub fn log_hosts(ctx: &Ctx, p: &Params, max: usize) -> Result<Vec<HostAddr>, JobError> {
    let inventory = &ctx.app.inventory;
    let ids = p.opt_array("host_id_list")?.unwrap_or_default();
    let mut hosts = Vec::new();
    if !ids.is_empty() {
        if ids.len() > max {
            return Err(JobError::missing_or_illegal("host_id_list/ip_list"));
        }
        for id in ids {
            let id = value_i64(&id)
                .filter(|id| *id > 0)
                .ok_or_else(|| JobError::illegal("host_id_list"))?;
            match inventory.lookup_id(id as u64) {
                Some(host) => hosts.push(host.addr),
                None => hosts.push(inventory.host(&HostSel::Id(id as u64))?.addr),
            }
        }
        return Ok(hosts);
    }
    let ips = p.opt_array("ip_list")?.unwrap_or_default();
    if ips.is_empty() || ips.len() > max {
        return Err(JobError::missing_or_illegal("host_id_list/ip_list"));
    }
    for ip in ips {
        hosts.push(wire::ip_object("ip_list", &ip)?);
    }
    Ok(hosts)
}
