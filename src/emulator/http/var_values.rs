//! `get_job_instance_global_var_value` on every door that has it: ESB v2
//! (`job_instance_var_values[]` with `category`), and gateway v3 / ESB jobv3
//! (`step_instance_var_list[]` with `type`, host variables under `server`). Each step
//! instance that recorded variables lists them as it left them, as the docs' examples
//! show.

use serde_json::{Value, json};

use crate::emulator::http::context::Ctx;
use crate::emulator::http::params::Params;
use crate::emulator::model::job_error::JobError;
use crate::emulator::model::job_vars::{JobVar, var_type};
use crate::emulator::model::jobs::JobState;

/// The step instances with their variables, in step order.
fn recorded(state: &JobState) -> Vec<(u64, &[JobVar])> {
    state
        .steps
        .iter()
        .filter_map(|s| s.var_values.as_deref().map(|vars| (s.id, vars)))
        .collect()
}

fn v3_server(var: &JobVar) -> Value {
    json!({
        "ip_list": var.hosts.iter().map(|h| json!({"bk_cloud_id": h.addr.cloud_id, "ip": h.addr.ip})).collect::<Vec<_>>(),
        "dynamic_group_list": [],
        "topo_node_list": [],
    })
}

/// Answers the v3 / ESB jobv3 call.
pub fn v3(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let job = ctx.job(p, &scope)?;
    let state = job.lock();
    let list: Vec<Value> = recorded(&state)
        .into_iter()
        .map(|(step, vars)| {
            let vars: Vec<Value> = vars
                .iter()
                .map(|v| {
                    if v.kind == var_type::HOSTS {
                        json!({"name": v.name, "type": v.kind, "server": v3_server(v)})
                    } else {
                        json!({"name": v.name, "value": v.value, "type": v.kind})
                    }
                })
                .collect();
            json!({"step_instance_id": step, "global_var_list": vars})
        })
        .collect();
    Ok(json!({"job_instance_id": job.id, "step_instance_var_list": list}))
}

/// Answers the ESB v2 call.
pub fn v2(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let job = ctx.job(p, &scope)?;
    let state = job.lock();
    let list: Vec<Value> = recorded(&state)
        .into_iter()
        .map(|(step, vars)| {
            let vars: Vec<Value> = vars
                .iter()
                .map(|v| {
                    let value = if v.kind == var_type::HOSTS {
                        v.hosts
                            .iter()
                            .map(|h| format!("{}:{}", h.addr.cloud_id, h.addr.ip))
                            .collect::<Vec<_>>()
                            .join(",")
                    } else {
                        v.value.clone()
                    };
                    json!({"name": v.name, "value": value, "category": v.kind})
                })
                .collect();
            json!({"step_instance_id": step, "step_instance_var_values": vars})
        })
        .collect();
    Ok(json!({"job_instance_id": job.id, "job_instance_var_values": list}))
}
