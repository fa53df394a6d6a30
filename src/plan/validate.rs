//! Every static check of a plan, turning a [`LoadedPlan`] into a [`ValidatedPlan`].
//!
//! All problems are collected, each with its field path and location, so the user fixes
//! a plan in one pass; warnings are kept apart and never block. The checks cover the
//! plan's structure (ids, `needs`, cycles, one action per step), JOB's rules (targets,
//! hosts, paths, limits, rolling expressions), the variables and every template
//! reference. Finally each step is rendered with preview values and handed to
//! [`build_request`], so a field the chosen protocol cannot carry is reported here,
//! before anything is sent. A [`ValidatedPlan`] is what the runner renders steps from.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde_json::{Map, Value};

use super::load::{self, LoadedPlan};
use super::model::{FileType, HostSet, JobVarKey, JobVarValue, Plan, Protocol, Step, Targets};
use super::span::{Issue, PlanErrors, PlanSource};
use super::vars::{self, ResolvedVars, VarInputs};
use crate::graph::{GraphError, PlanGraph};
use crate::job_api::build::{BuildContext, build_request};
use crate::job_api::rules;
use crate::job_api::types::HostAddr;
use crate::template::{self, Reference, StepResult, TemplateSet};

/// The protocol used when neither `--api` nor the plan's `api` says.
pub const DEFAULT_PROTOCOL: Protocol = Protocol::V3;

/// What validation needs besides the plan.
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// `--api`; wins over the plan's `api`.
    pub api: Option<Protocol>,
    /// Variable values from flags, a vars file and the environment.
    pub vars: VarInputs,
}

/// Values available while rendering a step.
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    /// `{{run.id}}`.
    pub run_id: String,
    /// Results of finished steps by step id.
    pub step_results: HashMap<String, StepResult>,
    /// Render secret variables as `******` (for anything shown or stored).
    pub mask_secrets: bool,
    /// No run exists yet (`baton plan`): upstream values without a result and
    /// `run.id` render as placeholders such as `<steps.build.outputs.tag>`.
    pub preview: bool,
}

impl RenderContext {
    /// The context of `baton plan`: placeholders for runtime values, secrets masked.
    pub fn preview() -> Self {
        RenderContext {
            mask_secrets: true,
            preview: true,
            ..RenderContext::default()
        }
    }
}

/// A step could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A template failed, usually because a name is undefined.
    #[error("step `{step}`, field `{field}`: {message}")]
    Template {
        /// Step id.
        step: String,
        /// Field path within the step, e.g. `script.params`.
        field: String,
        /// The undefined name, when that is the reason.
        name: Option<String>,
        /// What went wrong.
        message: String,
    },
    /// The rendered value breaks one of JOB's rules.
    #[error("step `{step}`, field `{field}`: {message}")]
    Invalid {
        /// Step id.
        step: String,
        /// Field path within the step.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No step has this index.
    #[error("the plan has no step number {0}")]
    NoSuchStep(usize),
}

/// A plan that passed every static check, ready to be rendered step by step.
#[derive(Debug)]
pub struct ValidatedPlan {
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
}

/// Loads and validates the plan at `path`.
pub fn load_and_validate(
    path: &Path,
    options: &ValidateOptions,
) -> Result<ValidatedPlan, PlanErrors> {
    validate(load::load(path)?, options)
}

/// Runs every check on `loaded`.
pub fn validate(
    loaded: LoadedPlan,
    options: &ValidateOptions,
) -> Result<ValidatedPlan, PlanErrors> {
    let LoadedPlan {
        source,
        mut plan,
        script_files,
        file_issues,
        ..
    } = loaded;
    let protocol = options.api.or(plan.api).unwrap_or(DEFAULT_PROTOCOL);
    let mut checker = Checker {
        source: &source,
        errors: file_issues,
        warnings: Vec::new(),
        protocol,
    };

    let (resolved, var_errors, var_warnings) = vars::resolve(&source, &plan.vars, &options.vars);
    checker.errors.extend(var_errors);
    checker.warnings.extend(var_warnings);

    checker.plan_level(&plan);
    checker.host_sets(&plan);
    let ids_ok = checker.step_ids(&plan.steps);
    for (i, step) in plan.steps.iter().enumerate() {
        checker.step(&plan, i, step);
    }

    let graph = match PlanGraph::build(&plan.steps) {
        Ok(graph) => Some(graph),
        Err(problems) => {
            checker.errors.extend(graph_issues(&source, problems));
            None
        }
    };

    let mut templates = TemplateSet::new();
    let mut upstream_refs = vec![Vec::new(); plan.steps.len()];
    let mut runtime_fields = HashSet::new();
    checker.templates(
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
    checker.rendered_steps(&renderer, protocol, &runtime_fields);

    let graph = match graph {
        Some(graph) if checker.errors.is_empty() => graph,
        _ => return Err(checker.finish_with_errors()),
    };
    sort_issues(&mut checker.warnings);
    Ok(ValidatedPlan {
        source: source.clone(),
        plan,
        protocol,
        vars: resolved,
        graph,
        warnings: checker.warnings,
        templates,
        script_files,
        upstream_refs,
        index_by_id,
    })
}

impl ValidatedPlan {
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
            |(field, message)| RenderError::Invalid {
                step: step.id.clone(),
                field,
                message: self.vars.mask(&message),
            },
        )?;
        Ok(step)
    }

    /// Whether step `index` should run: its `when` renders to something other than
    /// `false`, `no`, `0` or nothing (case-insensitive). No `when` means yes.
    pub fn evaluate_when(&self, index: usize, ctx: &RenderContext) -> Result<bool, RenderError> {
        self.renderer().evaluate_when(index, ctx)
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
}

/// Renders steps; shared by [`ValidatedPlan`] and by validation itself, which renders
/// every step before the graph is known to be sound.
struct Renderer<'a> {
    plan: &'a Plan,
    vars: &'a ResolvedVars,
    templates: &'a TemplateSet,
    script_files: &'a HashMap<String, String>,
    upstream_refs: &'a [Vec<String>],
    index_by_id: &'a HashMap<String, usize>,
}

impl Renderer<'_> {
    /// Renders without JOB's limit checks (validation applies them field-aware).
    fn render_templates(&self, index: usize, ctx: &RenderContext) -> Result<Step, RenderError> {
        let mut step = self
            .plan
            .steps
            .get(index)
            .cloned()
            .ok_or(RenderError::NoSuchStep(index))?;
        let scope = template::Scope::new(self.context_for(index, ctx));
        let id = step.id.clone();
        let prefix = format!("steps[{index}]");
        let render = |suffix: &str, text: &str| -> Result<String, RenderError> {
            let name = format!("{prefix}.{suffix}");
            self.templates
                .render_in(&name, text, &scope)
                .map_err(|failure| RenderError::Template {
                    step: id.clone(),
                    field: suffix.to_owned(),
                    message: explain_missing(&failure.message, failure.missing.as_deref()),
                    name: failure.missing,
                })
        };
        for (suffix, text) in template_fields(&mut step) {
            *text = render(&suffix, text)?;
        }
        if let Some(script) = &mut step.script
            && script.file.is_some()
        {
            let suffix = "script.file";
            let content = self
                .script_files
                .get(&format!("{prefix}.{suffix}"))
                .map(String::as_str)
                .unwrap_or_default();
            script.content = Some(render(suffix, content)?);
            script.file = None;
        }
        if let Some(job) = &mut step.job {
            for (j, over) in job.overrides.iter_mut().enumerate() {
                if over.file.is_some() {
                    let suffix = format!("job.overrides[{j}].file");
                    let content = self
                        .script_files
                        .get(&format!("{prefix}.{suffix}"))
                        .map(String::as_str)
                        .unwrap_or_default();
                    over.content = Some(render(&suffix, content)?);
                    over.file = None;
                }
            }
        }
        Ok(step)
    }

    /// Whether step `index` should run: its `when` renders to something other than
    /// `false`, `no`, `0` or nothing (case-insensitive). No `when` means yes.
    fn evaluate_when(&self, index: usize, ctx: &RenderContext) -> Result<bool, RenderError> {
        let step = self
            .plan
            .steps
            .get(index)
            .ok_or(RenderError::NoSuchStep(index))?;
        let Some(when) = &step.when else {
            return Ok(true);
        };
        let context = self.context_for(index, ctx);
        let rendered = self
            .templates
            .render(&format!("steps[{index}].when"), when, &context)
            .map_err(|failure| RenderError::Template {
                step: step.id.clone(),
                field: "when".into(),
                message: explain_missing(&failure.message, failure.missing.as_deref()),
                name: failure.missing,
            })?;
        Ok(is_truthy(&rendered))
    }

    fn context_for(&self, index: usize, ctx: &RenderContext) -> Value {
        let mut steps = Map::new();
        let refs = self.upstream_refs.get(index).map_or(&[][..], Vec::as_slice);
        for id in refs {
            if let Some(result) = ctx.step_results.get(id) {
                steps.insert(id.clone(), template::step_value(result));
            } else if ctx.preview {
                let keys = self
                    .index_by_id
                    .get(id)
                    .map(|&i| self.plan.steps[i].outputs.clone())
                    .unwrap_or_default();
                steps.insert(id.clone(), template::placeholder_step_value(id, &keys));
            }
        }
        self.context_with_steps(ctx, steps)
    }

    fn context_with_steps(&self, ctx: &RenderContext, steps: Map<String, Value>) -> Value {
        let vars = if ctx.mask_secrets {
            self.vars.masked_values()
        } else {
            self.vars.values().clone()
        };
        let run_id = if ctx.preview && ctx.run_id.is_empty() {
            "<run.id>"
        } else {
            &ctx.run_id
        };
        template::context(&vars, steps, run_id, &self.plan.name)
    }
}

fn explain_missing(message: &str, missing: Option<&str>) -> String {
    match missing {
        Some(name) if name.starts_with("steps.") => format!(
            "{message}: the upstream step has no such result (an output key it did not print?)"
        ),
        _ => message.to_owned(),
    }
}

/// `false`, `no`, `0` and the empty string (any case, surrounding space ignored) are
/// false; everything else is true.
pub fn is_truthy(text: &str) -> bool {
    let text = text.trim().to_ascii_lowercase();
    !matches!(text.as_str(), "" | "false" | "no" | "0")
}

/// Every templated string field of a step, by its path relative to the step. Script
/// `file` contents are handled by the callers, since the text lives elsewhere.
fn template_fields(step: &mut Step) -> Vec<(String, &mut String)> {
    let mut out: Vec<(String, &mut String)> = Vec::new();
    if let Some(text) = step.task_name.as_mut() {
        out.push(("task_name".into(), text));
    }
    if let Some(text) = step.when.as_mut() {
        out.push(("when".into(), text));
    }
    if let Some(script) = step.script.as_mut() {
        if let Some(text) = script.content.as_mut() {
            out.push(("script.content".into(), text));
        }
        if let Some(text) = script.params.as_mut() {
            out.push(("script.params".into(), text));
        }
    }
    if let Some(push) = step.push_file.as_mut() {
        for (s, source) in push.sources.iter_mut().enumerate() {
            for (f, file) in source.files.iter_mut().enumerate() {
                out.push((format!("push_file.sources[{s}].files[{f}]"), file));
            }
        }
        out.push(("push_file.target_path".into(), &mut push.target_path));
        if let Some(text) = push.target_name.as_mut() {
            out.push(("push_file.target_name".into(), text));
        }
    }
    if let Some(job) = step.job.as_mut() {
        for var in job.vars.0.iter_mut() {
            if let JobVarValue::Text(text) = &mut var.value {
                out.push((format!("job.vars.{}", var.key), text));
            }
        }
        for (o, over) in job.overrides.iter_mut().enumerate() {
            if let Some(text) = over.content.as_mut() {
                out.push((format!("job.overrides[{o}].content"), text));
            }
            if let Some(text) = over.params.as_mut() {
                out.push((format!("job.overrides[{o}].params"), text));
            }
            if let Some(text) = over.target_path.as_mut() {
                out.push((format!("job.overrides[{o}].target_path"), text));
            }
            for (s, source) in over.sources.iter_mut().enumerate() {
                for (f, file) in source.files.iter_mut().enumerate() {
                    out.push((format!("job.overrides[{o}].sources[{s}].files[{f}]"), file));
                }
            }
        }
    }
    out
}

/// JOB's limits and path rules on rendered values. Fields in `skip` (full names) hold
/// runtime placeholders and are checked when the run renders them.
fn check_rendered_limits(
    step: &Step,
    skip: &HashSet<String>,
    prefix: &str,
) -> Result<(), (String, String)> {
    let checked = |suffix: &str| !skip.contains(&format!("{prefix}.{suffix}"));
    if let Some(name) = &step.task_name {
        let chars = name.chars().count();
        if chars > rules::MAX_TASK_NAME_CHARS && checked("task_name") {
            return Err((
                "task_name".into(),
                format!(
                    "{chars} characters after rendering; JOB allows at most {}",
                    rules::MAX_TASK_NAME_CHARS
                ),
            ));
        }
    }
    if let Some(script) = &step.script
        && let Some(params) = &script.params
        && checked("script.params")
    {
        let sensitive = script.sensitive.unwrap_or(false);
        let limit = if sensitive {
            rules::MAX_SENSITIVE_PARAM_BYTES
        } else {
            rules::MAX_PARAM_BYTES
        };
        if params.len() > limit {
            return Err((
                "script.params".into(),
                format!(
                    "{} bytes after rendering; JOB allows at most {limit}{}",
                    params.len(),
                    if sensitive {
                        " for sensitive params"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    if let Some(script) = &step.script
        && let Some(content) = &script.content
        && content.len() > rules::MAX_SCRIPT_CONTENT_BYTES
    {
        return Err((
            "script.content".into(),
            format!(
                "{} bytes after rendering; JOB stores at most {}",
                content.len(),
                rules::MAX_SCRIPT_CONTENT_BYTES
            ),
        ));
    }
    if let Some(push) = &step.push_file {
        if checked("push_file.target_path") {
            rules::check_target_path(&push.target_path)
                .map_err(|e| ("push_file.target_path".to_owned(), e.to_string()))?;
        }
        for (s, source) in push.sources.iter().enumerate() {
            if !matches!(source.file_type, None | Some(FileType::Server)) {
                continue;
            }
            for (f, file) in source.files.iter().enumerate() {
                let suffix = format!("push_file.sources[{s}].files[{f}]");
                if checked(&suffix) {
                    rules::check_source_path(file).map_err(|e| (suffix, e.to_string()))?;
                }
            }
        }
    }
    if let Some(job) = &step.job {
        for (o, over) in job.overrides.iter().enumerate() {
            if let Some(path) = &over.target_path {
                let suffix = format!("job.overrides[{o}].target_path");
                if checked(&suffix) {
                    rules::check_target_path(path).map_err(|e| (suffix, e.to_string()))?;
                }
            }
            for (s, source) in over.sources.iter().enumerate() {
                if !matches!(source.file_type, None | Some(FileType::Server)) {
                    continue;
                }
                for (f, file) in source.files.iter().enumerate() {
                    let suffix = format!("job.overrides[{o}].sources[{s}].files[{f}]");
                    if checked(&suffix) {
                        rules::check_source_path(file).map_err(|e| (suffix, e.to_string()))?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn sort_issues(issues: &mut Vec<Issue>) {
    issues.sort_by_key(|issue| issue.location.map(|l| (1, l.offset)).unwrap_or((0, 0)));
    issues.dedup();
}

/// Collects issues while walking the plan.
struct Checker<'a> {
    source: &'a PlanSource,
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
    protocol: Protocol,
}

impl Checker<'_> {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) -> &mut Issue {
        self.errors.push(self.source.issue(field, message));
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(self.source.issue(field, message));
    }

    fn finish_with_errors(mut self) -> PlanErrors {
        sort_issues(&mut self.errors);
        self.source.errors(self.errors)
    }

    fn plan_level(&mut self, plan: &Plan) {
        if plan.version != 1 {
            self.error(
                "version",
                format!(
                    "unsupported plan version {}; only `version: 1` exists",
                    plan.version
                ),
            );
        }
        if plan.name.trim().is_empty() {
            self.error("name", "the plan needs a non-empty `name`");
        }
        if plan.steps.is_empty() {
            self.error("steps", "the plan has no steps");
        }
        if plan.scope.is_none() && !plan.steps.is_empty() {
            self.error(
                "scope",
                "the plan has no `scope`; every JOB request names a business",
            )
            .help = Some("add e.g. `scope: { type: biz, id: 2 }`".into());
        }
        if let Some(defaults) = &plan.defaults
            && let Some(timeout) = defaults.timeout
        {
            self.timeout("defaults.timeout", timeout.0);
        }
    }

    fn timeout(&mut self, field: &str, seconds: u64) {
        if !rules::TIMEOUT_RANGE.contains(&seconds) {
            self.error(
                field,
                format!(
                    "timeout {seconds}s is outside JOB's range of {}–{} seconds",
                    rules::TIMEOUT_RANGE.start(),
                    rules::TIMEOUT_RANGE.end()
                ),
            );
        } else if self.protocol == Protocol::V2 && !rules::V2_DOC_TIMEOUT_RANGE.contains(&seconds) {
            self.warning(
                field,
                format!(
                    "timeout {seconds}s is outside the v2 documentation's range of {}–{} seconds (JOB 3.x accepts it)",
                    rules::V2_DOC_TIMEOUT_RANGE.start(),
                    rules::V2_DOC_TIMEOUT_RANGE.end()
                ),
            );
        }
    }

    fn host_sets(&mut self, plan: &Plan) {
        for (name, set) in &plan.hosts {
            let field = format!("hosts.{name}");
            if is_empty_set(set) {
                self.error(&field, format!("host set `{name}` has no hosts"));
            }
            self.host_set_contents(&field, set);
        }
    }

    fn host_set_contents(&mut self, field: &str, set: &HostSet) {
        for (k, ip) in set.ips.iter().enumerate() {
            if HostAddr::parse(ip).is_none() {
                self.error(
                    format!("{field}.ips[{k}]"),
                    format!("`{ip}` is not a host address: expected `cloud:ip` (cloud id ≥ 0, IPv4), e.g. `0:10.0.0.1`"),
                );
            }
        }
        for (k, group) in set.dynamic_groups.iter().enumerate() {
            if group.trim().is_empty() {
                self.error(
                    format!("{field}.dynamic_groups[{k}]"),
                    "empty dynamic group id",
                );
            }
        }
    }

    /// Unique, non-empty, template-safe step ids. Returns whether they all are.
    fn step_ids(&mut self, steps: &[Step]) -> bool {
        let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(steps.len());
        let mut ok = true;
        for (i, step) in steps.iter().enumerate() {
            let field = format!("steps[{i}].id");
            if !is_step_id(&step.id) {
                ok = false;
                self.error(
                    &field,
                    format!("step id `{}` must be non-empty letters, digits, `-` or `_` (templates read it as `steps.<id>`)", step.id),
                );
            }
            if let Some(&first) = first_seen.get(step.id.as_str()) {
                ok = false;
                let line = self
                    .source
                    .spans()
                    .locate(&format!("steps[{first}].id"))
                    .line;
                self.error(
                    &field,
                    format!(
                        "duplicate step id `{}`; steps[{first}] (line {line}) already uses it",
                        step.id
                    ),
                );
            } else {
                first_seen.insert(&step.id, i);
            }
        }
        ok
    }

    fn step(&mut self, plan: &Plan, i: usize, step: &Step) {
        let at = |suffix: &str| format!("steps[{i}].{suffix}");
        let id = &step.id;
        let actions: Vec<&str> = [
            step.script.as_ref().map(|_| "script"),
            step.push_file.as_ref().map(|_| "push_file"),
            step.job.as_ref().map(|_| "job"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match actions.len() {
            0 => {
                self.error(
                    format!("steps[{i}]"),
                    format!(
                        "step `{id}` does nothing: give it one of `script`, `push_file` or `job`"
                    ),
                );
            }
            1 => {}
            _ => {
                self.error(
                    format!("steps[{i}]"),
                    format!("step `{id}` has {}; a step does exactly one of `script`, `push_file` or `job`", actions.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" and ")),
                );
            }
        }

        let needs_targets = step.script.is_some() || step.push_file.is_some();
        match &step.targets {
            None if needs_targets => {
                self.error(
                    format!("steps[{i}]"),
                    format!(
                        "step `{id}` has no `targets`: a {} runs on hosts",
                        if step.script.is_some() {
                            "script"
                        } else {
                            "file push"
                        }
                    ),
                );
            }
            None => {}
            Some(targets) => self.targets(plan, &at("targets"), targets),
        }
        if needs_targets
            && step.account.is_none()
            && plan
                .defaults
                .as_ref()
                .and_then(|d| d.account.as_ref())
                .is_none()
        {
            self.error(
                format!("steps[{i}]"),
                format!("step `{id}` has no `account` and the plan has no `defaults.account`; JOB needs an execution account"),
            );
        }
        if let Some(timeout) = step.timeout {
            self.timeout(&at("timeout"), timeout.0);
        }
        for (k, key) in step.outputs.iter().enumerate() {
            if !vars::is_identifier(key) {
                self.error(
                    at(&format!("outputs[{k}]")),
                    format!("output key `{key}` is not an identifier (letters, digits, `_`, `-`)"),
                );
            }
        }

        if let Some(script) = &step.script {
            let sources = [
                script.content.is_some(),
                script.file.is_some(),
                script.script_id.is_some(),
                script.script_version_id.is_some(),
            ];
            if !sources.contains(&true) {
                self.error(at("script"), format!("step `{id}`: a script needs one of `content`, `file`, `script_id` or `script_version_id`"));
            }
            if script.content.is_some() && script.file.is_some() {
                self.error(
                    at("script.file"),
                    "give either `content` or `file`, not both",
                );
            }
            if (script.content.is_some() || script.file.is_some()) && script.language.is_none() {
                self.error(at("script"), format!("step `{id}`: `language` is needed with `content` or `file` (shell, bat, perl, python, powershell or sql)"));
            }
            if let Some(interpreter) = &script.windows_interpreter {
                let chars = interpreter.chars().count();
                if !interpreter.to_ascii_lowercase().ends_with(".exe") {
                    self.error(
                        at("script.windows_interpreter"),
                        "must be the path of an `.exe`",
                    );
                } else if chars > rules::MAX_WINDOWS_INTERPRETER_CHARS {
                    self.error(
                        at("script.windows_interpreter"),
                        format!(
                            "is {chars} characters; JOB allows at most {}",
                            rules::MAX_WINDOWS_INTERPRETER_CHARS
                        ),
                    );
                }
            }
            for (k, password) in script.host_passwords.iter().enumerate() {
                let field = at(&format!("script.host_passwords[{k}]"));
                if password.ip.is_none() && password.host_id.is_none() {
                    self.error(&field, "a host password needs `ip` or `host_id`");
                }
                if let Some(ip) = &password.ip
                    && HostAddr::parse(ip).is_none()
                {
                    self.error(
                        format!("{field}.ip"),
                        format!("`{ip}` is not a host address: expected `cloud:ip`"),
                    );
                }
                let chars = password.encrypted_password.chars().count();
                if chars > rules::MAX_ENCRYPTED_PASSWORD_CHARS {
                    self.error(
                        format!("{field}.encrypted_password"),
                        format!(
                            "is {chars} characters; JOB allows at most {}",
                            rules::MAX_ENCRYPTED_PASSWORD_CHARS
                        ),
                    );
                }
            }
        }

        if let Some(push) = &step.push_file {
            if push.sources.is_empty() {
                self.error(
                    at("push_file.sources"),
                    format!("step `{id}`: a push needs at least one source"),
                );
            }
            for (s, source) in push.sources.iter().enumerate() {
                let field = at(&format!("push_file.sources[{s}]"));
                self.file_source(plan, &field, source);
            }
        }

        if let Some(job) = &step.job {
            for var in &job.vars.0 {
                if let JobVarValue::Hosts(targets) = &var.value {
                    let field = at(&format!("job.vars.{}.hosts", var.key));
                    self.targets(plan, &field, targets);
                }
                if let JobVarKey::Name(name) = &var.key
                    && name.trim().is_empty()
                {
                    self.error(at("job.vars"), "a job variable needs a name");
                }
            }
            for (o, over) in job.overrides.iter().enumerate() {
                let field = at(&format!("job.overrides[{o}]"));
                if over.content.is_some() && over.file.is_some() {
                    self.error(
                        format!("{field}.file"),
                        "give either `content` or `file`, not both",
                    );
                }
                // No `language` check here: an override may replace a script's text
                // and keep the job plan step's own language (seed 002 does).
                if let Some(timeout) = over.timeout {
                    self.timeout(&format!("{field}.timeout"), timeout.0);
                }
                if let Some(targets) = &over.targets {
                    self.targets(plan, &format!("{field}.targets"), targets);
                }
                for (s, source) in over.sources.iter().enumerate() {
                    self.file_source(plan, &format!("{field}.sources[{s}]"), source);
                }
            }
        }

        if let Some(rolling) = &step.rolling {
            self.rolling(plan, i, step, rolling);
        }
    }

    fn file_source(&mut self, plan: &Plan, field: &str, source: &super::model::FileSource) {
        if source.files.is_empty() {
            self.error(format!("{field}.files"), "a source needs at least one file");
        }
        match (&source.from, source.file_type) {
            (Some(from), _) => self.targets(plan, &format!("{field}.from"), from),
            (None, None | Some(FileType::Server)) => {
                self.error(
                    field,
                    "a server-file source needs `from`: the hosts the files are on",
                );
            }
            (None, _) => {}
        }
        if source.file_type == Some(FileType::ThirdParty)
            && source.file_source_id.is_none()
            && source.file_source_code.is_none()
        {
            self.error(
                field,
                "a third-party source needs `file_source_id` or `file_source_code`",
            );
        }
    }

    fn targets(&mut self, plan: &Plan, field: &str, targets: &Targets) {
        match targets {
            Targets::Named(names) => {
                if names.is_empty() {
                    self.error(field, "no host sets named");
                }
                let single = names.len() == 1;
                for (k, name) in names.iter().enumerate() {
                    if plan.hosts.contains_key(name) {
                        continue;
                    }
                    let name_field = if single {
                        field.to_owned()
                    } else {
                        format!("{field}[{k}]")
                    };
                    let issue = self.error(
                        name_field,
                        format!("there is no host set `{name}` in `hosts`"),
                    );
                    issue.label = Some("unknown host set".into());
                    if let Some(near) = vars::closest(name, plan.hosts.keys().map(String::as_str)) {
                        issue.help = Some(format!("did you mean `{near}`?"));
                    }
                }
            }
            Targets::Inline(set) => {
                if is_empty_set(set) {
                    self.error(field, "the inline host set has no hosts");
                }
                self.host_set_contents(field, set);
            }
        }
    }

    fn rolling(&mut self, plan: &Plan, i: usize, step: &Step, rolling: &super::model::Rolling) {
        let field = format!("steps[{i}].rolling");
        if rolling.files.is_some() && step.push_file.is_none() {
            self.error(
                format!("{field}.files"),
                "rolling over source files only applies to `push_file` steps",
            );
        }
        let Some(expression) = &rolling.expression else {
            if rolling.files.is_none() {
                self.error(
                    &field,
                    "rolling needs an `expression` (or `files` for a push)",
                );
            }
            return;
        };
        let parsed = match rules::RollingExpr::parse(expression) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.error(format!("{field}.expression"), e.to_string())
                    .help = Some("parts are `N`, `N%`, `+N` or `*N`, separated by single spaces, e.g. `10 30% 100%`".into());
                return;
            }
        };
        if let Some(targets) = &step.targets
            && let Some(hosts) = count_hosts(plan, targets)
            && let Err(e) = parsed.batch_sizes(hosts)
        {
            self.error(format!("{field}.expression"), e.to_string());
        }
    }

    /// Registers every template and checks what it reads.
    fn templates(
        &mut self,
        plan: &mut Plan,
        script_files: &HashMap<String, String>,
        graph: Option<&PlanGraph>,
        templates: &mut TemplateSet,
        upstream_refs: &mut [Vec<String>],
        runtime_fields: &mut HashSet<String>,
    ) {
        let declared: BTreeSet<String> = plan.vars.keys().cloned().collect();
        let ids: HashMap<String, usize> = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .rev()
            .collect();
        let outputs: Vec<HashSet<String>> = plan
            .steps
            .iter()
            .map(|s| s.outputs.iter().cloned().collect())
            .collect();
        let mut upstream_cache: HashMap<(usize, usize), bool> = HashMap::new();

        if let Some(description) = &plan.description {
            match templates.add("description", description) {
                Ok(references) => {
                    for reference in references {
                        if let Err(message) =
                            check_plain_reference(&reference, &declared, "the plan's description")
                        {
                            self.error("description", message);
                        }
                    }
                }
                Err(e) => {
                    self.error("description", e.message);
                }
            }
        }

        for (i, step) in plan.steps.iter_mut().enumerate() {
            let id = step.id.clone();
            let needs = step.needs.clone();
            let mut fields: Vec<(String, String)> = template_fields(step)
                .into_iter()
                .map(|(suffix, text)| (suffix, text.clone()))
                .collect();
            if step.script.as_ref().is_some_and(|s| s.file.is_some()) {
                let name = format!("steps[{i}].script.file");
                if let Some(content) = script_files.get(&name) {
                    fields.push(("script.file".into(), content.clone()));
                }
            }
            if let Some(job) = &step.job {
                for (o, over) in job.overrides.iter().enumerate() {
                    if over.file.is_some() {
                        let suffix = format!("job.overrides[{o}].file");
                        if let Some(content) = script_files.get(&format!("steps[{i}].{suffix}")) {
                            fields.push((suffix, content.clone()));
                        }
                    }
                }
            }
            let mut upstream: BTreeSet<String> = BTreeSet::new();
            for (suffix, text) in fields {
                let name = format!("steps[{i}].{suffix}");
                let references = match templates.add(&name, &text) {
                    Ok(references) => references,
                    Err(e) => {
                        self.error(
                            &name,
                            format!("step `{id}`, field `{suffix}`: {}", e.message),
                        );
                        continue;
                    }
                };
                for reference in references {
                    let segments = &reference.0;
                    if segments.first().map(String::as_str) != Some("steps") {
                        let place = format!("step `{id}`, field `{suffix}`");
                        if let Err(message) = check_plain_reference(&reference, &declared, &place) {
                            let issue = self.error(&name, message);
                            if let Some(near) =
                                vars::closest(&segments[0], declared.iter().map(String::as_str))
                            {
                                issue.help = Some(format!("did you mean `{near}`?"));
                            }
                        }
                        continue;
                    }
                    runtime_fields.insert(name.clone());
                    let place = format!("step `{id}`, field `{suffix}`");
                    let Some(target_id) = segments.get(1) else {
                        self.error(&name, format!("{place}: `{{{{steps}}}}` needs a step id, e.g. `steps.build.outputs.version`"));
                        continue;
                    };
                    let Some(&target) = ids.get(target_id) else {
                        let issue = self.error(&name, format!("{place}: `{reference}` names step `{target_id}`, which is not a step of this plan"));
                        if let Some(near) = vars::closest(target_id, ids.keys().map(String::as_str))
                        {
                            issue.help = Some(format!("did you mean `{near}`?"));
                        }
                        continue;
                    };
                    match (segments.get(2).map(String::as_str), segments.len()) {
                        (Some("job_instance_id" | "status"), 3) => {}
                        (Some("outputs"), 4) => {
                            let key = &segments[3];
                            if !outputs[target].contains(key) {
                                let issue = self.error(&name, format!("{place}: `{reference}` reads output `{key}`, which step `{target_id}` does not declare in its `outputs`"));
                                issue.help = Some(format!(
                                    "add `{key}` to the `outputs` of step `{target_id}`"
                                ));
                                continue;
                            }
                        }
                        _ => {
                            self.error(&name, format!("{place}: `{reference}` is not a step result; use `steps.{target_id}.job_instance_id`, `steps.{target_id}.status` or `steps.{target_id}.outputs.<key>`"));
                            continue;
                        }
                    }
                    if target == i {
                        self.error(&name, format!("{place}: `{reference}` reads the step's own result, which does not exist before it runs"));
                        continue;
                    }
                    if let Some(graph) = graph {
                        let is_upstream = *upstream_cache
                            .entry((target, i))
                            .or_insert_with(|| graph.is_upstream(target, i));
                        if !is_upstream {
                            let issue = self.error(&name, format!("{place}: `{reference}` reads step `{target_id}`, which is not upstream of `{id}`: `needs` of `{id}` is missing `{target_id}`"));
                            issue.help = Some(if needs.is_empty() {
                                format!("add `needs: [{target_id}]` to step `{id}`")
                            } else {
                                format!(
                                    "add `{target_id}` to `needs: [{}]` of step `{id}`",
                                    needs.join(", ")
                                )
                            });
                            continue;
                        }
                    }
                    upstream.insert(target_id.clone());
                }
            }
            upstream_refs[i] = upstream.into_iter().collect();
        }
    }

    /// Renders every step with preview values (real variable values, so lengths are
    /// right) and checks the results, including what the protocol can carry.
    fn rendered_steps(
        &mut self,
        renderer: &Renderer<'_>,
        protocol: Protocol,
        runtime_fields: &HashSet<String>,
    ) {
        let ctx = RenderContext {
            preview: true,
            mask_secrets: false,
            ..RenderContext::default()
        };
        let build_ctx = BuildContext {
            protocol,
            plan: renderer.plan,
        };
        // Steps that already have an error still get their rendered values checked
        // (all problems at once), but a render failure there is a consequence of the
        // reported error, and the protocol check would only repeat it.
        let steps_with_errors: HashSet<usize> = self
            .errors
            .iter()
            .filter_map(|e| step_of_field(&e.field))
            .collect();
        // A host set already reported as broken (a bad address, no hosts) would be
        // reported again by every step naming it, as "the targets name no hosts".
        let broken_sets: HashSet<&str> = renderer
            .plan
            .hosts
            .keys()
            .filter(|name| {
                let field = format!("hosts.{name}");
                self.errors.iter().any(|e| {
                    e.field == field
                        || e.field
                            .strip_prefix(&field)
                            .is_some_and(|rest| rest.starts_with(['.', '[']))
                })
            })
            .map(String::as_str)
            .collect();
        for (i, step) in renderer.plan.steps.iter().enumerate() {
            let prefix = format!("steps[{i}]");
            let had_errors = steps_with_errors.contains(&i)
                || named_host_sets(step).any(|name| broken_sets.contains(name));
            let rendered = match renderer.render_templates(i, &ctx) {
                Ok(rendered) => rendered,
                Err(_) if had_errors => continue,
                Err(RenderError::Template { field, message, .. }) => {
                    self.error(
                        format!("{prefix}.{field}"),
                        format!("step `{}`, field `{field}`: {message}", step.id),
                    );
                    continue;
                }
                Err(other) => {
                    self.error(&prefix, other.to_string());
                    continue;
                }
            };
            if let Err((field, message)) = check_rendered_limits(&rendered, runtime_fields, &prefix)
            {
                let message = renderer.vars.mask(&message);
                self.error(
                    format!("{prefix}.{field}"),
                    format!("step `{}`, field `{field}`: {message}", rendered.id),
                );
                continue;
            }
            if had_errors {
                continue;
            }
            if let Err(problems) = build_request(&build_ctx, &rendered) {
                for problem in problems {
                    // A missing scope is reported once for the plan, not per step.
                    if problem.field == "scope" && renderer.plan.scope.is_none() {
                        continue;
                    }
                    let field = if problem.field.is_empty() {
                        prefix.clone()
                    } else {
                        format!("{prefix}.{}", problem.field)
                    };
                    let message = renderer.vars.mask(&problem.message);
                    let shown = if problem.field.is_empty() {
                        format!("step `{}`: {message}", rendered.id)
                    } else {
                        format!(
                            "step `{}`, field `{}`: {message}",
                            rendered.id, problem.field
                        )
                    };
                    self.error(field, shown);
                }
            }
        }
    }
}

/// Every host-set name a step refers to: its targets, its push sources, its job's
/// host variables and overrides.
fn named_host_sets(step: &Step) -> impl Iterator<Item = &str> {
    let mut all: Vec<&Targets> = Vec::new();
    all.extend(step.targets.as_ref());
    if let Some(push) = &step.push_file {
        all.extend(push.sources.iter().filter_map(|s| s.from.as_ref()));
    }
    if let Some(job) = &step.job {
        for var in &job.vars.0 {
            if let JobVarValue::Hosts(targets) = &var.value {
                all.push(targets);
            }
        }
        for over in &job.overrides {
            all.extend(over.targets.as_ref());
            all.extend(over.sources.iter().filter_map(|s| s.from.as_ref()));
        }
    }
    all.into_iter().flat_map(|targets| match targets {
        Targets::Named(names) => names.iter().map(String::as_str).collect::<Vec<_>>(),
        Targets::Inline(_) => Vec::new(),
    })
}

/// The step index of a field path such as `steps[3].script.params`.
fn step_of_field(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("steps[")?;
    rest[..rest.find(']')?].parse().ok()
}

/// Locates graph problems: unknown and self `needs` at the entry, a cycle at the
/// `needs` entry of its first step that closes it.
pub fn graph_issues(source: &PlanSource, problems: Vec<GraphError>) -> Vec<Issue> {
    let mut issues: Vec<Issue> = problems
        .into_iter()
        .map(|problem| match &problem {
            GraphError::UnknownNeed {
                step,
                need_index,
                suggestion,
                ..
            } => {
                let mut issue = source
                    .issue(
                        format!("steps[{step}].needs[{need_index}]"),
                        problem.to_string(),
                    )
                    .with_label("unknown step");
                if let Some(suggestion) = suggestion {
                    issue = issue.with_help(format!("did you mean `{suggestion}`?"));
                }
                issue
            }
            GraphError::SelfDependency {
                step, need_index, ..
            } => source.issue(
                format!("steps[{step}].needs[{need_index}]"),
                problem.to_string(),
            ),
            GraphError::Cycle {
                path, need_indexes, ..
            } => {
                let field = match (path.first(), need_indexes.first()) {
                    (Some(step), Some(need)) => format!("steps[{step}].needs[{need}]"),
                    _ => "steps".into(),
                };
                source
                    .issue(field, problem.to_string())
                    .with_help("`a -> b` reads \"a needs b\"; remove one of these `needs` entries")
            }
        })
        .collect();
    sort_issues(&mut issues);
    issues
}

fn check_plain_reference(
    reference: &Reference,
    declared: &BTreeSet<String>,
    place: &str,
) -> Result<(), String> {
    let segments = &reference.0;
    match segments.first().map(String::as_str) {
        Some("run") if segments.len() == 2 && segments[1] == "id" => Ok(()),
        Some("plan") if segments.len() == 2 && segments[1] == "name" => Ok(()),
        Some("run" | "plan") => Err(format!(
            "{place}: `{reference}` is not defined; only `run.id` and `plan.name` are"
        )),
        Some("steps") => Err(format!(
            "{place}: `{reference}` reads a step result, which only steps can use"
        )),
        Some(name) if declared.contains(name) => {
            if segments.len() == 1 {
                Ok(())
            } else {
                Err(format!(
                    "{place}: `{reference}`: variable `{name}` is a string and has no fields"
                ))
            }
        }
        _ => Err(format!(
            "{place}: `{reference}` is not a declared variable (add it to `vars`)"
        )),
    }
}

fn is_step_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
}

fn is_empty_set(set: &HostSet) -> bool {
    set.ips.is_empty()
        && set.host_ids.is_empty()
        && set.dynamic_groups.is_empty()
        && set.topo_nodes.is_empty()
}

/// Number of distinct hosts, when every host is listed (dynamic groups and topology
/// nodes are resolved by JOB, so their size is unknown here).
fn count_hosts(plan: &Plan, targets: &Targets) -> Option<usize> {
    let sets: Vec<&HostSet> = match targets {
        Targets::Named(names) => names.iter().filter_map(|n| plan.hosts.get(n)).collect(),
        Targets::Inline(set) => vec![set],
    };
    let mut ips = HashSet::new();
    let mut ids = HashSet::new();
    for set in sets {
        if !set.dynamic_groups.is_empty() || !set.topo_nodes.is_empty() {
            return None;
        }
        ips.extend(
            set.ips
                .iter()
                .filter_map(|ip| HostAddr::parse(ip))
                .map(|h| (h.cloud_id, h.ip)),
        );
        ids.extend(set.host_ids.iter().copied());
    }
    Some(ips.len() + ids.len())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;

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

    fn validated(plan: &str) -> Result<ValidatedPlan, PlanErrors> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("build.sh"), "make VERSION={{version}}\n").unwrap();
        let loaded = load::parse("plan.yaml", Arc::from(plan), dir.path())?;
        validate(loaded, &ValidateOptions::default())
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
                },
            )]),
            ..RenderContext::default()
        }
    }

    #[test]
    fn render_step_fills_vars_results_and_inlines_script_files() {
        let plan = validated(PLAN).unwrap();
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
        let plan = validated(PLAN).unwrap();
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
        let plan = validated(PLAN).unwrap();
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
        let plan = validated(PLAN).unwrap();
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
        let plan = validated(&long).unwrap();
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
        let errors = validated(&undeclared).unwrap_err();
        assert!(
            errors.issues.iter().any(|i| i
                .message
                .contains("reads output `tag`, which step `build` does not declare")),
            "{:?}",
            errors.issues
        );
        let unlinked = PLAN.replace("needs: [build]", "needs: []");
        let errors = validated(&unlinked).unwrap_err();
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
            let options = ValidateOptions {
                api: flag,
                ..ValidateOptions::default()
            };
            assert_eq!(validate(loaded, &options).unwrap().protocol, expected);
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
        let errors = validated(&plan).unwrap_err();
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
            validated(&uncountable).is_ok(),
            "dynamic groups make the count unknown"
        );
    }

    #[test]
    fn a_broken_host_set_or_missing_scope_is_reported_once() {
        let bad_ip = PLAN.replace("0:10.0.0.1", "0:10.0.0.256");
        let errors = validated(&bad_ip).unwrap_err();
        assert_eq!(errors.issues.len(), 1, "{:?}", errors.issues);
        assert_eq!(errors.issues[0].field, "hosts.web.ips[0]");

        let empty = PLAN.replace(r#"web: { ips: ["0:10.0.0.1"] }"#, "web: {}");
        let errors = validated(&empty).unwrap_err();
        assert_eq!(errors.issues.len(), 1, "{:?}", errors.issues);
        assert_eq!(errors.issues[0].field, "hosts.web");

        let no_scope = PLAN.replace("scope: { type: biz, id: 2 }\n", "");
        let errors = validated(&no_scope).unwrap_err();
        assert_eq!(errors.issues.len(), 1, "{:?}", errors.issues);
        assert_eq!(errors.issues[0].field, "scope");
    }
}
