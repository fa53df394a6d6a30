//! Template registration and reference checks: every templated field of the plan is
//! registered once in the [`TemplateSet`], and each reference it makes is checked
//! against the declared variables, `run.id`/`plan.name`, and the step graph (a step
//! result must come from a declared output of an upstream step). The result is, per
//! step, the upstream step ids its templates read.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::graph::PlanGraph;
use super::render::template_fields;
use super::template::{Reference, TemplateSet};
use crate::plan::findings::Findings;
use crate::plan::model::Plan;
use crate::plan::vars;

/// Registers every template and checks what it reads.
pub(crate) fn register(
    findings: &mut Findings<'_>,
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
    let exported: Vec<HashSet<String>> = plan
        .steps
        .iter()
        .map(|s| super::render::exported_names(s).into_iter().collect())
        .collect();
    let mut upstream_cache: HashMap<(usize, usize), bool> = HashMap::new();

    if let Some(description) = &plan.description {
        match templates.add("description", description) {
            Ok(references) => {
                for reference in references {
                    if let Err(message) =
                        check_plain_reference(&reference, &declared, "the plan's description")
                    {
                        findings.error("description", message.to_string());
                    }
                }
            }
            Err(e) => {
                findings.error("description", e.message);
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
                    findings.error(
                        &name,
                        format!("step `{id}`, field `{suffix}`: {}", e.message),
                    );
                    continue;
                }
            };
            for reference in references {
                // `steps.<group>.items.<key>.…` reads the fan-out instance `<group>[<key>]`.
                let instance_path = instance_segments(&reference.0, &ids);
                let segments = instance_path.as_ref().unwrap_or(&reference.0);
                if segments.first().map(String::as_str) != Some("steps") {
                    let place = format!("step `{id}`, field `{suffix}`");
                    if let Err(message) = check_plain_reference(&reference, &declared, &place) {
                        let issue = findings.error(&name, message.to_string());
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
                    findings.error(&name, format!("{place}: `{{{{steps}}}}` needs a step id, e.g. `steps.build.outputs.version`"));
                    continue;
                };
                // `steps.<group>.all`: every instance of a fan-out group, in order.
                if segments.len() == 3 && segments[2] == "all" && !ids.contains_key(target_id) {
                    let prefix = format!("{target_id}[");
                    let mut members: Vec<(usize, &String)> = ids
                        .iter()
                        .filter(|(k, _)| k.starts_with(&prefix) && k.ends_with(']'))
                        .map(|(k, &v)| (v, k))
                        .collect();
                    members.sort();
                    if members.is_empty() {
                        findings.error(&name, format!("{place}: `{reference}` reads all instances of `{target_id}`, which is not a fanned-out step of this plan"));
                        continue;
                    }
                    let missing: Vec<&str> = members
                        .iter()
                        .filter(|(m, _)| graph.is_some_and(|g| !g.is_upstream(*m, i)))
                        .map(|(_, k)| k.as_str())
                        .collect();
                    if !missing.is_empty() {
                        let issue = findings.error(&name, format!("{place}: `{reference}` reads every instance of `{target_id}`, but {} not upstream of `{id}`", missing.join(", ")));
                        issue.help =
                            Some(format!("add `{target_id}` to the `needs` of step `{id}`"));
                        continue;
                    }
                    upstream.extend(members.into_iter().map(|(_, k)| k.clone()));
                    continue;
                }
                let Some(&target) = ids.get(target_id) else {
                    let issue = findings.error(&name, format!("{place}: `{reference}` names step `{target_id}`, which is not a step of this plan"));
                    if let Some(near) = vars::closest(target_id, ids.keys().map(String::as_str)) {
                        issue.help = Some(format!("did you mean `{near}`?"));
                    }
                    continue;
                };
                match (segments.get(2).map(String::as_str), segments.len()) {
                    (Some("job_instance_id" | "status"), 3) => {}
                    (Some("outputs"), 4) => {
                        let key = &segments[3];
                        if !outputs[target].contains(key) {
                            let issue = findings.error(&name, format!("{place}: `{reference}` reads output `{key}`, which step `{target_id}` does not declare in its `outputs`"));
                            issue.help = Some(format!(
                                "add `{key}` to the `outputs` of step `{target_id}`"
                            ));
                            continue;
                        }
                    }
                    (Some("vars"), 4) => {
                        let key = &segments[3];
                        if !exported[target].contains(key) {
                            let issue = findings.error(&name, format!("{place}: `{reference}` reads job variable `{key}`, which step `{target_id}` does not list in `job.exports`"));
                            issue.help = Some(format!(
                                "add `{key}` to the `job.exports` of step `{target_id}`"
                            ));
                            continue;
                        }
                    }
                    _ => {
                        findings.error(&name, format!("{place}: `{reference}` is not a step result; use `steps.{target_id}.job_instance_id`, `steps.{target_id}.status`, `steps.{target_id}.outputs.<key>` or `steps.{target_id}.vars.<name>`"));
                        continue;
                    }
                }
                if target == i {
                    findings.error(&name, format!("{place}: `{reference}` reads the step's own result, which does not exist before it runs"));
                    continue;
                }
                if let Some(graph) = graph {
                    let is_upstream = *upstream_cache
                        .entry((target, i))
                        .or_insert_with(|| graph.is_upstream(target, i));
                    if !is_upstream {
                        let issue = findings.error(&name, format!("{place}: `{reference}` reads step `{target_id}`, which is not upstream of `{id}`: `needs` of `{id}` is missing `{target_id}`"));
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

/// A template reference outside `steps.*` that reads nothing defined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum PlainReferenceError {
    #[error("{place}: `{reference}` is not defined; only `run.id` and `plan.name` are")]
    UnknownBuiltin { place: String, reference: String },
    #[error("{place}: `{reference}` reads a step result, which only steps can use")]
    StepResult { place: String, reference: String },
    #[error("{place}: `{reference}`: variable `{name}` is a string and has no fields")]
    FieldOfString {
        place: String,
        reference: String,
        name: String,
    },
    #[error("{place}: `{reference}` is not a declared variable (add it to `vars`)")]
    Undeclared { place: String, reference: String },
}

fn check_plain_reference(
    reference: &Reference,
    declared: &BTreeSet<String>,
    place: &str,
) -> Result<(), PlainReferenceError> {
    let segments = &reference.0;
    let place = place.to_owned();
    let shown = reference.to_string();
    match segments.first().map(String::as_str) {
        Some("run") if segments.len() == 2 && segments[1] == "id" => Ok(()),
        Some("plan") if segments.len() == 2 && segments[1] == "name" => Ok(()),
        Some("run" | "plan") => Err(PlainReferenceError::UnknownBuiltin {
            place,
            reference: shown,
        }),
        Some("steps") => Err(PlainReferenceError::StepResult {
            place,
            reference: shown,
        }),
        Some(name) if declared.contains(name) => {
            if segments.len() == 1 {
                Ok(())
            } else {
                Err(PlainReferenceError::FieldOfString {
                    place,
                    reference: shown,
                    name: name.to_owned(),
                })
            }
        }
        _ => Err(PlainReferenceError::Undeclared {
            place,
            reference: shown,
        }),
    }
}

/// `steps.<group>.items.<key>.<rest>` as `steps.<group>[<key>].<rest>` when that
/// instance is a step of the (expanded) plan.
fn instance_segments(segments: &[String], ids: &HashMap<String, usize>) -> Option<Vec<String>> {
    if segments.first().map(String::as_str) != Some("steps")
        || segments.get(2).map(String::as_str) != Some("items")
        || ids.contains_key(segments.get(1)?)
    {
        return None;
    }
    let instance = format!("{}[{}]", segments[1], segments.get(3)?);
    ids.contains_key(&instance).then(|| {
        let mut out = vec!["steps".to_owned(), instance];
        out.extend(segments[4..].iter().cloned());
        out
    })
}
