//! A config push step (`push_config:`): small text files rendered from the plan and
//! written to the targets by JOB's `push_config_file`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Files whose contents the plan renders, pushed to every target.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushConfigStep {
    /// Absolute target folder (`file_target_path`; templated).
    pub target_path: String,
    /// The files (`file_list`), each a name and its text.
    pub files: Vec<ConfigFile>,
}

/// One config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// File name in the target folder, without a folder (templated).
    pub name: String,
    /// The text (templated; baton base64-encodes it).
    pub content: String,
}
