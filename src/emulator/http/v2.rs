//! ESB v2 (`/api/c/compapi/v2/job/<name>/`): fast_execute_script, fast_push_file,
//! push_config_file,
//! execute_job (with `steps` overrides and `global_vars`), execute_platform_job (source
//! and target business), get_job_instance_status, get_job_instance_log,
//! operate_job_instance, operate_step_instance, get_job_list, get_job_detail,
//! get_job_instance_global_var_value.
//! Parsed from JOB's v2 wire format, independently of baton's client.

use serde_json::{Value, json};

use crate::emulator::http::config_push;
use crate::emulator::http::context::{ApiKind, Ctx};
use crate::emulator::http::params::Params;
use crate::emulator::http::shared::{self, FastTask};
use crate::emulator::http::var_values;
use crate::emulator::http::views;
use crate::emulator::http::wire;
use crate::emulator::model::job_error::JobError;
use crate::emulator::model::jobs::{FileSource, FileStep, ScriptStep, StepKind};
use crate::emulator::model::plans::{PlanRun, SourceOverride, StepOverride, VarValue};
use crate::emulator::model::protocol::Protocol;
use crate::emulator::model::scope::{self, Scope};
use crate::emulator::model::values::{self, ScriptSource};
use crate::emulator::model::world::PlanDef;

/// Which v2 APIs exist.
pub fn api_kind(name: &str) -> Option<ApiKind> {
    Some(match name {
        "fast_execute_script"
        | "fast_push_file"
        | "push_config_file"
        | "execute_job"
        | "execute_platform_job"
        | "operate_job_instance"
        | "operate_step_instance" => ApiKind::Action,
        "get_job_instance_status"
        | "get_job_instance_log"
        | "get_job_list"
        | "get_job_detail"
        | "get_job_instance_global_var_value" => ApiKind::Query,
        _ => return None,
    })
}

/// Runs a v2 API.
pub fn dispatch(ctx: &Ctx, name: &str, p: &Params) -> Result<Value, JobError> {
    match name {
        "fast_execute_script" => fast_execute_script(ctx, p),
        "fast_push_file" => fast_push_file(ctx, p),
        "push_config_file" => config_push::push_config_file(ctx, p, config_push::Door::V2),
        "execute_job" => execute_job(ctx, p),
        "execute_platform_job" => execute_platform_job(ctx, p),
        "get_job_instance_status" => {
            let scope = ctx.scope(p)?;
            let job = ctx.job(p, &scope)?;
            let state = job.lock();
            Ok(views::v2_status(&job, &state))
        }
        "get_job_instance_log" => {
            let scope = ctx.scope(p)?;
            let job = ctx.job(p, &scope)?;
            let state = job.lock();
            Ok(views::v2_log(&state))
        }
        "operate_job_instance" => shared::operate_job(ctx, p),
        "operate_step_instance" => shared::operate_step(ctx, p),
        "get_job_list" => get_job_list(ctx, p),
        "get_job_instance_global_var_value" => var_values::v2(ctx, p),
        "get_job_detail" => {
            let scope = ctx.scope(p)?;
            let id = p.req_i64("bk_job_id")?;
            let plan = shared::plan(ctx, &scope, id)?;
            Ok(plan_detail(ctx, &scope, plan))
        }
        _ => Err(JobError::illegal_params()),
    }
}

fn require_target(p: &Params) -> Result<crate::emulator::model::inventory::TargetSpec, JobError> {
    if !wire::v2_has_target(p) {
        return Err(JobError::missing_or_illegal(
            "ip_list|custom_query_id|target_server",
        ));
    }
    wire::v2_target(p)
}

fn fast_execute_script(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let inventory = &ctx.app.inventory;
    let name = values::task_name(p.opt_str("task_name")?, "API Quick execution script")?;
    let sensitive = p.opt_i64("is_param_sensitive")? == Some(1);
    let (language, content) = values::script(
        inventory,
        ScriptSource {
            version_id: p.opt_i64("script_id")?,
            script_id: None,
            content: p.opt_str("script_content")?,
            language: p.opt_i64("script_type")?,
            names: ("script_id", "script_id", "script_content", "script_type"),
            missing: "script_id|script_content",
        },
    )?;
    let params = values::script_param("script_param", p.opt_str("script_param")?, sensitive)?;
    let timeout = values::timeout("script_timeout", p.opt_i64("script_timeout")?)?;
    let alias = p
        .opt_str("account")?
        .ok_or_else(|| JobError::missing("account"))?;
    let account = inventory.account_by_alias(&alias)?;
    let spec = require_target(p)?;
    let targets = inventory.resolve_targets(&spec)?;
    let callback_url = values::callback_url("bk_callback_url", p.opt_str("bk_callback_url")?)?;
    let submitted = shared::submit_fast(
        ctx,
        FastTask {
            scope,
            name,
            kind: StepKind::Script(ScriptStep {
                language,
                content,
                params,
                timeout_secs: timeout,
                account,
                sensitive,
                env: Vec::new(),
            }),
            targets,
            rolling: None,
            callback_url,
            start: true,
        },
    )?;
    Ok(shared::answer(&submitted, true))
}

fn file_sources(ctx: &Ctx, p: &Params) -> Result<Vec<FileSource>, JobError> {
    let inventory = &ctx.app.inventory;
    let list = p
        .opt_objects("file_source")?
        .ok_or_else(|| JobError::missing("file_source"))?;
    if list.is_empty() {
        return Err(JobError::missing("file_source"));
    }
    let mut sources = Vec::new();
    for source in list {
        let files = wire::source_files("file_source.files", source.opt_array("files")?)?;
        let alias = source
            .opt_str("account")?
            .ok_or_else(|| JobError::missing("file_source.account"))?;
        let spec = wire::v2_target(&source)?;
        let hosts = inventory.resolve_targets(&spec)?;
        sources.push(FileSource {
            hosts,
            files,
            account: inventory.account_by_alias(&alias)?,
        });
    }
    Ok(sources)
}

fn fast_push_file(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let inventory = &ctx.app.inventory;
    let name = values::task_name(p.opt_str("task_name")?, "API Quick Distribution File")?;
    let alias = p
        .opt_str("account")?
        .ok_or_else(|| JobError::missing("account"))?;
    let account = inventory.account_by_alias(&alias)?;
    let target_path = values::target_path("file_target_path", p.opt_str("file_target_path")?)?;
    let sources = file_sources(ctx, p)?;
    let spec = require_target(p)?;
    let targets = inventory.resolve_targets(&spec)?;
    let timeout = values::timeout("timeout", p.opt_i64("timeout")?)?;
    let callback_url = values::callback_url("bk_callback_url", p.opt_str("bk_callback_url")?)?;
    let submitted = shared::submit_fast(
        ctx,
        FastTask {
            scope,
            name,
            kind: StepKind::File(FileStep {
                sources,
                target_path,
                target_name: None,
                // v2 always creates missing target folders (force mode).
                strict: false,
                account,
                timeout_secs: timeout,
            }),
            targets,
            rolling: None,
            callback_url,
            start: true,
        },
    )?;
    Ok(shared::answer(&submitted, false))
}

fn var_values(p: &Params) -> Result<Vec<VarValue>, JobError> {
    let mut out = Vec::new();
    for var in p.opt_objects("global_vars")?.unwrap_or_default() {
        let hosts = if wire::v2_has_target(&var) {
            Some(wire::v2_target(&var)?)
        } else {
            None
        };
        out.push(VarValue {
            id: var.opt_i64("id")?,
            name: var.opt_str("name")?,
            value: var.opt_str("value")?,
            hosts,
        });
    }
    Ok(out)
}

fn step_overrides(p: &Params) -> Result<Option<Vec<StepOverride>>, JobError> {
    let Some(list) = p.opt_objects("steps")? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for s in list {
        let file_source = match s.opt_objects("file_source")? {
            None => None,
            Some(sources) => {
                let mut parsed = Vec::new();
                for source in sources {
                    parsed.push(SourceOverride {
                        files: wire::source_files("file_source.files", source.opt_array("files")?)?,
                        account: source.opt_str("account")?.unwrap_or_else(|| "root".into()),
                        hosts: wire::v2_target(&source)?,
                    });
                }
                Some(parsed)
            }
        };
        out.push(StepOverride {
            step_id: s.req_i64("step_id")?,
            script_version_id: s.opt_i64("script_id")?,
            script_content: s.opt_str("script_content")?,
            script_type: s.opt_i64("script_type")?,
            script_param: s.opt_str("script_param")?,
            script_timeout: s.opt_i64("script_timeout")?,
            account: s.opt_str("account")?,
            file_target_path: s.opt_str("file_target_path")?,
            file_source,
            targets: if wire::v2_has_target(&s) {
                Some(wire::v2_target(&s)?)
            } else {
                None
            },
        });
    }
    Ok(Some(out))
}

fn run_plan(ctx: &Ctx, p: &Params, plan: &PlanDef, scopes: Vec<Scope>) -> Result<Value, JobError> {
    let run = PlanRun {
        scopes,
        operator: ctx.caller.user.clone(),
        vars: var_values(p)?,
        steps: step_overrides(p)?,
        callback_url: values::callback_url("bk_callback_url", p.opt_str("bk_callback_url")?)?,
        start: true,
        protocol: Protocol::V2,
    };
    shared::submit_plan(ctx, plan, run)
}

fn execute_job(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let id = p.req_i64("bk_job_id")?;
    let plan = shared::plan(ctx, &scope, id)?;
    run_plan(ctx, p, plan, vec![scope])
}

fn execute_platform_job(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let biz = |key: &str| -> Result<Scope, JobError> {
        match p.opt_i64(key)? {
            Some(id) if id > 0 => Ok(Scope::from_biz_id(id)),
            Some(_) => Err(JobError::illegal(key)),
            None => Err(JobError::missing(key)),
        }
    };
    let source = biz("source_bk_biz_id")?;
    let target = biz("target_bk_biz_id")?;
    for s in [&source, &target] {
        scope::check_access(&ctx.app.inventory, &ctx.caller, s)?;
    }
    let id = p.req_i64("bk_job_id")?;
    let inventory = &ctx.app.inventory;
    let plan = inventory
        .plan(id, &source.kind, &source.id)
        .or_else(|| inventory.plan(id, &target.kind, &target.id))
        .ok_or_else(JobError::plan_missing)?;
    // The instance runs for the target business and is visible from both.
    run_plan(ctx, p, plan, vec![target, source])
}

fn get_job_list(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let name = p.opt_str("name")?;
    let creator = p.opt_str("creator")?;
    let (start, length) = wire::page(p)?;
    let created = ctx.app.started_ms;
    let rows: Vec<Value> = ctx
        .app
        .inventory
        .plans_in(&scope.kind, &scope.id)
        .into_iter()
        .filter(|plan| name.as_ref().is_none_or(|n| plan.name.contains(n.as_str())))
        .filter(|plan| creator.as_ref().is_none_or(|c| &plan.creator == c))
        .skip(start)
        .take(length)
        .map(|plan| {
            let time = views::v2_time(Some(plan.create_time.unwrap_or(created)));
            json!({
                "bk_biz_id": scope.biz_id(), "bk_job_id": plan.id, "name": plan.name,
                "creator": plan.creator, "create_time": time, "last_modify_user": plan.creator,
                "last_modify_time": time, "step_num": plan.steps.len(), "tag_id": "",
            })
        })
        .collect();
    Ok(json!(rows))
}

fn plan_detail(ctx: &Ctx, scope: &Scope, plan: &PlanDef) -> Value {
    let inventory = &ctx.app.inventory;
    let created = views::v2_time(Some(plan.create_time.unwrap_or(ctx.app.started_ms)));
    let ip_list = |targets: &crate::emulator::model::world::TargetDef| -> Value {
        // v2 has no host variables on the wire: a target given by one shows its hosts.
        let targets = targets
            .variable
            .as_ref()
            .and_then(|name| plan.global_vars.iter().find(|v| &v.name == name))
            .map_or(targets, |var| &var.targets);
        let spec =
            crate::emulator::model::inventory::TargetSpec::from_def(targets).unwrap_or_default();
        let hosts = inventory
            .resolve(&spec, &Default::default())
            .unwrap_or_default();
        json!({
            "ip_list": hosts.iter().map(|h| json!({"bk_cloud_id": h.addr.cloud_id, "ip": h.addr.ip})).collect::<Vec<_>>(),
            "dynamic_group_id_list": targets.dynamic_groups,
            "topo_node_list": targets.topo_nodes.iter().map(|t| json!({"id": t.id, "node_type": t.node_type})).collect::<Vec<_>>(),
        })
    };
    let vars: Vec<Value> = plan
        .global_vars
        .iter()
        .map(|v| {
            // v2 categories: 1 string, 2 namespace, 3 host list, 4 password.
            let mut value = json!({
                "id": v.id, "category": v.kind, "name": v.name, "description": v.description,
                "value": if v.kind == 4 { "******".to_owned() } else { v.value.clone() },
                "step_ids": plan.steps.iter().filter(|s| s.targets.variable.as_deref() == Some(&v.name)).map(|s| s.id).collect::<Vec<_>>(),
            });
            if v.kind == 3 {
                value["target_server"] = ip_list(&v.targets);
            }
            value
        })
        .collect();
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .map(|s| {
            let mut value = json!({
                "step_id": s.id, "name": s.name, "type": s.kind, "target_server": ip_list(&s.targets),
                "creator": plan.creator, "create_time": created, "last_modify_user": plan.creator,
                "last_modify_time": created,
            });
            if let Some(script) = &s.script {
                let stored = script
                    .script_version_id
                    .and_then(|v| inventory.script_version(v));
                value["script_type"] = json!(
                    script
                        .language
                        .or(stored.map(|d| d.language))
                        .unwrap_or(1)
                );
                // EsbStepDTO is NON_NULL: a local script has no script_id; a cited one
                // shows its version and content.
                if let Some(version) = script.script_version_id {
                    value["script_id"] = json!(version);
                }
                let content = script
                    .content
                    .clone()
                    .or(stored.map(|d| d.content.clone()));
                value["script_content"] = json!(content.map(|c| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.encode(c)
                }));
                value["script_param"] = json!(script.param);
                value["script_timeout"] = json!(script.timeout.unwrap_or(values::DEFAULT_TIMEOUT));
                value["account"] = json!(script.account.clone().unwrap_or_else(|| "root".into()));
                value["is_param_sensitive"] = json!(i32::from(script.sensitive));
            }
            if let Some(file) = &s.file {
                value["file_target_path"] = json!(file.target_path);
                value["account"] = json!(file.account.clone().unwrap_or_else(|| "root".into()));
                value["file_source"] = file
                    .sources
                    .iter()
                    .map(|src| match src.file_source_id {
                        // EsbFileSourceDTO: the hosts nest under `target_server`.
                        Some(id) => json!({
                            "files": src.files, "file_type": 3, "file_source_id": id,
                        }),
                        None => json!({
                            "files": src.files, "file_type": 1,
                            "account": src.account.clone().unwrap_or_else(|| "root".into()),
                            "target_server": ip_list(&src.targets),
                        }),
                    })
                    .collect();
            }
            value
        })
        .collect();
    json!({
        "bk_biz_id": scope.biz_id(), "bk_scope_type": scope.kind, "bk_scope_id": scope.id,
        "bk_job_id": plan.id, "name": plan.name, "creator": plan.creator, "create_time": created,
        "last_modify_user": plan.creator, "last_modify_time": created, "tag_id": "",
        "step_num": plan.steps.len(), "global_vars": vars, "steps": steps,
    })
}
