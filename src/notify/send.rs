//! Sending, bounded: each attempt has a timeout, a channel gets a few attempts (again
//! only on a transport error, a 429 or a 5xx), and all channels together have one
//! deadline, after which whatever is still pending is abandoned and reported as such.
//! Channels are told in parallel, so one hanging receiver delays no other.

use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;

use super::{Channel, Format, Message, When, body};
use crate::mask::Masker;

/// How long sending may take.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions {
    /// One attempt.
    pub timeout: Duration,
    /// Attempts per channel.
    pub attempts: u32,
    /// Pause between attempts.
    pub backoff: Duration,
    /// All channels, all attempts.
    pub deadline: Duration,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            timeout: Duration::from_secs(5),
            attempts: 3,
            backoff: Duration::from_millis(500),
            deadline: Duration::from_secs(15),
        }
    }
}

/// What became of one notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The channel, as reports name it (never its URL).
    pub channel: String,
    /// Why it was sent.
    pub when: When,
    /// The receiver accepted it.
    pub ok: bool,
    /// Attempts made.
    pub attempts: u32,
    /// Why it was not delivered (masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Sends `message` to every channel in `channels` at once and returns, within
/// `options.deadline`, what became of each. Bodies and errors are masked by `masker`.
pub async fn send_all(
    client: &reqwest::Client,
    channels: &[Channel],
    message: &Message,
    masker: &Masker,
    options: SendOptions,
) -> Vec<Delivery> {
    let mut tasks = JoinSet::new();
    for (index, channel) in channels.iter().enumerate() {
        let client = client.clone();
        let channel = channel.clone();
        let message = message.clone();
        let masker = masker.clone();
        tasks.spawn(async move {
            (
                index,
                send_one(&client, &channel, &message, &masker, options).await,
            )
        });
    }
    let mut results: Vec<Option<Delivery>> = vec![None; channels.len()];
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            if let Ok((index, delivery)) = joined
                && let Some(slot) = results.get_mut(index)
            {
                *slot = Some(delivery);
            }
        }
    };
    let _ = tokio::time::timeout(options.deadline, collect).await;
    tasks.abort_all();
    channels
        .iter()
        .zip(results)
        .map(|(channel, result)| {
            result.unwrap_or_else(|| Delivery {
                channel: channel.label(),
                when: message.when,
                ok: false,
                attempts: 0,
                error: Some(format!(
                    "abandoned after {}: the receiver did not answer in time",
                    humantime::format_duration(options.deadline)
                )),
            })
        })
        .collect()
}

async fn send_one(
    client: &reqwest::Client,
    channel: &Channel,
    message: &Message,
    masker: &Masker,
    options: SendOptions,
) -> Delivery {
    let signed_at = chrono::Utc::now().timestamp();
    let json = body(
        channel.format,
        message,
        channel.secret.as_deref(),
        signed_at,
    );
    let text = masker.mask(&json.to_string());
    let mut delivery = Delivery {
        channel: channel.label(),
        when: message.when,
        ok: false,
        attempts: 0,
        error: None,
    };
    for attempt in 1..=options.attempts.max(1) {
        if attempt > 1 {
            tokio::time::sleep(options.backoff).await;
        }
        delivery.attempts = attempt;
        let sent = client
            .post(&channel.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(options.timeout)
            .body(text.clone())
            .send()
            .await;
        let (error, again) = match sent {
            Ok(response) => {
                let status = response.status();
                let answer = response.text().await.unwrap_or_default();
                if status.is_success() {
                    match refused(channel.format, &answer) {
                        None => {
                            delivery.ok = true;
                            delivery.error = None;
                            return delivery;
                        }
                        Some(why) => (why, false),
                    }
                } else {
                    (
                        format!("HTTP {status}: {}", first_line(&answer)),
                        status.is_server_error() || status.as_u16() == 429,
                    )
                }
            }
            Err(e) if e.is_timeout() => (
                format!(
                    "no answer within {}",
                    humantime::format_duration(options.timeout)
                ),
                true,
            ),
            // reqwest names the URL, and a robot's key sits in it.
            Err(e) => (strip_url(e), true),
        };
        delivery.error = Some(masker.mask(&error));
        if !again {
            break;
        }
    }
    delivery
}

/// A 200 whose body says the robot refused the message (WeCom `errcode`, Feishu `code`).
fn refused(format: Format, answer: &str) -> Option<String> {
    if !matches!(format, Format::Wecom | Format::Feishu) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(answer).ok()?;
    let code = value
        .get("errcode")
        .or_else(|| value.get("code"))
        .or_else(|| value.get("StatusCode"))
        .and_then(serde_json::Value::as_i64)?;
    (code != 0).then(|| {
        let why = value
            .get("errmsg")
            .or_else(|| value.get("msg"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        format!("the robot refused the message: code {code} {why}")
    })
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(200).collect()
}

fn strip_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut out = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
