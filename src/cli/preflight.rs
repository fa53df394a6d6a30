//! The preflight: before the first submission to a real JOB (and on demand with
//! `baton validate --online`), ask JOB what it can about the plan — each job plan
//! exists in the scope and takes the variables the plan passes (names and string vs
//! host types; unknown names and missing required ones are errors; exported names must
//! exist), each execution account alias exists, each script version named by id
//! exists, and the credentials may act on the scope. Every problem becomes a plan
//! finding at the field that caused it, with what JOB said, so they are reported
//! together and the run exits 2 with nothing sent.
//!
//! JOB being unreachable, or refusing the credentials outright, is not a plan problem:
//! that error is returned as is (exit 3), like any other call.

use std::collections::{BTreeMap, BTreeSet};

use crate::compile::CompiledPlan;
use crate::error::Error;
use crate::job_api::build::ApiCall;
use crate::job_api::client::{ClientError, HttpJobApi, JobCodec};
use crate::job_api::lookups::{self, HOST_LIST_VAR, PlanVar};
use crate::job_api::types::{Protocol, Scope};
use crate::plan::model::{AccountRef, JobVarKey, JobVarValue, ScriptId};
use crate::plan::span::Issue;

/// What the preflight found.
struct Found<'a> {
    plan: &'a CompiledPlan,
    issues: Vec<Issue>,
}

impl Found<'_> {
    fn error(&mut self, field: String, message: String) -> &mut Issue {
        self.issues.push(self.plan.source.issue(field, message));
        let last = self.issues.len() - 1;
        &mut self.issues[last]
    }
}

/// Whether an answer refuses the whole run (returned as is) rather than one field.
fn is_fatal(error: &ClientError) -> bool {
    error.is_infrastructure() && !matches!(error, ClientError::PermissionDenied { .. })
}

/// Asks JOB about `plan`; `Ok` when JOB agrees with everything, else every finding
/// as a plan error.
pub async fn check(
    plan: &CompiledPlan,
    api: &HttpJobApi<JobCodec>,
    protocol: Protocol,
    scope: Scope,
) -> Result<(), Error> {
    let mut found = Found {
        plan,
        issues: Vec::new(),
    };
    let ask = |call: ApiCall| async move { api.lookup(&call).await };

    // Accounts first: any plan with a script or a push names one, and a scope the
    // credentials may not use is refused here, once, before the details.
    for (alias, fields) in account_aliases(plan) {
        let call = lookups::account_list(protocol, scope, &alias);
        match ask(call).await {
            Ok(data) if lookups::has_account(&data, &alias) => {}
            Ok(_) => {
                for field in fields {
                    found.error(
                        field,
                        format!("JOB has no execution account `{alias}` in this scope (get_account_list)"),
                    );
                }
            }
            Err(e @ ClientError::PermissionDenied { .. }) => {
                found.error(
                    "scope".into(),
                    format!("these credentials may not act on the plan's scope: JOB said {e}"),
                );
                return Err(finish(found));
            }
            Err(e) if is_fatal(&e) => return Err(e.into()),
            Err(e) => {
                found.error(
                    fields[0].clone(),
                    format!("cannot check execution account `{alias}`: JOB said {e}"),
                );
            }
        }
    }

    for (index, step) in plan.plan.steps.iter().enumerate() {
        if let Some(job) = &step.job {
            let call = match lookups::job_plan_detail(protocol, scope, job.plan_id) {
                Ok(call) => call,
                Err(e) => {
                    found.error(format!("steps[{index}].job.plan_id"), e.to_string());
                    continue;
                }
            };
            match ask(call).await {
                Ok(data) => {
                    let vars = lookups::plan_vars(protocol, &data);
                    check_job_vars(&mut found, index, job, &vars);
                }
                Err(e @ ClientError::PermissionDenied { .. }) => {
                    found.error(
                        format!("steps[{index}].job.plan_id"),
                        format!(
                            "these credentials may not read job plan {}: JOB said {e}",
                            job.plan_id
                        ),
                    );
                }
                Err(e) if is_fatal(&e) => return Err(e.into()),
                Err(e) => {
                    found.error(
                        format!("steps[{index}].job.plan_id"),
                        format!(
                            "job plan {} is not in this scope: JOB said {e}",
                            job.plan_id
                        ),
                    );
                }
            }
        }
        if let Some(script) = &step.script {
            let (version, field) = match (&script.script_version_id, &script.script_id, protocol) {
                (Some(v), _, _) => (Some(*v), "script_version_id"),
                // On v2 an integer `script_id` is a script version.
                (None, Some(ScriptId::Number(v)), Protocol::V2) => (Some(*v), "script_id"),
                _ => (None, ""),
            };
            if let Some(version) = version {
                let call = lookups::script_version_detail(protocol, scope, version);
                match ask(call).await {
                    Ok(_) => {}
                    Err(e) if is_fatal(&e) => return Err(e.into()),
                    Err(e) => {
                        found.error(
                            format!("steps[{index}].script.{field}"),
                            format!(
                                "JOB has no script version {version} in this scope: JOB said {e}"
                            ),
                        );
                    }
                }
            }
        }
    }
    if found.issues.is_empty() {
        Ok(())
    } else {
        Err(finish(found))
    }
}

/// `baton validate --online`: the preflight against the configured JOB.
pub fn online(plan: &CompiledPlan, args: &super::inspect::ValidateArgs) -> Result<(), Error> {
    use crate::config::{self, ConfigFlags};
    use crate::job_api::client::{self, RetryPolicy, Timeouts, Transport};
    let flags = ConfigFlags {
        endpoint: args.endpoint.clone(),
        api: args.input.api,
        profile: args.profile.clone(),
        ..ConfigFlags::default()
    };
    let config = config::resolve(&flags, &|name| std::env::var(name).ok())?;
    let (Some(endpoint), Some(credentials)) = (&config.endpoint, &config.credentials) else {
        return Err(crate::error::UsageError::OnlineNeedsEndpoint.into());
    };
    let scope: Scope =
        plan.plan
            .scope
            .map(Into::into)
            .ok_or_else(|| crate::error::UsageError::NoScope {
                plan: args.input.plan.clone(),
            })?;
    let runtime = super::runtime::start()?;
    runtime.block_on(async {
        let http = client::build_http_client(&Timeouts::default())?;
        let transport = Transport::new(
            http,
            endpoint,
            credentials.clone(),
            RetryPolicy::default(),
            Timeouts::default(),
        );
        let api = HttpJobApi::new(transport, JobCodec::new(plan.protocol, scope));
        check(plan, &api, plan.protocol, scope).await
    })
}

fn finish(found: Found<'_>) -> Error {
    let mut issues = found.issues;
    crate::plan::findings::sort_issues(&mut issues);
    Error::Plan(found.plan.source.errors(issues))
}

/// Every account alias the plan writes, with the fields it is written at.
fn account_aliases(plan: &CompiledPlan) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |account: &Option<AccountRef>, field: String| {
        if let Some(AccountRef {
            id: None,
            alias: Some(alias),
        }) = account
        {
            out.entry(alias.clone()).or_default().push(field);
        }
    };
    if let Some(defaults) = &plan.plan.defaults {
        add(&defaults.account, "defaults.account".into());
    }
    for (i, step) in plan.plan.steps.iter().enumerate() {
        add(&step.account, format!("steps[{i}].account"));
        if let Some(push) = &step.push_file {
            for (j, source) in push.sources.iter().enumerate() {
                add(
                    &source.account,
                    format!("steps[{i}].push_file.sources[{j}].account"),
                );
            }
        }
        if let Some(job) = &step.job {
            for (k, over) in job.overrides.iter().enumerate() {
                add(
                    &over.account,
                    format!("steps[{i}].job.overrides[{k}].account"),
                );
            }
        }
    }
    out
}

/// The plan's variables against the job plan's: names, types, required ones, exports.
fn check_job_vars(
    found: &mut Found<'_>,
    index: usize,
    job: &crate::plan::model::JobStep,
    vars: &[PlanVar],
) {
    let plan_id = job.plan_id;
    let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
    let mut given: BTreeSet<u64> = BTreeSet::new();
    for var in &job.vars.0 {
        let field = format!("steps[{index}].job.vars.{}", var.key);
        let known = match &var.key {
            JobVarKey::Id(id) => vars.iter().find(|v| v.id == *id),
            JobVarKey::Name(name) => vars.iter().find(|v| &v.name == name),
        };
        let Some(known) = known else {
            let issue = found.error(
                field,
                format!(
                    "job plan {plan_id} has no global variable `{}` (JOB lists: {})",
                    var.key,
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            );
            if let JobVarKey::Name(name) = &var.key
                && let Some(near) = crate::plan::vars::closest(name, names.iter().copied())
            {
                issue.help = Some(format!("did you mean `{near}`?"));
            }
            continue;
        };
        given.insert(known.id);
        let is_hosts = matches!(var.value, JobVarValue::Hosts(_));
        if is_hosts && known.kind != HOST_LIST_VAR {
            found.error(
                field,
                format!("`{}` is a {} variable in job plan {plan_id}, but the plan passes hosts; pass a string", known.name, kind_name(known.kind)),
            );
        } else if !is_hosts && known.kind == HOST_LIST_VAR {
            found.error(
                field,
                format!("`{}` is a host-list variable in job plan {plan_id}; pass `{{hosts: <targets>}}`", known.name),
            );
        }
    }
    for var in vars {
        if var.required && !var.has_default && !given.contains(&var.id) {
            found.error(
                format!("steps[{index}].job"),
                format!("job plan {plan_id} requires global variable `{}` ({}), which the plan does not pass in `job.vars`", var.name, kind_name(var.kind)),
            );
        }
    }
    for (e, export) in job.exports.iter().enumerate() {
        if !vars.iter().any(|v| v.name == export.name) {
            found.error(
                format!("steps[{index}].job.exports[{e}]"),
                format!(
                    "job plan {plan_id} has no global variable `{}` to export",
                    export.name
                ),
            );
        }
    }
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        1 => "string",
        2 => "namespace",
        3 => "host-list",
        4 => "password",
        5 => "associative-array",
        6 => "index-array",
        _ => "global",
    }
}
