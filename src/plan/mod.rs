//! Plan files: the YAML model, loading with source locations, the plan's own checks,
//! variables and the JSON Schema.

pub mod check;
pub mod condition;
pub mod expansion;
pub mod fan_out;
pub mod findings;
pub mod handlers;
pub mod job_exports;
pub mod load;
pub mod model;
pub mod notify;
pub mod push_config;
pub mod schema;
pub mod secrets;
pub mod span;
pub mod vars;

pub use findings::Findings;
pub use load::{LoadedPlan, load};
pub use model::Plan;
pub use span::{Issue, Location, PlanErrors, PlanSource};
pub use vars::{ResolvedVars, VarInputs};
