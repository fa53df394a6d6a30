//! Notifications around a run: the channels a run tells (the profile's own, and those
//! the plan's `notify:` rules name or give), the message built from the run's record,
//! and what became of each send, written to the journal and, when one failed, to the
//! report's warnings. Never changes the exit code.

use std::path::Path;

use crate::error::{Error, UsageError};
use crate::mask::Masker;
use crate::notify::{self, Channel, Delivery, Format, Message, SendOptions, When};
use crate::plan::notify::{NotifyFormat, NotifyRule, NotifyWhen};
use crate::report::summary::{RunRecord, human};
use crate::state::journal::{self, Marker};
use crate::state::session::Session;

/// The channels of a run: every profile channel with an `on:` of its own, then one per
/// plan rule. A rule naming a channel the profile lacks is a usage error (exit 2),
/// found before anything is sent.
pub fn channels(
    plan: &Path,
    rules: &[NotifyRule],
    profile: &[Channel],
) -> Result<Vec<Channel>, Error> {
    let mut out: Vec<Channel> = profile
        .iter()
        .filter(|c| !c.on.is_empty())
        .cloned()
        .collect();
    for rule in rules {
        let on: Vec<When> = if rule.on.is_empty() {
            vec![When::Failure]
        } else {
            rule.on.iter().map(|w| when_of(*w)).collect()
        };
        let channel = match (&rule.channel, &rule.url) {
            (Some(name), _) => {
                let found = profile
                    .iter()
                    .find(|c| c.name.as_deref() == Some(name.as_str()))
                    .ok_or_else(|| UsageError::UnknownNotifyChannel {
                        plan: plan.to_path_buf(),
                        name: name.clone(),
                        known: profile
                            .iter()
                            .filter_map(|c| c.name.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
                Channel {
                    on,
                    ..found.clone()
                }
            }
            (None, Some(url)) => Channel {
                name: None,
                format: match rule.format.unwrap_or(NotifyFormat::Json) {
                    NotifyFormat::Wecom => Format::Wecom,
                    NotifyFormat::Feishu => Format::Feishu,
                    NotifyFormat::Slack => Format::Slack,
                    NotifyFormat::Json => Format::Json,
                },
                url: url.clone(),
                secret: None,
                on,
            },
            // Refused by the plan's own checks.
            (None, None) => continue,
        };
        out.push(channel);
    }
    Ok(out)
}

fn when_of(when: NotifyWhen) -> When {
    match when {
        NotifyWhen::Failure => When::Failure,
        NotifyWhen::Success => When::Success,
        NotifyWhen::Approval => When::Approval,
    }
}

/// The message for the end of the run `record` describes; `error` is what stopped it
/// when that was not a step.
pub fn end_message(record: &RunRecord, report: Option<&Path>, error: Option<String>) -> Message {
    let exit_code = record.exit_code;
    let duration = match (record.started(), record.finished()) {
        (Some(a), Some(b)) => Some(human((b - a).to_std().unwrap_or_default())),
        _ => None,
    };
    Message {
        when: if exit_code == Some(0) {
            When::Success
        } else {
            When::Failure
        },
        plan: record.plan.clone(),
        run_id: record.run_id.clone(),
        exit_code,
        failed: record
            .steps
            .iter()
            .filter(|s| matches!(s.status.as_str(), "failed" | "unknown" | "interrupted"))
            .map(|s| notify::FailedStep {
                id: s.id.clone(),
                status: s.status.clone(),
                reason: s.reason.clone(),
                hosts: s
                    .hosts
                    .iter()
                    .filter(|h| !h.ok)
                    .map(|h| match h.exit_code {
                        Some(code) => format!("{} exit {code}", h.host),
                        None => format!("{} {}", h.host, h.status_label),
                    })
                    .collect(),
            })
            .collect(),
        duration,
        report: report.map(|p| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        }),
        gate: None,
        error,
    }
}

/// Tells the channels due at the end of the run, journals each outcome, and adds a
/// warning to `record` for each that failed.
pub async fn at_end(
    client: &reqwest::Client,
    channels: &[Channel],
    record: &mut RunRecord,
    report: Option<&Path>,
    error: Option<String>,
    masker: &Masker,
    session: &Session,
) -> Vec<Delivery> {
    let message = end_message(record, report, error);
    let due = notify::due(channels, message.when);
    if due.is_empty() {
        return Vec::new();
    }
    let deliveries = notify::send_all(client, &due, &message, masker, SendOptions::default()).await;
    for delivery in &deliveries {
        let _ = session.mark(marker(delivery));
        if let Some(warning) = warning(delivery) {
            record.warnings.push(warning);
        }
    }
    deliveries
}

/// Tells the `approval` channels when a gate starts waiting, in the background so the
/// gate is never held up by a slow receiver. Watches the run's events; what became of
/// each send is journaled by [`GateNotices::settle`] once the run is over.
pub struct GateNotices {
    client: reqwest::Client,
    due: Vec<Channel>,
    masker: Masker,
    plan: String,
    run_id: String,
    sent: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<Vec<Delivery>>>>>,
}

/// The sends a [`GateNotices`] started, to be settled after the run.
pub struct GateSends(std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<Vec<Delivery>>>>>);

impl GateNotices {
    /// A watcher for the gates of run `run_id`, or `None` when no channel is due at
    /// gates.
    pub fn new(
        client: &reqwest::Client,
        channels: &[Channel],
        plan: &str,
        run_id: &str,
        masker: &Masker,
    ) -> Option<(Self, GateSends)> {
        let due = notify::due(channels, When::Approval);
        if due.is_empty() {
            return None;
        }
        let sent = std::sync::Arc::default();
        Some((
            GateNotices {
                client: client.clone(),
                due,
                masker: masker.clone(),
                plan: plan.to_owned(),
                run_id: run_id.to_owned(),
                sent: std::sync::Arc::clone(&sent),
            },
            GateSends(sent),
        ))
    }
}

impl crate::report::watch::Watcher for GateNotices {
    fn on_event(&mut self, event: &crate::executor::events::RunEvent) {
        let crate::executor::events::RunEvent::GateWaiting {
            step,
            message,
            command,
            ..
        } = event
        else {
            return;
        };
        let gate = notify::gate_reached(
            &self.plan,
            &self.run_id,
            &step.id,
            &format!("{message} (answer with `{command}`)"),
        );
        let (client, due, masker) = (self.client.clone(), self.due.clone(), self.masker.clone());
        let send = tokio::spawn(async move {
            notify::send_all(&client, &due, &gate, &masker, SendOptions::default()).await
        });
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(send);
    }
}

impl GateSends {
    /// Waits for the gate notices still on their way (each bounded by the send
    /// options), journals each outcome and adds a warning to `record` for each that
    /// failed.
    pub async fn settle(self, record: &mut RunRecord, session: &Session) {
        let sends = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for send in sends {
            for delivery in send.await.unwrap_or_default() {
                let _ = session.mark(marker(&delivery));
                if let Some(warning) = warning(&delivery) {
                    record.warnings.push(warning);
                }
            }
        }
    }
}

/// Tells the failure channels of a run that could not get going (exit 3 before its
/// steps ran: the emulator or callback receiver would not start, JOB refused the
/// session). There is no record to journal it in; the error is what they hear.
pub async fn at_error(
    channels: &[Channel],
    plan: &str,
    run_id: &str,
    error: &Error,
    masker: &Masker,
) -> Vec<Delivery> {
    let due = notify::due(channels, When::Failure);
    if due.is_empty() {
        return Vec::new();
    }
    let Ok(client) = crate::job_api::client::build_http_client(&Default::default()) else {
        return Vec::new();
    };
    let message = Message {
        when: When::Failure,
        plan: plan.to_owned(),
        run_id: run_id.to_owned(),
        exit_code: Some(error.exit_code()),
        failed: Vec::new(),
        duration: None,
        report: None,
        gate: None,
        error: Some(masker.mask(&error.to_string())),
    };
    notify::send_all(&client, &due, &message, masker, SendOptions::default()).await
}

/// The journal line of a delivery.
pub fn marker(delivery: &Delivery) -> Marker {
    Marker::Notified {
        at: journal::now_text(),
        channel: delivery.channel.clone(),
        when: format!("{:?}", delivery.when).to_lowercase(),
        ok: delivery.ok,
        attempts: delivery.attempts,
        error: delivery.error.clone(),
    }
}

/// The report's warning for a delivery that failed.
pub fn warning(delivery: &Delivery) -> Option<String> {
    (!delivery.ok).then(|| {
        format!(
            "notification to {} failed after {} attempt{}: {}",
            delivery.channel,
            delivery.attempts,
            if delivery.attempts == 1 { "" } else { "s" },
            delivery.error.as_deref().unwrap_or("unknown error")
        )
    })
}

/// The warning a journaled notification gives the record rebuilt by `baton runs show`.
pub fn replayed_warning(marker: &Marker) -> Option<String> {
    let Marker::Notified {
        channel,
        ok: false,
        attempts,
        error,
        ..
    } = marker
    else {
        return None;
    };
    warning(&Delivery {
        channel: channel.clone(),
        when: When::Failure,
        ok: false,
        attempts: *attempts,
        error: error.clone(),
    })
}
