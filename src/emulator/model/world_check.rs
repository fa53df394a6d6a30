//! What a parsed world must satisfy before an emulator serves it: host addresses and
//! host references that parse, a known callback field, fault shares between 0 and 1.
//! serde accepts these values by type; checking them here, at load, refuses the file
//! with the field at fault instead of failing the emulator's start (or a request) later.
//! The main type is [`WorldProblem`].

use std::fmt;

use crate::emulator::model::world::{HostRef, TargetDef, World};
use crate::job_api::types::HostAddr;

/// One unusable value: its field path in the world file (`hosts[0].ip`) and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldProblem {
    /// Field path, as serde names it.
    pub field: String,
    /// What is wrong, without a trailing period.
    pub message: String,
}

impl fmt::Display for WorldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every unusable value of `world`, in file order.
pub fn problems(world: &World) -> Vec<WorldProblem> {
    let mut found = Problems(Vec::new());
    for (i, host) in world.hosts.iter().enumerate() {
        if HostAddr::parse(&format!("{}:{}", host.cloud, host.ip)).is_none() {
            let hint = if host.ip.contains(':') {
                "; the cloud area goes in `cloud`"
            } else {
                ""
            };
            found.add(
                format!("hosts[{i}].ip"),
                format!("`{}` is not an IPv4 address{hint}", host.ip),
            );
        }
    }
    for (i, group) in world.dynamic_groups.iter().enumerate() {
        found.host_refs(&format!("dynamic_groups[{i}].hosts"), &group.hosts);
    }
    for (i, node) in world.topology.iter().enumerate() {
        found.host_refs(&format!("topology[{i}].hosts"), &node.hosts);
    }
    for (i, plan) in world.plans.iter().enumerate() {
        for (j, var) in plan.global_vars.iter().enumerate() {
            found.targets(
                &format!("plans[{i}].global_vars[{j}].targets"),
                &var.targets,
            );
        }
        for (j, step) in plan.steps.iter().enumerate() {
            found.targets(&format!("plans[{i}].steps[{j}].targets"), &step.targets);
            let sources = step.file.iter().flat_map(|file| file.sources.iter());
            for (k, source) in sources.enumerate() {
                found.targets(
                    &format!("plans[{i}].steps[{j}].file.sources[{k}].targets"),
                    &source.targets,
                );
                if let Some(id) = source.file_source_id
                    && !world.file_sources.iter().any(|s| s.id == id)
                {
                    found.add(
                        format!("plans[{i}].steps[{j}].file.sources[{k}].file_source_id"),
                        format!("no file source {id} in `file_sources`"),
                    );
                }
            }
        }
    }
    for (i, source) in world.file_sources.iter().enumerate() {
        if world.file_sources[..i].iter().any(|s| s.id == source.id) {
            found.add(
                format!("file_sources[{i}].id"),
                format!("file source {} is declared twice", source.id),
            );
        }
        for object in source.files.keys() {
            if object.split('/').any(|part| part == "..") {
                found.add(
                    format!("file_sources[{i}].files"),
                    format!("`{object}` leaves the bucket"),
                );
            }
        }
    }
    for (i, container) in world.containers.iter().enumerate() {
        if world.containers[..i].iter().any(|c| c.id == container.id) {
            found.add(
                format!("containers[{i}].id"),
                format!("container {} is declared twice", container.id),
            );
        }
    }
    let field = world.settings.callback_field.as_str();
    if !matches!(field, "step_instances" | "step_instance_list") {
        found.add(
            "settings.callback_field",
            format!("`{field}` is neither `step_instances` nor `step_instance_list`"),
        );
    }
    for (i, fault) in world.faults.api.iter().enumerate() {
        found.share(&format!("faults.api[{i}].fraction"), fault.fraction);
    }
    for (i, fault) in world.faults.callbacks.iter().enumerate() {
        found.share(&format!("faults.callbacks[{i}].fraction"), fault.fraction);
    }
    for (i, fault) in world.faults.hosts.iter().enumerate() {
        if HostAddr::parse(&fault.host).is_none() {
            found.add(
                format!("faults.hosts[{i}].host"),
                format!(
                    "`{}` is not a host: write cloud:ip (0:10.0.0.1)",
                    fault.host
                ),
            );
        }
    }
    found.0
}

struct Problems(Vec<WorldProblem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(WorldProblem {
            field: field.into(),
            message: message.into(),
        });
    }

    fn host_refs(&mut self, field: &str, refs: &[HostRef]) {
        for (i, reference) in refs.iter().enumerate() {
            if let HostRef::Addr(text) = reference
                && HostAddr::parse(text).is_none()
            {
                self.add(
                    format!("{field}[{i}]"),
                    format!(
                        "`{text}` is not a host: write cloud:ip (0:10.0.0.1), an IP or a host_id"
                    ),
                );
            }
        }
    }

    fn targets(&mut self, field: &str, targets: &TargetDef) {
        self.host_refs(&format!("{field}.hosts"), &targets.hosts);
    }

    fn share(&mut self, field: &str, fraction: f64) {
        if !(0.0..=1.0).contains(&fraction) {
            self.add(field, format!("{fraction} is not a share between 0 and 1"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(yaml: &str) -> Vec<String> {
        let world = World::parse(yaml).expect("parses");
        problems(&world).into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn bad_addresses_are_named_by_field() {
        let yaml = r#"
hosts:
  - { host_id: 1, ip: 10.0.0.1 }
  - { host_id: 2, ip: 10.0.0.300 }
  - { host_id: 3, ip: "0:10.0.0.3" }
dynamic_groups: [{ id: g, hosts: ["0:abc", 1, ":10.0.0.1", "0:10.0.0.1"] }]
topology: [{ node_type: module, id: 1, hosts: ["x"] }]
plans:
  - id: 1
    name: p
    global_vars: [{ id: 1, name: web, type: 3, targets: { hosts: ["1:2"] } }]
    steps:
      - { id: 1, name: s, type: 2, targets: { hosts: ["0:10.0.0.999"] },
          file: { target_path: /t/, sources: [{ files: [/a], targets: { hosts: [bad] } }] } }
"#;
        assert_eq!(
            fields(yaml),
            [
                "hosts[1].ip",
                "hosts[2].ip",
                "dynamic_groups[0].hosts[0]",
                "dynamic_groups[0].hosts[2]",
                "topology[0].hosts[0]",
                "plans[0].global_vars[0].targets.hosts[0]",
                "plans[0].steps[0].targets.hosts[0]",
                "plans[0].steps[0].file.sources[0].targets.hosts[0]",
            ]
        );
    }

    #[test]
    fn settings_and_faults_are_checked() {
        let yaml = r#"
settings: { callback_field: step_instance }
faults:
  api: [{ kind: error, fraction: 1.5 }]
  callbacks: [{ kind: lost, fraction: -1 }]
  hosts: [{ host: "10.0.0.1x" }]
"#;
        assert_eq!(
            fields(yaml),
            [
                "settings.callback_field",
                "faults.api[0].fraction",
                "faults.callbacks[0].fraction",
                "faults.hosts[0].host",
            ]
        );
    }

    #[test]
    fn the_documented_example_has_no_problems() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/worlds/full.yaml"
        ))
        .expect("fixture");
        assert_eq!(fields(&text), Vec::<String>::new());
    }

    #[test]
    fn file_sources_and_containers_are_checked() {
        let yaml = r#"
file_sources:
  - { id: 1, code: a, files: { "b/../../etc/passwd": "x" } }
  - { id: 1, code: b }
containers:
  - { id: 5, name: c, cluster_uid: k }
  - { id: 5, name: d, cluster_uid: k }
plans:
  - id: 1
    name: p
    steps:
      - { id: 1, name: s, type: 2,
          file: { target_path: /tmp/, sources: [{ files: [x], file_source_id: 2 }] } }
"#;
        assert_eq!(
            fields(yaml),
            [
                "plans[0].steps[0].file.sources[0].file_source_id",
                "file_sources[0].files",
                "file_sources[1].id",
                "containers[1].id",
            ]
        );
        let apidoc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/worlds/apidoc.yaml"
        ))
        .expect("fixture");
        assert_eq!(fields(&apidoc), Vec::<String>::new());
    }
}
