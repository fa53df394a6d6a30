//! Gateway v4 (`/api/v4/<name>`): fast_execute_script exactly as seed 003
//! (`execute_target` with hosts or `kube_container_filters` over the world's
//! containers, `param_sensitive`, `rolling_config`, `start_task`),
//! get_job_instance_status (`return_execute_object_result` →
//! `step_execute_object_result_list`), get_job_instance_list and
//! batch_get_job_instance_execute_object_log.
//! Errors go out with real HTTP statuses (envelope.rs).

use serde_json::{Value, json};

use crate::emulator::http::context::{ApiKind, Ctx};
use crate::emulator::http::params::{Params, value_i64};
use crate::emulator::http::shared::{log_hosts, script_basics, submit_script};
use crate::emulator::http::views;
use crate::emulator::http::wire;
use crate::emulator::model::inventory::HostSel;
use crate::emulator::model::job_error::JobError;
use crate::emulator::model::world_objects;
use crate::job_api::types::HostAddr;

/// v4's limit on hosts per log query.
const MAX_V4_LOG_HOSTS: usize = 100;

/// Which v4 APIs exist.
pub fn api_kind(name: &str) -> Option<ApiKind> {
    Some(match name {
        "fast_execute_script" | "batch_get_job_instance_execute_object_log" => ApiKind::Action,
        "get_job_instance_status" | "get_job_instance_list" => ApiKind::Query,
        _ => return None,
    })
}

/// Runs a v4 API.
pub fn dispatch(ctx: &Ctx, name: &str, p: &Params) -> Result<Value, JobError> {
    match name {
        "fast_execute_script" => {
            let scope = ctx.scope(p)?;
            let sensitive = p.opt_bool("param_sensitive")?.unwrap_or(false);
            let basics = script_basics(ctx, p, sensitive)?;
            let target = p
                .opt_object("execute_target")?
                .ok_or_else(|| JobError::illegal("execute_target"))?;
            let mut spec = wire::v4_target(&target)?;
            let filters = wire::container_filters(&target)?;
            if !filters.is_empty() {
                if !spec.is_empty() {
                    // Hosts and containers cannot run in one task.
                    return Err(JobError::illegal("execute_target"));
                }
                let containers = ctx.app.inventory.containers(&filters);
                spec.hosts = containers
                    .into_iter()
                    .map(|c| HostSel::Id(c.host_id))
                    .collect();
            }
            if spec.is_empty() {
                return Err(JobError::server_empty());
            }
            submit_script(ctx, scope, basics, &spec)
        }
        "get_job_instance_status" => {
            let scope = ctx.scope(p)?;
            let job = ctx.job(p, &scope)?;
            let objects = p.opt_bool("return_execute_object_result")?.unwrap_or(false);
            let ips = p.opt_bool("return_ip_result")?.unwrap_or(false);
            let state = job.lock();
            Ok(views::v4_status(
                &ctx.app.inventory,
                &job,
                &state,
                objects,
                ips,
            ))
        }
        "get_job_instance_list" => instance_list(ctx, p),
        "batch_get_job_instance_execute_object_log" => {
            let scope = ctx.scope(p)?;
            let job = ctx.job(p, &scope)?;
            let step_id = match p.opt_i64("step_instance_id")? {
                Some(id) if id > 0 => id,
                _ => return Err(JobError::illegal("step_instance_id")),
            };
            let hosts = match p.opt_array("container_id_list")? {
                Some(ids) if !ids.is_empty() => container_log_hosts(&ids)?,
                _ => log_hosts(ctx, p, MAX_V4_LOG_HOSTS)?,
            };
            let state = job.lock();
            let step = views::step_by_id(&state, step_id)?;
            let logs: Vec<Value> = hosts
                .iter()
                .map(|h| views::v4_host_log(&ctx.app.inventory, step, h))
                .collect();
            let file = matches!(step.kind, crate::emulator::model::jobs::StepKind::File(_));
            let mut data = json!({
                "job_instance_id": job.id, "step_instance_id": step.id,
                "log_type": if file { 2 } else { 1 },
            });
            let key = if file {
                "file_step_execute_object_logs"
            } else {
                "script_step_execute_object_logs"
            };
            data[key] = json!(logs);
            Ok(data)
        }
        _ => Err(JobError::illegal_params()),
    }
}

/// The hosts the containers of a `container_id_list` stand on.
fn container_log_hosts(ids: &[Value]) -> Result<Vec<HostAddr>, JobError> {
    if ids.len() > MAX_V4_LOG_HOSTS {
        return Err(JobError::illegal("container_id_list"));
    }
    ids.iter()
        .map(|id| {
            let id = value_i64(id)
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| JobError::illegal("container_id_list"))?;
            Ok(world_objects::container_host(id).0)
        })
        .collect()
}

/// `get_job_instance_list`: v3's filters, both creation bounds required, `offset`
/// (at most 10000) for `start`, `length` 10 by default and at most 200, and the rows as
/// `V4JobInstanceDTO` has them under `job_instance_list`.
fn instance_list(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    for key in ["create_time_start", "create_time_end"] {
        p.opt_i64(key)?.ok_or_else(|| JobError::missing(key))?;
    }
    let offset = p.opt_i64("offset")?.unwrap_or(0);
    if !(0..=10_000).contains(&offset) {
        return Err(JobError::illegal("offset"));
    }
    let length = p.opt_i64("length")?.unwrap_or(10).clamp(1, 200);
    let mut query = p.as_value();
    query["start"] = json!(offset);
    query["length"] = json!(length);
    let query = match query {
        Value::Object(map) => Params::from_map(map),
        _ => Params::default(),
    };
    let data = super::v3::job_instance_list(ctx, &query)?;
    let rows: Vec<Value> = data["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut row| {
            if let Some(map) = row.as_object_mut() {
                map.remove("id");
            }
            row
        })
        .collect();
    Ok(json!({ "job_instance_list": rows }))
}
