//! The protocol dry run: every step is rendered with preview values (real variable
//! values, so lengths are right), its rendered values checked against JOB's limits,
//! and its request encoded for the chosen protocol, so a field the protocol cannot
//! carry is reported with its place in the plan before anything is sent.

use std::collections::HashSet;

use super::limits::{LimitError, check_rendered_limits};
use super::render::{RenderContext, RenderError, Renderer};
use super::request::encode_step;
use super::settings::StepSettings;
use crate::job_api::types::Protocol;
use crate::plan::check::{named_host_sets, step_of_field};
use crate::plan::findings::Findings;

/// Renders every step with preview values (real variable values, so lengths are
/// right) and checks the results, including what the protocol can carry.
pub(crate) fn check(
    findings: &mut Findings<'_>,
    renderer: &Renderer<'_>,
    protocol: Protocol,
    runtime_fields: &HashSet<String>,
) {
    let ctx = RenderContext {
        preview: true,
        mask_secrets: false,
        ..RenderContext::default()
    };
    // Steps that already have an error still get their rendered values checked
    // (all problems at once), but a render failure there is a consequence of the
    // reported error, and the protocol check would only repeat it.
    let steps_with_errors: HashSet<usize> = findings
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
            findings.errors.iter().any(|e| {
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
                findings.error(
                    format!("{prefix}.{field}"),
                    format!("step `{}`, field `{field}`: {message}", step.id),
                );
                continue;
            }
            Err(other) => {
                findings.error(&prefix, other.to_string());
                continue;
            }
        };
        if let Err(LimitError { field, message }) =
            check_rendered_limits(&rendered, runtime_fields, &prefix)
        {
            let message = renderer.vars.mask(&message);
            findings.error(
                format!("{prefix}.{field}"),
                format!("step `{}`, field `{field}`: {message}", rendered.id),
            );
            continue;
        }
        // A gate sends nothing, so there is no request to encode.
        if had_errors || rendered.approve.is_some() {
            continue;
        }
        let settings = StepSettings::resolve(renderer.plan, &rendered);
        if let Err(problems) = encode_step(renderer.plan, &rendered, &settings, protocol) {
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
                findings.error(field, shown);
            }
        }
    }
}
