//! Writes a resolved host set in each protocol's wire shape: v2 `ip_list` +
//! `custom_query_id`, v3 `server` objects, v4 `execute_target`; [`check`] reports what
//! could not be resolved and a set that names no hosts.

use serde_json::{Map, Value, json};

use super::build::Errors;
use super::request::{Hosts, TopoNode};
use super::types::HostAddr;
use super::types::Protocol;

/// Reports the set's resolution problems, and `when_empty` under its field when it
/// names no hosts at all.
pub(crate) fn check(hosts: &Hosts, when_empty: &str, errors: &mut Errors) {
    errors.extend(&hosts.problems);
    if hosts.is_empty() {
        errors.add(&hosts.field, when_empty);
    }
}

/// `[{bk_cloud_id, ip}]`, the IP object every protocol shares.
pub(crate) fn ip_objects(ips: &[HostAddr]) -> Value {
    Value::Array(
        ips.iter()
            .map(|a| json!({ "bk_cloud_id": a.cloud_id, "ip": a.ip }))
            .collect(),
    )
}

fn topo_objects(nodes: &[TopoNode]) -> Value {
    Value::Array(
        nodes
            .iter()
            .map(|n| json!({ "id": n.id, "node_type": n.node_type }))
            .collect(),
    )
}

fn group_objects(groups: &[String]) -> Value {
    Value::Array(groups.iter().map(|g| json!({ "id": g })).collect())
}

/// Writes v2's `ip_list` and `custom_query_id` into `object` (only the non-empty ones,
/// as the seed examples do). v2 has no way to name hosts by id or topology node, so
/// those are errors naming the field and protocol.
pub(crate) fn write_v2(
    hosts: &Hosts,
    field: &str,
    api: &str,
    object: &mut Map<String, Value>,
    errors: &mut Errors,
) {
    if !hosts.host_ids.is_empty() {
        errors.unsupported(
            &format!("{field}.host_ids"),
            Protocol::V2,
            api,
            "v2 names hosts by `cloud:ip` (ips) or dynamic group; use ips, or protocol v3/v4",
        );
    }
    if !hosts.topo_nodes.is_empty() {
        errors.unsupported(
            &format!("{field}.topo_nodes"),
            Protocol::V2,
            api,
            "v2 names hosts by `cloud:ip` (ips) or dynamic group; use protocol v3/v4 for topology nodes",
        );
    }
    if !hosts.ips.is_empty() {
        object.insert("ip_list".into(), ip_objects(&hosts.ips));
    }
    if !hosts.dynamic_groups.is_empty() {
        object.insert(
            "custom_query_id".into(),
            Value::Array(
                hosts
                    .dynamic_groups
                    .iter()
                    .map(|g| Value::String(g.clone()))
                    .collect(),
            ),
        );
    }
}

/// v3's server object (`target_server`, a file source's `server`, a host variable's
/// `server`). JOB ignores `ip_list` whenever `host_id_list` is present, so a set that
/// mixes both would silently lose its IP hosts: that is refused here.
pub(crate) fn v3_server(hosts: &Hosts, field: &str, errors: &mut Errors) -> Value {
    if !hosts.host_ids.is_empty() && !hosts.ips.is_empty() {
        let dropped: Vec<String> = hosts.ips.iter().map(ToString::to_string).collect();
        errors.add(
            field,
            format!(
                "mixes host_ids and ips; on protocol v3 JOB ignores ip_list when host_id_list is present, \
                 so {} would not be targeted: name these hosts one way (or use protocol v4)",
                dropped.join(", ")
            ),
        );
    }
    let mut server = Map::new();
    if !hosts.host_ids.is_empty() {
        server.insert("host_id_list".into(), json!(hosts.host_ids));
    }
    if !hosts.ips.is_empty() {
        server.insert("ip_list".into(), ip_objects(&hosts.ips));
    }
    if !hosts.dynamic_groups.is_empty() {
        server.insert(
            "dynamic_group_list".into(),
            group_objects(&hosts.dynamic_groups),
        );
    }
    if !hosts.topo_nodes.is_empty() {
        server.insert("topo_node_list".into(), topo_objects(&hosts.topo_nodes));
    }
    Value::Object(server)
}

/// v4's `execute_target`: hosts by id (`{bk_host_id}`) then by address
/// (`{bk_cloud_id, ip}`), dynamic groups and topology nodes.
pub(crate) fn v4_execute_target(hosts: &Hosts) -> Value {
    let mut target = Map::new();
    if !hosts.host_ids.is_empty() || !hosts.ips.is_empty() {
        let mut list: Vec<Value> = hosts
            .host_ids
            .iter()
            .map(|id| json!({ "bk_host_id": id }))
            .collect();
        list.extend(
            hosts
                .ips
                .iter()
                .map(|a| json!({ "bk_cloud_id": a.cloud_id, "ip": a.ip })),
        );
        target.insert("host_list".into(), Value::Array(list));
    }
    if !hosts.dynamic_groups.is_empty() {
        target.insert(
            "dynamic_group_list".into(),
            group_objects(&hosts.dynamic_groups),
        );
    }
    if !hosts.topo_nodes.is_empty() {
        target.insert("topo_node_list".into(), topo_objects(&hosts.topo_nodes));
    }
    Value::Object(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_refuses_mixing_ids_and_ips() {
        let mut errors = Errors::default();
        let hosts = Hosts {
            ips: vec![HostAddr::parse("10.0.0.1").unwrap()],
            host_ids: vec![101],
            ..Hosts::default()
        };
        v3_server(&hosts, "targets", &mut errors);
        let errors = errors.into_vec();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .message
                .contains("0:10.0.0.1 would not be targeted")
        );
    }

    #[test]
    fn v4_lists_ids_then_addresses() {
        let hosts = Hosts {
            ips: vec![HostAddr::parse("1:10.0.0.9").unwrap()],
            host_ids: vec![101],
            ..Hosts::default()
        };
        assert_eq!(
            v4_execute_target(&hosts),
            json!({"host_list": [{"bk_host_id": 101}, {"bk_cloud_id": 1, "ip": "10.0.0.9"}]})
        );
    }
}
