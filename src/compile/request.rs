//! A rendered plan step turned into the [`JobRequest`] JOB is sent: host-set names
//! resolved against the plan's `hosts` and merged, the plan's scope and the step's
//! settings (account, timeout, defaults filled in) attached, every plan word put into
//! JOB's. [`encode_step`] then encodes it for a protocol.
//!
//! Each part keeps the field path the plan wrote it under, so the encoders' errors
//! name the place in the plan.

use crate::compile::settings::StepSettings;
use crate::job_api::build::{ApiCall, BuildError, encode};
use crate::job_api::request::{
    self as req, Account, ConfigPush, GlobalVar, Hosts, JobPlanRun, JobRequest, ScriptRun,
    StepOverride, Timeout, VarKey, VarValue, Work,
};
use crate::job_api::types::{HostAddr, Protocol};
use crate::plan::model::{
    self, AccountRef, FileSource, HostSet, JobStep, JobVarKey, JobVarValue, Plan, PushFileStep,
    ScriptStep, Step, Targets,
};

/// Encodes the rendered `step` of `plan` with its `settings` for `protocol`.
pub fn encode_step(
    plan: &Plan,
    step: &Step,
    settings: &StepSettings,
    protocol: Protocol,
) -> Result<ApiCall, Vec<BuildError>> {
    encode(&job_request(plan, step, settings)?, protocol)
}

/// The request for the rendered `step` of `plan`. Fails only when the step is not
/// exactly one of a script, a push or a job.
pub fn job_request(
    plan: &Plan,
    step: &Step,
    settings: &StepSettings,
) -> Result<JobRequest, Vec<BuildError>> {
    let kinds = [
        step.script.is_some(),
        step.push_file.is_some(),
        step.job.is_some(),
        step.push_config.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    let work = match (&step.script, &step.push_file, &step.job, &step.push_config) {
        (Some(script), None, None, None) => Work::Script(script_run(script)),
        (None, Some(push), None, None) => Work::Push(file_push(plan, push)),
        (None, None, Some(job), None) => Work::Job(job_plan_run(plan, job)),
        (None, None, None, Some(config)) => Work::Config(ConfigPush {
            target_path: config.target_path.clone(),
            files: config
                .files
                .iter()
                .map(|f| (f.name.clone(), f.content.clone()))
                .collect(),
        }),
        _ => {
            return Err(vec![BuildError {
                field: "step".into(),
                message: format!(
                    "a step needs exactly one of `script`, `push_file`, `push_config` or `job` ({kinds} given)"
                ),
            }]);
        }
    };
    Ok(JobRequest {
        scope: plan.scope.map(Into::into),
        work,
        targets: step
            .targets
            .as_ref()
            .map(|targets| resolve_hosts(plan, targets, "targets")),
        account: settings
            .account
            .as_ref()
            .map(|resolved| account(&resolved.account, resolved.field)),
        timeout: settings.timeout.map(|timeout| Timeout {
            seconds: timeout.as_secs(),
            field: if step.timeout.is_some() {
                "timeout"
            } else {
                "defaults.timeout"
            },
        }),
        rolling: step.rolling.as_ref().map(|rolling| req::Rolling {
            expression: rolling.expression.clone(),
            mode: rolling.mode.map(rolling_mode),
            files: rolling.files.as_ref().map(|files| req::FileRolling {
                max_hosts_per_batch: files.max_hosts_per_batch,
                max_files_per_host: files.max_files_per_host,
            }),
        }),
        start_task: step.start_task,
        task_name: step.task_name.clone(),
    })
}

/// `targets` resolved against the plan's named sets and merged: the first occurrence
/// of every host, group and node is kept, in the order the sets are named. IPs are
/// compared after parsing, so `10.0.0.1` and `0:10.0.0.1` are one host, as they are to
/// JOB. Unknown names and addresses that are not one are kept as problems under
/// `field`.
pub fn resolve_hosts(plan: &Plan, targets: &Targets, field: &str) -> Hosts {
    let mut hosts = Hosts {
        field: field.to_owned(),
        ..Hosts::default()
    };
    // Targets drawn from an upstream step are replaced by its real hosts before a
    // run encodes the step; a preview (`baton plan`, the dry run) shows the most they
    // can be: the hosts that step targets.
    let mut targets = targets;
    let mut hops = 0;
    while let Targets::From(from) = targets {
        hops += 1;
        match plan.steps.iter().find(|s| s.id == from.from) {
            Some(upstream) if hops <= plan.steps.len() => match &upstream.targets {
                Some(next) => targets = next,
                None => return hosts,
            },
            _ => {
                hosts.problems.push(BuildError {
                    field: field.to_owned(),
                    message: format!("targets drawn from `{}`, which has no targets", from.from),
                });
                return hosts;
            }
        }
    }
    match targets {
        Targets::From(_) => {}
        Targets::Inline(set) => merge(&mut hosts, set),
        Targets::Named(names) => {
            for name in names {
                match plan.hosts.get(name) {
                    Some(set) => merge(&mut hosts, set),
                    None => {
                        let known: Vec<&str> = plan.hosts.keys().map(String::as_str).collect();
                        let known = if known.is_empty() {
                            "the plan defines no host sets".to_owned()
                        } else {
                            format!("defined sets: {}", known.join(", "))
                        };
                        hosts.problems.push(BuildError {
                            field: field.to_owned(),
                            message: format!("unknown host set `{name}` ({known})"),
                        });
                    }
                }
            }
        }
    }
    hosts
}

fn merge(hosts: &mut Hosts, set: &HostSet) {
    for text in &set.ips {
        match HostAddr::parse(text) {
            Some(addr) => push_unique(&mut hosts.ips, addr),
            None => hosts.problems.push(BuildError {
                field: format!("{}.ips", hosts.field),
                message: format!(
                    "`{text}` is not a host: write `cloud:ip` (e.g. `0:10.0.0.1`) or an IPv4 address"
                ),
            }),
        }
    }
    for id in &set.host_ids {
        push_unique(&mut hosts.host_ids, *id);
    }
    for group in &set.dynamic_groups {
        push_unique(&mut hosts.dynamic_groups, group.clone());
    }
    for node in &set.topo_nodes {
        push_unique(
            &mut hosts.topo_nodes,
            req::TopoNode {
                node_type: node.node_type.clone(),
                id: node.id,
            },
        );
    }
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

fn account(account: &AccountRef, field: &str) -> Account {
    Account {
        id: account.id,
        alias: account.alias.clone(),
        field: field.to_owned(),
    }
}

fn script_run(script: &ScriptStep) -> ScriptRun {
    ScriptRun {
        language: script.language.map(language),
        content: script.content.clone(),
        file: script.file.clone(),
        script_id: script.script_id.as_ref().map(|id| match id {
            model::ScriptId::Number(n) => req::ScriptId::Number(*n),
            model::ScriptId::Text(text) => req::ScriptId::Text(text.clone()),
        }),
        script_version_id: script.script_version_id,
        params: script.params.clone(),
        sensitive: script.sensitive,
        windows_interpreter: script.windows_interpreter.clone(),
        host_passwords: script
            .host_passwords
            .iter()
            .map(|p| req::HostPassword {
                ip: p.ip.clone(),
                host_id: p.host_id,
                encrypted_password: p.encrypted_password.clone(),
            })
            .collect(),
    }
}

fn file_push(plan: &Plan, push: &PushFileStep) -> req::FilePush {
    req::FilePush {
        sources: file_sources(plan, &push.sources, "push_file.sources"),
        target_path: push.target_path.clone(),
        target_name: push.target_name.clone(),
        transfer_mode: push.transfer_mode.map(|mode| match mode {
            model::TransferMode::Strict => req::TransferMode::Strict,
            model::TransferMode::Force => req::TransferMode::Force,
        }),
        upload_speed_limit: push.upload_speed_limit,
        download_speed_limit: push.download_speed_limit,
    }
}

fn file_sources(plan: &Plan, sources: &[FileSource], field: &str) -> Vec<req::FileSource> {
    sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            let prefix = format!("{field}[{i}]");
            req::FileSource {
                files: source.files.clone(),
                account: source
                    .account
                    .as_ref()
                    .map(|a| account(a, &format!("{prefix}.account"))),
                from: source
                    .from
                    .as_ref()
                    .map(|from| resolve_hosts(plan, from, &format!("{prefix}.from"))),
                file_type: source.file_type.map(|t| match t {
                    model::FileType::Server => req::FileType::Server,
                    model::FileType::Local => req::FileType::Local,
                    model::FileType::ThirdParty => req::FileType::ThirdParty,
                }),
                file_source_id: source.file_source_id,
                file_source_code: source.file_source_code.clone(),
            }
        })
        .collect()
}

fn job_plan_run(plan: &Plan, job: &JobStep) -> JobPlanRun {
    JobPlanRun {
        plan_id: job.plan_id,
        vars: job
            .vars
            .0
            .iter()
            .map(|var| GlobalVar {
                key: match &var.key {
                    JobVarKey::Id(id) => VarKey::Id(*id),
                    JobVarKey::Name(name) => VarKey::Name(name.clone()),
                },
                value: match &var.value {
                    JobVarValue::Text(text) => VarValue::Text(text.clone()),
                    JobVarValue::Hosts(targets) => VarValue::Hosts(resolve_hosts(
                        plan,
                        targets,
                        &format!("job.vars.{}", var.key),
                    )),
                },
            })
            .collect(),
        overrides: job
            .overrides
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let prefix = format!("job.overrides[{i}]");
                StepOverride {
                    step_id: o.step_id,
                    script_id: o.script_id,
                    language: o.language.map(language),
                    content: o.content.clone(),
                    file: o.file.clone(),
                    params: o.params.clone(),
                    timeout: o.timeout.map(|t| t.0),
                    account: o
                        .account
                        .as_ref()
                        .map(|a| account(a, &format!("{prefix}.account"))),
                    db_account_id: o.db_account_id,
                    target_path: o.target_path.clone(),
                    sources: file_sources(plan, &o.sources, &format!("{prefix}.sources")),
                    targets: o
                        .targets
                        .as_ref()
                        .map(|targets| resolve_hosts(plan, targets, &format!("{prefix}.targets"))),
                }
            })
            .collect(),
        source_biz: job.source_biz,
        target_biz: job.target_biz,
    }
}

fn language(language: model::ScriptLanguage) -> req::Language {
    match language {
        model::ScriptLanguage::Shell => req::Language::Shell,
        model::ScriptLanguage::Bat => req::Language::Bat,
        model::ScriptLanguage::Perl => req::Language::Perl,
        model::ScriptLanguage::Python => req::Language::Python,
        model::ScriptLanguage::Powershell => req::Language::Powershell,
        model::ScriptLanguage::Sql => req::Language::Sql,
    }
}

fn rolling_mode(mode: model::RollingMode) -> req::RollingMode {
    match mode {
        model::RollingMode::Pause => req::RollingMode::Pause,
        model::RollingMode::Ignore => req::RollingMode::Ignore,
        model::RollingMode::Confirm => req::RollingMode::Confirm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let hosts = resolve_hosts(
            &plan(),
            &Targets::Named(vec!["web".into(), "more".into()]),
            "targets",
        );
        assert!(hosts.problems.is_empty());
        let ips: Vec<String> = hosts.ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["0:10.0.0.1", "0:10.0.0.2", "0:10.0.0.3"]);
        assert_eq!(hosts.dynamic_groups, ["g1", "g2"]);
        assert_eq!(hosts.topo_nodes.len(), 1);
    }

    #[test]
    fn unknown_set_and_bad_ip_are_kept_as_problems() {
        let unknown = resolve_hosts(&plan(), &Targets::Named(vec!["nope".into()]), "targets");
        let inline = Targets::Inline(HostSet {
            ips: vec!["0:10.0.0.300".into()],
            ..HostSet::default()
        });
        let bad = resolve_hosts(&plan(), &inline, "targets");
        assert_eq!(unknown.problems.len(), 1);
        assert!(
            unknown.problems[0]
                .message
                .contains("unknown host set `nope`")
        );
        assert!(unknown.problems[0].message.contains("web"));
        assert_eq!(bad.problems.len(), 1);
        assert_eq!(bad.problems[0].field, "targets.ips");
    }

    #[test]
    fn settings_and_field_paths_travel_with_the_request() {
        let plan: Plan = serde_yaml::from_str(
            r#"
version: 1
name: t
scope: { type: biz, id: 2 }
defaults: { account: root, timeout: 60 }
hosts: { web: { ips: ["10.0.0.1"] } }
steps:
  - id: p
    targets: web
    push_file:
      target_path: /tmp/
      sources: [{ files: [/a], account: { id: 3 }, from: { host_ids: [5] } }]
"#,
        )
        .unwrap();
        let step = &plan.steps[0];
        let request = job_request(&plan, step, &StepSettings::resolve(&plan, step)).unwrap();
        assert_eq!(
            request.account.as_ref().map(|a| a.field.as_str()),
            Some("defaults.account")
        );
        assert_eq!(
            request.timeout,
            Some(Timeout {
                seconds: 60,
                field: "defaults.timeout"
            })
        );
        let Work::Push(push) = &request.work else {
            panic!("a push: {request:?}");
        };
        let source = &push.sources[0];
        assert_eq!(
            source.account.as_ref().map(|a| a.field.as_str()),
            Some("push_file.sources[0].account")
        );
        assert_eq!(
            source.from.as_ref().map(|h| h.field.as_str()),
            Some("push_file.sources[0].from")
        );
    }
}
