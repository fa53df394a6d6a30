//! The world file: everything the emulated JOB knows before the first request —
//! credentials, scopes and who may use them, accounts, hosts (with files seeded into
//! their sandboxes), dynamic groups, topology nodes, scripts, job plans, settings and
//! faults. Every section is optional; an empty world accepts any non-empty app code and
//! secret for any business, accepts any account, and has no job plans.
//!
//! ```yaml
//! credentials:
//!   apps: [{ code: baton, secret: s3cret }]      # none listed: any non-empty pair
//!   users: [admin, alice]                        # none listed: any bk_username
//!   tokens: [{ token: tok-1, user: alice }]      # bk_token / access_token → user
//! scopes:                                        # none listed: every scope open
//!   - { type: biz, id: "1", name: blueking }     # users absent: open to every user
//!   - { type: biz, id: "2", name: secret-biz, users: [alice] }
//! accounts:                                      # none listed: any alias / id
//!   - { id: 1000, alias: root }
//! hosts:
//!   - { host_id: 101, cloud: 0, ip: 10.0.0.1, files: { "/tmp/a.txt": "hello\n" } }
//! dynamic_groups: [{ id: "3", hosts: ["0:10.0.0.1", 102] }]   # "cloud:ip" or host_id
//! topology: [{ node_type: module, id: 1000, hosts: [101] }]
//! scripts: [{ version_id: 1, script_id: "s-echo", language: 1, content: "echo $1" }]
//! file_sources: [{ id: 1, code: cos, files: { "bucket/a.txt": "hi\n" } }]  # world_objects.rs
//! containers: [{ id: 1, name: web, cluster_uid: K1 }]                         # world_objects.rs
//! plans:
//!   - id: 100
//!     name: deploy
//!     global_vars:
//!       - { id: 437, name: version, type: 1, value: "1.0" }          # 1 string
//!       - { id: 439, name: schema, type: 1, value: "0", changeable: true }  # a shell step may set it
//!       - { id: 436, name: web, type: 3, hosts: ["0:10.0.0.1"] }     # 3 host list
//!       - { id: 438, name: pw, type: 4, value: "secret" }           # 4 password
//!     steps:
//!       - { id: 200, name: hello, type: 1,
//!           script: { content: "echo $version", language: 1, account: root },
//!           targets: { variable: web } }
//!       - { id: 201, name: push, type: 2,
//!           file: { target_path: /opt/, account: root,
//!                   sources: [{ files: [/tmp/a.txt], account: root,
//!                               targets: { hosts: [101] } }] },
//!           targets: { hosts: ["0:10.0.0.2"] } }
//!       - { id: 202, name: approve, type: 3, confirm: { message: "go?" } }
//! settings:
//!   strict_hosts: false            # true: unknown hosts are 1244002, not created
//!   callback_field: step_instances # or step_instance_list (the docs' name)
//!   step_start_delay_ms: 0         # before a job/step/batch starts
//!   host_delay_ms: 0               # before each host runs
//!   parallel_limit: 50             # hosts at once per job instance
//!   global_parallel_limit: 256     # hosts at once in the whole emulator
//!   simulate: false                # true: hosts succeed without running anything
//!   first_id: 10000                # first job/step instance id
//! faults: { seed: 7, api: [...], callbacks: [...], hosts: [...] }   # see faults.rs
//! ```
//!
//! String global variables reach scripts as shell assignments prepended to shell
//! scripts (`name='value'`), and as environment variables for every language. A shell
//! step's assignment to a `changeable` string variable is read back as JOB does (see
//! `model/job_vars.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::emulator::model::faults::FaultSet;
use crate::emulator::model::world_objects::{ContainerDef, ThirdPartySourceDef};

/// The world file, as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct World {
    /// App codes, secrets, users, tokens.
    pub credentials: Credentials,
    /// Scopes and their users.
    pub scopes: Vec<ScopeDef>,
    /// Execution accounts.
    pub accounts: Vec<AccountDef>,
    /// Hosts known to CMDB.
    pub hosts: Vec<HostDef>,
    /// Dynamic groups.
    pub dynamic_groups: Vec<GroupDef>,
    /// Topology nodes (module / set).
    pub topology: Vec<TopoDef>,
    /// Stored scripts.
    pub scripts: Vec<ScriptDef>,
    /// Job plans (执行方案).
    pub plans: Vec<PlanDef>,
    /// Third-party file sources (see world_objects.rs).
    pub file_sources: Vec<ThirdPartySourceDef>,
    /// Containers (see world_objects.rs).
    pub containers: Vec<ContainerDef>,
    /// Behaviour switches.
    pub settings: Settings,
    /// Faults switched on at start.
    pub faults: FaultSet,
}

impl World {
    /// Parses world YAML without checking its values (see [`World::from_text`]).
    pub fn parse(text: &str) -> Result<World, serde_yaml::Error> {
        if text.trim().is_empty() {
            return Ok(World::default());
        }
        serde_yaml::from_str(text)
    }
}

/// Credentials.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Credentials {
    /// Accepted app code / secret pairs; empty accepts any non-empty pair.
    pub apps: Vec<AppCredential>,
    /// Known users; empty accepts any user name.
    pub users: Vec<String>,
    /// Login tokens (`bk_token`) and gateway access tokens (`access_token`).
    pub tokens: Vec<TokenCredential>,
}

/// An app code and its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCredential {
    /// `bk_app_code`.
    pub code: String,
    /// `bk_app_secret`.
    pub secret: String,
}

/// A token standing for a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCredential {
    /// The token value.
    pub token: String,
    /// The user it logs in.
    pub user: String,
}

/// A scope (business or business set).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeDef {
    /// `biz` or `biz_set`.
    #[serde(rename = "type", default = "default_scope_type")]
    pub kind: String,
    /// Scope id.
    #[serde(deserialize_with = "de_string")]
    pub id: String,
    /// Display name (used in permission answers).
    #[serde(default)]
    pub name: Option<String>,
    /// Users allowed; absent means everyone.
    #[serde(default)]
    pub users: Option<Vec<String>>,
}

fn default_scope_type() -> String {
    "biz".into()
}

/// An execution account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountDef {
    /// `account_id`.
    pub id: i64,
    /// `account_alias` (v2 `account`).
    pub alias: String,
    /// The system account name (`account.name`); the alias when absent.
    #[serde(default)]
    pub name: Option<String>,
}

/// A host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostDef {
    /// `bk_host_id`.
    #[serde(default)]
    pub host_id: Option<u64>,
    /// `bk_cloud_id`.
    #[serde(default)]
    pub cloud: u64,
    /// IPv4 address.
    pub ip: String,
    /// Files created in the host's sandbox at start: absolute path → content.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// A reference to a host: its `host_id`, or `cloud:ip` / `ip`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HostRef {
    /// `bk_host_id`.
    Id(u64),
    /// `cloud:ip` or a bare IP.
    Addr(String),
}

/// A dynamic group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDef {
    /// Group id.
    #[serde(deserialize_with = "de_string")]
    pub id: String,
    /// Members.
    #[serde(default)]
    pub hosts: Vec<HostRef>,
}

/// A topology node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopoDef {
    /// `module`, `set`, …
    pub node_type: String,
    /// `bk_inst_id`.
    pub id: i64,
    /// Hosts under the node.
    #[serde(default)]
    pub hosts: Vec<HostRef>,
}

/// A stored script version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptDef {
    /// `script_version_id` (v2 `script_id`).
    pub version_id: i64,
    /// v3 `script_id` (string): its online version is used.
    #[serde(default)]
    pub script_id: Option<String>,
    /// Language code (1 shell …).
    #[serde(default = "default_language")]
    pub language: u8,
    /// Script text (plain, not base64).
    pub content: String,
    /// Whether this version is the online one for `script_id`.
    #[serde(default = "yes")]
    pub online: bool,
}

fn default_language() -> u8 {
    1
}

fn yes() -> bool {
    true
}

/// A job plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDef {
    /// `job_plan_id` / v2 `bk_job_id`.
    pub id: i64,
    /// Plan name.
    pub name: String,
    /// Template id.
    #[serde(default)]
    pub template_id: Option<i64>,
    /// The scope owning the plan; absent: visible in every scope.
    #[serde(default)]
    pub scope: Option<ScopeRef>,
    /// Creator.
    #[serde(default = "default_user")]
    pub creator: String,
    /// Creation time, epoch ms (default: emulator start).
    #[serde(default)]
    pub create_time: Option<i64>,
    /// Global variables.
    #[serde(default)]
    pub global_vars: Vec<VarDef>,
    /// Steps in order.
    #[serde(default)]
    pub steps: Vec<StepDef>,
}

fn default_user() -> String {
    "admin".into()
}

/// A scope named by a plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRef {
    /// `biz` or `biz_set`.
    #[serde(rename = "type", default = "default_scope_type")]
    pub kind: String,
    /// Scope id.
    #[serde(deserialize_with = "de_string")]
    pub id: String,
}

/// A global variable of a plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarDef {
    /// Variable id.
    pub id: i64,
    /// Variable name.
    pub name: String,
    /// 1 string, 2 namespace, 3 host list, 4 password, 5 assoc array, 6 index array.
    #[serde(rename = "type", default = "default_language")]
    pub kind: u8,
    /// Default value (non-host variables).
    #[serde(default)]
    pub value: String,
    /// Default hosts (host-list variables).
    #[serde(default)]
    pub targets: TargetDef,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Whether a value is required.
    #[serde(default)]
    pub required: bool,
    /// A string variable a shell step may assign (JOB's "changeable" variable); its
    /// new value reaches later steps and `get_job_instance_global_var_value`.
    #[serde(default)]
    pub changeable: bool,
}

/// A plan step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// `step_id`.
    pub id: i64,
    /// Step name.
    pub name: String,
    /// 1 script, 2 file, 3 manual confirm.
    #[serde(rename = "type")]
    pub kind: u8,
    /// Script details (type 1).
    #[serde(default)]
    pub script: Option<ScriptStepDef>,
    /// File details (type 2).
    #[serde(default)]
    pub file: Option<FileStepDef>,
    /// Confirmation details (type 3).
    #[serde(default)]
    pub confirm: Option<ConfirmDef>,
    /// Execution targets (script and file steps).
    #[serde(default)]
    pub targets: TargetDef,
    /// Target rolling.
    #[serde(default)]
    pub rolling: Option<RollingDef>,
}

/// A script step of a plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptStepDef {
    /// Inline script text (plain).
    pub content: Option<String>,
    /// A stored script version instead.
    pub script_version_id: Option<i64>,
    /// Language code.
    pub language: Option<u8>,
    /// Parameters (plain).
    pub param: String,
    /// Timeout seconds (default 7200).
    pub timeout: Option<u64>,
    /// Account alias (default `root`).
    pub account: Option<String>,
    /// Sensitive parameters.
    pub sensitive: bool,
}

/// A file step of a plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileStepDef {
    /// Sources.
    pub sources: Vec<FileSourceDef>,
    /// Target folder.
    pub target_path: String,
    /// Target account alias.
    pub account: Option<String>,
    /// 1 strict, 2 force (default).
    pub transfer_mode: Option<u8>,
    /// Timeout seconds.
    pub timeout: Option<u64>,
    /// Upload speed limit, MB/s (`source_speed_limit`).
    pub source_speed_limit: Option<u64>,
    /// Download speed limit, MB/s (`destination_speed_limit`).
    pub destination_speed_limit: Option<u64>,
}

/// One file source of a plan's file step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSourceDef {
    /// Absolute paths.
    pub files: Vec<String>,
    /// Source account alias.
    pub account: Option<String>,
    /// Source hosts.
    pub targets: TargetDef,
    /// A third-party file source's id (`file_type` 3): `files` are its objects and
    /// `account` and `targets` are unused.
    pub file_source_id: Option<u32>,
}

/// A manual confirmation step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfirmDef {
    /// Message shown to the confirmer.
    pub message: String,
    /// Users allowed to confirm; empty: anyone.
    pub users: Vec<String>,
}

/// Hosts named by a plan: static hosts, groups, topology nodes, or a host variable.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetDef {
    /// Static hosts.
    pub hosts: Vec<HostRef>,
    /// Dynamic group ids.
    pub dynamic_groups: Vec<String>,
    /// Topology nodes.
    pub topo_nodes: Vec<TopoRef>,
    /// A host-list global variable.
    pub variable: Option<String>,
}

/// A topology node reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopoRef {
    /// `module`, `set`, …
    pub node_type: String,
    /// `bk_inst_id`.
    pub id: i64,
}

/// Rolling in a plan step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollingDef {
    /// Expression.
    pub expression: String,
    /// 1 pause on failure, 2 ignore, 3 confirm.
    #[serde(default = "default_language")]
    pub mode: u8,
}

/// Behaviour switches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Refuse hosts that the world does not declare (1244002).
    pub strict_hosts: bool,
    /// `step_instances` (what JOB sends) or `step_instance_list` (what the docs say).
    pub callback_field: String,
    /// Delay before a job, a step or a rolling batch starts, ms.
    pub step_start_delay_ms: u64,
    /// Delay before each host runs, ms.
    pub host_delay_ms: u64,
    /// Hosts executing at once per job instance.
    pub parallel_limit: usize,
    /// Hosts executing at once in the whole emulator.
    pub global_parallel_limit: usize,
    /// Hosts succeed without running scripts or copying files.
    pub simulate: bool,
    /// First job / step instance id.
    pub first_id: u64,
    /// Received API requests kept for `GET /_emulator/requests`.
    pub max_logged_requests: usize,
    /// Finished job instances kept in memory (oldest finished are dropped first).
    pub max_instances: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            strict_hosts: false,
            callback_field: "step_instances".into(),
            step_start_delay_ms: 0,
            host_delay_ms: 0,
            parallel_limit: 50,
            global_parallel_limit: 256,
            simulate: false,
            first_id: 10_000,
            max_logged_requests: 10_000,
            max_instances: 100_000,
        }
    }
}

/// Deserializes a string that YAML may have typed as a number (`id: 1`).
fn de_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        I(i64),
        U(u64),
    }
    Ok(match Either::deserialize(d)? {
        Either::S(s) => s,
        Either::I(i) => i.to_string(),
        Either::U(u) => u.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_world_is_open() {
        let world = World::parse("").unwrap();
        assert!(world.credentials.apps.is_empty());
        assert!(world.plans.is_empty());
        assert_eq!(world.settings.first_id, 10_000);
    }

    #[test]
    fn example_world_parses() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/worlds/full.yaml"
        ))
        .unwrap();
        let world = World::parse(&text).unwrap();
        assert!(!world.plans.is_empty());
    }
}
