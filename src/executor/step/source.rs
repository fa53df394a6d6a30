//! The plan as a step's life sees it: `StepSource` (when, render, build, secrets),
//! what rendering may read (`RenderInput`), and its implementation for the compiled
//! plan, which turns earlier steps' results into the template engine's context.

use std::collections::BTreeMap;

use super::StepOutput;
use crate::compile::condition::StepCondition;
use crate::compile::condition::{Targets, TargetsFrom};
use crate::compile::request::encode_step;
use crate::compile::template::StepResult;
use crate::compile::{CompiledPlan, RenderContext, RenderError, ResolvedStep};
use crate::job_api::build::{ApiCall, BuildErrors};
use crate::job_api::types::Protocol;

/// What rendering a step may read.
#[derive(Debug, Clone, Copy)]
pub struct RenderInput<'a> {
    /// The run id.
    pub run_id: &'a str,
    /// Every succeeded step so far, by index.
    pub results: &'a BTreeMap<usize, StepOutput>,
}

/// The plan as the step runner needs it: templating and request building live behind
/// this trait, so the runner can be tested with a fake plan.
pub trait StepSource: Send + Sync + 'static {
    /// The id of step `index`, if the plan has such a step.
    fn step_id(&self, index: usize) -> Option<&str>;
    /// Evaluates the step's `when:` (true when absent).
    fn when(&self, index: usize, input: &RenderInput<'_>) -> Result<bool, RenderError>;
    /// Renders the step's templates; its settings come with it.
    fn render(&self, index: usize, input: &RenderInput<'_>) -> Result<ResolvedStep, RenderError>;
    /// Builds the protocol request for a rendered step.
    fn build(&self, protocol: Protocol, resolved: &ResolvedStep) -> Result<ApiCall, BuildErrors>;
    /// Secret values that must never be shown.
    fn secret_values(&self) -> Vec<String>;
    /// The step's compiled `if`, if it has one.
    fn condition(&self, _index: usize) -> Option<&StepCondition> {
        None
    }
    /// Where the step's targets are drawn from, when they are.
    fn targets_from(&self, _index: usize) -> Option<&TargetsFrom> {
        None
    }
    /// A plan variable's value, for conditions.
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

/// The real plan: `plan-frontend`'s templates and `job-protocol`'s request builder.
impl StepSource for CompiledPlan {
    fn step_id(&self, index: usize) -> Option<&str> {
        self.plan.steps.get(index).map(|s| s.id.as_str())
    }

    fn when(&self, index: usize, input: &RenderInput<'_>) -> Result<bool, RenderError> {
        self.evaluate_when(index, &render_context(input))
    }

    fn render(&self, index: usize, input: &RenderInput<'_>) -> Result<ResolvedStep, RenderError> {
        self.resolve_step(index, &render_context(input))
    }

    fn build(&self, protocol: Protocol, resolved: &ResolvedStep) -> Result<ApiCall, BuildErrors> {
        encode_step(&self.plan, &resolved.step, &resolved.settings, protocol).map_err(BuildErrors)
    }

    fn secret_values(&self) -> Vec<String> {
        self.vars
            .secret_values()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    fn condition(&self, index: usize) -> Option<&StepCondition> {
        CompiledPlan::condition(self, index)
    }

    fn targets_from(&self, index: usize) -> Option<&TargetsFrom> {
        match self.plan.steps.get(index)?.targets.as_ref()? {
            Targets::From(from) => Some(from),
            _ => None,
        }
    }

    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).map(str::to_owned)
    }
}

/// Upstream results as the template engine takes them (`steps.<id>.*`).
fn render_context(input: &RenderInput<'_>) -> RenderContext {
    RenderContext {
        run_id: input.run_id.to_owned(),
        step_results: input
            .results
            .values()
            .map(|r| {
                (
                    r.id.clone(),
                    StepResult {
                        job_instance_id: r.job_instance_id.map(|j| j.0).unwrap_or(0),
                        status: r.status.clone(),
                        outputs: r.outputs.clone(),
                        vars: r.vars.clone(),
                    },
                )
            })
            .collect(),
        mask_secrets: false,
        preview: false,
    }
}
