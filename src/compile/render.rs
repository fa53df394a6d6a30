//! Rendering a compiled step: every template of the step filled with the variables,
//! the run id and the results of finished upstream steps, script files inlined, and
//! `when:` evaluated. [`RenderContext`] says what a render may read; [`Renderer`] is
//! shared by the compiled plan and by the compile-time preview render.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::template::{self, StepResult, TemplateSet};
use crate::plan::model::{JobVarValue, Plan, Step};
use crate::plan::vars::ResolvedVars;

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

/// Renders steps; shared by [`CompiledPlan`](super::CompiledPlan) and by compiling itself, which renders
/// every step before the graph is known to be sound.
pub(crate) struct Renderer<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) vars: &'a ResolvedVars,
    pub(crate) templates: &'a TemplateSet,
    pub(crate) script_files: &'a HashMap<String, String>,
    pub(crate) upstream_refs: &'a [Vec<String>],
    pub(crate) index_by_id: &'a HashMap<String, usize>,
}

impl Renderer<'_> {
    /// Renders without JOB's limit checks (validation applies them field-aware).
    pub(crate) fn render_templates(
        &self,
        index: usize,
        ctx: &RenderContext,
    ) -> Result<Step, RenderError> {
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
    pub(crate) fn evaluate_when(
        &self,
        index: usize,
        ctx: &RenderContext,
    ) -> Result<bool, RenderError> {
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
        let mut refs: Vec<&String> = self
            .upstream_refs
            .get(index)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .collect();
        // Plan order, so `steps.<group>.all` lists instances as declared.
        refs.sort_by_key(|id| self.index_by_id.get(*id).copied().unwrap_or(usize::MAX));
        for id in refs {
            if let Some(result) = ctx.step_results.get(id) {
                insert_step(&mut steps, id, template::step_value(result));
            } else if ctx.preview {
                let step = self.index_by_id.get(id).map(|&i| &self.plan.steps[i]);
                let keys = step.map(|s| s.outputs.clone()).unwrap_or_default();
                let names = step.map(exported_names).unwrap_or_default();
                insert_step(
                    &mut steps,
                    id,
                    template::placeholder_step_value(id, &keys, &names),
                );
            }
        }
        self.context_with_steps(ctx, steps)
    }

    pub(crate) fn context_with_steps(
        &self,
        ctx: &RenderContext,
        steps: Map<String, Value>,
    ) -> Value {
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
pub(crate) fn template_fields(step: &mut Step) -> Vec<(String, &mut String)> {
    let mut out: Vec<(String, &mut String)> = Vec::new();
    if let Some(text) = step.task_name.as_mut() {
        out.push(("task_name".into(), text));
    }
    if let Some(text) = step.when.as_mut() {
        out.push(("when".into(), text));
    }
    if let Some(approve) = step.approve.as_mut() {
        out.push(("approve.message".into(), &mut approve.message));
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
    if let Some(config) = step.push_config.as_mut() {
        out.push(("push_config.target_path".into(), &mut config.target_path));
        for (f, file) in config.files.iter_mut().enumerate() {
            out.push((format!("push_config.files[{f}].name"), &mut file.name));
            out.push((format!("push_config.files[{f}].content"), &mut file.content));
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

/// The global variables a job-plan step reads back (`job.exports`).
pub(crate) fn exported_names(step: &Step) -> Vec<String> {
    step.job
        .as_ref()
        .map(|job| job.exports.iter().map(|e| e.name.clone()).collect())
        .unwrap_or_default()
}

/// Puts a step's result under `steps.<id>`, and a fan-out instance `<group>[<key>]`'s
/// under `steps.<group>.items.<key>` too, where templates can name it.
/// and in the list `steps.<group>.all` (each with its `key`), in plan order when the
/// instances are inserted in plan order.
fn insert_step(steps: &mut Map<String, Value>, id: &str, value: Value) {
    if let Some((group, key)) = id.strip_suffix(']').and_then(|s| s.split_once('[')) {
        let entry = steps
            .entry(group.to_owned())
            .or_insert_with(|| serde_json::json!({ "items": {}, "all": [] }));
        if let Some(items) = entry.get_mut("items").and_then(Value::as_object_mut) {
            items.insert(key.to_owned(), value.clone());
        }
        if let Some(all) = entry.get_mut("all").and_then(Value::as_array_mut) {
            let mut listed = value.clone();
            if let Some(object) = listed.as_object_mut() {
                object.insert("key".into(), Value::String(key.to_owned()));
            }
            all.push(listed);
        }
    }
    steps.insert(id.to_owned(), value);
}
