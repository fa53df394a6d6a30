//! [`CompiledPlan`]: a loaded plan that passed every check, with its step graph, its
//! templates registered once, and what rendering a step needs; [`compile`] builds it.
//!
//! All problems are collected, each with its field path and location, so the user fixes
//! a plan in one pass; warnings are kept apart and never block. Compiling runs the
//! plan's own checks, JOB's rules on the plan as written, the step graph, every
//! template reference, and finally a dry run that renders each step with preview
//! values and encodes it for the chosen protocol, so a field the protocol cannot carry
//! is reported here, before anything is sent.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Map;

use super::condition::StepCondition;
use super::graph::{PlanGraph, graph_issues};
use super::limits::{LimitError, check_rendered_limits};
use super::render::{RenderContext, RenderError, Renderer};
use super::settings::{ResolvedStep, StepSettings};
use super::template::TemplateSet;
use super::{condition, dry_run, job_rules, references};
use crate::job_api::types::Protocol;
use crate::plan::check;
use crate::plan::findings::Findings;
use crate::plan::load::LoadedPlan;
use crate::plan::model::{Plan, Step};
use crate::plan::span::{Issue, PlanErrors, PlanSource};
use crate::plan::vars::{self, ResolvedVars, VarInputs};

/// The protocol used when neither `--api` nor the plan's `api` says.
pub const DEFAULT_PROTOCOL: Protocol = Protocol::V3;

/// What compiling needs besides the plan.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// `--api`; wins over the plan's `api`.
    pub api: Option<Protocol>,
    /// Variable values from flags, a vars file and the environment.
    pub vars: VarInputs,
}

/// A plan that passed every check, ready to be rendered step by step.
#[derive(Debug)]
pub struct CompiledPlan {
    /// The plan's text and locations.
    pub source: PlanSource,
    /// The plan as written.
    pub plan: Plan,
    /// The protocol requests are encoded for.
    pub protocol: Protocol,
    /// Checked variable values.
    pub vars: ResolvedVars,
    /// The step DAG.
    pub graph: PlanGraph,
    /// Non-fatal findings.
    pub warnings: Vec<Issue>,
    templates: TemplateSet,
    script_files: HashMap<String, String>,
    /// Per step, the upstream step ids its templates read (sorted, unique).
    upstream_refs: Vec<Vec<String>>,
    /// Step index by id (the first step with an id; ids are unique once valid).
    index_by_id: HashMap<String, usize>,
    /// Per step, its settings with the plan's defaults filled in.
    settings: Vec<StepSettings>,
    /// Per step, its compiled `if`.
    conditions: Vec<Option<StepCondition>>,
    /// Per step of a fanned-out group with `max_parallel`, the group's limit.
    pub fan_out: Vec<Option<super::fan_out::GroupLimit>>,
}

/// A variable that feeds a `sensitive: true` parameter string is masked wherever the
/// rendered parameters appear, but unless it is declared `secret` its value is still
/// stored with the run's inputs: say so, so the plan can say what it means.
fn warn_of_plain_inputs_in_sensitive_params(plan: &crate::plan::Plan, findings: &mut Findings) {
    static VAR: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let Some(var) = VAR
        .get_or_init(|| regex::Regex::new(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}").ok())
        .as_ref()
    else {
        return;
    };
    for (i, step) in plan.steps.iter().enumerate() {
        let Some(script) = step.script.as_ref().filter(|s| s.sensitive == Some(true)) else {
            continue;
        };
        let Some(params) = &script.params else {
            continue;
        };
        for name in var.captures_iter(params).filter_map(|c| c.get(1)) {
            let name = name.as_str();
            if plan.vars.get(name).is_some_and(|decl| !decl.secret) {
                findings.warning(
                    format!("steps[{i}].script.params"),
                    format!("variable `{name}` feeds sensitive parameters but is not declared `secret: true`: its value is masked in output yet stored with the run's inputs"),
                );
            }
        }
    }
}

/// Loads and compiles the plan at `path`.
pub fn load_and_compile(path: &Path, options: &CompileOptions) -> Result<CompiledPlan, PlanErrors> {
    compile(super::loading::load(path)?, options)
}

/// Runs every check on `loaded` and compiles it.
pub fn compile(loaded: LoadedPlan, options: &CompileOptions) -> Result<CompiledPlan, PlanErrors> {
    let LoadedPlan {
        mut source,
        mut plan,
        mut script_files,
        file_issues,
        ..
    } = loaded;
    let protocol = options
        .api
        .or(plan.api.map(Into::into))
        .unwrap_or(DEFAULT_PROTOCOL);

    let (resolved, var_errors, var_warnings) = vars::resolve(&source, &plan.vars, &options.vars);
    // Fan-out first: every later check sees the instances, located at their declaration.
    let (expansion, fan_issues) =
        super::fan_out::expand(&mut plan, &source, &resolved, &mut script_files);
    if !fan_issues.is_empty() {
        // Unexpanded, every `{{item}}` would be reported too: say only what blocks it.
        let mut issues = fan_issues;
        issues.extend(var_errors);
        crate::plan::findings::sort_issues(&mut issues);
        return Err(source.errors(issues));
    }
    if !expansion.origins.is_empty() {
        source.set_step_origins(expansion.origins);
    }
    let mut findings = Findings::new(&source, file_issues);
    findings.errors.extend(var_errors);
    findings.warnings.extend(var_warnings);

    let ids_ok = check::check(&plan, &mut findings);
    job_rules::check(&plan, protocol, &mut findings);
    warn_of_plain_inputs_in_sensitive_params(&plan, &mut findings);

    let graph = match PlanGraph::build(&plan.steps) {
        Ok(graph) => Some(graph),
        Err(problems) => {
            findings.errors.extend(graph_issues(&source, problems));
            None
        }
    };

    let conditions = condition::check(&mut findings, &plan, graph.as_ref().filter(|_| ids_ok));

    let mut templates = TemplateSet::new();
    let mut upstream_refs = vec![Vec::new(); plan.steps.len()];
    let mut runtime_fields = HashSet::new();
    references::register(
        &mut findings,
        &mut plan,
        &script_files,
        graph.as_ref().filter(|_| ids_ok),
        &mut templates,
        &mut upstream_refs,
        &mut runtime_fields,
    );
    templates.finish_adding();

    let mut index_by_id = HashMap::with_capacity(plan.steps.len());
    for (i, step) in plan.steps.iter().enumerate() {
        index_by_id.entry(step.id.clone()).or_insert(i);
    }
    let renderer = Renderer {
        plan: &plan,
        vars: &resolved,
        templates: &templates,
        script_files: &script_files,
        upstream_refs: &upstream_refs,
        index_by_id: &index_by_id,
    };
    dry_run::check(&mut findings, &renderer, protocol, &runtime_fields);

    let graph = match graph {
        Some(graph) if findings.errors.is_empty() => graph,
        _ => {
            let mut errors = findings.finish_with_errors();
            let mut secrets = crate::plan::secrets::plan_literals(&plan);
            secrets.extend(resolved.secret_values().into_iter().map(str::to_owned));
            errors.hide(&secrets);
            return Err(errors);
        }
    };
    let warnings = findings.into_warnings();
    let settings = plan
        .steps
        .iter()
        .map(|step| StepSettings::resolve(&plan, step))
        .collect();
    Ok(CompiledPlan {
        source: source.clone(),
        plan,
        protocol,
        vars: resolved,
        graph,
        warnings,
        templates,
        script_files,
        upstream_refs,
        index_by_id,
        settings,
        conditions,
        fan_out: expansion.groups,
    })
}

impl CompiledPlan {
    fn renderer(&self) -> Renderer<'_> {
        Renderer {
            plan: &self.plan,
            vars: &self.vars,
            templates: &self.templates,
            script_files: &self.script_files,
            upstream_refs: &self.upstream_refs,
            index_by_id: &self.index_by_id,
        }
    }

    /// A copy of step `index` with every template rendered and script files inlined
    /// into `content` (their `file` cleared). The rendered values are checked against
    /// JOB's limits and path rules, since runtime values were unknown at validation.
    pub fn render_step(&self, index: usize, ctx: &RenderContext) -> Result<Step, RenderError> {
        let step = self.renderer().render_templates(index, ctx)?;
        check_rendered_limits(&step, &HashSet::new(), &format!("steps[{index}]")).map_err(
            |LimitError { field, message }| RenderError::Invalid {
                step: step.id.clone(),
                field,
                message: self.vars.mask(&message),
            },
        )?;
        Ok(step)
    }

    /// Step `index` rendered as [`render_step`](Self::render_step) does, with its
    /// settings.
    pub fn resolve_step(
        &self,
        index: usize,
        ctx: &RenderContext,
    ) -> Result<ResolvedStep, RenderError> {
        let step = self.render_step(index, ctx)?;
        let settings = self
            .settings
            .get(index)
            .ok_or(RenderError::NoSuchStep(index))?
            .rendered(&self.plan, &step);
        Ok(ResolvedStep { step, settings })
    }

    /// Step `index`'s settings, defaults filled in (its `task_name` unrendered).
    pub fn settings(&self, index: usize) -> Option<&StepSettings> {
        self.settings.get(index)
    }

    /// Whether step `index` should run: its `when` renders to something other than
    /// `false`, `no`, `0` or nothing (case-insensitive). No `when` means yes.
    pub fn evaluate_when(&self, index: usize, ctx: &RenderContext) -> Result<bool, RenderError> {
        self.renderer().evaluate_when(index, ctx)
    }

    /// Step `index`'s compiled `if`, if it has one.
    pub fn condition(&self, index: usize) -> Option<&StepCondition> {
        self.conditions.get(index).and_then(Option::as_ref)
    }

    /// The plan's `description` rendered with the variables (secrets masked).
    pub fn render_description(&self) -> Option<String> {
        let text = self.plan.description.as_ref()?;
        let renderer = self.renderer();
        let context = renderer.context_with_steps(&RenderContext::preview(), Map::new());
        Some(
            self.templates
                .render("description", text, &context)
                .unwrap_or_else(|_| text.clone()),
        )
    }

    /// Step index by id.
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.index_by_id.get(id).copied()
    }

    /// Step ids whose results step `index`'s templates read.
    pub fn upstream_refs(&self, index: usize) -> &[String] {
        self.upstream_refs.get(index).map_or(&[], Vec::as_slice)
    }

    /// The plan's `name`.
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// Every step's id, display name and `needs`, in plan order.
    pub fn outlines(&self) -> Vec<StepOutline> {
        self.plan
            .steps
            .iter()
            .map(|s| StepOutline {
                id: s.id.clone(),
                name: s.name.clone().unwrap_or_else(|| s.id.clone()),
                needs: s.needs.clone(),
            })
            .collect()
    }
}

/// A step as the run announces it, before anything is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutline {
    /// The step id.
    pub id: String,
    /// Its `name`, else its id.
    pub name: String,
    /// The ids it needs, as written.
    pub needs: Vec<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::compile::render::is_truthy;
    use crate::compile::template::StepResult;
    use crate::plan::load;

    const PLAN: &str = r#"version: 1
name: release
vars:
  version: { default: 1.2.3 }
  region: { default: sh }
  token: { secret: true, default: t0ps3cret }
scope: { type: biz, id: 2 }
defaults: { account: root }
hosts:
  web: { ips: ["0:10.0.0.1"] }
steps:
  - id: build
    script: { language: shell, file: build.sh }
    targets: web
    outputs: [tag]
  - id: deploy
    needs: [build]
    when: "{{#if region}}yes{{/if}}"
    task_name: "deploy {{version}} in {{run.id}}"
    script:
      language: shell
      content: "deploy {{steps.build.outputs.tag}} {{steps.build.job_instance_id}} {{steps.build.status}}"
      params: "--token {{token}}"
    targets: web
  - id: skip-me
    needs: [deploy]
    when: " No "
    script: { language: shell, content: "echo" }
    targets: web
"#;

    #[test]
    fn a_plain_variable_in_sensitive_params_is_warned_of() {
        let plan = "version: 1\nname: p\nscope: { type: biz, id: 2 }\ndefaults: { account: root }\nvars:\n  token: { default: abcdef }\n  key: { default: ghijkl, secret: true }\nhosts: { web: { ips: [\"0:10.0.0.1\"] } }\nsteps:\n  - { id: s, targets: web, script: { language: shell, content: echo, params: \"--t={{token}} --k={{ key }}\", sensitive: true } }\n";
        let compiled = compiled(plan).unwrap();
        let warned: Vec<&str> = compiled
            .warnings
            .iter()
            .map(|w| w.message.as_str())
            .collect();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].contains("`token`"), "{warned:?}");
    }

    fn compiled(plan: &str) -> Result<CompiledPlan, PlanErrors> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("build.sh"), "make VERSION={{version}}\n").unwrap();
        let loaded = load::parse("plan.yaml", Arc::from(plan), dir.path())?;
        compile(loaded, &CompileOptions::default())
    }

    fn finished_build(outputs: &[(&str, &str)]) -> RenderContext {
        let outputs: BTreeMap<String, String> = outputs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RenderContext {
            run_id: "run-7".into(),
            step_results: HashMap::from([(
                "build".to_owned(),
                StepResult {
                    job_instance_id: 42,
                    status: "success".into(),
                    outputs,
                    vars: BTreeMap::new(),
                },
            )]),
            ..RenderContext::default()
        }
    }

    #[test]
    fn render_step_fills_vars_results_and_inlines_script_files() {
        let plan = compiled(PLAN).unwrap();
        let build = plan.render_step(0, &RenderContext::default()).unwrap();
        let script = build.script.unwrap();
        assert_eq!(script.content.as_deref(), Some("make VERSION=1.2.3\n"));
        assert_eq!(script.file, None);

        let deploy = plan
            .render_step(1, &finished_build(&[("tag", "v9")]))
            .unwrap();
        assert_eq!(deploy.task_name.as_deref(), Some("deploy 1.2.3 in run-7"));
        let script = deploy.script.unwrap();
        assert_eq!(script.content.as_deref(), Some("deploy v9 42 success"));
        assert_eq!(script.params.as_deref(), Some("--token t0ps3cret"));
    }

    #[test]
    fn masked_and_preview_renders_hide_secrets_and_show_placeholders() {
        let plan = compiled(PLAN).unwrap();
        let deploy = plan.render_step(1, &RenderContext::preview()).unwrap();
        let script = deploy.script.unwrap();
        assert_eq!(script.params.as_deref(), Some("--token ******"));
        assert_eq!(
            script.content.as_deref(),
            Some(
                "deploy <steps.build.outputs.tag> <steps.build.job_instance_id> <steps.build.status>"
            )
        );
        assert_eq!(
            deploy.task_name.as_deref(),
            Some("deploy 1.2.3 in <run.id>")
        );
        assert!(plan.vars.secret_values().contains(&"t0ps3cret"));
    }

    #[test]
    fn a_missing_runtime_value_names_step_field_and_name() {
        let plan = compiled(PLAN).unwrap();
        match plan.render_step(1, &finished_build(&[])) {
            Err(RenderError::Template {
                step, field, name, ..
            }) => {
                assert_eq!(step, "deploy");
                assert_eq!(field, "script.content");
                assert_eq!(name.as_deref(), Some("steps.build.outputs.tag"));
            }
            other => panic!("{other:?}"),
        }
        let error = plan.render_step(1, &RenderContext::default()).unwrap_err();
        assert!(
            error.to_string().starts_with("step `deploy`, field `"),
            "{error}"
        );
    }

    #[test]
    fn when_is_false_for_false_no_zero_and_empty() {
        let plan = compiled(PLAN).unwrap();
        let ctx = finished_build(&[("tag", "v1")]);
        assert!(plan.evaluate_when(0, &ctx).unwrap(), "no `when` runs");
        assert!(plan.evaluate_when(1, &ctx).unwrap());
        assert!(!plan.evaluate_when(2, &ctx).unwrap());
        for (text, expected) in [
            ("false", false),
            ("FALSE", false),
            ("no", false),
            ("0", false),
            ("", false),
            ("  ", false),
            ("yes", true),
            ("1", true),
            ("off", true),
        ] {
            assert_eq!(is_truthy(text), expected, "{text:?}");
        }
    }

    #[test]
    fn runtime_limits_are_checked_on_render() {
        let long = PLAN.replace(
            "deploy {{version}} in {{run.id}}",
            "{{steps.build.outputs.tag}}",
        );
        let plan = compiled(&long).unwrap();
        let tag = "x".repeat(600);
        match plan.render_step(1, &finished_build(&[("tag", &tag)])) {
            Err(RenderError::Invalid { field, message, .. }) => {
                assert_eq!(field, "task_name");
                assert!(message.contains("600 characters"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn outputs_must_be_declared_and_steps_upstream() {
        let undeclared = PLAN.replace("outputs: [tag]", "outputs: [version]");
        let errors = compiled(&undeclared).unwrap_err();
        assert!(
            errors.issues.iter().any(|i| i
                .message
                .contains("reads output `tag`, which step `build` does not declare")),
            "{:?}",
            errors.issues
        );
        let unlinked = PLAN.replace("needs: [build]", "needs: []");
        let errors = compiled(&unlinked).unwrap_err();
        assert!(
            errors
                .issues
                .iter()
                .any(|i| i.field == "steps[1].script.content"
                    && i.message.contains("`needs` of `deploy` is missing `build`"))
        );
    }

    #[test]
    fn protocol_comes_from_the_flag_then_the_plan_then_v3() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("build.sh"), "make\n").unwrap();
        let with_api = PLAN.replace("name: release", "name: release\napi: v2");
        for (text, flag, expected) in [
            (PLAN, None, Protocol::V3),
            (with_api.as_str(), None, Protocol::V2),
            (with_api.as_str(), Some(Protocol::V4), Protocol::V4),
        ] {
            let loaded = load::parse("plan.yaml", Arc::from(text), dir.path()).unwrap();
            let options = CompileOptions {
                api: flag,
                ..CompileOptions::default()
            };
            assert_eq!(compile(loaded, &options).unwrap().protocol, expected);
        }
    }

    #[test]
    fn rolling_batches_are_capped_when_the_host_count_is_known() {
        let ips: Vec<String> = (0..501)
            .map(|i| format!("\"0:10.0.{}.{}\"", i / 250, i % 250 + 1))
            .collect();
        let plan = PLAN
            .replace(
                r#"web: { ips: ["0:10.0.0.1"] }"#,
                &format!("web: {{ ips: [{}] }}", ips.join(", ")),
            )
            .replace(
                "    outputs: [tag]\n",
                "    outputs: [tag]\n    rolling: { expression: \"1\" }\n",
            );
        let errors = compiled(&plan).unwrap_err();
        assert!(
            errors
                .issues
                .iter()
                .any(|i| i.field == "steps[0].rolling.expression"
                    && i.message.contains("makes 501 batches for 501 hosts")),
            "{:?}",
            errors.issues
        );
        let uncountable = plan.replace("web: { ips:", "web: { dynamic_groups: [g1], ips:");
        assert!(
            compiled(&uncountable).is_ok(),
            "dynamic groups make the count unknown"
        );
    }

    #[test]
    fn a_broken_host_set_or_missing_scope_is_reported_once() {
        let bad_ip = PLAN.replace("0:10.0.0.1", "0:10.0.0.256");
        let errors = compiled(&bad_ip).unwrap_err();
        assert_eq!(errors.issues.len(), 1, "{:?}", errors.issues);
        assert_eq!(errors.issues[0].field, "hosts.web.ips[0]");

        let empty = PLAN.replace(r#"web: { ips: ["0:10.0.0.1"] }"#, "web: {}");
        let errors = compiled(&empty).unwrap_err();
        assert_eq!(errors.issues.len(), 1, "{:?}", errors.issues);
        assert_eq!(errors.issues[0].field, "hosts.web");

        let no_scope = PLAN.replace("scope: { type: biz, id: 2 }\n", "");
        let errors = compiled(&no_scope).unwrap_err();
        assert_eq!(errors.issues.len(), 1, "{:?}", errors.issues);
        assert_eq!(errors.issues[0].field, "scope");
    }
}
