//! The run's timeline as SVG, one row per step: the wait from its needs being met to
//! its submission (grey), the job running (coloured by the step's status), each rolling
//! batch as a band over it, and the handoff from the upstream finish to the submission
//! as a purple tick before it. Every mark carries a tooltip with the exact figures.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{attr, text};
use crate::report::summary::{RunRecord, human};

const LABEL_W: f64 = 220.0;
const CHART_W: f64 = 960.0;
const ROW_H: f64 = 16.0;
const TOP: f64 = 22.0;

/// The timeline of `record` as an inline `<svg>` element; empty when nothing ran.
pub fn svg(record: &RunRecord) -> String {
    let Some(t0) = record
        .started()
        .or_else(|| record.steps.iter().filter_map(|s| s.times.started).min())
    else {
        return String::new();
    };
    let t1 = record
        .finished()
        .into_iter()
        .chain(record.steps.iter().filter_map(|s| s.times.finished))
        .max()
        .unwrap_or(t0);
    let span_ms = ((t1 - t0).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0).max(1.0);
    let x = |at: DateTime<Utc>| {
        let ms = (at - t0).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        LABEL_W + (ms / span_ms).clamp(0.0, 1.0) * CHART_W
    };
    let height = TOP + ROW_H * record.steps.len() as f64 + 4.0;
    let width = LABEL_W + CHART_W + 10.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"gantt\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    for i in 0..=5 {
        let frac = f64::from(i) / 5.0;
        let gx = LABEL_W + frac * CHART_W;
        let label = human(std::time::Duration::from_micros(
            (frac * span_ms * 1000.0) as u64,
        ));
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{gx:.1}\" y1=\"{}\" x2=\"{gx:.1}\" y2=\"{height}\"/><text x=\"{gx:.1}\" y=\"12\" text-anchor=\"{}\">{}</text>",
            TOP - 4.0,
            if i == 5 { "end" } else { "middle" },
            text(&label)
        );
    }
    for (row, step) in record.steps.iter().enumerate() {
        let y = TOP + row as f64 * ROW_H;
        let _ = write!(
            out,
            "<g class=\"row\" data-step=\"{}\"><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            attr(&step.id),
            LABEL_W - 6.0,
            y + ROW_H - 4.0,
            text(&truncate(&step.id, 30))
        );
        let times = &step.times;
        let end = times.finished.unwrap_or(t1);
        if let Some(started) = times.started {
            let until = times.submitted.unwrap_or(end);
            segment(
                &mut out,
                "seg-wait",
                x(started),
                x(until),
                y,
                &format!("{}: waiting {}", step.id, between(started, until)),
            );
        }
        if let Some(submitted) = times.submitted {
            segment(
                &mut out,
                &format!("seg-run st-{}", attr(&step.status)),
                x(submitted),
                x(end),
                y,
                &format!(
                    "{}: {} after {} (job {})",
                    step.id,
                    step.status.replace('_', " "),
                    between(submitted, end),
                    step.job_instance_id
                        .map_or_else(|| "-".to_owned(), |j| j.to_string())
                ),
            );
            for batch in &times.batches {
                let to = batch.to.unwrap_or(end);
                segment(
                    &mut out,
                    "seg-batch",
                    x(batch.from),
                    x(to),
                    y + 3.0,
                    &format!(
                        "{}: batch {}/{} for {}",
                        step.id,
                        batch.k,
                        batch.n,
                        between(batch.from, to)
                    ),
                );
            }
            if let Some(us) = step.timings.handoff_us {
                let from =
                    submitted - chrono::Duration::microseconds(i64::try_from(us).unwrap_or(0));
                let _ = write!(
                    out,
                    "<line class=\"handoff\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"><title>{}</title></line>",
                    x(from) - 2.0,
                    y + ROW_H / 2.0,
                    x(submitted),
                    y + ROW_H / 2.0,
                    text(&format!(
                        "{}: handoff {}µs from the finish of {} to its submission",
                        step.id,
                        us,
                        step.needs.join(", ")
                    ))
                );
            }
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

fn segment(out: &mut String, class: &str, x0: f64, x1: f64, y: f64, title: &str) {
    let h = if class == "seg-batch" {
        ROW_H - 8.0
    } else {
        ROW_H - 3.0
    };
    let _ = write!(
        out,
        "<rect class=\"{class}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{}</title></rect>",
        (x1 - x0).max(1.5),
        text(title)
    );
}

fn between(a: DateTime<Utc>, b: DateTime<Utc>) -> String {
    human((b - a).to_std().unwrap_or_default())
}

fn truncate(id: &str, max: usize) -> String {
    if id.chars().count() <= max {
        return id.to_owned();
    }
    let mut cut: String = id.chars().take(max - 1).collect();
    cut.push('…');
    cut
}
