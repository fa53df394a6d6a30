//! The message and its body in each receiver's format. Bodies stay short: at most a
//! few failed steps and hosts are named, the rest counted, so a release with 300 failed
//! hosts still fits a chat robot's size limit.

use std::fmt::Write as _;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Format, When};

/// Failed steps named in a message; the rest are counted.
const MAX_STEPS: usize = 8;
/// Hosts named per step; the rest are counted.
const MAX_HOSTS: usize = 5;

/// A step that did not succeed, as a message names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedStep {
    /// Step id.
    pub id: String,
    /// `failed`, `unknown`, `interrupted`.
    pub status: String,
    /// Why, in one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its failed hosts (`cloud:ip`, with the exit code when known).
    pub hosts: Vec<String>,
}

/// What a notification says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Why it is sent.
    pub when: When,
    /// Plan name.
    pub plan: String,
    /// Run id.
    pub run_id: String,
    /// The run's exit code, once it ended.
    pub exit_code: Option<u8>,
    /// Steps that did not succeed.
    pub failed: Vec<FailedStep>,
    /// How long the run took (`1m40s`).
    pub duration: Option<String>,
    /// Where the report is (the HTML page, else the JSON report).
    pub report: Option<String>,
    /// For an approval gate: the step and what it asks.
    pub gate: Option<String>,
    /// What stopped the run, when it was not a step (JOB unreachable, refused).
    pub error: Option<String>,
}

impl Message {
    /// The one-line title.
    pub fn title(&self) -> String {
        match self.when {
            When::Failure => format!(
                "baton: {} FAILED (exit {})",
                self.plan,
                self.exit_code.map_or_else(|| "?".into(), |c| c.to_string())
            ),
            When::Success => format!("baton: {} succeeded", self.plan),
            When::Approval => format!("baton: {} waits for approval", self.plan),
        }
    }

    /// The lines under the title, plain.
    fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut run = format!("run {}", self.run_id);
        if let Some(duration) = &self.duration {
            let _ = write!(run, ", {duration}");
        }
        lines.push(run);
        if let Some(gate) = &self.gate {
            lines.push(format!("gate: {gate}"));
        }
        if let Some(error) = &self.error {
            lines.push(format!("error: {error}"));
        }
        for step in self.failed.iter().take(MAX_STEPS) {
            let mut line = format!("{} {}", step.id, step.status.replace('_', " "));
            if let Some(reason) = &step.reason {
                let _ = write!(line, ": {reason}");
            }
            if !step.hosts.is_empty() {
                let shown: Vec<&str> = step
                    .hosts
                    .iter()
                    .take(MAX_HOSTS)
                    .map(String::as_str)
                    .collect();
                let _ = write!(line, " [{}", shown.join(", "));
                if step.hosts.len() > MAX_HOSTS {
                    let _ = write!(line, " and {} more", step.hosts.len() - MAX_HOSTS);
                }
                line.push(']');
            }
            lines.push(line);
        }
        if self.failed.len() > MAX_STEPS {
            lines.push(format!("and {} more steps", self.failed.len() - MAX_STEPS));
        }
        if let Some(report) = &self.report {
            lines.push(format!("report: {report}"));
        }
        lines
    }

    /// Title and lines as plain text.
    pub fn text(&self) -> String {
        let mut out = self.title();
        for line in self.lines() {
            out.push('\n');
            out.push_str(&line);
        }
        out
    }
}

/// The request body for `format`; `signed_at` (Unix seconds) and `secret` sign a Feishu
/// body when the bot requires it.
pub fn body(format: Format, message: &Message, secret: Option<&str>, signed_at: i64) -> Value {
    match format {
        Format::Wecom => {
            let colour = match message.when {
                When::Failure => "warning",
                When::Success => "info",
                When::Approval => "comment",
            };
            let mut content = format!("**<font color=\"{colour}\">{}</font>**", message.title());
            for line in message.lines() {
                let _ = write!(content, "\n> {line}");
            }
            json!({"msgtype": "markdown", "markdown": {"content": content}})
        }
        Format::Feishu => {
            let mut body = json!({"msg_type": "text", "content": {"text": message.text()}});
            if let Some(secret) = secret {
                body["timestamp"] = json!(signed_at.to_string());
                body["sign"] = json!(feishu_sign(secret, signed_at));
            }
            body
        }
        Format::Slack => {
            let mut text = format!("*{}*", message.title());
            for line in message.lines() {
                let _ = write!(text, "\n{line}");
            }
            json!({"text": text})
        }
        Format::Json => json!({
            "schema": "baton.notification",
            "schema_version": 1,
            "event": message.when,
            "plan": message.plan,
            "run_id": message.run_id,
            "exit_code": message.exit_code,
            "failed_steps": message.failed,
            "duration": message.duration,
            "report": message.report,
            "gate": message.gate,
            "error": message.error,
            "text": message.text(),
        }),
    }
}

/// Feishu's custom-bot signature: HMAC-SHA256 keyed with `"{timestamp}\n{secret}"` over
/// an empty message, base64.
fn feishu_sign(secret: &str, timestamp: i64) -> String {
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        format!("{timestamp}\n{secret}").as_bytes(),
    );
    let tag = ring::hmac::sign(&key, b"");
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}
