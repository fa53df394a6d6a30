//! [`JobRequest`]: one submission to JOB in JOB's own words, whatever protocol carries
//! it: a script run, a file push or a job plan execution, with its scope, resolved
//! target hosts, account, timeout, rolling and the rest. The encoders of
//! [`super::v2`], [`super::v3`] and [`super::v4`] turn it into a wire body.
//!
//! A request keeps the field path each part was written under (`targets`,
//! `push_file.sources[0].from`, `defaults.account`), so an encoder that cannot carry a
//! part names the place its author wrote it. Problems found while resolving hosts
//! travel with the host set and are reported only by an encoder that sends it, so a
//! protocol that refuses the whole step does not also complain about its hosts.

use super::build::BuildError;
use super::types::{HostAddr, Scope};

/// One submission to JOB.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    /// The business or business set; `None` when the plan names none.
    pub scope: Option<Scope>,
    /// What JOB is asked to do.
    pub work: Work,
    /// Where it runs.
    pub targets: Option<Hosts>,
    /// The execution account.
    pub account: Option<Account>,
    /// JOB's own timeout.
    pub timeout: Option<Timeout>,
    /// Batch-by-batch execution.
    pub rolling: Option<Rolling>,
    /// `false` creates the instance without starting it.
    pub start_task: Option<bool>,
    /// The task name JOB shows.
    pub task_name: Option<String>,
}

/// The kind of submission.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// `fast_execute_script`.
    Script(ScriptRun),
    /// `fast_push_file` / `fast_transfer_file`.
    Push(FilePush),
    /// `execute_job` / `execute_job_plan` / `execute_platform_job`.
    Job(JobPlanRun),
    /// `push_config_file`.
    Config(ConfigPush),
}

/// Small text files pushed to the targets (`push_config_file`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigPush {
    /// Target folder.
    pub target_path: String,
    /// `(file name, text)` pairs, the text not yet base64-encoded.
    pub files: Vec<(String, String)>,
}

/// A merged, de-duplicated set of hosts, every list in first-seen order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hosts {
    /// Where the set was written, for errors (`targets`, `job.vars.servers`).
    pub field: String,
    /// Hosts by cloud area and IP.
    pub ips: Vec<HostAddr>,
    /// Hosts by CMDB id.
    pub host_ids: Vec<u64>,
    /// Dynamic group ids.
    pub dynamic_groups: Vec<String>,
    /// Topology nodes.
    pub topo_nodes: Vec<TopoNode>,
    /// What could not be resolved (an unknown set name, an address that is not one).
    pub problems: Vec<BuildError>,
}

impl Hosts {
    /// No host of any kind.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
            && self.host_ids.is_empty()
            && self.dynamic_groups.is_empty()
            && self.topo_nodes.is_empty()
    }
}

/// A CMDB topology node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopoNode {
    /// `module` or `set` (CMDB `bk_obj_id`).
    pub node_type: String,
    /// The node's `bk_inst_id`.
    pub id: u64,
}

/// An execution account, by alias or id (JOB prefers the id when both are given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// JOB account id.
    pub id: Option<u64>,
    /// Account alias.
    pub alias: Option<String>,
    /// Where it was written (`account`, `defaults.account`, `…sources[0].account`).
    pub field: String,
}

/// JOB's timeout in seconds and where it was written (`timeout`, `defaults.timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    /// Seconds.
    pub seconds: u64,
    /// Where it was written.
    pub field: &'static str,
}

/// Rolling execution over the targets, or over source files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rolling {
    /// Batch sizes over the targets, in JOB's grammar.
    pub expression: Option<String>,
    /// What a failed batch does; JOB's default (pause) when unset.
    pub mode: Option<RollingMode>,
    /// Source-file rolling limits (pushes only).
    pub files: Option<FileRolling>,
}

/// JOB's rolling `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollingMode {
    /// 1: stop at a failed batch.
    Pause,
    /// 2: ignore failures and roll on.
    Ignore,
    /// 3: wait for a person before every batch.
    Confirm,
}

/// Source-file rolling limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileRolling {
    /// Source hosts per batch.
    pub max_hosts_per_batch: Option<u32>,
    /// Files per source host per batch.
    pub max_files_per_host: Option<u32>,
}

/// JOB's script languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
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

/// A JOB script id as written: an integer (a script version on v2) or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptId {
    /// Written as an integer.
    Number(u64),
    /// Written as a string.
    Text(String),
}

impl std::fmt::Display for ScriptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptId::Number(n) => write!(f, "{n}"),
            ScriptId::Text(s) => f.write_str(s),
        }
    }
}

/// A script run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptRun {
    /// Needed with inline content.
    pub language: Option<Language>,
    /// The script text, not yet base64-encoded.
    pub content: Option<String>,
    /// A script file whose text was not read into `content` (an error to send).
    pub file: Option<String>,
    /// A JOB script.
    pub script_id: Option<ScriptId>,
    /// A JOB script version.
    pub script_version_id: Option<u64>,
    /// Arguments as one string, not yet base64-encoded.
    pub params: Option<String>,
    /// Hide the params in JOB and mask them in output.
    pub sensitive: Option<bool>,
    /// Windows interpreter path.
    pub windows_interpreter: Option<String>,
    /// Per-host Windows passwords.
    pub host_passwords: Vec<HostPassword>,
}

/// One Windows host's password (already encrypted for JOB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPassword {
    /// `cloud:ip` of the host, as written.
    pub ip: Option<String>,
    /// CMDB host id.
    pub host_id: Option<u64>,
    /// The encrypted password; masked in output.
    pub encrypted_password: String,
}

/// A file push from source hosts to the targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilePush {
    /// Where the files come from.
    pub sources: Vec<FileSource>,
    /// Target folder.
    pub target_path: String,
    /// Rename the file at the target.
    pub target_name: Option<String>,
    /// Whether a missing target folder fails or is created.
    pub transfer_mode: Option<TransferMode>,
    /// Upload limit in MB/s.
    pub upload_speed_limit: Option<u32>,
    /// Download limit in MB/s.
    pub download_speed_limit: Option<u32>,
}

/// A group of source files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSource {
    /// Paths; a name may use `*` or `REGEX:`.
    pub files: Vec<String>,
    /// Account reading the files; the step's when unset.
    pub account: Option<Account>,
    /// The hosts the files are on.
    pub from: Option<Hosts>,
    /// `server` when unset.
    pub file_type: Option<FileType>,
    /// Third-party file source id.
    pub file_source_id: Option<u64>,
    /// Third-party file source code.
    pub file_source_code: Option<String>,
}

/// JOB's `file_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// 1: files on source hosts.
    Server,
    /// 2: files uploaded to JOB's artifact store.
    Local,
    /// 3: a third-party file source.
    ThirdParty,
}

/// JOB's `transfer_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// 1: a missing target folder fails the host.
    Strict,
    /// 2: create missing target folders.
    Force,
}

/// Starting a job plan (a cross-business platform job when a business is named).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobPlanRun {
    /// The job plan id.
    pub plan_id: u64,
    /// Global variables, in the order written.
    pub vars: Vec<GlobalVar>,
    /// Per-step overrides of the plan's steps.
    pub overrides: Vec<StepOverride>,
    /// Cross-business job: the business files come from.
    pub source_biz: Option<u64>,
    /// Cross-business job: the business files go to.
    pub target_biz: Option<u64>,
}

/// One global variable.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalVar {
    /// Name or id.
    pub key: VarKey,
    /// Its value.
    pub value: VarValue,
}

/// How a global variable is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarKey {
    /// By id.
    Id(u64),
    /// By name.
    Name(String),
}

/// A global variable's value.
#[derive(Debug, Clone, PartialEq)]
pub enum VarValue {
    /// A string variable.
    Text(String),
    /// A host-list variable.
    Hosts(Hosts),
}

/// An override of one step of a job plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOverride {
    /// The job plan's step id.
    pub step_id: u64,
    /// Replace the step's script (a script version id).
    pub script_id: Option<u64>,
    /// Needed with content.
    pub language: Option<Language>,
    /// New script text.
    pub content: Option<String>,
    /// A script file whose text was not read into `content`.
    pub file: Option<String>,
    /// New script arguments.
    pub params: Option<String>,
    /// New script timeout in seconds.
    pub timeout: Option<u64>,
    /// New execution account.
    pub account: Option<Account>,
    /// DB account for a SQL step.
    pub db_account_id: Option<u64>,
    /// New file target folder.
    pub target_path: Option<String>,
    /// New file sources.
    pub sources: Vec<FileSource>,
    /// New targets.
    pub targets: Option<Hosts>,
}
