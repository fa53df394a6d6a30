//! Telling people about a run: where (a chat robot or webhook), when (the run failed,
//! succeeded, or waits at an approval gate) and what (a short message: plan, run id,
//! failed steps and hosts, duration, where the report is).
//!
//! Channels come from the profile (their URLs hold tokens and stay out of git) or from
//! the plan (a generic webhook without a secret, or a profile channel named). Sending
//! is bounded: a timeout per attempt, a few attempts, a deadline for all of them
//! together; it never changes the run's exit code, and every message is masked by the
//! run's masker before it leaves. What happened to each message is returned for the
//! journal and the report's warnings.

mod format;
mod send;

use serde::{Deserialize, Serialize};

pub use format::{FailedStep, Message, body};
pub use send::{Delivery, SendOptions, send_all};

/// The body format a receiver understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// WeCom (企业微信) group robot, `msgtype: markdown`.
    Wecom,
    /// Feishu / Lark custom bot, `msg_type: text` (signed when a secret is set).
    Feishu,
    /// Slack incoming webhook, `text` in mrkdwn.
    Slack,
    /// Any receiver: the facts as one JSON object (`baton.notification` v1).
    Json,
}

/// When a channel is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// The run ended with a non-zero exit code.
    Failure,
    /// The run ended with exit code 0.
    Success,
    /// A step waits at an approval gate.
    Approval,
}

/// One place to send notifications.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// The name a plan uses to refer to it.
    #[serde(default)]
    pub name: Option<String>,
    /// Its body format.
    pub format: Format,
    /// The robot or webhook URL (tokens included).
    pub url: String,
    /// Feishu signing secret, when the bot requires signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When to send; a profile channel with no `on` is used only when a plan names it.
    #[serde(default)]
    pub on: Vec<When>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("url", &"******")
            .field("on", &self.on)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// What reports call it: its name, else its format and host (never its token).
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let host = reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into());
        format!("{:?} webhook at {host}", self.format).to_lowercase()
    }

    /// The values of this channel that must never be written: the URL's query and path
    /// (robot keys live there) and the signing secret.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(url) = reqwest::Url::parse(&self.url) {
            if let Some(query) = url.query() {
                out.extend(
                    query
                        .split('&')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(_, v)| v.to_owned()),
                );
            }
            out.extend(
                url.path_segments()
                    .into_iter()
                    .flatten()
                    .filter(|segment| segment.len() >= 16)
                    .map(str::to_owned),
            );
        }
        out.extend(self.secret.clone());
        out
    }
}

/// The channels to tell of `when`, from `channels` (profile and plan, resolved).
pub fn due(channels: &[Channel], when: When) -> Vec<Channel> {
    channels
        .iter()
        .filter(|c| c.on.contains(&when))
        .cloned()
        .collect()
}

/// The message for an approval gate: `step` waits for a person to answer `prompt`.
/// The command line's `notices::GateNotices` sends it to the `approval` channels in the
/// background when a gate is reached.
pub fn gate_reached(plan: &str, run_id: &str, step: &str, prompt: &str) -> Message {
    Message {
        when: When::Approval,
        plan: plan.to_owned(),
        run_id: run_id.to_owned(),
        exit_code: None,
        failed: Vec::new(),
        duration: None,
        report: None,
        gate: Some(format!("{step}: {prompt}")),
        error: None,
    }
}

#[cfg(test)]
mod tests;
