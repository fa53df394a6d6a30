//! Expanding fanned-out steps (`for_each:`) into one step per item before anything
//! else looks at the plan: instance ids `<id>[<key>]`, `{{item}}` / `{{item.<key>}}`
//! filled in every templated field, in `targets` and in `needs`, a script file inlined
//! so its text gets the item too, `needs` on the group widened to every instance, and
//! `fail_fast` turned into the instances' `on_failure`. The result is an ordinary plan,
//! so validation, `baton plan`, `baton graph`, the run and its reports all see the
//! instances; [`Expansion::origins`] maps each back to its declaration for error
//! locations, and [`Expansion::groups`] carries the group limits to the scheduler.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;

use super::render::template_fields;
use crate::plan::fan_out::{FanItem, ForEach};
use crate::plan::model::{JobVarValue, OnFailure, Plan, Targets};
use crate::plan::span::{Issue, PlanSource};
use crate::plan::vars::ResolvedVars;

/// A fanned-out group's place in the scheduler: its number and its parallel limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimit {
    /// Which group (in declaration order).
    pub group: usize,
    /// Most instances running at once.
    pub max_parallel: usize,
}

/// The plan after fan-out.
#[derive(Debug, Default)]
pub struct Expansion {
    /// For each step of the expanded plan, the index of the step it was written as;
    /// empty when nothing fanned out.
    pub origins: Vec<usize>,
    /// For each step of the expanded plan, its group's limit when it has one.
    pub groups: Vec<Option<GroupLimit>>,
}

fn item_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"\{\{\s*item(?:\.([A-Za-z0-9_-]+))?\s*\}\}").expect("a valid pattern")
    })
}

/// The items of `for_each` at step `index`, or the issues that prevent them.
fn items(
    plan: &Plan,
    source: &PlanSource,
    index: usize,
    for_each: &ForEach,
    vars: &ResolvedVars,
) -> Result<Vec<FanItem>, Box<Issue>> {
    let at = |field: &str| format!("steps[{index}].for_each{field}");
    let sources = [
        for_each.items.is_some(),
        for_each.var.is_some(),
        for_each.from.is_some(),
    ];
    match sources.iter().filter(|s| **s).count() {
        0 => {
            return Err(Box::new(
                source.issue(at(""), "`for_each` needs `items`, `var` or `from`"),
            ));
        }
        1 => {}
        _ => {
            return Err(Box::new(
                source.issue(at(""), "`for_each` takes one of `items`, `var` or `from`"),
            ));
        }
    }
    if for_each.output.is_some() && for_each.from.is_none() {
        return Err(Box::new(source.issue(
            at(".output"),
            "`output` names an output of the step in `from`; add `from: <step>`",
        )));
    }
    if let Some(from) = &for_each.from {
        return Err(Box::new(from_output(plan, source, index, from, for_each)));
    }
    match (&for_each.items, &for_each.var) {
        (Some(items), _) if items.is_empty() => Err(Box::new(
            source.issue(at(".items"), "`for_each.items` is empty"),
        )),
        (Some(items), _) => Ok(items.clone()),
        (None, Some(name)) => {
            let Some(text) = vars.get(name) else {
                return Err(Box::new(source.issue(
                    at(".var"),
                    format!("`{name}` is not a declared variable (declare it under `vars:`)"),
                )));
            };
            parse_list(text).map_err(|e| {
                Box::new(source.issue(
                    at(".var"),
                    format!("variable `{name}` is not a list of strings or maps: {e}"),
                ))
            })
        }
        (None, None) => Ok(Vec::new()),
    }
}

/// Items written as a YAML/JSON list (`[sh, gz]`, or maps) or as comma-separated text.
pub fn parse_list(text: &str) -> Result<Vec<FanItem>, serde_yaml::Error> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        return serde_yaml::from_str::<Vec<FanItem>>(trimmed);
    }
    Ok(trimmed
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| FanItem::Text(s.to_owned()))
        .collect())
}

/// What is wrong with `for_each: { from, output }` at step `index`: the step must be
/// upstream and declare the output. Such a list is known only once that step has
/// finished, and expanding a group then is not supported, so even a well-formed one is
/// refused here, before anything is submitted.
fn from_output(
    plan: &Plan,
    source: &PlanSource,
    index: usize,
    from: &str,
    for_each: &ForEach,
) -> Issue {
    let at = |field: &str| format!("steps[{index}].for_each{field}");
    let id = plan.steps.get(index).map_or("", |s| s.id.as_str());
    let Some(upstream) = plan.steps.iter().find(|s| s.id == from) else {
        return source.issue(at(".from"), format!("`{from}` is not a step of this plan"));
    };
    if !is_upstream(plan, index, from) {
        return source.issue(
            at(".from"),
            format!("step `{from}` is not upstream of `{id}`: add it to the `needs` of `{id}`"),
        );
    }
    let Some(output) = &for_each.output else {
        return source.issue(
            at(""),
            format!(
                "`from: {from}` needs `output:`, the key of `{from}`'s output that holds the list"
            ),
        );
    };
    if !upstream.outputs.iter().any(|o| o == output) {
        return source.issue(
            at(".output"),
            format!(
                "step `{from}` does not declare the output `{output}` (add it to its `outputs:`)"
            ),
        );
    }
    source.issue(
        at(".from"),
        format!("the items of `{id}` come from `{from}`'s output `{output}`, known only at run time; expanding a group then is not supported yet: list them with `items:` or `var:`"),
    )
}

/// Whether step `from` is among the `needs` of step `index`, directly or not. A need
/// on one instance (`deploy[sh]`, or `deploy[{{item}}]`) counts as its group.
fn is_upstream(plan: &Plan, index: usize, from: &str) -> bool {
    let base = |need: &str| need.split('[').next().unwrap_or(need).to_owned();
    let mut seen = HashSet::new();
    let mut stack: Vec<String> = plan
        .steps
        .get(index)
        .map(|s| s.needs.iter().map(|n| base(n)).collect())
        .unwrap_or_default();
    while let Some(id) = stack.pop() {
        if id == from {
            return true;
        }
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(step) = plan.steps.iter().find(|s| s.id == id) {
            stack.extend(step.needs.iter().map(|n| base(n)));
        }
    }
    false
}

fn same_item_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"(steps\.[A-Za-z0-9_-]+\.items\.)item\.(?:([A-Za-z0-9_-]+)\.)?")
            .expect("a valid pattern")
    })
}

/// Fills `{{item}}` / `{{item.<key>}}` in `text`, and the item's key in a path
/// `steps.<group>.items.item[.<key>].…` (the instance of another group for the same
/// item); an unknown key is left for the template engine to report.
fn fill(text: &str, item: &FanItem) -> String {
    if !text.contains("item") {
        return text.to_owned();
    }
    let text = same_item_pattern().replace_all(text, |caps: &regex::Captures<'_>| {
        match (item, caps.get(2)) {
            // A string item has no keys: what follows `item.` is the rest of the path.
            (FanItem::Text(value), next) => format!(
                "{}{value}.{}",
                &caps[1],
                next.map(|n| format!("{}.", n.as_str())).unwrap_or_default()
            ),
            (FanItem::Map(map), Some(key)) => match map.get(key.as_str()) {
                Some(value) => format!("{}{value}.", &caps[1]),
                None => caps[0].to_owned(),
            },
            (FanItem::Map(_), None) => caps[0].to_owned(),
        }
    });
    item_pattern()
        .replace_all(&text, |caps: &regex::Captures<'_>| {
            let value = match (item, caps.get(1)) {
                (FanItem::Text(text), None) => Some(text.clone()),
                (FanItem::Map(map), Some(key)) => map.get(key.as_str()).cloned(),
                _ => None,
            };
            match value {
                // A value is data, not a template: keep `{{` in it literal.
                Some(value) => value.replace("{{", "\\{{"),
                None => caps[0].to_owned(),
            }
        })
        .into_owned()
}

fn fill_targets(targets: &mut Targets, item: &FanItem) {
    match targets {
        Targets::Named(names) => names.iter_mut().for_each(|n| *n = fill(n, item)),
        Targets::Inline(set) => {
            set.ips.iter_mut().for_each(|ip| *ip = fill(ip, item));
            set.dynamic_groups
                .iter_mut()
                .for_each(|g| *g = fill(g, item));
        }
        Targets::From(drawn) => drawn.from = fill(&drawn.from, item),
    }
}

/// A fanned-out step's items and the ids of their instances.
type Instances = (Vec<FanItem>, Vec<String>);

/// Expands every `for_each` step of `plan`. Problems are returned located at the
/// declaration; the plan is then left as written.
pub fn expand(
    plan: &mut Plan,
    source: &PlanSource,
    vars: &ResolvedVars,
    script_files: &mut HashMap<String, String>,
) -> (Expansion, Vec<Issue>) {
    if plan.steps.iter().all(|s| s.for_each.is_none()) {
        return (Expansion::default(), Vec::new());
    }
    let mut issues = Vec::new();
    let mut planned: Vec<(usize, Option<Instances>)> = Vec::new();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let Some(for_each) = &step.for_each else {
            planned.push((i, None));
            continue;
        };
        match items(plan, source, i, for_each, vars) {
            Ok(items) => {
                let mut seen = HashSet::new();
                let mut ids = Vec::with_capacity(items.len());
                for (n, item) in items.iter().enumerate() {
                    let key = item.key().map_or_else(|| n.to_string(), str::to_owned);
                    if !seen.insert(key.clone()) {
                        issues.push(source.issue(
                            format!("steps[{i}].for_each"),
                            format!("two items of step `{}` have the key `{key}`; give each map item a unique `name`", step.id),
                        ));
                    }
                    ids.push(format!("{}[{key}]", step.id));
                }
                groups.insert(step.id.clone(), ids.clone());
                planned.push((i, Some((items, ids))));
            }
            Err(issue) => {
                issues.push(*issue);
                planned.push((i, None));
            }
        }
    }
    if !issues.is_empty() {
        return (Expansion::default(), issues);
    }

    let widen = |needs: &[String]| -> Vec<String> {
        needs
            .iter()
            .flat_map(|n| match groups.get(n) {
                Some(ids) => ids.clone(),
                None => vec![n.clone()],
            })
            .collect()
    };
    let old_steps = std::mem::take(&mut plan.steps);
    let mut origins = Vec::new();
    let mut limits = Vec::new();
    let mut new_files: HashMap<String, String> = HashMap::new();
    let mut group_number = 0usize;
    for ((i, fan), step) in planned.into_iter().zip(old_steps) {
        let Some((items, ids)) = fan else {
            let mut step = step;
            step.needs = widen(&step.needs);
            move_files(script_files, &mut new_files, i, origins.len());
            origins.push(i);
            limits.push(None);
            plan.steps.push(step);
            continue;
        };
        let for_each = step.for_each.clone().unwrap_or_default();
        let limit = for_each.max_parallel.map(|m| GroupLimit {
            group: group_number,
            max_parallel: (m as usize).max(1),
        });
        group_number += 1;
        let file_text = script_files
            .get(&format!("steps[{i}].script.file"))
            .cloned();
        for (item, id) in items.iter().zip(ids) {
            let mut instance = step.clone();
            instance.id = id;
            instance.for_each = None;
            if let (Some(script), Some(text)) = (&mut instance.script, &file_text) {
                script.content = Some(text.clone());
                script.file = None;
            }
            for (_, text) in template_fields(&mut instance) {
                *text = fill(text, item);
            }
            if let Some(targets) = &mut instance.targets {
                fill_targets(targets, item);
            }
            if let Some(job) = &mut instance.job {
                for var in &mut job.vars.0 {
                    if let JobVarValue::Hosts(targets) = &mut var.value {
                        fill_targets(targets, item);
                    }
                }
            }
            if let Some(push) = &mut instance.push_file {
                for source in &mut push.sources {
                    if let Some(from) = &mut source.from {
                        fill_targets(from, item);
                    }
                }
            }
            instance.needs = widen(
                &instance
                    .needs
                    .iter()
                    .map(|n| fill(n, item))
                    .collect::<Vec<_>>(),
            );
            if instance.on_failure.is_none() {
                instance.on_failure = Some(match for_each.fail_fast {
                    Some(false) => OnFailure::Continue,
                    _ => OnFailure::Stop,
                });
            }
            move_files(script_files, &mut new_files, i, origins.len());
            origins.push(i);
            limits.push(limit);
            plan.steps.push(instance);
        }
    }
    *script_files = new_files;
    (
        Expansion {
            origins,
            groups: limits,
        },
        Vec::new(),
    )
}

/// Re-keys the script files of written step `from` for expanded step `to`.
fn move_files(
    files: &HashMap<String, String>,
    into: &mut HashMap<String, String>,
    from: usize,
    to: usize,
) {
    let prefix = format!("steps[{from}].");
    for (key, text) in files {
        if let Some(rest) = key.strip_prefix(&prefix) {
            into.insert(format!("steps[{to}].{rest}"), text.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_fill_templates_and_leave_others() {
        let text = FanItem::Text("sh".into());
        assert_eq!(
            fill("web-{{item}} {{ item }} {{version}}", &text),
            "web-sh sh {{version}}"
        );
        let map = FanItem::Map(BTreeMap::from([
            ("name".into(), "sh".into()),
            ("zone".into(), "{{x}}".into()),
        ]));
        assert_eq!(
            fill("{{item.name}}/{{item.zone}}/{{item.nope}}", &map),
            "sh/\\{{x}}/{{item.nope}}"
        );
        assert_eq!(
            fill("{{steps.migrate.items.item.name.vars.v}}", &map),
            "{{steps.migrate.items.sh.vars.v}}"
        );
        assert_eq!(
            fill("{{steps.migrate.items.item.outputs.v}}", &text),
            "{{steps.migrate.items.sh.outputs.v}}"
        );
    }
}
