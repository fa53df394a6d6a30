//! The plan's own checks, which need no knowledge of JOB: a version and name, unique
//! template-safe step ids, one action per step, targets that name existing host sets,
//! an execution account, script sources, file sources, job variables and the shape of
//! `rolling`. [`check`] writes every problem into [`Findings`].
//!
//! JOB's rules (timeouts, host addresses, lengths, rolling expressions) and whatever
//! needs the step graph or the templates are checked when the plan is compiled.

use std::collections::HashMap;

use super::findings::Findings;
use super::model::{
    FileSource, FileType, HostSet, JobVarKey, JobVarValue, Plan, Rolling, Step, Targets,
};
use super::vars;

/// Runs the plan's own checks. Returns whether every step id is valid and unique
/// (references between steps are only checked then).
pub fn check(plan: &Plan, findings: &mut Findings<'_>) -> bool {
    let mut checker = Checker { findings };
    checker.plan_level(plan);
    checker.host_sets(plan);
    let ids_ok = checker.step_ids(&plan.steps);
    for (i, step) in plan.steps.iter().enumerate() {
        checker.step(plan, i, step);
    }
    ids_ok
}

/// Every host-set name a step refers to: its targets, its push sources, its job's
/// host variables and overrides.
pub fn named_host_sets(step: &Step) -> impl Iterator<Item = &str> {
    step_targets(step)
        .into_iter()
        .flat_map(|(_, targets)| match targets {
            Targets::Named(names) => names.iter().map(String::as_str).collect::<Vec<_>>(),
            Targets::Inline(_) | Targets::From(_) => Vec::new(),
        })
}

/// Every target set of a step with its field path relative to the step, in the order
/// the checks visit them: targets, push sources, job host variables, job overrides'
/// targets and sources.
pub fn step_targets(step: &Step) -> Vec<(String, &Targets)> {
    let mut all: Vec<(String, &Targets)> = Vec::new();
    if let Some(targets) = &step.targets {
        all.push(("targets".into(), targets));
    }
    if let Some(push) = &step.push_file {
        for (s, source) in push.sources.iter().enumerate() {
            if let Some(from) = &source.from {
                all.push((format!("push_file.sources[{s}].from"), from));
            }
        }
    }
    if let Some(job) = &step.job {
        for var in &job.vars.0 {
            if let JobVarValue::Hosts(targets) = &var.value {
                all.push((format!("job.vars.{}.hosts", var.key), targets));
            }
        }
        for (o, over) in job.overrides.iter().enumerate() {
            if let Some(targets) = &over.targets {
                all.push((format!("job.overrides[{o}].targets"), targets));
            }
            for (s, source) in over.sources.iter().enumerate() {
                if let Some(from) = &source.from {
                    all.push((format!("job.overrides[{o}].sources[{s}].from"), from));
                }
            }
        }
    }
    all
}

/// The step index of a field path such as `steps[3].script.params`.
pub fn step_of_field(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("steps[")?;
    rest[..rest.find(']')?].parse().ok()
}

/// A host set that names no host of any kind.
pub fn is_empty_set(set: &HostSet) -> bool {
    set.ips.is_empty()
        && set.host_ids.is_empty()
        && set.dynamic_groups.is_empty()
        && set.topo_nodes.is_empty()
}

fn is_step_id(id: &str) -> bool {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    };
    // A fan-out instance: `<id>[<key>]`, the key also allowing `.` and `:`.
    match id.strip_suffix(']').and_then(|s| s.split_once('[')) {
        Some((base, key)) => {
            plain(base)
                && !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        }
        None => plain(id),
    }
}

struct Checker<'f, 'a> {
    findings: &'f mut Findings<'a>,
}

impl Checker<'_, '_> {
    fn error(
        &mut self,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> &mut super::span::Issue {
        self.findings.error(field, message)
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
        for (i, rule) in plan.notify.iter().enumerate() {
            match (&rule.channel, &rule.url) {
                (Some(_), Some(_)) | (None, None) => {
                    self.error(
                        format!("notify[{i}]"),
                        "a notify rule names a profile `channel` or gives a `url`, one of the two",
                    );
                }
                (None, Some(url))
                    if !(url.starts_with("https://") || url.starts_with("http://")) =>
                {
                    self.error(format!("notify[{i}].url"), "not an http(s) URL");
                }
                (Some(_), None) if rule.format.is_some() => {
                    self.error(
                        format!("notify[{i}].format"),
                        "a profile channel has its own format; `format` goes with `url`",
                    );
                }
                _ => {}
            }
        }
        if plan.scope.is_none() && !plan.steps.is_empty() {
            self.error(
                "scope",
                "the plan has no `scope`; every JOB request names a business",
            )
            .help = Some("add e.g. `scope: { type: biz, id: 2 }`".into());
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
                    .findings
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
            step.push_config.as_ref().map(|_| "push_config"),
            step.job.as_ref().map(|_| "job"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if step.approve.is_some() {
            self.gate(i, step, &actions);
            return;
        }
        match actions.len() {
            0 => {
                self.error(
                    format!("steps[{i}]"),
                    format!(
                        "step `{id}` does nothing: give it one of `script`, `push_file`, `push_config`, `job` or `approve`"
                    ),
                );
            }
            1 => {}
            _ => {
                self.error(
                    format!("steps[{i}]"),
                    format!("step `{id}` has {}; a step does exactly one of `script`, `push_file`, `push_config` or `job`", actions.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" and ")),
                );
            }
        }

        let needs_targets =
            step.script.is_some() || step.push_file.is_some() || step.push_config.is_some();
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
            for (k, password) in script.host_passwords.iter().enumerate() {
                let field = at(&format!("script.host_passwords[{k}]"));
                if password.ip.is_none() && password.host_id.is_none() {
                    self.error(&field, "a host password needs `ip` or `host_id`");
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
                if let Some(targets) = &over.targets {
                    self.targets(plan, &format!("{field}.targets"), targets);
                }
                for (s, source) in over.sources.iter().enumerate() {
                    self.file_source(plan, &format!("{field}.sources[{s}]"), source);
                }
            }
        }

        if let Some(rolling) = &step.rolling {
            self.rolling(i, step, rolling);
        }
    }

    fn file_source(&mut self, plan: &Plan, field: &str, source: &FileSource) {
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

    /// An approval gate sends nothing to JOB, so the fields of a JOB action are
    /// mistakes on it.
    fn gate(&mut self, i: usize, step: &Step, actions: &[&str]) {
        let id = &step.id;
        for action in actions {
            self.error(
                format!("steps[{i}].{action}"),
                format!("step `{id}` is an approval gate (`approve`) and cannot also have `{action}`: give the {action} a step of its own that needs `{id}`"),
            );
        }
        let job_only = [
            ("targets", step.targets.is_some()),
            ("account", step.account.is_some()),
            ("rolling", step.rolling.is_some()),
            ("timeout", step.timeout.is_some()),
            ("retries", step.retries.is_some()),
            ("retry_delay", step.retry_delay.is_some()),
            ("wait_timeout", step.wait_timeout.is_some()),
            ("ignore_errors", step.ignore_errors.is_some()),
            ("outputs", !step.outputs.is_empty()),
            ("start_task", step.start_task.is_some()),
            ("task_name", step.task_name.is_some()),
        ];
        for (field, set) in job_only {
            if set {
                let hint = if field == "timeout" {
                    "; a gate's own timeout is `approve.timeout`"
                } else {
                    ""
                };
                self.error(
                    format!("steps[{i}].{field}"),
                    format!(
                        "step `{id}` is an approval gate: `{field}` applies to JOB steps only{hint}"
                    ),
                );
            }
        }
        if let Some(approve) = &step.approve
            && approve.message.trim().is_empty()
        {
            self.error(
                format!("steps[{i}].approve.message"),
                "a gate needs a message saying what the person approves",
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
            // Whether `from` names an upstream step is the step graph's to say.
            Targets::From(_) if field.ends_with("].targets") && field.starts_with("steps[") => {}
            Targets::From(_) => {
                self.error(
                    field,
                    "only a step's own `targets` can be drawn `from` an upstream step",
                );
            }
        }
    }

    fn rolling(&mut self, i: usize, step: &Step, rolling: &Rolling) {
        let field = format!("steps[{i}].rolling");
        if rolling.files.is_some() && step.push_file.is_none() {
            self.error(
                format!("{field}.files"),
                "rolling over source files only applies to `push_file` steps",
            );
        }
        if rolling.expression.is_none() && rolling.files.is_none() {
            self.error(
                &field,
                "rolling needs an `expression` (or `files` for a push)",
            );
        }
    }
}
