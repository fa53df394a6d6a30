//! Step conditions (`if:`) and targets drawn from upstream steps, compiled: every
//! condition parsed and checked against the step graph (a step it names must be
//! upstream, an output it reads declared, a variable declared), each step classed as
//! ordinary or a handler, and the evaluation of a condition against what the run knows
//! when the step's needs are done.
//!
//! A step without a status function in its `if` is ordinary: it runs only when its
//! needs succeeded (or were skipped), as if `success() && …` were written. A step
//! whose `if` uses `failure()`, `always()` or `cancelled()` is a handler: it is
//! considered once all of its needs have ended, however they ended.

use std::collections::{BTreeSet, HashMap};

use super::graph::PlanGraph;
use crate::plan::condition::{self, Expr, StatusFn, StepField};
use crate::plan::findings::Findings;
pub use crate::plan::handlers::{ApproveStep, DEFAULT_GATE_TIMEOUT_SECS, HostPick, TargetsFrom};
use crate::plan::model::Plan;
pub use crate::plan::model::{HostSet, Targets};
use crate::plan::vars;

/// A step's compiled `if`.
#[derive(Debug, Clone)]
pub struct StepCondition {
    /// The condition as written.
    pub text: String,
    expr: Expr,
    /// Whether it can admit a failed or interrupted upstream (`failure()`, `always()`,
    /// `cancelled()`): the step is a handler.
    pub handler: bool,
    /// Whether it can run after the run was interrupted (`always()`, `cancelled()`).
    pub after_interrupt: bool,
    needs: Vec<String>,
    ancestors: Vec<String>,
}

/// What a condition can read about the run when it is evaluated. Statuses use the
/// report's words: `succeeded`, `failed`, `skipped`, `not_run`, `interrupted`,
/// `unknown`.
pub trait Outcomes {
    /// How the step ended; `None` if it has not.
    fn status(&self, step: &str) -> Option<String>;
    /// One of its outputs.
    fn output(&self, step: &str, key: &str) -> Option<String>;
    /// Its hosts (`cloud:ip`), as picked.
    fn hosts(&self, step: &str, pick: HostPick) -> Vec<String>;
    /// Its last job instance.
    fn job_instance_id(&self, step: &str) -> Option<u64>;
    /// Whether the run was interrupted (Ctrl-C, SIGTERM).
    fn interrupted(&self) -> bool;
}

/// A condition's verdict, with why, for the journal and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the step runs.
    pub run: bool,
    /// What made the status functions true (empty for an ordinary step).
    pub because: String,
}

#[derive(Debug, Clone)]
enum Value {
    Text(String),
    List(Vec<String>),
    Bool(bool),
    Missing,
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Text(t) => super::render::is_truthy(t),
            Value::List(l) => !l.is_empty(),
            Value::Bool(b) => *b,
            Value::Missing => false,
        }
    }

    fn text(&self) -> String {
        match self {
            Value::Text(t) => t.clone(),
            Value::List(l) => l.join(","),
            Value::Bool(b) => b.to_string(),
            Value::Missing => String::new(),
        }
    }
}

fn failed(status: &str) -> bool {
    matches!(status, "failed" | "unknown")
}

impl StepCondition {
    /// Evaluates the condition; `vars` reads plan variables.
    pub fn evaluate(&self, run: &dyn Outcomes, vars: &dyn Fn(&str) -> Option<String>) -> Verdict {
        let mut reasons = Vec::new();
        let mut value = self.eval(&self.expr, run, vars, &mut reasons).truthy();
        if !self.handler {
            value = value && self.success(run);
        }
        reasons.dedup();
        Verdict {
            run: value,
            because: reasons.join("; "),
        }
    }

    fn success(&self, run: &dyn Outcomes) -> bool {
        self.needs.iter().all(|need| {
            run.status(need)
                .is_some_and(|s| s == "succeeded" || s == "skipped")
        })
    }

    fn eval(
        &self,
        expr: &Expr,
        run: &dyn Outcomes,
        vars: &dyn Fn(&str) -> Option<String>,
        reasons: &mut Vec<String>,
    ) -> Value {
        match expr {
            Expr::Status(function, step) => {
                let (yes, why) = self.status_fn(*function, step.as_deref(), run);
                if yes && let Some(why) = why {
                    reasons.push(why);
                }
                Value::Bool(yes)
            }
            Expr::Step(id, field) => match field {
                StepField::Status => run.status(id).map_or(Value::Missing, Value::Text),
                StepField::Output(key) => run.output(id, key).map_or(Value::Missing, Value::Text),
                StepField::HostsSucceeded => Value::List(run.hosts(id, HostPick::Succeeded)),
                StepField::HostsFailed => Value::List(run.hosts(id, HostPick::Failed)),
                StepField::JobInstanceId => run
                    .job_instance_id(id)
                    .map_or(Value::Missing, |j| Value::Text(j.to_string())),
            },
            Expr::Var(name) => vars(name).map_or(Value::Missing, Value::Text),
            Expr::Literal(text) => Value::Text(text.clone()),
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Not(e) => Value::Bool(!self.eval(e, run, vars, reasons).truthy()),
            Expr::And(a, b) => {
                let mut mine = Vec::new();
                let yes = self.eval(a, run, vars, &mut mine).truthy()
                    && self.eval(b, run, vars, &mut mine).truthy();
                if yes {
                    reasons.extend(mine);
                }
                Value::Bool(yes)
            }
            Expr::Or(a, b) => {
                let yes = self.eval(a, run, vars, reasons).truthy()
                    || self.eval(b, run, vars, reasons).truthy();
                Value::Bool(yes)
            }
            Expr::Compare(a, b, eq) => {
                let left = self.eval(a, run, vars, &mut Vec::new()).text();
                let right = self.eval(b, run, vars, &mut Vec::new()).text();
                Value::Bool((left == right) == *eq)
            }
        }
    }

    fn status_fn(
        &self,
        function: StatusFn,
        step: Option<&str>,
        run: &dyn Outcomes,
    ) -> (bool, Option<String>) {
        let status = |id: &str| run.status(id).unwrap_or_default();
        match (function, step) {
            (StatusFn::Always, _) => (true, Some("it always runs".into())),
            (StatusFn::Success, None) => (self.success(run), None),
            (StatusFn::Success, Some(id)) => (status(id) == "succeeded", None),
            (StatusFn::Failure, Some(id)) => {
                let s = status(id);
                (failed(&s), Some(format!("`{id}` {s}")))
            }
            (StatusFn::Failure, None) => {
                let down: Vec<String> = self
                    .ancestors
                    .iter()
                    .filter(|a| failed(&status(a)))
                    .map(|a| format!("`{a}` {}", status(a)))
                    .collect();
                (!down.is_empty(), Some(down.join(", ")))
            }
            (StatusFn::Cancelled, Some(id)) => (
                status(id) == "interrupted",
                Some(format!("`{id}` was interrupted")),
            ),
            (StatusFn::Cancelled, None) => {
                let cut =
                    run.interrupted() || self.ancestors.iter().any(|a| status(a) == "interrupted");
                (cut, Some("the run was interrupted".into()))
            }
        }
    }
}

/// Parses and checks every step's `if` and `targets: {from: …}`; returns each step's
/// compiled condition (absent without `if`, or when it has errors).
pub(crate) fn check(
    findings: &mut Findings<'_>,
    plan: &Plan,
    graph: Option<&PlanGraph>,
) -> Vec<Option<StepCondition>> {
    let ids: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .rev()
        .collect();
    let mut out = vec![None; plan.steps.len()];
    for (i, step) in plan.steps.iter().enumerate() {
        if let Some(Targets::From(from)) = &step.targets {
            check_from(findings, plan, graph, &ids, i, from);
        }
        let Some(text) = &step.condition else {
            continue;
        };
        let field = format!("steps[{i}].if");
        let place = format!("step `{}`, field `if`", step.id);
        let expr = match condition::parse(text) {
            Ok(expr) => expr,
            Err(e) => {
                findings.error(&field, format!("{place}: {e}"));
                continue;
            }
        };
        let calls = expr.status_calls();
        let handler = calls.iter().any(|(f, _)| *f != StatusFn::Success);
        let after_interrupt = calls
            .iter()
            .any(|(f, _)| matches!(f, StatusFn::Always | StatusFn::Cancelled));
        let mut ok = true;
        if !calls.is_empty() && step.needs.is_empty() {
            let issue = findings.error(
                &field,
                format!(
                    "{place}: `{text}` reacts to upstream steps, but step `{}` has no `needs`",
                    step.id
                ),
            );
            issue.help = Some("add the steps it reacts to under `needs`".into());
            ok = false;
        }
        let mut problems = Vec::new();
        expr.walk(&mut |e| match e {
            Expr::Step(target, field) => {
                if let Some(problem) = upstream_problem(plan, graph, &ids, i, target) {
                    problems.push(problem);
                } else if let StepField::Output(key) = field
                    && let Some(&t) = ids.get(target.as_str())
                    && !plan.steps[t].outputs.contains(key)
                {
                    problems.push(format!("`steps.{target}.outputs.{key}` reads output `{key}`, which step `{target}` does not declare in its `outputs`"));
                }
            }
            Expr::Status(_, Some(target)) => {
                if let Some(problem) = upstream_problem(plan, graph, &ids, i, target) {
                    problems.push(problem);
                }
            }
            Expr::Var(name) if !plan.vars.contains_key(name) => {
                let near = vars::closest(name, plan.vars.keys().map(String::as_str))
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                problems.push(format!("`vars.{name}` is not a declared variable{near}"));
            }
            _ => {}
        });
        for problem in problems {
            findings.error(&field, format!("{place}: {problem}"));
            ok = false;
        }
        if !ok {
            continue;
        }
        let needs: Vec<String> = step.needs.clone();
        let ancestors = match graph {
            Some(graph) => {
                let mut seen = BTreeSet::new();
                let mut stack: Vec<usize> = graph.dependencies(i);
                while let Some(a) = stack.pop() {
                    if seen.insert(a) {
                        stack.extend(graph.dependencies(a));
                    }
                }
                seen.into_iter().map(|a| plan.steps[a].id.clone()).collect()
            }
            None => needs.clone(),
        };
        out[i] = Some(StepCondition {
            text: text.clone(),
            expr,
            handler,
            after_interrupt,
            needs,
            ancestors,
        });
    }
    out
}

fn check_from(
    findings: &mut Findings<'_>,
    plan: &Plan,
    graph: Option<&PlanGraph>,
    ids: &HashMap<&str, usize>,
    i: usize,
    from: &TargetsFrom,
) {
    let step = &plan.steps[i];
    if let Some(problem) = upstream_problem(plan, graph, ids, i, &from.from) {
        findings.error(
            format!("steps[{i}].targets.from"),
            format!("step `{}`, field `targets.from`: {problem}", step.id),
        );
        return;
    }
    if let Some(&t) = ids.get(from.from.as_str())
        && plan.steps[t].targets.is_none()
    {
        findings.error(
            format!("steps[{i}].targets.from"),
            format!(
                "step `{}`, field `targets.from`: step `{}` runs on no hosts of its own (a job plan or a gate), so it has none to draw from",
                step.id, from.from
            ),
        );
    }
}

/// Why step `i` cannot read step `target`: unknown, itself, or not upstream.
fn upstream_problem(
    plan: &Plan,
    graph: Option<&PlanGraph>,
    ids: &HashMap<&str, usize>,
    i: usize,
    target: &str,
) -> Option<String> {
    let id = &plan.steps[i].id;
    let Some(&t) = ids.get(target) else {
        let near = vars::closest(target, plan.steps.iter().map(|s| s.id.as_str()))
            .map(|n| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        return Some(format!("`{target}` is not a step of this plan{near}"));
    };
    if t == i {
        return Some(format!("step `{id}` cannot react to itself"));
    }
    match graph {
        Some(graph) if !graph.is_upstream(t, i) => Some(format!(
            "step `{target}` is not upstream of `{id}`: add it to the `needs` of `{id}`"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Run(BTreeMap<&'static str, &'static str>, bool);
    impl Outcomes for Run {
        fn status(&self, step: &str) -> Option<String> {
            self.0.get(step).map(|s| (*s).to_owned())
        }
        fn output(&self, _: &str, key: &str) -> Option<String> {
            (key == "tag").then(|| "v2".to_owned())
        }
        fn hosts(&self, _: &str, pick: HostPick) -> Vec<String> {
            match pick {
                HostPick::Failed => vec!["0:10.0.0.2".into()],
                _ => vec!["0:10.0.0.1".into()],
            }
        }
        fn job_instance_id(&self, _: &str) -> Option<u64> {
            Some(7)
        }
        fn interrupted(&self) -> bool {
            self.1
        }
    }

    fn cond(text: &str, needs: &[&str], ancestors: &[&str]) -> StepCondition {
        let expr = condition::parse(text).unwrap();
        let calls = expr.status_calls();
        StepCondition {
            text: text.into(),
            handler: calls.iter().any(|(f, _)| *f != StatusFn::Success),
            after_interrupt: calls
                .iter()
                .any(|(f, _)| matches!(f, StatusFn::Always | StatusFn::Cancelled)),
            expr,
            needs: needs.iter().map(|s| (*s).to_owned()).collect(),
            ancestors: ancestors.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn status_functions_read_needs_and_ancestors() {
        let run = Run(
            BTreeMap::from([("deploy", "failed"), ("smoke", "not_run")]),
            false,
        );
        let none = |_: &str| None;
        let c = cond("failure()", &["smoke"], &["deploy", "smoke"]);
        assert!(c.handler && !c.after_interrupt);
        let v = c.evaluate(&run, &none);
        assert!(v.run);
        assert_eq!(v.because, "`deploy` failed");
        assert!(
            cond("failure(deploy)", &["smoke"], &["deploy", "smoke"])
                .evaluate(&run, &none)
                .run
        );
        assert!(
            !cond("failure(smoke)", &["smoke"], &["deploy", "smoke"])
                .evaluate(&run, &none)
                .run
        );
        assert!(
            !cond("success()", &["smoke"], &["deploy", "smoke"])
                .evaluate(&run, &none)
                .run
        );
        assert!(
            !cond("cancelled()", &["smoke"], &["deploy", "smoke"])
                .evaluate(&run, &none)
                .run
        );
        assert!(
            cond("always()", &["smoke"], &["deploy"])
                .evaluate(&run, &none)
                .run
        );
        assert!(
            cond(
                "failure() && steps.deploy.hosts.failed == '0:10.0.0.2'",
                &["deploy"],
                &["deploy"]
            )
            .evaluate(&run, &none)
            .run
        );
        let ok = Run(BTreeMap::from([("deploy", "succeeded")]), false);
        assert!(
            !cond("failure()", &["deploy"], &["deploy"])
                .evaluate(&ok, &none)
                .run
        );
        // An ordinary condition carries the implied `success()`.
        assert!(
            cond("steps.deploy.outputs.tag == 'v2'", &["deploy"], &["deploy"])
                .evaluate(&ok, &none)
                .run
        );
        assert!(
            !cond("steps.deploy.outputs.tag == 'v2'", &["deploy"], &["deploy"])
                .evaluate(&run, &none)
                .run
        );
        let region = |n: &str| (n == "region").then(|| "sh".to_owned());
        assert!(
            cond("vars.region != 'bj'", &["deploy"], &["deploy"])
                .evaluate(&ok, &region)
                .run
        );
        let cut = Run(BTreeMap::from([("deploy", "interrupted")]), true);
        assert!(
            cond("cancelled()", &["deploy"], &["deploy"])
                .evaluate(&cut, &none)
                .run
        );
    }
}
