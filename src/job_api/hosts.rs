//! Turns a step's `targets` (host-set names or an inline set) into one merged,
//! de-duplicated host set, and writes that set in each protocol's wire shape: v2
//! `ip_list` + `custom_query_id`, v3 `server` objects, v4 `execute_target`.
//!
//! Merging keeps the first occurrence of every host, group and node in the order the
//! sets are named, so the request lists hosts in the order the plan author wrote them.
//! IPs are compared after parsing, so `10.0.0.1` and `0:10.0.0.1` are one host, as
//! they are to JOB.

use serde_json::{Map, Value, json};

use super::build::Errors;
use super::types::HostAddr;
use super::types::Protocol;
use crate::plan::model::{HostSet, Plan, Targets, TopoNode};

/// A merged target set, every list de-duplicated in first-seen order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedHosts {
    /// Hosts by cloud area and IP.
    pub ips: Vec<HostAddr>,
    /// Hosts by CMDB id.
    pub host_ids: Vec<u64>,
    /// Dynamic group ids.
    pub dynamic_groups: Vec<String>,
    /// Topology nodes.
    pub topo_nodes: Vec<TopoNode>,
}

impl ResolvedHosts {
    /// No host of any kind.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
            && self.host_ids.is_empty()
            && self.dynamic_groups.is_empty()
            && self.topo_nodes.is_empty()
    }

    fn merge(&mut self, set: &HostSet, field: &str, errors: &mut Errors) {
        for text in &set.ips {
            match HostAddr::parse(text) {
                Some(addr) => push_unique(&mut self.ips, addr),
                None => errors.add(
                    format!("{field}.ips"),
                    format!("`{text}` is not a host: write `cloud:ip` (e.g. `0:10.0.0.1`) or an IPv4 address"),
                ),
            }
        }
        for id in &set.host_ids {
            push_unique(&mut self.host_ids, *id);
        }
        for group in &set.dynamic_groups {
            push_unique(&mut self.dynamic_groups, group.clone());
        }
        for node in &set.topo_nodes {
            push_unique(&mut self.topo_nodes, node.clone());
        }
    }
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Resolves `targets` against the plan's named sets. Unknown names and unparsable IPs
/// are recorded in `errors` under `field`.
pub(crate) fn resolve(
    plan: &Plan,
    targets: &Targets,
    field: &str,
    errors: &mut Errors,
) -> ResolvedHosts {
    let mut hosts = ResolvedHosts::default();
    match targets {
        Targets::Inline(set) => hosts.merge(set, field, errors),
        Targets::Named(names) => {
            for name in names {
                match plan.hosts.get(name) {
                    Some(set) => hosts.merge(set, field, errors),
                    None => {
                        let known: Vec<&str> = plan.hosts.keys().map(String::as_str).collect();
                        let known = if known.is_empty() {
                            "the plan defines no host sets".to_owned()
                        } else {
                            format!("defined sets: {}", known.join(", "))
                        };
                        errors.add(field, format!("unknown host set `{name}` ({known})"));
                    }
                }
            }
        }
    }
    hosts
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
    hosts: &ResolvedHosts,
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
pub(crate) fn v3_server(hosts: &ResolvedHosts, field: &str, errors: &mut Errors) -> Value {
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
pub(crate) fn v4_execute_target(hosts: &ResolvedHosts) -> Value {
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
    use crate::plan::model::Plan;

    fn plan() -> Plan {
        serde_yaml::from_str(
            r#"
version: 1
name: t
hosts:
  web:
    ips: ["0:10.0.0.1", "10.0.0.2"]
    dynamic_groups: ["g1"]
  more:
    ips: ["10.0.0.2", "0:10.0.0.3", "0:10.0.0.1"]
    dynamic_groups: ["g1", "g2"]
    topo_nodes: [{ node_type: module, id: 7 }]
steps: []
"#,
        )
        .unwrap()
    }

    #[test]
    fn named_sets_merge_in_order_without_duplicates() {
        let mut errors = Errors::default();
        let hosts = resolve(
            &plan(),
            &Targets::Named(vec!["web".into(), "more".into()]),
            "targets",
            &mut errors,
        );
        assert!(errors.is_empty());
        let ips: Vec<String> = hosts.ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["0:10.0.0.1", "0:10.0.0.2", "0:10.0.0.3"]);
        assert_eq!(hosts.dynamic_groups, ["g1", "g2"]);
        assert_eq!(hosts.topo_nodes.len(), 1);
    }

    #[test]
    fn unknown_set_and_bad_ip_are_reported() {
        let mut errors = Errors::default();
        resolve(
            &plan(),
            &Targets::Named(vec!["nope".into()]),
            "targets",
            &mut errors,
        );
        let inline = Targets::Inline(HostSet {
            ips: vec!["0:10.0.0.300".into()],
            ..HostSet::default()
        });
        resolve(&plan(), &inline, "targets", &mut errors);
        let errors = errors.into_vec();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].message.contains("unknown host set `nope`"));
        assert!(errors[0].message.contains("web"));
        assert_eq!(errors[1].field, "targets.ips");
    }

    #[test]
    fn v3_refuses_mixing_ids_and_ips() {
        let mut errors = Errors::default();
        let hosts = ResolvedHosts {
            ips: vec![HostAddr::parse("10.0.0.1").unwrap()],
            host_ids: vec![101],
            ..ResolvedHosts::default()
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
        let hosts = ResolvedHosts {
            ips: vec![HostAddr::parse("1:10.0.0.9").unwrap()],
            host_ids: vec![101],
            ..ResolvedHosts::default()
        };
        assert_eq!(
            v4_execute_target(&hosts),
            json!({"host_list": [{"bk_host_id": 101}, {"bk_cloud_id": 1, "ip": "10.0.0.9"}]})
        );
    }
}
