//! Compiling a plan: from the typed model to a [`CompiledPlan`] the engine runs. The
//! step graph, the templates registered once with their reference checks, JOB's rules
//! on the plan, and a dry run that encodes every step for the chosen protocol.

pub mod compiled;
pub mod condition;
pub mod dry_run;
#[cfg(test)]
mod encoding_tests;
pub mod fan_out;
pub mod fingerprint;
pub mod graph;
pub mod job_rules;
pub mod limits;
pub mod loading;
pub mod references;
pub mod render;
pub mod request;
pub mod settings;
pub mod template;
pub mod vocabulary;

pub use crate::plan::job_exports::JobExport;
pub use compiled::{
    CompileOptions, CompiledPlan, DEFAULT_PROTOCOL, StepOutline, compile, load_and_compile,
};
pub use fingerprint::{PlanHashes, fingerprint};
pub use loading::load;
pub use render::{RenderContext, RenderError};
pub use settings::{OnFailure, ResolvedStep, StepSettings};
