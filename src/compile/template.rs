//! The plan's templates: one handlebars registry, strict, with HTML escaping off.
//!
//! Every templated string of a plan is compiled once and registered under its YAML
//! path (`steps[3].script.params`), so a render error names the field it came from. A
//! registration failure is always propagated: handlebars keeps the previous template
//! under a name whose re-registration failed, which would silently render stale text.
//! Compiling also yields each template's references (`{{version}}`,
//! `{{steps.build.outputs.tag}}`), which the validator checks against the declared
//! variables and the step graph before anything runs. Strings without `{{` are not
//! templates and skip the registry entirely, which keeps 50 000-step plans cheap.

use std::collections::{BTreeMap, HashMap};

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Context, Handlebars, Path, PathSeg, RenderErrorReason, Template};
use serde_json::{Map, Value};

/// Helpers whose block body is rendered in the same context as the block itself, so
/// names inside can be checked like names outside.
const SAME_SCOPE_BLOCKS: [&str; 2] = ["if", "unless"];

/// A name a template reads, as path segments (`steps`, `build`, `outputs`, `tag`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference(pub Vec<String>);

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// A template that cannot be compiled, or uses a feature baton does not offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// What is wrong, with the position inside the template where known.
    pub message: String,
}

/// A template that failed to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RenderFailure {
    /// The name that was not defined, when that is the reason.
    pub missing: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// The registry of one plan's templates.
#[derive(Debug)]
pub struct TemplateSet {
    registry: Handlebars<'static>,
    /// Template text → the name it was first compiled under. Generated plans repeat
    /// the same script body or params across thousands of steps; compiling (pest
    /// parsing) dominated validation, while copying a compiled template is cheap.
    compiled: HashMap<String, String>,
}

/// A render context prepared once and shared by every field of a step: handlebars
/// would otherwise convert the JSON context anew for each field it renders.
#[derive(Debug)]
pub struct Scope(Context);

impl Scope {
    /// Wraps the JSON `context` (see [`context`]).
    pub fn new(context: Value) -> Self {
        Scope(Context::from(context))
    }
}

impl Default for TemplateSet {
    fn default() -> Self {
        Self::new()
    }
}

impl TemplateSet {
    /// An empty registry: strict (an undefined name is an error) and without HTML
    /// escaping (which would turn `&&` in a shell script into `&amp;&amp;`).
    pub fn new() -> Self {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        TemplateSet {
            registry,
            compiled: HashMap::new(),
        }
    }

    /// Whether `text` is a template at all.
    pub fn is_template(text: &str) -> bool {
        text.contains("{{")
    }

    /// Compiles `text` and registers it as `name`, returning the names it reads. Plain
    /// strings are not registered and read nothing.
    pub fn add(&mut self, name: &str, text: &str) -> Result<Vec<Reference>, TemplateError> {
        if !Self::is_template(text) {
            return Ok(Vec::new());
        }
        if let Some(template) = self
            .compiled
            .get(text)
            .and_then(|first| self.registry.get_template(first))
        {
            let mut template = template.clone();
            template.name = Some(name.to_owned());
            let mut references = Vec::new();
            collect_elements(&template.elements, true, &mut references)?;
            references.sort();
            references.dedup();
            self.registry.register_template(name, template);
            return Ok(references);
        }
        let template = Template::compile_with_name(text, name.to_owned()).map_err(|e| {
            let position = e
                .pos()
                .map(|(line, col)| format!(" at template line {line}, column {col}"))
                .unwrap_or_default();
            TemplateError {
                message: format!("invalid template{position}: {}", e.reason()),
            }
        })?;
        let mut references = Vec::new();
        collect_elements(&template.elements, true, &mut references)?;
        references.sort();
        references.dedup();
        self.registry.register_template(name, template);
        self.compiled.insert(text.to_owned(), name.to_owned());
        Ok(references)
    }

    /// Frees the compile cache once every template is registered.
    pub fn finish_adding(&mut self) {
        self.compiled = HashMap::new();
    }

    /// Renders the template registered as `name`, or returns `text` unchanged when it
    /// is not a template.
    pub fn render(&self, name: &str, text: &str, context: &Value) -> Result<String, RenderFailure> {
        if !Self::is_template(text) {
            return Ok(text.to_owned());
        }
        self.render_in(name, text, &Scope::new(context.clone()))
    }

    /// [`TemplateSet::render`] with a prepared [`Scope`], for rendering many fields
    /// against one context.
    pub fn render_in(
        &self,
        name: &str,
        text: &str,
        scope: &Scope,
    ) -> Result<String, RenderFailure> {
        if !Self::is_template(text) {
            return Ok(text.to_owned());
        }
        self.registry
            .render_with_context(name, &scope.0)
            .map_err(|e| {
                let missing = match e.reason() {
                    RenderErrorReason::MissingVariable(name) => name.clone(),
                    _ => None,
                };
                let message = match &missing {
                    Some(missing) => format!("`{missing}` is not defined"),
                    None => e.reason().to_string(),
                };
                RenderFailure { missing, message }
            })
    }
}

fn collect_elements(
    elements: &[TemplateElement],
    checked: bool,
    out: &mut Vec<Reference>,
) -> Result<(), TemplateError> {
    for element in elements {
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(helper) | TemplateElement::HtmlExpression(helper) => {
                collect_helper(helper, checked, out)?;
            }
            TemplateElement::HelperBlock(helper) => {
                collect_helper(helper, checked, out)?;
                let same_scope = matches!(&helper.name, Parameter::Name(n) if SAME_SCOPE_BLOCKS.contains(&n.as_str()));
                let inner_checked = checked && same_scope;
                if let Some(body) = &helper.template {
                    collect_elements(&body.elements, inner_checked, out)?;
                }
                if let Some(inverse) = &helper.inverse {
                    collect_elements(&inverse.elements, inner_checked, out)?;
                }
            }
            // Partials and decorators, and anything a later handlebars adds (the enum
            // is non-exhaustive): refuse rather than render something unchecked.
            _ => {
                return Err(TemplateError {
                    message: "partials and decorators (`{{> ...}}`, `{{* ...}}`) are not supported in plans".into(),
                });
            }
        }
    }
    Ok(())
}

fn collect_helper(
    helper: &HelperTemplate,
    checked: bool,
    out: &mut Vec<Reference>,
) -> Result<(), TemplateError> {
    // `{{name}}` parses as a path; `{{helper arg}}` as a helper name plus parameters.
    if let Parameter::Path(path) = &helper.name
        && checked
    {
        collect_path(path, out);
    }
    if let Parameter::Subexpression(sub) = &helper.name {
        collect_elements(std::slice::from_ref(&sub.element), checked, out)?;
    }
    for param in helper.params.iter().chain(helper.hash.values()) {
        collect_parameter(param, checked, out)?;
    }
    Ok(())
}

fn collect_parameter(
    param: &Parameter,
    checked: bool,
    out: &mut Vec<Reference>,
) -> Result<(), TemplateError> {
    match param {
        Parameter::Path(path) if checked => collect_path(path, out),
        Parameter::Subexpression(sub) => {
            collect_elements(std::slice::from_ref(&sub.element), checked, out)?;
        }
        _ => {}
    }
    Ok(())
}

/// Records plain relative paths; `this`, `../x`, `@root` and `@index` forms depend on
/// block context and are left to strict rendering.
fn collect_path(path: &Path, out: &mut Vec<Reference>) {
    if let Path::Relative((segments, _)) = path {
        let mut names = Vec::with_capacity(segments.len());
        for segment in segments {
            match segment {
                PathSeg::Named(name) => names.push(name.clone()),
                _ => return,
            }
        }
        if !names.is_empty() {
            out.push(Reference(names));
        }
    }
}

/// What a finished step exposes to later templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepResult {
    /// JOB's instance id.
    pub job_instance_id: u64,
    /// Final status name, e.g. `success`.
    pub status: String,
    /// `<BATON_VAR>key:value</BATON_VAR>` values from the step's logs.
    pub outputs: BTreeMap<String, String>,
    /// A job plan's exported global variables (`job.exports`), as JOB returned them.
    pub vars: BTreeMap<String, String>,
}

/// Builds the JSON context a template renders against: variables at the top level,
/// then `steps`, `run` and `plan` (whose names variables cannot take).
pub fn context(
    vars: &BTreeMap<String, String>,
    steps: Map<String, Value>,
    run_id: &str,
    plan_name: &str,
) -> Value {
    let mut root: Map<String, Value> = vars
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    root.insert("steps".into(), Value::Object(steps));
    root.insert("run".into(), serde_json::json!({ "id": run_id }));
    root.insert("plan".into(), serde_json::json!({ "name": plan_name }));
    Value::Object(root)
}

/// The JSON form of a step result under `steps.<id>`.
pub fn step_value(result: &StepResult) -> Value {
    serde_json::json!({
        "job_instance_id": result.job_instance_id,
        "status": result.status,
        "outputs": result.outputs,
        "vars": result.vars,
    })
}

/// The JSON under `steps.<id>` before the step has run: every attribute renders as a
/// readable placeholder such as `<steps.build.outputs.tag>`.
pub fn placeholder_step_value(id: &str, output_keys: &[String], var_names: &[String]) -> Value {
    let vars: Map<String, Value> = var_names
        .iter()
        .map(|name| {
            (
                name.clone(),
                Value::String(format!("<steps.{id}.vars.{name}>")),
            )
        })
        .collect();
    let outputs: Map<String, Value> = output_keys
        .iter()
        .map(|key| {
            (
                key.clone(),
                Value::String(format!("<steps.{id}.outputs.{key}>")),
            )
        })
        .collect();
    serde_json::json!({
        "job_instance_id": format!("<steps.{id}.job_instance_id>"),
        "status": format!("<steps.{id}.status>"),
        "outputs": outputs,
        "vars": vars,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(text: &str) -> Vec<String> {
        TemplateSet::new()
            .add("t", text)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn references_are_collected_from_expressions_blocks_and_helpers() {
        assert_eq!(
            refs(
                "{{version}} {{steps.build-web.outputs.tag}} {{#if region}}{{zone}}{{else}}{{fallback}}{{/if}} {{eq run.id plan.name}}"
            ),
            vec![
                "fallback",
                "plan.name",
                "region",
                "run.id",
                "steps.build-web.outputs.tag",
                "version",
                "zone"
            ]
        );
        assert_eq!(
            refs("{{#each items}}{{this}} {{name}}{{/each}}"),
            vec!["items"]
        );
        assert!(refs("no templates here").is_empty());
    }

    #[test]
    fn rendering_is_strict_and_unescaped() {
        let mut set = TemplateSet::new();
        set.add("steps[0].script.content", "echo {{cmd}} {{gone}}")
            .unwrap();
        let vars = BTreeMap::from([("cmd".to_owned(), "a && b <c> \"d\"".to_owned())]);
        let ctx = context(&vars, Map::new(), "r1", "p");
        let failure = set
            .render("steps[0].script.content", "echo {{cmd}} {{gone}}", &ctx)
            .unwrap_err();
        assert_eq!(failure.missing.as_deref(), Some("gone"));
        set.add("ok", "echo {{cmd}} {{run.id}}").unwrap();
        assert_eq!(
            set.render("ok", "echo {{cmd}} {{run.id}}", &ctx).unwrap(),
            "echo a && b <c> \"d\" r1"
        );
    }

    #[test]
    fn repeated_text_renders_under_each_name() {
        let mut set = TemplateSet::new();
        let text = "deploy {{version}} {{gone}}";
        assert_eq!(
            set.add("steps[0].script.params", text).unwrap(),
            set.add("steps[1].script.params", text).unwrap()
        );
        let vars = BTreeMap::from([("version".to_owned(), "1.2.3".to_owned())]);
        let ctx = context(&vars, Map::new(), "r1", "p");
        for name in ["steps[0].script.params", "steps[1].script.params"] {
            let failure = set.render(name, text, &ctx).unwrap_err();
            assert_eq!(failure.missing.as_deref(), Some("gone"));
        }
        set.finish_adding();
        set.add("later", "v{{version}}").unwrap();
        assert_eq!(set.render("later", "v{{version}}", &ctx).unwrap(), "v1.2.3");
        assert!(set.add("bad", "{{version}").is_err());
        assert!(set.add("bad2", "{{version}").is_err());
    }

    #[test]
    fn broken_templates_and_partials_are_errors() {
        let mut set = TemplateSet::new();
        let error = set.add("t", "echo {{version}").unwrap_err();
        assert!(
            error.message.contains("invalid template"),
            "{}",
            error.message
        );
        assert!(set.add("p", "{{> other}}").is_err());
    }
}
