//! The plan format exactly as written in YAML: plain serde + schemars types, no logic.
//!
//! Every struct denies unknown fields so a typo is an error, not a silently ignored
//! key. There are no tagged, untagged or flattened enums here: serde_yaml loses the
//! error path and location inside them. The few places where YAML offers a choice of
//! shapes (`targets: web` versus an inline set, `account: root` versus `{id: 1000}`,
//! `timeout: 600` versus `10m`) use hand-written visitors that hand the same
//! deserializer down, so errors keep their `file:line:column` and field path.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A runbook: named host sets and steps ordered by their `needs`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Format version; only `1` exists.
    pub version: u32,
    /// Short name, used in task names, locks and reports.
    pub name: String,
    /// What the runbook does; may use `{{var}}` templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JOB protocol the plan is written for (`--api` overrides it). Default `v3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<Protocol>,
    /// Inputs, supplied by `--var k=v`, `--vars-file` or `BATON_VAR_k`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, VarDecl>,
    /// The business (or business set) every step runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Values a step inherits when it does not set them itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,
    /// Named target sets; a step's `targets` names one or more of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, HostSet>,
    /// What to do when another run of this plan is still going (cron safety).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// Whom to tell of the run's end (or an approval gate), and when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<super::notify::NotifyRule>,
    /// The steps; each runs once all of its `needs` are done.
    pub steps: Vec<Step>,
}

/// The JOB API generation a request is encoded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// ESB `/api/c/compapi/v2/job/<name>/`, credentials in the body.
    V2,
    /// API gateway `/api/v3/<name>`, `X-Bkapi-Authorization` header.
    V3,
    /// API gateway `/api/v4/<name>`, HTTP-status errors.
    V4,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::V2 => "v2",
            Protocol::V3 => "v3",
            Protocol::V4 => "v4",
        })
    }
}

/// A declared input variable.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VarDecl {
    /// Shown by `baton validate` when the variable is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The run refuses to start without a value.
    #[serde(default)]
    pub required: bool,
    /// Used when no value is supplied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Scalar>,
    /// A regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Masked as `******` in output, reports, journals and logs.
    #[serde(default)]
    pub secret: bool,
}

/// `bk_biz_id` (v2) or `bk_scope_type` + `bk_scope_id` (v3, v4).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// `biz` (a business) or `biz_set` (a business set).
    #[serde(rename = "type")]
    pub scope_type: ScopeType,
    /// The business or business-set id.
    pub id: u64,
}

/// JOB's resource scope kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeType {
    /// A business (`biz`).
    Biz,
    /// A business set (`biz_set`).
    BizSet,
}

/// Step settings inherited unless a step overrides them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Execution account (alias, or `{id: N}` on v3/v4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRef>,
    /// JOB-side timeout: seconds (`600`) or a duration (`10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Seconds>,
    /// How many times a failed step is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Pause before a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<Seconds>,
    /// How long baton waits for a submitted step before terminating it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<Seconds>,
    /// `stop` (default): start nothing new after a failure; `continue`: independent branches go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
}

/// What the run does after a step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// No new step starts; running ones finish.
    Stop,
    /// Steps that do not depend on the failed one go on.
    Continue,
}

/// What a new run does when another run of the same plan holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// Refuse to start (exit 75).
    Forbid,
    /// Terminate the older run's instances, then start.
    Replace,
    /// Run side by side.
    Allow,
}

/// A set of target hosts, merged and de-duplicated the way JOB does.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSet {
    /// Hosts as `cloud:ip` (`0:10.0.0.1`); a bare IP means cloud area 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// CMDB host ids (v3 `host_id_list`, v4 `bk_host_id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_ids: Vec<u64>,
    /// Dynamic group ids (v2 `custom_query_id`, v3/v4 `dynamic_group_list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic_groups: Vec<String>,
    /// Topology nodes (v3/v4 `topo_node_list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topo_nodes: Vec<TopoNode>,
}

/// A CMDB topology node: a module or a set.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopoNode {
    /// `module` or `set` (CMDB `bk_obj_id`).
    pub node_type: String,
    /// The node's `bk_inst_id`.
    pub id: u64,
}

/// One runbook step: exactly one of `script`, `push_file`, `push_config`, `job` or
/// `approve`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique id, used by `needs`, templates (`steps.<id>`), reports and resume.
    pub id: String,
    /// Human-readable name for progress and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JOB task name (≤ 512 characters after rendering); baton adds its run id at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    /// Steps that must be done before this one starts; a fanned-out step's id means
    /// all its instances, `<id>[<key>]` one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// Run this step once per item (`{{item}}`, `{{item.<key>}}`), as `<id>[<key>]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<crate::plan::fan_out::ForEach>,
    /// A template; when it renders to `false`, `no`, `0` or nothing, the step is skipped.
    /// The older form of `if`; it sees only steps that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// When the step runs relative to its `needs`: `success()` (the default),
    /// `failure()`, `failure(deploy)`, `always()`, `cancelled()`, combined with `&&`,
    /// `||`, `!` and comparisons on `steps.<id>.status|outputs.<k>|hosts.failed`.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Where the step runs: a host-set name, a list of names, or an inline set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Targets>,
    /// Execution account; falls back to `defaults.account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRef>,
    /// Run a script (`fast_execute_script`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptStep>,
    /// Push files (`fast_push_file` / `fast_transfer_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_file: Option<PushFileStep>,
    /// Start a job plan (`execute_job` / `execute_job_plan` / cross-business job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobStep>,
    /// Wait for a person's approval (`baton approve`, a terminal, or `--approve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<super::handlers::ApproveStep>,
    /// Push files rendered from the plan (`push_config_file`, v2 and v3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_config: Option<crate::plan::push_config::PushConfigStep>,
    /// Roll the step over its targets (or source files) batch by batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<Rolling>,
    /// JOB-side timeout: seconds or a duration; JOB allows 1 s to 72 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Seconds>,
    /// How many times a failed step is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Pause before a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<Seconds>,
    /// How long baton waits before terminating the instance (default: timeout + grace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<Seconds>,
    /// Overrides `defaults.on_failure` for this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    /// Treat JOB's "ignore error" (status 6) as success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_errors: Option<bool>,
    /// Keys this step prints as `<BATON_VAR>key:value</BATON_VAR>`; later steps read
    /// them as `{{steps.<id>.outputs.<key>}}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// v3/v4 `start_task`: `false` creates the instance without starting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_task: Option<bool>,
}

/// A script run.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptStep {
    /// Needed with `content` or `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<ScriptLanguage>,
    /// The script text (templated, then base64-encoded by baton).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A script file, relative to the plan (templated like `content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A JOB script: v2 an integer (a script version id), v3 the script's string id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_id: Option<ScriptId>,
    /// A JOB script version (v3/v4); wins over `script_id` and `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_version_id: Option<u64>,
    /// Arguments as one string (templated, base64-encoded as a whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
    /// Hide the params in JOB and mask them in baton's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<bool>,
    /// Windows interpreter path (v3/v4), ending in `.exe`, at most 260 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_interpreter: Option<String>,
    /// Per-host Windows passwords (v3/v4 `host_password_list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_passwords: Vec<HostPassword>,
}

/// JOB's script languages (`script_type` / `script_language`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScriptLanguage {
    /// 1
    Shell,
    /// 2
    Bat,
    /// 3
    Perl,
    /// 4
    Python,
    /// 5
    Powershell,
    /// 6
    Sql,
}

/// One Windows host's password (already encrypted for JOB).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostPassword {
    /// `cloud:ip` of the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// CMDB host id; wins over `ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<u64>,
    /// The encrypted password (≤ 172 characters); masked in output.
    pub encrypted_password: String,
}

/// A file push from source hosts to the step's targets.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushFileStep {
    /// Where the files come from.
    pub sources: Vec<FileSource>,
    /// Absolute target folder; `[FILESRCIP]` and `[DATE:…]` are expanded by JOB.
    pub target_path: String,
    /// Rename the file at the target (v3 `file_target_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    /// `strict`: a missing target folder fails; `force` (JOB's default): create it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_mode: Option<TransferMode>,
    /// Upload limit in MB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_speed_limit: Option<u32>,
    /// Download limit in MB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_speed_limit: Option<u32>,
}

/// A group of source files on a set of source hosts.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Absolute paths; a name may use `*` or `REGEX:`.
    pub files: Vec<String>,
    /// Account that reads the files; falls back to the step's account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRef>,
    /// The source hosts: a host-set name, a list of names, or an inline set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Targets>,
    /// `server` (default), `local` or `third_party` (v3 `file_type` 1/2/3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<FileType>,
    /// Third-party file source id (v3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_source_id: Option<u64>,
    /// Third-party file source code (v3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_source_code: Option<String>,
}

/// v3 `file_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    /// 1: files on source hosts.
    Server,
    /// 2: files uploaded to JOB's artifact store.
    Local,
    /// 3: a third-party file source (COS and the like).
    ThirdParty,
}

/// v3 `transfer_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransferMode {
    /// 1: a missing target folder fails the host.
    Strict,
    /// 2: create missing target folders (JOB's default).
    Force,
}

/// Start a JOB execution plan (or a cross-business platform job on v2).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobStep {
    /// v2 `bk_job_id`, v3 `job_plan_id`.
    pub plan_id: u64,
    /// Global variables by name (or by id, written as an integer key): a string value,
    /// or `{hosts: <targets>}` for a host variable.
    #[serde(default, skip_serializing_if = "JobVars::is_empty")]
    pub vars: JobVars,
    /// Per-step overrides of the plan's steps (v2 `steps`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<JobStepOverride>,
    /// Cross-business job: the business files come from (v2 `source_bk_biz_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_biz: Option<u64>,
    /// Cross-business job: the business files go to (v2 `target_bk_biz_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_biz: Option<u64>,
    /// Global variables read back once the job finished
    /// (`get_job_instance_global_var_value`); later steps use
    /// `{{steps.<id>.vars.<name>}}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<crate::plan::job_exports::JobExport>,
}

/// An override of one step of a job plan (v2 `steps[]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobStepOverride {
    /// The job plan's step id.
    pub step_id: u64,
    /// Replace the step's script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_id: Option<u64>,
    /// Needed with `content` or `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<ScriptLanguage>,
    /// New script text (base64-encoded by baton).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// New script text from a file, relative to the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// New script arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
    /// New script timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Seconds>,
    /// New execution account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRef>,
    /// DB account for a SQL step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_account_id: Option<u64>,
    /// New file target folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    /// New file sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<FileSource>,
    /// New targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Targets>,
}

/// Rolling execution: batch by batch over the targets, or over source files.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rolling {
    /// Batch sizes over the targets, in JOB's grammar: `20`, `30%`, `5 +10`, `5 *2`, `10 20 100%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// `pause` (default) on a failed batch, `ignore` failures, or `confirm` every batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RollingMode>,
    /// Roll over source files instead of targets (file pushes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FileRolling>,
}

/// JOB's rolling `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RollingMode {
    /// 1: stop at a failed batch.
    Pause,
    /// 2: ignore failures and roll on.
    Ignore,
    /// 3: wait for a person before every batch.
    Confirm,
}

/// Source-file rolling limits (`rolling_config.file_source`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRolling {
    /// `max_execute_object_num_in_batch`: source hosts per batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hosts_per_batch: Option<u32>,
    /// `max_file_num_of_single_execute_object`: files per source host per batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files_per_host: Option<u32>,
}

// ---------------------------------------------------------------------------
// Shapes with a choice of YAML forms. Each visitor passes the live deserializer
// down (MapAccessDeserializer / SeqAccessDeserializer), never a buffered copy.
// ---------------------------------------------------------------------------

/// Any YAML scalar (string, number, boolean) kept as its text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl JsonSchema for Scalar {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A string, number or boolean, used as text.",
            "type": ["string", "number", "integer", "boolean"]
        })
    }
}

/// A duration in whole seconds: `600`, or `10m`, `1h30m`, `90s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Seconds(pub u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;
        impl Visitor<'_> for SecondsVisitor {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds as an integer, or a duration such as `90s`, `10m` or `1h30m`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v)
                    .map(Seconds)
                    .map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                let duration = humantime::parse_duration(v.trim())
                    .map_err(|e| E::custom(format!("invalid duration `{v}`: {e}")))?;
                if duration.subsec_nanos() != 0 {
                    return Err(E::custom(format!("`{v}` is not a whole number of seconds")));
                }
                Ok(Seconds(duration.as_secs()))
            }
        }
        deserializer.deserialize_any(SecondsVisitor)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl JsonSchema for Seconds {
    fn schema_name() -> Cow<'static, str> {
        "Seconds".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Whole seconds (`600`) or a duration (`90s`, `10m`, `1h30m`).",
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*[0-9]+\\s*[a-z]+(\\s*[0-9]+\\s*[a-z]+)*\\s*$" }
            ]
        })
    }
}

/// Where a step runs: `web`, `[web, db]`, an inline `{ips: [...], ...}`, or the hosts
/// of an upstream step, `{from: deploy, hosts: succeeded}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// One or more named sets from `hosts:`, merged.
    Named(Vec<String>),
    /// A set written in place.
    Inline(HostSet),
    /// Drawn at run time from an upstream step's host results.
    From(super::handlers::TargetsFrom),
}

/// The mapping forms of [`Targets`] read as one, so a mistake keeps its location.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsObject {
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    host_ids: Vec<u64>,
    #[serde(default)]
    dynamic_groups: Vec<String>,
    #[serde(default)]
    topo_nodes: Vec<TopoNode>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    hosts: Option<super::handlers::HostPick>,
}

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TargetsVisitor;
        impl<'de> Visitor<'de> for TargetsVisitor {
            type Value = Targets;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host-set name, a list of host-set names, or an inline host set")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Targets, E> {
                Ok(Targets::Named(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Targets, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(Targets::Named)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Targets, A::Error> {
                let o = TargetsObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let set = HostSet {
                    ips: o.ips,
                    host_ids: o.host_ids,
                    dynamic_groups: o.dynamic_groups,
                    topo_nodes: o.topo_nodes,
                };
                match (o.from, o.hosts) {
                    (None, None) => Ok(Targets::Inline(set)),
                    (None, Some(_)) => Err(de::Error::custom(
                        "`hosts` picks hosts of an upstream step: add `from: <step id>`",
                    )),
                    (Some(from), hosts) if set == HostSet::default() => {
                        Ok(Targets::From(super::handlers::TargetsFrom {
                            from,
                            hosts: hosts.unwrap_or_default(),
                        }))
                    }
                    (Some(_), _) => Err(de::Error::custom(
                        "`from` draws the targets from an upstream step and cannot be combined with `ips`, `host_ids`, `dynamic_groups` or `topo_nodes`",
                    )),
                }
            }
        }
        deserializer.deserialize_any(TargetsVisitor)
    }
}

impl Serialize for Targets {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Targets::Named(names) if names.len() == 1 => serializer.serialize_str(&names[0]),
            Targets::Named(names) => names.serialize(serializer),
            Targets::Inline(set) => set.serialize(serializer),
            Targets::From(from) => from.serialize(serializer),
        }
    }
}

impl JsonSchema for Targets {
    fn schema_name() -> Cow<'static, str> {
        "Targets".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let set = generator.subschema_for::<HostSet>();
        let from = generator.subschema_for::<super::handlers::TargetsFrom>();
        json_schema!({
            "description": "A host-set name, a list of host-set names, an inline host set, or `{from: <upstream step>, hosts: succeeded|failed|all}`.",
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } },
                set,
                from
            ]
        })
    }
}

/// An execution account: an alias (`root`), or `{id: 1000}` / `{alias: root}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountRef {
    /// JOB account id (v3/v4 only); wins over the alias.
    pub id: Option<u64>,
    /// Account alias (`account` on v2, `account_alias` on v3/v4).
    pub alias: Option<String>,
}

/// The mapping form of an account.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AccountObject {
    /// JOB account id (v3/v4 only); wins over the alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    /// Account alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alias: Option<String>,
}

impl<'de> Deserialize<'de> for AccountRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AccountVisitor;
        impl<'de> Visitor<'de> for AccountVisitor {
            type Value = AccountRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an account alias, or `{id: N}` / `{alias: name}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AccountRef, E> {
                Ok(AccountRef {
                    id: None,
                    alias: Some(v.to_owned()),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AccountRef, A::Error> {
                let object =
                    AccountObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if object.id.is_none() && object.alias.is_none() {
                    return Err(de::Error::custom("an account needs `id` or `alias`"));
                }
                Ok(AccountRef {
                    id: object.id,
                    alias: object.alias,
                })
            }
        }
        deserializer.deserialize_any(AccountVisitor)
    }
}

impl Serialize for AccountRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.id, &self.alias) {
            (None, Some(alias)) => serializer.serialize_str(alias),
            (id, alias) => AccountObject {
                id,
                alias: alias.clone(),
            }
            .serialize(serializer),
        }
    }
}

impl JsonSchema for AccountRef {
    fn schema_name() -> Cow<'static, str> {
        "AccountRef".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let object = generator.subschema_for::<AccountObject>();
        json_schema!({
            "description": "An account alias (`root`), or `{id: 1000}` / `{alias: root}`.",
            "anyOf": [ { "type": "string" }, object ]
        })
    }
}

/// A JOB script id: an integer on v2 (a script version), a string on v3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptId {
    /// Written as an integer.
    Number(u64),
    /// Written as a string.
    Text(String),
}

impl fmt::Display for ScriptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptId::Number(n) => write!(f, "{n}"),
            ScriptId::Text(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for ScriptId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScriptIdVisitor;
        impl Visitor<'_> for ScriptIdVisitor {
            type Value = ScriptId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a script id (integer or string)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScriptId, E> {
                Ok(ScriptId::Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScriptId, E> {
                u64::try_from(v)
                    .map(ScriptId::Number)
                    .map_err(|_| E::custom(format!("a script id cannot be negative ({v})")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScriptId, E> {
                Ok(ScriptId::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(ScriptIdVisitor)
    }
}

impl Serialize for ScriptId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ScriptId::Number(n) => serializer.serialize_u64(*n),
            ScriptId::Text(s) => serializer.serialize_str(s),
        }
    }
}

impl JsonSchema for ScriptId {
    fn schema_name() -> Cow<'static, str> {
        "ScriptId".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A JOB script id: an integer (v2 script version) or a string (v3).",
            "type": ["integer", "string"]
        })
    }
}

/// A job plan's global variables, in the order written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobVars(pub Vec<JobVar>);

impl JobVars {
    /// No variables are set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One global variable: addressed by name or id, with a string or host value.
#[derive(Debug, Clone, PartialEq)]
pub struct JobVar {
    /// Name, or id when the YAML key is an integer.
    pub key: JobVarKey,
    /// The value to send.
    pub value: JobVarValue,
}

/// How a global variable is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobVarKey {
    /// By its id (an integer YAML key).
    Id(u64),
    /// By its name.
    Name(String),
}

impl fmt::Display for JobVarKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobVarKey::Id(id) => write!(f, "{id}"),
            JobVarKey::Name(name) => f.write_str(name),
        }
    }
}

/// A global variable's value.
#[derive(Debug, Clone, PartialEq)]
pub enum JobVarValue {
    /// A string variable (templated).
    Text(String),
    /// A host-list variable.
    Hosts(Targets),
}

/// The mapping form of a global variable's value.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JobVarObject {
    /// A string value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Scalar>,
    /// A host-list value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hosts: Option<Targets>,
}

impl<'de> Deserialize<'de> for JobVars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = JobVarKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a variable name, or its id as an integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JobVarKey, E> {
                Ok(JobVarKey::Id(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JobVarKey, E> {
                u64::try_from(v)
                    .map(JobVarKey::Id)
                    .map_err(|_| E::custom(format!("a variable id cannot be negative ({v})")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JobVarKey, E> {
                Ok(JobVarKey::Name(v.to_owned()))
            }
        }
        struct Key(JobVarKey);
        impl<'de> Deserialize<'de> for Key {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(KeyVisitor).map(Key)
            }
        }

        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = JobVarValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string value, or `{hosts: <targets>}` / `{value: ...}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JobVarValue, E> {
                Ok(JobVarValue::Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<JobVarValue, E> {
                Ok(JobVarValue::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JobVarValue, E> {
                Ok(JobVarValue::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JobVarValue, E> {
                Ok(JobVarValue::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<JobVarValue, E> {
                Ok(JobVarValue::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JobVarValue, A::Error> {
                let object = JobVarObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (object.value, object.hosts) {
                    (Some(value), None) => Ok(JobVarValue::Text(value.0)),
                    (None, Some(hosts)) => Ok(JobVarValue::Hosts(hosts)),
                    _ => Err(de::Error::custom(
                        "a job variable takes exactly one of `value` or `hosts`",
                    )),
                }
            }
        }
        struct Value(JobVarValue);
        impl<'de> Deserialize<'de> for Value {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ValueVisitor).map(Value)
            }
        }

        struct VarsVisitor;
        impl<'de> Visitor<'de> for VarsVisitor {
            type Value = JobVars;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of variable names (or integer ids) to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JobVars, A::Error> {
                let mut vars = Vec::new();
                while let Some(Key(key)) = map.next_key::<Key>()? {
                    let Value(value) = map.next_value::<Value>()?;
                    vars.push(JobVar { key, value });
                }
                Ok(JobVars(vars))
            }
        }
        deserializer.deserialize_map(VarsVisitor)
    }
}

impl Serialize for JobVars {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for var in &self.0 {
            let key = var.key.to_string();
            match &var.value {
                JobVarValue::Text(text) => map.serialize_entry(&key, text)?,
                JobVarValue::Hosts(targets) => {
                    let object = JobVarObject {
                        value: None,
                        hosts: Some(targets.clone()),
                    };
                    map.serialize_entry(&key, &object)?
                }
            }
        }
        map.end()
    }
}

impl JsonSchema for JobVars {
    fn schema_name() -> Cow<'static, str> {
        "JobVars".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let object = generator.subschema_for::<JobVarObject>();
        json_schema!({
            "description": "Global variables by name (or integer id): a string value, or `{hosts: <targets>}`.",
            "type": "object",
            "additionalProperties": {
                "anyOf": [
                    { "type": ["string", "number", "integer", "boolean"] },
                    object
                ]
            }
        })
    }
}
