//! Building the first step of a plan written as YAML, the way the engine does: through
//! the [`JobRequest`](crate::job_api::request::JobRequest) compile makes of it.

use crate::compile::request::encode_step;
use crate::compile::settings::StepSettings;
use crate::job_api::build::{ApiCall, BuildError};
use crate::job_api::types::Protocol;
use crate::plan::model::Plan;

/// Builds the first step of the plan `yaml` for `protocol`.
pub(crate) fn build_first(protocol: Protocol, yaml: &str) -> Result<ApiCall, Vec<BuildError>> {
    let plan: Plan = serde_yaml::from_str(yaml).unwrap();
    let settings = StepSettings::resolve(&plan, &plan.steps[0]);
    encode_step(&plan, &plan.steps[0], &settings, protocol)
}

/// The fields the errors name, in order.
pub(crate) fn fields(errors: &[BuildError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}
