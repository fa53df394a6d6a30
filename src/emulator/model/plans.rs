//! Turning a world job plan into a job to run: global variables (defaults, overridden
//! by id or name; host-list variables resolved to hosts; string, namespace and password
//! values exported to scripts), v2 `steps` overrides (only the listed steps run, with
//! their script, parameter, timeout, account, target and file fields replaced), and
//! each step's targets, accounts and rolling.

use std::collections::HashMap;

use crate::emulator::model::inventory::{Account, Host, Inventory, TargetSpec};
use crate::emulator::model::job_error::JobError;
use crate::emulator::model::job_vars::JobVar;
use crate::emulator::model::jobs::{
    ConfirmStep, FileSource, FileStep, RollingMode, ScriptStep, StepKind,
};
use crate::emulator::model::new_job::{NewJob, NewStep, RollingBy, RollingSpec};
use crate::emulator::model::protocol::Protocol;
use crate::emulator::model::scope::Scope;
use crate::emulator::model::values::{self, ScriptSource};
use crate::emulator::model::world::{PlanDef, StepDef};
use crate::emulator::model::world_objects;
use crate::job_api::rules::RollingExpr;
use crate::job_api::types::step_type;

/// A global variable value from the request.
#[derive(Debug, Clone, Default)]
pub struct VarValue {
    /// Variable id.
    pub id: Option<i64>,
    /// Variable name (used when no id).
    pub name: Option<String>,
    /// String value.
    pub value: Option<String>,
    /// Hosts (host-list variables).
    pub hosts: Option<TargetSpec>,
}

/// One source of a v2 step override.
#[derive(Debug, Clone)]
pub struct SourceOverride {
    /// Files.
    pub files: Vec<String>,
    /// Account alias.
    pub account: String,
    /// Source hosts.
    pub hosts: TargetSpec,
}

/// A v2 `steps[]` entry.
#[derive(Debug, Clone, Default)]
pub struct StepOverride {
    /// Plan step id.
    pub step_id: i64,
    /// Stored script version (`script_id` in v2).
    pub script_version_id: Option<i64>,
    /// Base64 script content.
    pub script_content: Option<String>,
    /// Script language.
    pub script_type: Option<i64>,
    /// Base64 parameters.
    pub script_param: Option<String>,
    /// Timeout.
    pub script_timeout: Option<i64>,
    /// Account alias.
    pub account: Option<String>,
    /// Target folder.
    pub file_target_path: Option<String>,
    /// File sources.
    pub file_source: Option<Vec<SourceOverride>>,
    /// Targets.
    pub targets: Option<TargetSpec>,
}

/// What the request asks of a plan.
pub struct PlanRun {
    /// Scopes that will see the instance.
    pub scopes: Vec<Scope>,
    /// Caller.
    pub operator: String,
    /// Variables.
    pub vars: Vec<VarValue>,
    /// v2 step overrides (`None`: all steps as planned).
    pub steps: Option<Vec<StepOverride>>,
    /// Callback.
    pub callback_url: Option<String>,
    /// `start_task`.
    pub start: bool,
    /// Protocol.
    pub protocol: Protocol,
}

/// Builds the job for `plan`.
pub fn build(inventory: &Inventory, plan: &PlanDef, run: PlanRun) -> Result<NewJob, JobError> {
    let mut host_vars: HashMap<String, Vec<Host>> = HashMap::new();
    let mut env = Vec::new();
    let mut vars = Vec::new();
    for var in &plan.global_vars {
        let given = run.vars.iter().find(|v| match (v.id, &v.name) {
            (Some(id), _) if id > 0 => id == var.id,
            (_, Some(name)) => name == &var.name,
            _ => false,
        });
        if var.kind == 3 {
            let spec = match given.and_then(|g| g.hosts.clone()) {
                Some(spec) if !spec.is_empty() => spec,
                _ => TargetSpec::from_def(&var.targets)?,
            };
            let hosts = inventory.resolve(&spec, &HashMap::new())?;
            vars.push(JobVar {
                id: var.id,
                name: var.name.clone(),
                kind: var.kind,
                value: String::new(),
                changeable: false,
                hosts: hosts.clone(),
            });
            host_vars.insert(var.name.clone(), hosts);
        } else {
            let value = given
                .and_then(|g| g.value.clone())
                .unwrap_or_else(|| var.value.clone());
            vars.push(JobVar {
                id: var.id,
                name: var.name.clone(),
                kind: var.kind,
                value: value.clone(),
                changeable: var.changeable && is_identifier(&var.name),
                hosts: Vec::new(),
            });
            if matches!(var.kind, 1 | 2 | 4) && is_identifier(&var.name) {
                env.push((var.name.clone(), value));
            }
        }
    }
    let mut steps = Vec::new();
    for def in &plan.steps {
        let over = match &run.steps {
            None => None,
            Some(list) => match list.iter().find(|o| o.step_id == def.id) {
                Some(o) => Some(o),
                None => continue,
            },
        };
        steps.push(step(inventory, def, over, &host_vars, &env)?);
    }
    Ok(NewJob {
        name: plan.name.clone(),
        scopes: run.scopes,
        operator: run.operator,
        plan_id: plan.id,
        task_type: 0,
        callback_url: run.callback_url,
        protocol: run.protocol,
        start: run.start,
        steps,
        vars,
    })
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn step(
    inventory: &Inventory,
    def: &StepDef,
    over: Option<&StepOverride>,
    host_vars: &HashMap<String, Vec<Host>>,
    env: &[(String, String)],
) -> Result<NewStep, JobError> {
    let targets = match over.and_then(|o| o.targets.clone()) {
        Some(spec) if !spec.is_empty() => inventory.resolve(&spec, host_vars)?,
        _ => {
            let spec = TargetSpec::from_def(&def.targets)?;
            inventory.resolve(&spec, host_vars)?
        }
    };
    let kind = match def.kind {
        step_type::SCRIPT => StepKind::Script(script_step(inventory, def, over, env)?),
        step_type::FILE => StepKind::File(file_step(inventory, def, over, host_vars)?),
        step_type::MANUAL_CONFIRM => {
            let confirm = def.confirm.clone().unwrap_or_default();
            StepKind::Confirm(ConfirmStep {
                message: confirm.message,
                users: confirm.users,
            })
        }
        _ => return Err(JobError::illegal("step.type")),
    };
    let rolling = match &def.rolling {
        None => None,
        Some(r) => Some(RollingSpec {
            mode: RollingMode::from_code(r.mode.into())
                .ok_or_else(|| JobError::illegal("rolling_config.mode"))?,
            by: RollingBy::Targets(
                RollingExpr::parse(&r.expression).map_err(|_| JobError::invalid_rolling())?,
            ),
        }),
    };
    Ok(NewStep {
        step_id: def.id,
        name: def.name.clone(),
        kind,
        targets,
        rolling,
    })
}

fn script_step(
    inventory: &Inventory,
    def: &StepDef,
    over: Option<&StepOverride>,
    env: &[(String, String)],
) -> Result<ScriptStep, JobError> {
    let planned = def.script.clone().unwrap_or_default();
    let over = over.cloned().unwrap_or_default();
    let (language, content) = if over.script_version_id.is_some() || over.script_content.is_some() {
        values::script(
            inventory,
            ScriptSource {
                version_id: over.script_version_id,
                script_id: None,
                content: over.script_content.clone(),
                language: over.script_type.or(planned.language.map(i64::from)),
                names: ("script_id", "script_id", "script_content", "script_type"),
                missing: "script_id|script_content",
            },
        )?
    } else if let Some(version) = planned.script_version_id {
        let def = inventory
            .script_version(version)
            .ok_or_else(|| JobError::illegal("script_version_id"))?;
        (def.language, def.content.clone().into_bytes())
    } else {
        (
            planned.language.unwrap_or(1),
            planned.content.clone().unwrap_or_default().into_bytes(),
        )
    };
    let params = match over.script_param {
        Some(b64) => values::script_param("script_param", Some(b64), planned.sensitive)?,
        None => planned.param.clone(),
    };
    let timeout = match over.script_timeout {
        Some(t) => values::timeout("script_timeout", Some(t))?,
        None => planned.timeout.unwrap_or(values::DEFAULT_TIMEOUT),
    };
    let alias = over
        .account
        .or(planned.account)
        .unwrap_or_else(|| "root".into());
    Ok(ScriptStep {
        language,
        content,
        params,
        timeout_secs: timeout,
        account: inventory.account_by_alias(&alias)?,
        sensitive: planned.sensitive,
        env: env.to_vec(),
    })
}

fn file_step(
    inventory: &Inventory,
    def: &StepDef,
    over: Option<&StepOverride>,
    host_vars: &HashMap<String, Vec<Host>>,
) -> Result<FileStep, JobError> {
    let planned = def.file.clone().unwrap_or_default();
    let over = over.cloned().unwrap_or_default();
    let target_path = values::target_path(
        "file_target_path",
        over.file_target_path.or(Some(planned.target_path.clone())),
    )?;
    let mut sources = Vec::new();
    match over.file_source {
        Some(list) => {
            for source in list {
                sources.push(FileSource {
                    hosts: inventory.resolve(&source.hosts, host_vars)?,
                    account: inventory.account_by_alias(&source.account)?,
                    files: source.files,
                });
            }
        }
        None => {
            for source in &planned.sources {
                if let Some(id) = source.file_source_id {
                    let account =
                        inventory.account_by_alias(planned.account.as_deref().unwrap_or("root"))?;
                    sources.push(third_party_source(
                        inventory,
                        Some(i64::from(id)),
                        None,
                        &source.files,
                        account,
                    )?);
                    continue;
                }
                let spec = TargetSpec::from_def(&source.targets)?;
                sources.push(FileSource {
                    hosts: inventory.resolve(&spec, host_vars)?,
                    account: inventory
                        .account_by_alias(source.account.as_deref().unwrap_or("root"))?,
                    files: source.files.clone(),
                });
            }
        }
    }
    let alias = over
        .account
        .or(planned.account)
        .unwrap_or_else(|| "root".into());
    Ok(FileStep {
        sources,
        target_path,
        target_name: None,
        strict: planned.transfer_mode == Some(1),
        account: inventory.account_by_alias(&alias)?,
        timeout_secs: planned.timeout.unwrap_or(values::DEFAULT_TIMEOUT),
    })
}

/// A third-party file source (`file_type` 3) as a copy source: its objects
/// (`bucket/key`) read from the host it stands on (world_objects.rs), under the target
/// account, as JOB's file gateway hands them to the agent.
pub fn third_party_source(
    inventory: &Inventory,
    id: Option<i64>,
    code: Option<&str>,
    objects: &[String],
    account: Account,
) -> Result<FileSource, JobError> {
    let source = inventory.third_party_source(id, code)?;
    let (addr, host_id) = world_objects::file_source_host(source.id);
    if objects.is_empty() {
        return Err(JobError::missing("file_source.file_list"));
    }
    Ok(FileSource {
        hosts: vec![Host { addr, host_id }],
        files: objects
            .iter()
            .map(|o| world_objects::object_path(o))
            .collect(),
        account,
    })
}
