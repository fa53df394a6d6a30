//! The plan file's JSON Schema, generated from the model so it cannot drift from what
//! baton parses; `baton schema` prints it and `schemas/plan.schema.json` commits it for
//! editors (`# yaml-language-server: $schema=...`).

use super::model::Plan;

/// The schema as pretty JSON with a trailing newline, exactly as committed.
pub fn plan_schema_json() -> String {
    let schema = schemars::schema_for!(Plan);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

/// The schema as a JSON value.
pub fn plan_schema() -> serde_json::Value {
    schemars::schema_for!(Plan).to_value()
}
