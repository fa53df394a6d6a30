//! A plan's `notify:` rules: whom to tell, and when. A rule names a channel of the
//! profile (whose URL holds a token and stays out of git), or gives a webhook URL that
//! holds no secret.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One `notify:` rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyRule {
    /// A channel of the profile's `notify:` list, by its `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Or a webhook URL (without a secret in it: plans are committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The body format for `url`; default `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<NotifyFormat>,
    /// When to tell; default `[failure]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<NotifyWhen>,
}

/// Body formats of chat robots and webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// WeCom group robot markdown.
    Wecom,
    /// Feishu / Lark custom bot.
    Feishu,
    /// Slack incoming webhook.
    Slack,
    /// A generic JSON object.
    Json,
}

/// Moments worth telling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyWhen {
    /// The run ended with a non-zero exit code.
    Failure,
    /// The run ended with exit code 0.
    Success,
    /// A step waits at an approval gate.
    Approval,
}
