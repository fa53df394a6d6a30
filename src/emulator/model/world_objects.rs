//! What a world declares beyond hosts that JOB can still read files from or run
//! scripts in: third-party file sources (`file_type` 3, served by JOB's file gateway
//! from a bucket service) and Kubernetes containers (v4 execute objects of type 2).
//!
//! Each one stands on a host of its own that no request can name by address: a file
//! source on cloud area [`FILE_SOURCE_CLOUD`], a container on [`CONTAINER_CLOUD`], with
//! an address and host id derived from its id. That host's sandbox folder holds the
//! bucket's objects (`bucket/key` at `/bucket/key`) or the container's file system, so
//! the copy and the script runner treat them as they treat any host.
//!
//! ```yaml
//! file_sources:
//!   - { id: 1, code: testInnerCOS, files: { "testbucket/test.txt": "hello\n" } }
//! containers:
//!   - { id: 1, container_id: "docker://4a1b…", name: job-execute,
//!       cluster_uid: BCS-K8S-00001, namespace: bkjob, workload_kind: deployment,
//!       workload_name: bk-job-execute, pod_name: bk-job-execute-0, node_host_id: 101 }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::job_api::types::HostAddr;

/// The cloud area of the hosts that stand for third-party file sources.
pub const FILE_SOURCE_CLOUD: u64 = 999_901;
/// The cloud area of the hosts that stand for containers.
pub const CONTAINER_CLOUD: u64 = 999_902;
/// Host id of file source N: this base + N.
const FILE_SOURCE_HOST_BASE: u64 = 3_000_000_000;
/// Host id of container N: this base + N.
const CONTAINER_HOST_BASE: u64 = 3_100_000_000;

/// A third-party file source (文件源).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThirdPartySourceDef {
    /// `file_source_id`.
    pub id: u32,
    /// `file_source_code`.
    pub code: String,
    /// Objects: `bucket/key` → content.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// A container known to CMDB.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerDef {
    /// CMDB container id (`container.id`, the execute object's `resource_id`).
    pub id: u32,
    /// The runtime's container id (`docker://…`).
    #[serde(default)]
    pub container_id: String,
    /// Container name (`kube_container_prop_filter.container_name_list`).
    pub name: String,
    /// Cluster UID (`kube_cluster_filter.cluster_uid_list`).
    pub cluster_uid: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Workload kind (`deployment`, `statefulSet`, …).
    #[serde(default)]
    pub workload_kind: String,
    /// Workload name.
    #[serde(default)]
    pub workload_name: String,
    /// Pod name.
    #[serde(default)]
    pub pod_name: String,
    /// The node's host id.
    #[serde(default)]
    pub node_host_id: Option<u64>,
    /// Files in the container at start: absolute path → content.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

fn derived(cloud_id: u64, id: u32) -> HostAddr {
    HostAddr {
        cloud_id,
        ip: format!("10.{}.{}.{}", (id >> 16) & 255, (id >> 8) & 255, id & 255),
    }
}

/// The address and host id a file source stands on.
pub fn file_source_host(id: u32) -> (HostAddr, u64) {
    (
        derived(FILE_SOURCE_CLOUD, id),
        FILE_SOURCE_HOST_BASE + u64::from(id),
    )
}

/// The address and host id a container stands on.
pub fn container_host(id: u32) -> (HostAddr, u64) {
    (
        derived(CONTAINER_CLOUD, id),
        CONTAINER_HOST_BASE + u64::from(id),
    )
}

/// The container a host id stands for, if it stands for one.
pub fn container_of(host_id: u64) -> Option<u32> {
    host_id
        .checked_sub(CONTAINER_HOST_BASE)
        .and_then(|n| u32::try_from(n).ok())
}

/// The sandbox path of a bucket object (`bucket/key` → `/bucket/key`).
pub fn object_path(object: &str) -> String {
    format!("/{}", object.trim_start_matches('/'))
}

impl ContainerDef {
    /// Whether the container passes one `kube_container_filter`.
    pub fn matches(&self, filter: &ContainerFilter) -> bool {
        let within = |list: &Option<Vec<String>>, value: &str| {
            list.as_ref().is_none_or(|l| l.iter().any(|v| v == value))
        };
        if !filter.clusters.iter().any(|c| c == &self.cluster_uid) {
            return false;
        }
        if filter.whole_cluster {
            return true;
        }
        within(&filter.namespaces, &self.namespace)
            && filter
                .workload_kind
                .as_ref()
                .is_none_or(|k| k.eq_ignore_ascii_case(&self.workload_kind))
            && within(&filter.workloads, &self.workload_name)
            && within(&filter.pods, &self.pod_name)
            && within(&filter.names, &self.name)
    }
}

/// One `kube_container_filter`, read from a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFilter {
    /// `kube_cluster_filter.cluster_uid_list`.
    pub clusters: Vec<String>,
    /// `kube_namespace_filter.namespace_name_list`.
    pub namespaces: Option<Vec<String>>,
    /// `kube_workload_filter.kind`.
    pub workload_kind: Option<String>,
    /// `kube_workload_filter.workload_name_list`.
    pub workloads: Option<Vec<String>>,
    /// `kube_pod_filter.pod_name_list`.
    pub pods: Option<Vec<String>>,
    /// `kube_container_prop_filter.container_name_list`.
    pub names: Option<Vec<String>>,
    /// `execute_in_whole_cluster`.
    pub whole_cluster: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_hosts_are_stable_and_recognised() {
        let (addr, id) = container_host(7);
        assert_eq!(addr.cloud_id, CONTAINER_CLOUD);
        assert_eq!(container_of(id), Some(7));
        assert_eq!(container_of(file_source_host(7).1), None);
        assert_eq!(object_path("testbucket/test.txt"), "/testbucket/test.txt");
    }

    #[test]
    fn filters_narrow_by_every_given_field() {
        let c: ContainerDef = serde_yaml::from_str(
            "{id: 1, name: job-execute, cluster_uid: C1, namespace: bkjob, \
             workload_kind: deployment, workload_name: bk-job-execute}",
        )
        .unwrap();
        let mut f = ContainerFilter {
            clusters: vec!["C1".into()],
            ..Default::default()
        };
        assert!(c.matches(&f));
        f.names = Some(vec!["other".into()]);
        assert!(!c.matches(&f));
        f.whole_cluster = true;
        assert!(c.matches(&f));
    }
}
