//! Gateway v3 (`/api/v3/<name>`; also ESB jobv3): fast_execute_script,
//! fast_transfer_file, push_config_file, execute_job_plan, get_job_instance_status,
//! get_job_instance_ip_log, batch_get_job_instance_ip_log, get_job_instance_list,
//! operate_job_instance, operate_step_instance, get_job_plan_list, get_job_plan_detail,
//! get_job_instance_global_var_value, get_account_list, get_script_version_detail and
//! callback_protocol. Parsed from JOB's v3 wire format.

use serde_json::{Value, json};

use crate::emulator::http::catalog;
use crate::emulator::http::config_push;
use crate::emulator::http::context::{ApiKind, Ctx};
use crate::emulator::http::params::Params;
use crate::emulator::http::shared::{self, FastTask};
use crate::emulator::http::var_values;
use crate::emulator::http::views;
use crate::emulator::http::wire;
use crate::emulator::model::inventory::{HostSel, Inventory, TargetSpec};
use crate::emulator::model::job_error::JobError;
use crate::emulator::model::jobs::{FileSource, FileStep, StepKind};
use crate::emulator::model::plans::{PlanRun, VarValue};
use crate::emulator::model::protocol::Protocol;
use crate::emulator::model::scope::Scope;
use crate::emulator::model::values::{self};
use crate::emulator::model::world::PlanDef;
use crate::job_api::rules::MAX_LOG_BATCH_HOSTS;

/// Which v3 APIs exist, and how they are called.
pub fn api_kind(name: &str) -> Option<ApiKind> {
    Some(match name {
        "fast_execute_script"
        | "fast_transfer_file"
        | "push_config_file"
        | "execute_job_plan"
        | "batch_get_job_instance_ip_log"
        | "operate_job_instance"
        | "operate_step_instance" => ApiKind::Action,
        "get_job_instance_status"
        | "get_job_instance_ip_log"
        | "get_job_instance_list"
        | "get_job_plan_list"
        | "get_job_plan_detail"
        | "get_job_instance_global_var_value"
        | "get_account_list"
        | "get_script_version_detail" => ApiKind::Query,
        "callback_protocol" => ApiKind::Open,
        _ => return None,
    })
}

/// Runs a v3 API.
pub fn dispatch(ctx: &Ctx, name: &str, p: &Params) -> Result<Value, JobError> {
    match name {
        "fast_execute_script" => fast_execute_script(ctx, p),
        "fast_transfer_file" => fast_transfer_file(ctx, p),
        "push_config_file" => config_push::push_config_file(ctx, p, config_push::Door::V3),
        "execute_job_plan" => execute_job_plan(ctx, p),
        "get_job_instance_status" => {
            let scope = ctx.scope(p)?;
            let job = ctx.job(p, &scope)?;
            let with_hosts = p.opt_bool("return_ip_result")?.unwrap_or(false);
            let state = job.lock();
            Ok(views::v3_status(&job, &state, with_hosts))
        }
        "get_job_instance_ip_log" => ip_log(ctx, p),
        "batch_get_job_instance_ip_log" => batch_ip_log(ctx, p),
        "get_job_instance_list" => job_instance_list(ctx, p),
        "operate_job_instance" => shared::operate_job(ctx, p),
        "operate_step_instance" => shared::operate_step(ctx, p),
        "get_job_plan_list" => plan_list(ctx, p),
        "get_job_instance_global_var_value" => var_values::v3(ctx, p),
        "get_account_list" => catalog::account_list(ctx, p),
        "get_script_version_detail" => catalog::script_version_detail(ctx, p),
        "get_job_plan_detail" => {
            let scope = ctx.scope(p)?;
            let id = p
                .opt_i64("job_plan_id")?
                .filter(|id| *id > 0)
                .ok_or_else(|| JobError::illegal("job_plan_id"))?;
            let plan = shared::plan(ctx, &scope, id)?;
            Ok(plan_detail(ctx, &scope, plan))
        }
        "callback_protocol" => Ok(json!({
            "job_instance_id": 10000, "status": 3,
            "step_instances": [{"step_instance_id": 10001, "status": 3}],
        })),
        _ => Err(JobError::illegal_params()),
    }
}

fn server(p: &Params, key: &str) -> Result<TargetSpec, JobError> {
    let server = p.opt_object(key)?.ok_or_else(|| JobError::missing(key))?;
    let spec = wire::v3_server(&server)?;
    if spec.is_empty() {
        return Err(JobError::server_empty());
    }
    Ok(spec)
}

fn fast_execute_script(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let sensitive = p.opt_i64("is_param_sensitive")? == Some(1);
    let basics = shared::script_basics(ctx, p, sensitive)?;
    let spec = server(p, "target_server")?;
    shared::submit_script(ctx, scope, basics, &spec)
}

fn fast_transfer_file(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let inventory = &ctx.app.inventory;
    let name = values::task_name(p.opt_str("task_name")?, "API Quick Distribution File")?;
    let target_path = values::target_path("file_target_path", p.opt_str("file_target_path")?)?;
    let list = p
        .opt_objects("file_source_list")?
        .filter(|l| !l.is_empty())
        .ok_or_else(|| JobError::missing("file_source_list"))?;
    let rolling = wire::rolling(p)?;
    let account = shared::account(inventory, p)?;
    let mut sources = Vec::new();
    for source in list {
        let file_type = source.opt_i64("file_type")?.unwrap_or(1);
        if file_type == 3 {
            sources.push(shared::third_party_source(ctx, &source, &account)?);
            continue;
        }
        if file_type != 1 {
            // Local uploads need an artifactory the emulator does not have.
            return Err(JobError::illegal("file_source.file_type"));
        }
        let files = wire::source_files("file_source.file_list", source.opt_array("file_list")?)?;
        let account_obj = source
            .opt_object("account")?
            .ok_or_else(|| JobError::missing("file_source.account"))?;
        let account = if let Some(id) = account_obj.opt_i64("id")? {
            inventory.account_by_id(id)?
        } else if let Some(alias) = account_obj.opt_str("alias")? {
            inventory.account_by_alias(&alias)?
        } else {
            return Err(JobError::missing("file_source.account"));
        };
        let spec = server(&source, "server")?;
        let hosts = inventory.resolve_targets(&spec)?;
        sources.push(FileSource {
            hosts,
            files,
            account,
        });
    }
    let strict = match p.opt_i64("transfer_mode")? {
        None | Some(2) => false,
        Some(1) => true,
        Some(_) => return Err(JobError::illegal("transfer_mode")),
    };
    let spec = server(p, "target_server")?;
    let targets = inventory.resolve_targets(&spec)?;
    let timeout = values::timeout("timeout", p.opt_i64("timeout")?)?;
    let callback_url = values::callback_url("callback_url", p.opt_str("callback_url")?)?;
    let submitted = shared::submit_fast(
        ctx,
        FastTask {
            scope,
            name,
            kind: StepKind::File(FileStep {
                sources,
                target_path,
                target_name: p.opt_str("file_target_name")?,
                strict,
                account,
                timeout_secs: timeout,
            }),
            targets,
            rolling,
            callback_url,
            start: p.opt_bool("start_task")?.unwrap_or(true),
        },
    )?;
    Ok(shared::answer(&submitted, true))
}

fn execute_job_plan(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let id = p
        .opt_i64("job_plan_id")?
        .filter(|id| *id > 0)
        .ok_or_else(|| JobError::illegal("job_plan_id"))?;
    let plan = shared::plan(ctx, &scope, id)?;
    let mut vars = Vec::new();
    for var in p.opt_objects("global_var_list")?.unwrap_or_default() {
        let id = var.opt_i64("id")?.filter(|id| *id > 0);
        let name = var.opt_str("name")?;
        if id.is_none() && name.is_none() {
            return Err(JobError::illegal("global_var.id|global_var.name"));
        }
        let value = var.opt_str("value")?;
        let hosts = match var.opt_object("server")? {
            Some(server) if value.is_none() => Some(wire::v3_server(&server)?),
            _ => None,
        };
        vars.push(VarValue {
            id,
            name,
            value,
            hosts,
        });
    }
    let run = PlanRun {
        scopes: vec![scope],
        operator: ctx.caller.user.clone(),
        vars,
        steps: None,
        callback_url: values::callback_url("callback_url", p.opt_str("callback_url")?)?,
        start: p.opt_bool("start_task")?.unwrap_or(true),
        protocol: Protocol::V3,
    };
    shared::submit_plan(ctx, plan, run)
}

fn ip_log(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let job = ctx.job(p, &scope)?;
    let step_id = shared::step_id(p, ctx.protocol)?;
    let addr = match p.opt_i64("bk_host_id")?.or(p.opt_i64("host_id")?) {
        Some(id) if id > 0 => ctx.app.inventory.host(&HostSel::Id(id as u64))?.addr,
        _ => {
            let cloud = p.opt_i64("bk_cloud_id")?;
            let ip = p.opt_str("ip")?;
            match (cloud, ip) {
                (Some(cloud), Some(ip)) if cloud >= 0 => {
                    wire::ip_object("ip", &json!({"bk_cloud_id": cloud, "ip": ip}))?
                }
                _ => return Err(JobError::missing("bk_host_id|ip")),
            }
        }
    };
    let state = job.lock();
    let step = views::step_by_id(&state, step_id)?;
    Ok(views::v3_host_log(&ctx.app.inventory, step, &addr))
}

fn batch_ip_log(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let job = ctx.job(p, &scope)?;
    let step_id = shared::step_id(p, ctx.protocol)?;
    let hosts = shared::log_hosts(ctx, p, MAX_LOG_BATCH_HOSTS)?;
    let state = job.lock();
    let step = views::step_by_id(&state, step_id)?;
    let logs: Vec<Value> = hosts
        .iter()
        .map(|h| {
            let mut log = views::v3_host_log(&ctx.app.inventory, step, h);
            if let Some(map) = log.as_object_mut() {
                map.remove("log_type");
            }
            log
        })
        .collect();
    let file = matches!(step.kind, StepKind::File(_));
    let mut data = json!({
        "job_instance_id": job.id, "step_instance_id": step.id, "log_type": if file { 2 } else { 1 },
    });
    data[if file {
        "file_task_logs"
    } else {
        "script_task_logs"
    }] = json!(logs);
    Ok(data)
}

/// `get_job_instance_list` (v4's answers with the same rows, see v4.rs).
pub fn job_instance_list(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let from = p.opt_i64("create_time_start")?;
    let to = p.opt_i64("create_time_end")?;
    let name = p.opt_str("name")?;
    let operator = p.opt_str("operator")?;
    let status = p.opt_i64("status")?;
    let task_type = p.opt_i64("type")?;
    let wanted_id = p.opt_i64("job_instance_id")?;
    let (start, length) = wire::page(p)?;
    let mut rows = Vec::new();
    // Newest first, as JOB lists them.
    for job in ctx.app.store.all().into_iter().rev() {
        if !job.visible_in(&scope) || wanted_id.is_some_and(|id| id as u64 != job.id) {
            continue;
        }
        let state = job.lock();
        if from.is_some_and(|f| state.create_ms < f)
            || to.is_some_and(|t| state.create_ms > t)
            || name
                .as_ref()
                .is_some_and(|n| !state.name.contains(n.as_str()))
            || operator.as_ref().is_some_and(|o| &state.operator != o)
            || status.is_some_and(|s| i64::from(state.status.code()) != s)
            || task_type.is_some_and(|t| i64::from(state.task_type) != t)
        {
            continue;
        }
        rows.push(json!({
            "id": job.id, "job_instance_id": job.id, "bk_scope_type": job.scopes[0].kind,
            "bk_scope_id": job.scopes[0].id, "name": state.name, "operator": state.operator,
            "job_plan_id": state.plan_id, "job_template_id": -1, "status": state.status.code(),
            "type": state.task_type, "launch_mode": 2, "create_time": state.create_ms,
            "start_time": state.start_ms, "end_time": state.end_ms,
            "total_time": views::total_ms(state.start_ms, state.end_ms),
        }));
    }
    let total = rows.len();
    let page: Vec<Value> = rows.into_iter().skip(start).take(length).collect();
    Ok(json!({"start": start, "length": length, "total": total, "data": page}))
}

fn plan_list(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let name = p.opt_str("name")?;
    let creator = p.opt_str("creator")?;
    let template = p.opt_i64("job_template_id")?;
    let from = p.opt_i64("create_time_start")?;
    let to = p.opt_i64("create_time_end")?;
    let (start, length) = wire::page(p)?;
    let created = ctx.app.started_ms;
    let rows: Vec<Value> = ctx
        .app
        .inventory
        .plans_in(&scope.kind, &scope.id)
        .into_iter()
        .filter(|plan| {
            let time = plan.create_time.unwrap_or(created);
            name.as_ref().is_none_or(|n| plan.name.contains(n.as_str()))
                && creator.as_ref().is_none_or(|c| &plan.creator == c)
                && template.is_none_or(|t| plan.template_id == Some(t))
                && from.is_none_or(|f| time >= f)
                && to.is_none_or(|t| time <= t)
        })
        .map(|plan| {
            let time = plan.create_time.unwrap_or(created);
            json!({
                "bk_scope_type": scope.kind, "bk_scope_id": scope.id, "id": plan.id,
                "job_template_id": plan.template_id.unwrap_or(plan.id), "name": plan.name,
                "creator": plan.creator, "create_time": time, "last_modify_user": plan.creator,
                "last_modify_time": time, "need_update": false,
            })
        })
        .collect();
    let total = rows.len();
    let page: Vec<Value> = rows.into_iter().skip(start).take(length).collect();
    Ok(json!({"data": page, "start": start, "length": length, "total": total}))
}

fn server_json(inventory: &Inventory, targets: &crate::emulator::model::world::TargetDef) -> Value {
    let spec = TargetSpec::from_def(targets).unwrap_or_default();
    let hosts = inventory
        .resolve(
            &TargetSpec {
                variable: None,
                ..spec
            },
            &Default::default(),
        )
        .unwrap_or_default();
    let mut value = json!({
        "host_id_list": hosts.iter().map(|h| h.host_id).collect::<Vec<_>>(),
        "ip_list": hosts.iter().map(|h| json!({"bk_host_id": h.host_id, "bk_cloud_id": h.addr.cloud_id, "ip": h.addr.ip})).collect::<Vec<_>>(),
        "dynamic_group_list": targets.dynamic_groups.iter().map(|g| json!({"id": g})).collect::<Vec<_>>(),
        "topo_node_list": targets.topo_nodes.iter().map(|t| json!({"id": t.id, "node_type": t.node_type})).collect::<Vec<_>>(),
    });
    // EsbServerV3DTO always has `variable`; the docs show "" for a server without one.
    value["variable"] = json!(targets.variable.clone().unwrap_or_default());
    value
}

/// An account as plan details show it (`EsbAccountV3BasicDTO`: id, name, alias).
fn account_json(inventory: &Inventory, alias: Option<&str>) -> Value {
    let alias = alias.unwrap_or("root");
    let (id, name) = inventory.account_view(alias);
    json!({"id": id, "name": name, "alias": alias})
}

fn plan_detail(ctx: &Ctx, scope: &Scope, plan: &PlanDef) -> Value {
    let inventory = &ctx.app.inventory;
    let time = plan.create_time.unwrap_or(ctx.app.started_ms);
    let vars: Vec<Value> = plan
        .global_vars
        .iter()
        .map(|v| {
            let mut value = json!({
                "id": v.id, "name": v.name, "type": v.kind, "description": v.description,
                "required": i32::from(v.required),
                "used": plan.steps.iter().any(|s| s.targets.variable.as_deref() == Some(&v.name)),
            });
            if v.kind == 3 {
                value["server"] = server_json(inventory, &v.targets);
            } else if v.kind == 4 {
                value["value"] = json!("******");
            } else {
                value["value"] = json!(v.value);
            }
            value
        })
        .collect();
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .map(|s| {
            let mut value = json!({"id": s.id, "name": s.name, "type": s.kind});
            if let Some(script) = &s.script {
                let stored = script
                    .script_version_id
                    .and_then(|v| inventory.script_version(v));
                let mut info = json!({
                    "script_type": if script.script_version_id.is_some() { 2 } else { 1 },
                    "script_language": script.language.or(stored.map(|d| d.language)).unwrap_or(1),
                    "script_param": script.param,
                    "script_timeout": script.timeout.unwrap_or(values::DEFAULT_TIMEOUT),
                    "is_param_sensitive": i32::from(script.sensitive),
                    "account": account_json(inventory, script.account.as_deref()),
                    "server": server_json(inventory, &s.targets),
                });
                if let Some(version) = script.script_version_id {
                    info["script_version_id"] = json!(version);
                    info["script_id"] = json!(stored.and_then(|d| d.script_id.clone()));
                } else {
                    info["script_content"] = json!(script.content.as_ref().map(|c| {
                        use base64::Engine as _;
                        base64::engine::general_purpose::STANDARD.encode(c)
                    }));
                }
                value["script_info"] = info;
            }
            if let Some(file) = &s.file {
                let sources: Vec<Value> = file
                    .sources
                    .iter()
                    .map(|src| match src.file_source_id {
                        Some(id) => json!({
                            "file_list": src.files, "file_type": 3, "file_source_id": id,
                        }),
                        None => json!({
                            "file_list": src.files, "file_type": 1,
                            "account": account_json(inventory, src.account.as_deref()),
                            "server": server_json(inventory, &src.targets),
                        }),
                    })
                    .collect();
                let mut info = json!({
                    "file_source_list": sources,
                    "file_destination": {
                        "path": file.target_path,
                        "account": account_json(inventory, file.account.as_deref()),
                        "server": server_json(inventory, &s.targets),
                    },
                    "timeout": file.timeout.unwrap_or(values::DEFAULT_TIMEOUT),
                    "transfer_mode": file.transfer_mode.unwrap_or(2),
                });
                if let Some(limit) = file.source_speed_limit {
                    info["source_speed_limit"] = json!(limit);
                }
                if let Some(limit) = file.destination_speed_limit {
                    info["destination_speed_limit"] = json!(limit);
                }
                value["file_info"] = info;
            }
            if let Some(confirm) = &s.confirm {
                value["approval_info"] = json!({
                    "approval_message": confirm.message,
                    "approval_user": {"user_list": confirm.users},
                });
            }
            value
        })
        .collect();
    json!({
        "bk_scope_type": scope.kind, "bk_scope_id": scope.id, "job_plan_id": plan.id,
        "job_template_id": plan.template_id.unwrap_or(plan.id), "name": plan.name,
        "creator": plan.creator, "create_time": time, "last_modify_user": plan.creator,
        "last_modify_time": time, "global_var_list": vars, "step_list": steps,
    })
}
