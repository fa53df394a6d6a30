//! Plan files: the YAML model, loading with source locations, static validation and
//! the JSON Schema.

pub mod load;
pub mod model;
pub mod schema;
pub mod span;
pub mod validate;
pub mod vars;
