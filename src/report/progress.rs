//! Live progress on a terminal: an overall bar (steps done / total) and one spinner
//! line per running step with its elapsed time, JOB instance, host counts and rolling
//! batch. All spinners are ticked from one tokio task — indicatif's steady tick would
//! spawn a thread per bar. Finished steps leave one permanent line above the bars.
//!
//! A confirmation prompt must not be drawn over: [`DrawPause`] clears the bars and
//! stops drawing while a question waits for its answer, keeping the lines printed
//! meanwhile to print them once drawing resumes. (`MultiProgress::suspend` would hold
//! indicatif's lock for as long as the person takes to answer, blocking the async
//! workers that tick and update the bars.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::executor::events::{RunEvent, StepStatus};

use super::line::{describe, host_counts};
use super::watch::Watcher;

type Bars = Arc<Mutex<HashMap<usize, ProgressBar>>>;

/// Lines printed while drawing is paused, or `None` while drawing.
type Paused = Arc<Mutex<Option<Vec<String>>>>;

/// Pauses and resumes the progress display around a terminal prompt. Cloneable.
#[derive(Clone)]
pub struct DrawPause {
    multi: MultiProgress,
    paused: Paused,
}

impl DrawPause {
    /// Clears the bars and stops drawing until [`DrawPause::resume`].
    pub fn pause(&self) {
        let Ok(mut paused) = self.paused.lock() else {
            return;
        };
        if paused.is_none() {
            let _ = self.multi.clear();
            self.multi.set_draw_target(ProgressDrawTarget::hidden());
            *paused = Some(Vec::new());
        }
    }

    /// Draws again, first printing what was held back.
    pub fn resume(&self) {
        let Ok(mut paused) = self.paused.lock() else {
            return;
        };
        if let Some(lines) = paused.take() {
            self.multi.set_draw_target(ProgressDrawTarget::stderr());
            for line in lines {
                let _ = self.multi.println(line);
            }
        }
    }

    /// Prints a permanent line above the bars, or keeps it for later while paused.
    fn println(&self, text: &str) {
        match self.paused.lock() {
            Ok(mut paused) => match paused.as_mut() {
                Some(lines) => lines.push(text.to_owned()),
                None => {
                    let _ = self.multi.println(text);
                }
            },
            Err(_) => {
                let _ = self.multi.println(text);
            }
        }
    }
}

/// The TTY reporter.
pub struct ProgressReporter {
    multi: MultiProgress,
    overall: ProgressBar,
    bars: Bars,
    pause: DrawPause,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl ProgressReporter {
    /// Draws on stderr. Must be created inside a tokio runtime (for the ticker).
    pub fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} steps  {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.set_prefix("baton");
        let bars: Bars = Arc::new(Mutex::new(HashMap::new()));
        let tick_bars = Arc::clone(&bars);
        let tick_overall = overall.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(120));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                tick_overall.tick();
                if let Ok(bars) = tick_bars.lock() {
                    for bar in bars.values() {
                        bar.tick();
                    }
                }
            }
        });
        let pause = DrawPause {
            multi: multi.clone(),
            paused: Arc::new(Mutex::new(None)),
        };
        ProgressReporter {
            multi,
            overall,
            bars,
            pause,
            ticker: Some(ticker),
        }
    }

    /// The handle a terminal prompt uses to keep the bars out of its way.
    pub fn pause_handle(&self) -> DrawPause {
        self.pause.clone()
    }

    fn step_bar(&self, index: usize, id: &str) -> Option<ProgressBar> {
        let mut bars = self.bars.lock().ok()?;
        let bar = bars.entry(index).or_insert_with(|| {
            let bar = self
                .multi
                .insert_before(&self.overall, ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner:.green} {prefix:<24} {elapsed:>4}  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(id.to_owned());
            bar.set_message("preparing");
            bar
        });
        Some(bar.clone())
    }

    fn remove_bar(&self, index: usize) {
        if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(&index)) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn println(&self, text: &str) {
        self.pause.println(text);
    }
}

impl Default for ProgressReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Watcher for ProgressReporter {
    fn on_event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::RunStarted { steps, .. } => {
                self.overall.set_length(steps.len() as u64);
                if let Some(text) = describe(event) {
                    self.println(&text);
                }
            }
            RunEvent::StepStarted { step, .. } => {
                self.step_bar(step.index, &step.id);
            }
            RunEvent::StepSubmitted {
                step,
                job_instance_id,
                ..
            } => {
                if let Some(bar) = self.step_bar(step.index, &step.id) {
                    bar.set_message(format!("job {job_instance_id} submitted"));
                }
            }
            RunEvent::StepProgress {
                step,
                job_instance_id,
                status,
                hosts,
                batch,
                ..
            } => {
                if let Some(bar) = self.step_bar(step.index, &step.id) {
                    let batch = batch
                        .map(|(k, n)| format!("  batch {k}/{n}"))
                        .unwrap_or_default();
                    bar.set_message(format!(
                        "job {job_instance_id} {}{batch}  {}",
                        status.label(),
                        host_counts(hosts, " / ")
                    ));
                }
            }
            RunEvent::StepRetrying { step, attempt, .. } => {
                if let Some(bar) = self.step_bar(step.index, &step.id) {
                    bar.set_message(format!("retrying (attempt {attempt})"));
                }
            }
            RunEvent::StepFinished { step, outcome, .. } => {
                self.remove_bar(step.index);
                self.overall.inc(1);
                let mark = match outcome.status {
                    StepStatus::Succeeded => "✔",
                    StepStatus::Failed => "✘",
                    StepStatus::Unknown => "?",
                    _ => "■",
                };
                if let Some(text) = describe(event) {
                    self.println(&format!("{mark} {text}"));
                }
            }
            RunEvent::StepNotRun { step, .. } => {
                self.remove_bar(step.index);
                self.overall.inc(1);
                if let Some(text) = describe(event) {
                    self.println(&format!("- {text}"));
                }
            }
            RunEvent::StepWaitingUser { .. }
            | RunEvent::HandlerTriggered { .. }
            | RunEvent::GateWaiting { .. }
            | RunEvent::GateDecided { .. }
            | RunEvent::Warning { .. }
            | RunEvent::Interrupted { .. } => {
                if let Some(text) = describe(event) {
                    self.println(&text);
                }
            }
            RunEvent::StepSubmitting { .. } | RunEvent::RunFinished { .. } => {}
        }
    }

    fn finish(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
        // A prompt cut short (Ctrl-C) must not swallow the last lines.
        self.pause.resume();
        if let Ok(mut bars) = self.bars.lock() {
            for (_, bar) in bars.drain() {
                bar.finish_and_clear();
            }
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl Drop for ProgressReporter {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
    }
}
