//! The run as one self-contained HTML page (`--html FILE`): the header, the failures,
//! a timeline, the step graph and every step's details, collapsed. Inline CSS and
//! inline SVG only, no script and no link to anything, so the file opens the same
//! offline, from a mail or a chat attachment. Built from the same [`RunRecord`] as the
//! table and the JSON report, whose events were masked once at the sink: the page holds
//! no secret the JSON report would not.

mod dag;
mod gantt;

use std::fmt::Write as _;

use crate::report::summary::{RunRecord, StepRecord, human};

/// Why an edge is in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// `needs:`: the target waits for the source.
    Needs,
    /// The target handles the source's failure (drawn dashed, in its own colour).
    Handler,
}

/// One edge of the step graph, by step id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagEdge {
    /// Source step id.
    pub from: String,
    /// Target step id.
    pub to: String,
    /// What it means.
    pub kind: EdgeKind,
}

/// The `needs` edges the record carries, in plan order.
pub fn needs_edges(record: &RunRecord) -> Vec<DagEdge> {
    record
        .steps
        .iter()
        .flat_map(|step| {
            step.needs.iter().map(|need| DagEdge {
                from: need.clone(),
                to: step.id.clone(),
                kind: if step.runs_after_failures {
                    EdgeKind::Handler
                } else {
                    EdgeKind::Needs
                },
            })
        })
        .collect()
}

/// What an exit code says, as the README's table says it.
pub fn exit_meaning(code: u8) -> &'static str {
    match code {
        0 => "every step succeeded (or was skipped by `when:`)",
        1 => "a step failed; its dependents did not run",
        2 => "invalid plan, inputs or usage; nothing was sent",
        3 => "infrastructure: JOB unreachable, refused, or a local service failed",
        4 => "a step is in doubt: JOB could not tell whether its submission started a job",
        5 => "an approval gate was rejected or nobody answered it in time",
        75 => "another run of the same plan held its lock",
        130 => "interrupted",
        _ => "unrecognised exit code",
    }
}

/// The page for `record`, its graph drawn with its `needs` edges (a failure
/// handler's edges drawn apart).
pub fn render(record: &RunRecord) -> String {
    let edges = needs_edges(record);
    let mut out = String::with_capacity(64 * 1024 + record.steps.len() * 2048);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>baton: {} run {}</title>\n<style>\n{}</style>\n</head>\n<body>\n",
        text(&record.plan),
        text(&record.run_id),
        include_str!("page.css")
    );
    header(&mut out, record);
    failures(&mut out, record);
    if !record.warnings.is_empty() {
        out.push_str("<section id=\"warnings\"><h2>Warnings</h2><ul>");
        for warning in &record.warnings {
            let _ = write!(out, "<li class=\"warning\">{}</li>", text(warning));
        }
        out.push_str("</ul></section>\n");
    }
    out.push_str("<section id=\"timeline\"><h2>Timeline</h2>");
    out.push_str("<p class=\"legend muted\"><span><i class=\"swatch\" style=\"background:#e0e0e0\"></i>waiting (needs met → submitted)</span><span><i class=\"swatch\" style=\"background:#66bb6a\"></i>running in JOB</span><span><i class=\"swatch\" style=\"background:#9e9e9e\"></i>rolling batch</span><span><i class=\"swatch\" style=\"background:#7e57c2\"></i>handoff from the upstream finish</span></p>");
    let _ = writeln!(
        out,
        "<div class=\"scroll\">{}</div></section>",
        gantt::svg(record)
    );
    out.push_str("<section id=\"graph\"><h2>Step graph</h2>");
    out.push_str("<p class=\"legend muted\"><span>→ needs</span><span style=\"color:#8e24aa\">⇢ failure handler (dashed)</span></p>");
    let _ = writeln!(
        out,
        "<div class=\"scroll dag\">{}</div></section>",
        dag::svg(&record.steps, &edges)
    );
    out.push_str("<section id=\"steps\"><h2>Steps</h2>\n");
    for step in &record.steps {
        step_details(&mut out, step);
    }
    out.push_str("</section>\n</body>\n</html>\n");
    out
}

fn header(out: &mut String, record: &RunRecord) {
    let _ = write!(
        out,
        "<header><h1>{} <span class=\"muted\">run {}</span></h1><table class=\"header\">",
        text(&record.plan),
        text(&record.run_id)
    );
    let mut row = |name: &str, value: String| {
        let _ = write!(out, "<tr><th>{name}</th><td>{value}</td></tr>");
    };
    row("plan file", text(&record.plan_path));
    row("protocol", text(&record.protocol));
    let target = match &record.target {
        Some(crate::executor::events::RunTarget::Emulator { endpoint, sandbox }) => {
            format!("local emulator at {endpoint}, host sandboxes in {sandbox}")
        }
        Some(crate::executor::events::RunTarget::Remote { endpoint }) => {
            format!("JOB at {endpoint}")
        }
        None => "-".to_owned(),
    };
    row("target", text(&target));
    row("run id", text(&record.run_id));
    row("started", text(record.started_at.as_deref().unwrap_or("-")));
    let duration = match (record.started(), record.finished()) {
        (Some(a), Some(b)) => human((b - a).to_std().unwrap_or_default()),
        _ => "-".to_owned(),
    };
    row("duration", text(&duration));
    let exit = match record.exit_code {
        Some(code) => format!(
            "<span class=\"{}\">{code}</span>: {}",
            if code == 0 { "exit-0" } else { "exit-bad" },
            text(exit_meaning(code))
        ),
        None => "none recorded: the run is still going or its process died".to_owned(),
    };
    row("exit code", exit);
    let mut counts = Vec::new();
    for status in [
        "succeeded",
        "failed",
        "interrupted",
        "unknown",
        "skipped",
        "not_run",
    ] {
        let n = record.count(status);
        if n > 0 {
            counts.push(format!(
                "<span class=\"badge st-{status}\">{n} {}</span>",
                status.replace('_', " ")
            ));
        }
    }
    row("steps", counts.join(" "));
    out.push_str("</table></header>\n");
}

fn failures(out: &mut String, record: &RunRecord) {
    let failed: Vec<&StepRecord> = record
        .steps
        .iter()
        .filter(|s| matches!(s.status.as_str(), "failed" | "unknown" | "interrupted"))
        .collect();
    if failed.is_empty() {
        return;
    }
    out.push_str("<section id=\"failures\"><h2>What went wrong</h2>");
    for step in failed {
        let _ = write!(
            out,
            "<div class=\"failure\"><a href=\"#step-{}\"><b>{}</b></a> <span class=\"badge st-{}\">{}</span> {}",
            attr(&step.id),
            text(&step.id),
            attr(&step.status),
            text(&step.status.replace('_', " ")),
            text(step.reason.as_deref().unwrap_or(""))
        );
        job_line(out, step);
        for host in step.hosts.iter().filter(|h| !h.ok) {
            let exit = host
                .exit_code
                .map(|c| format!(", exit {c}"))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<div class=\"failed-host\"><b>{}</b>: {} ({}){}",
                text(&host.host),
                text(&host.status_label),
                host.status,
                text(&exit)
            );
            if let Some(tail) = &host.log_tail {
                let _ = write!(out, "<pre class=\"log\">{}</pre>", text(tail));
            }
            out.push_str("</div>");
        }
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");
}

fn job_line(out: &mut String, step: &StepRecord) {
    let Some(job) = step.job_instance_id else {
        return;
    };
    match &step.job_url {
        Some(url) => {
            let _ = write!(
                out,
                "<div>JOB instance <a class=\"job\" href=\"{}\">{job}</a></div>",
                attr(url)
            );
        }
        None => {
            let _ = write!(out, "<div>JOB instance {job}</div>");
        }
    }
}

fn step_details(out: &mut String, step: &StepRecord) {
    let duration = step
        .timings
        .duration_ms
        .map(|ms| human(std::time::Duration::from_millis(ms)))
        .unwrap_or_else(|| "-".into());
    let ok = step.hosts.iter().filter(|h| h.ok).count();
    let _ = write!(
        out,
        "<details class=\"step\" id=\"step-{}\"><summary><span class=\"id\">{}</span> {} <span class=\"badge st-{}\">{}</span> {} <span class=\"muted\">{}</span></summary>",
        attr(&step.id),
        text(&step.id),
        if step.name == step.id {
            String::new()
        } else {
            format!("<span class=\"muted\">{}</span>", text(&step.name))
        },
        attr(&step.status),
        text(&step.status.replace('_', " ")),
        text(&duration),
        if step.hosts.is_empty() {
            String::new()
        } else {
            format!("{ok}/{} hosts ok", step.hosts.len())
        }
    );
    if let Some(reason) = &step.reason {
        let _ = write!(out, "<p>{}</p>", text(reason));
    }
    job_line(out, step);
    out.push_str("<table class=\"facts\">");
    if !step.task_names.is_empty() {
        let _ = write!(
            out,
            "<tr><th>task name</th><td>{}</td></tr>",
            step.task_names
                .iter()
                .map(|t| text(t))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    let _ = write!(out, "<tr><th>attempts</th><td>{}</td></tr>", step.attempts);
    if !step.needs.is_empty() {
        let _ = write!(
            out,
            "<tr><th>needs</th><td>{}</td></tr>",
            step.needs
                .iter()
                .map(|n| format!("<a href=\"#step-{}\">{}</a>", attr(n), text(n)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (name, value) in [
        ("started", &step.timings.started_at),
        ("submitted", &step.timings.submitted_at),
        ("finished", &step.timings.finished_at),
    ] {
        if let Some(value) = value {
            let _ = write!(out, "<tr><th>{name}</th><td>{}</td></tr>", text(value));
        }
    }
    out.push_str("</table>");
    if !step.hosts.is_empty() {
        out.push_str("<table class=\"hosts\"><tr><th>host</th><th>status</th><th>exit code</th><th>log tail</th></tr>");
        for host in &step.hosts {
            let _ = write!(
                out,
                "<tr class=\"{}\"><td>{}</td><td class=\"{}\">{} ({})</td><td>{}</td><td>{}</td></tr>",
                if host.ok { "host-ok" } else { "host-failed" },
                text(&host.host),
                if host.ok { "good" } else { "bad" },
                text(&host.status_label),
                host.status,
                host.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                host.log_tail
                    .as_deref()
                    .map(|t| format!("<pre class=\"log\">{}</pre>", text(t)))
                    .unwrap_or_default()
            );
        }
        out.push_str("</table>");
    }
    if !step.outputs.is_empty() || !step.host_outputs.is_empty() {
        out.push_str(
            "<table class=\"outputs\"><tr><th>output</th><th>host</th><th>value</th></tr>",
        );
        for (key, value) in &step.outputs {
            let _ = write!(
                out,
                "<tr><td>{}</td><td></td><td><code>{}</code></td></tr>",
                text(key),
                text(value)
            );
        }
        for (host, outputs) in &step.host_outputs {
            for (key, value) in outputs {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    text(key),
                    text(host),
                    text(value)
                );
            }
        }
        out.push_str("</table>");
    }
    out.push_str("</details>\n");
}

/// Escapes text for HTML content.
pub(crate) fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (a log's escape sequences) have no place in a page.
            c if c.is_control() && !matches!(c, '\n' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for an attribute value (the same escapes: quotes included).
pub(crate) fn attr(value: &str) -> String {
    text(value)
}

#[cfg(test)]
mod tests;
