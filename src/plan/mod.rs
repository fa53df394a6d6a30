//! Plan files: the YAML model, loading with source locations, variables, static
//! validation and the JSON Schema.

pub mod expansion;
pub mod load;
pub mod model;
pub mod schema;
pub mod span;
pub mod validate;
pub mod vars;

pub use load::{LoadedPlan, load};
pub use model::Plan;
pub use span::{Issue, Location, PlanErrors, PlanSource};
pub use validate::{
    RenderContext, RenderError, ValidateOptions, ValidatedPlan, load_and_validate, validate,
};
pub use vars::{ResolvedVars, VarInputs};
