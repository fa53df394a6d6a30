//! Readers of request shapes shared by the v2, v3 and v4 handlers: paging, rolling
//! configs, `{bk_cloud_id, ip}` objects, source file lists, and the three shapes of a
//! target list (v2 `ip_list`/`custom_query_id`/`target_server`, v3 `target_server` /
//! `server`, v4 `execute_target`). Each refusal carries JOB's code and field name; the
//! rules on the values themselves are the model's (`model::values`).

use serde_json::Value;

use crate::emulator::http::params::{Params, value_i64, value_string};
use crate::emulator::model::inventory::{HostSel, TargetSpec};
use crate::emulator::model::job_error::JobError;
use crate::emulator::model::jobs::RollingMode;
use crate::emulator::model::new_job::{RollingBy, RollingSpec};
use crate::emulator::model::world::TopoRef;
use crate::emulator::model::world_objects::ContainerFilter;
use crate::job_api::rules::RollingExpr;
use crate::job_api::types::HostAddr;

/// JOB's paging (`EsbJobReq.adjustPageParam`): `start` from 0, `length` 20 unless
/// given, at most 1000.
pub fn page(params: &Params) -> Result<(usize, usize), JobError> {
    let start = params.opt_i64("start")?.unwrap_or(0).max(0) as usize;
    let length = params.opt_i64("length")?.unwrap_or(20).clamp(1, 1000) as usize;
    Ok((start, length))
}

/// `rolling_config`, if present.
pub fn rolling(params: &Params) -> Result<Option<RollingSpec>, JobError> {
    let Some(config) = params.opt_object("rolling_config")? else {
        return Ok(None);
    };
    let mode = match config.opt_i64("mode")? {
        None => RollingMode::Pause,
        Some(m) => {
            RollingMode::from_code(m).ok_or_else(|| JobError::illegal("rolling_config.mode"))?
        }
    };
    let kind = config.opt_i64("type")?.unwrap_or(1);
    let by = match kind {
        1 => {
            let expression = config
                .opt_str("expression")?
                .ok_or_else(|| JobError::missing("rolling_config.expression"))?;
            RollingBy::Targets(
                RollingExpr::parse(&expression).map_err(|_| JobError::invalid_rolling())?,
            )
        }
        2 => {
            let file_source = config.opt_object("file_source")?.unwrap_or_default();
            let limit = |key: &str| -> Result<Option<usize>, JobError> {
                match file_source.opt_i64(key)? {
                    None => Ok(None),
                    Some(n) if n > 0 => Ok(Some(n as usize)),
                    Some(_) => Err(JobError::illegal(&format!(
                        "rolling_config.file_source.{key}"
                    ))),
                }
            };
            RollingBy::Sources {
                max_hosts: limit("max_execute_object_num_in_batch")?,
                max_files: limit("max_file_num_of_single_execute_object")?,
            }
        }
        _ => return Err(JobError::illegal("rolling_config.type")),
    };
    Ok(Some(RollingSpec { mode, by }))
}

/// One `{bk_cloud_id, ip}` object.
pub fn ip_object(field: &str, value: &Value) -> Result<HostAddr, JobError> {
    let Value::Object(map) = value else {
        return Err(JobError::illegal(field));
    };
    let cloud = map.get("bk_cloud_id").and_then(value_i64);
    let ip = map.get("ip").and_then(value_string);
    match (cloud, ip) {
        (Some(cloud), Some(ip)) if cloud >= 0 => {
            let ip = ip.trim();
            if ip.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(JobError::illegal(field));
            }
            Ok(HostAddr {
                cloud_id: cloud as u64,
                ip: ip.to_owned(),
            })
        }
        _ => Err(JobError::illegal(field)),
    }
}

fn ip_list(params: &Params, key: &str, spec: &mut TargetSpec) -> Result<(), JobError> {
    for item in params.opt_array(key)?.unwrap_or_default() {
        spec.hosts.push(HostSel::Addr(ip_object(key, &item)?));
    }
    Ok(())
}

fn string_ids(params: &Params, key: &str) -> Result<Vec<String>, JobError> {
    params
        .opt_array(key)?
        .unwrap_or_default()
        .iter()
        .map(|v| value_string(v).ok_or_else(|| JobError::illegal(key)))
        .collect()
}

fn object_ids(params: &Params, key: &str) -> Result<Vec<String>, JobError> {
    params
        .opt_array(key)?
        .unwrap_or_default()
        .iter()
        .map(|v| {
            v.get("id")
                .and_then(value_string)
                .or_else(|| value_string(v))
                .ok_or_else(|| JobError::illegal(key))
        })
        .collect()
}

fn topo_nodes(params: &Params, key: &str) -> Result<Vec<TopoRef>, JobError> {
    params
        .opt_array(key)?
        .unwrap_or_default()
        .iter()
        .map(|v| {
            let id = v.get("id").and_then(value_i64);
            let node_type = v.get("node_type").and_then(value_string);
            match (id, node_type) {
                (Some(id), Some(node_type)) => Ok(TopoRef { node_type, id }),
                _ => Err(JobError::illegal(key)),
            }
        })
        .collect()
}

/// v2 targets: top-level (or per-source) `ip_list` + `custom_query_id`, plus a
/// `target_server` object `{ip_list, dynamic_group_id_list, topo_node_list}`.
pub fn v2_target(params: &Params) -> Result<TargetSpec, JobError> {
    let mut spec = TargetSpec::default();
    ip_list(params, "ip_list", &mut spec)?;
    spec.groups.extend(string_ids(params, "custom_query_id")?);
    if let Some(server) = params.opt_object("target_server")? {
        ip_list(&server, "ip_list", &mut spec)?;
        spec.groups
            .extend(string_ids(&server, "dynamic_group_id_list")?);
        spec.groups
            .extend(object_ids(&server, "dynamic_group_list")?);
        spec.topo.extend(topo_nodes(&server, "topo_node_list")?);
    }
    Ok(spec)
}

/// Whether a v2 request names any target field at all.
pub fn v2_has_target(params: &Params) -> bool {
    ["ip_list", "custom_query_id", "target_server"]
        .iter()
        .any(|k| params.has(k))
}

/// v3 server object `{host_id_list, ip_list, dynamic_group_list, topo_node_list}`;
/// `ip_list` is ignored when `host_id_list` is given.
pub fn v3_server(server: &Params) -> Result<TargetSpec, JobError> {
    let mut spec = TargetSpec::default();
    let ids = server.opt_array("host_id_list")?.unwrap_or_default();
    for id in &ids {
        match value_i64(id) {
            Some(id) if id > 0 => spec.hosts.push(HostSel::Id(id as u64)),
            _ => return Err(JobError::illegal("host_id_list")),
        }
    }
    if ids.is_empty() {
        ip_list(server, "ip_list", &mut spec)?;
    }
    spec.groups
        .extend(object_ids(server, "dynamic_group_list")?);
    spec.topo.extend(topo_nodes(server, "topo_node_list")?);
    if let Some(variable) = server.opt_str("variable")? {
        spec.variable = Some(variable);
    }
    Ok(spec)
}

/// v4 `execute_target {host_list, dynamic_group_list, topo_node_list}`; a host gives
/// `bk_host_id` (wins) or `bk_cloud_id` + `ip`.
pub fn v4_target(target: &Params) -> Result<TargetSpec, JobError> {
    let mut spec = TargetSpec::default();
    for host in target.opt_array("host_list")?.unwrap_or_default() {
        match host.get("bk_host_id").and_then(value_i64) {
            Some(id) if id > 0 => spec.hosts.push(HostSel::Id(id as u64)),
            Some(_) => return Err(JobError::illegal("execute_target.host_list")),
            None => spec
                .hosts
                .push(HostSel::Addr(ip_object("execute_target.host_list", &host)?)),
        }
    }
    spec.groups
        .extend(object_ids(target, "dynamic_group_list")?);
    spec.topo.extend(topo_nodes(target, "topo_node_list")?);
    Ok(spec)
}

/// The `kube_container_filters` of a v4 `execute_target`.
pub fn container_filters(target: &Params) -> Result<Vec<ContainerFilter>, JobError> {
    const FIELD: &str = "execute_target.kube_container_filters";
    let strings = |p: Option<Params>, key: &str| -> Result<Option<Vec<String>>, JobError> {
        let Some(p) = p else { return Ok(None) };
        let Some(items) = p.opt_array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| value_string(v).ok_or_else(|| JobError::illegal(FIELD)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    let mut filters = Vec::new();
    for f in target
        .opt_objects("kube_container_filters")?
        .unwrap_or_default()
    {
        let cluster = f
            .opt_object("kube_cluster_filter")?
            .ok_or_else(|| JobError::missing("kube_cluster_filter"))?;
        let clusters = strings(Some(cluster), "cluster_uid_list")?
            .filter(|l| !l.is_empty())
            .ok_or_else(|| JobError::missing("kube_cluster_filter.cluster_uid_list"))?;
        let workload = f.opt_object("kube_workload_filter")?;
        filters.push(ContainerFilter {
            clusters,
            namespaces: strings(
                f.opt_object("kube_namespace_filter")?,
                "namespace_name_list",
            )?,
            workload_kind: match &workload {
                Some(w) => w.opt_str("kind")?,
                None => None,
            },
            workloads: strings(workload, "workload_name_list")?,
            pods: strings(f.opt_object("kube_pod_filter")?, "pod_name_list")?,
            names: strings(
                f.opt_object("kube_container_prop_filter")?,
                "container_name_list",
            )?,
            whole_cluster: f.opt_bool("execute_in_whole_cluster")?.unwrap_or(false),
        });
    }
    Ok(filters)
}

/// Object names of a third-party file source (`bucket/key`: relative, no `..`).
pub fn object_names(field: &str, values: Option<Vec<Value>>) -> Result<Vec<String>, JobError> {
    let values = values.ok_or_else(|| JobError::missing(field))?;
    let mut names = Vec::new();
    for value in values {
        let name = value_string(&value).ok_or_else(|| JobError::illegal(field))?;
        let name = name.trim().trim_start_matches('/').to_owned();
        if name.is_empty() || name.split('/').any(|part| part == "..") {
            return Err(JobError::illegal(field));
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err(JobError::missing(field));
    }
    Ok(names)
}

/// Checks source paths.
pub fn source_files(field: &str, values: Option<Vec<Value>>) -> Result<Vec<String>, JobError> {
    let values = values.ok_or_else(|| JobError::missing(field))?;
    let mut files = Vec::new();
    for value in values {
        let path = value_string(&value).ok_or_else(|| JobError::illegal(field))?;
        let path = path.trim().to_owned();
        crate::job_api::rules::check_source_path(&path).map_err(|_| JobError::illegal(field))?;
        files.push(path);
    }
    if files.is_empty() {
        return Err(JobError::missing(field));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_configs_are_checked() {
        let p =
            Params::from_body(br#"{"rolling_config": {"expression": "0", "mode": 1}}"#).unwrap();
        assert_eq!(rolling(&p).err().unwrap().code, 1_244_026);
        let p =
            Params::from_body(br#"{"rolling_config": {"expression": "25%", "mode": 3}}"#).unwrap();
        assert!(rolling(&p).unwrap().is_some());
    }
}
