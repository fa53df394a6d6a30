//! Plan types of failure paths and gates: a target list drawn from an upstream step's
//! host results (`targets: {from: deploy, hosts: succeeded}`), and the approval gate
//! step kind (`approve: {message, timeout}`). The `if:` condition language they pair
//! with is parsed in `condition.rs`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::Seconds;

/// Targets drawn at run time from the hosts of an upstream step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetsFrom {
    /// The upstream step (it must be in this step's `needs`, directly or not).
    pub from: String,
    /// Which of its hosts: `succeeded` (default), `failed` or `all`.
    #[serde(default)]
    pub hosts: HostPick,
}

/// Which hosts of an upstream step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostPick {
    /// The hosts it succeeded on (the ones a rollback must restore).
    #[default]
    Succeeded,
    /// The hosts it failed on.
    Failed,
    /// Every host it ran on.
    All,
}

impl HostPick {
    /// The word used in the plan.
    pub fn name(self) -> &'static str {
        match self {
            HostPick::Succeeded => "succeeded",
            HostPick::Failed => "failed",
            HostPick::All => "all",
        }
    }
}

/// An approval gate: the run waits here for a person.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveStep {
    /// What the person is asked (templated).
    pub message: String,
    /// How long to wait without an answer before the gate ends `timed_out`
    /// (default 1h; seconds or a duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Seconds>,
}

/// A gate with no `timeout` waits this long.
pub const DEFAULT_GATE_TIMEOUT_SECS: u64 = 3600;
