use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::*;
use crate::executor::events::{
    HostCounts, HostOutcome, RunEvent, RunTarget, StepFinished, StepInfo, StepRef, StepStatus,
};
use crate::job_api::types::{JobInstanceId, RunStatus};

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(1_764_000_000_000 + ms).unwrap()
}

fn step_ref(i: usize) -> StepRef {
    StepRef {
        index: i,
        id: format!("step-{i}"),
    }
}

/// A finished run of `n` steps in a chain of fan-outs (step i needs step i/2), every
/// step succeeding except the last, which fails on one host.
fn record(n: usize) -> RunRecord {
    let mut record = RunRecord::default();
    record.apply(&RunEvent::RunStarted {
        run_id: "0196-run".into(),
        plan: "release <web>".into(),
        plan_path: "/srv/release.yaml".into(),
        protocol: "v3".into(),
        target: RunTarget::Emulator {
            endpoint: "http://127.0.0.1:1".into(),
            sandbox: "/tmp/sb".into(),
        },
        steps: (0..n)
            .map(|i| StepInfo {
                step: step_ref(i),
                name: format!("Step {i}"),
                needs: if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("step-{}", (i - 1) / 2)]
                },
                handler: false,
            })
            .collect(),
        at: at(0),
    });
    for i in 0..n {
        let t = i as i64 * 10;
        let failed = i + 1 == n;
        record.apply(&RunEvent::StepStarted {
            step: step_ref(i),
            at: at(t),
        });
        record.apply(&RunEvent::StepSubmitting {
            step: step_ref(i),
            attempt: 1,
            task_name: format!("release [baton 0196-run step-{i}#1]"),
        });
        record.apply(&RunEvent::StepSubmitted {
            step: step_ref(i),
            attempt: 1,
            job_instance_id: JobInstanceId(1000 + i as u64),
            reconciled: false,
            handoff: Some(Duration::from_micros(300)),
            at: at(t + 2),
        });
        for k in 1..=2 {
            record.apply(&RunEvent::StepProgress {
                step: step_ref(i),
                job_instance_id: JobInstanceId(1000 + i as u64),
                status: RunStatus::Running,
                hosts: HostCounts::default(),
                batch: Some((k, 2)),
                at: Some(at(t + 2 + i64::from(k) * 3)),
            });
        }
        record.apply(&RunEvent::StepFinished {
            step: step_ref(i),
            outcome: Box::new(StepFinished {
                status: if failed {
                    StepStatus::Failed
                } else {
                    StepStatus::Succeeded
                },
                job_status: Some(if failed {
                    RunStatus::Fail
                } else {
                    RunStatus::Success
                }),
                job_instance_id: Some(JobInstanceId(1000 + i as u64)),
                attempts: 1,
                hosts: vec![HostOutcome {
                    host: "0:10.0.0.1".into(),
                    status: if failed { 4 } else { 9 },
                    status_label: if failed { "script failed" } else { "success" }.into(),
                    exit_code: Some(if failed { 3 } else { 0 }),
                    ok: !failed,
                    log_tail: failed.then(|| "disk full <on> /data\n".to_owned()),
                }],
                outputs: BTreeMap::from([("version".to_owned(), "1.2.3".to_owned())]),
                host_outputs: BTreeMap::new(),
                error: failed.then(|| "1 of 1 hosts failed".to_owned()),
                duration: Duration::from_millis(8),
                job_ms: Some(7),
                observed: None,
            }),
            at: at(t + 10),
        });
    }
    record.apply(&RunEvent::RunFinished {
        exit_code: 1,
        at: at(n as i64 * 10 + 1),
    });
    record
}

#[test]
fn a_page_holds_header_timeline_graph_and_collapsed_steps() {
    let page = render(&record(5));
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("release &lt;web&gt;"), "plan name escaped");
    assert!(page.contains("a step failed; its dependents did not run"));
    assert!(page.contains("local emulator at http://127.0.0.1:1"));
    assert_eq!(page.matches("<details class=\"step\"").count(), 5);
    assert!(!page.contains("<details class=\"step\" open"));
    assert!(page.contains("disk full &lt;on&gt; /data"));
    assert_eq!(page.matches("class=\"seg-batch\"").count(), 10);
    assert_eq!(page.matches("class=\"handoff\"").count(), 5);
    assert_eq!(page.matches("class=\"edge-needs\"").count(), 4);
    // Self-contained: nothing is fetched when the file is opened.
    for needle in ["<script", "<link", "src=\"http", "@import", "url(http"] {
        assert!(!page.contains(needle), "{needle}");
    }
}

#[test]
fn handler_edges_are_drawn_apart_from_needs() {
    let mut record = record(5);
    // step-4 needs step-1 and runs after its failures.
    record.steps[4].runs_after_failures = true;
    let page = render(&record);
    assert_eq!(page.matches("class=\"edge-handler\"").count(), 1);
    assert_eq!(page.matches("class=\"edge-needs\"").count(), 3);
    assert!(page.contains("stroke-dasharray"));
}

#[test]
fn job_links_appear_when_configured() {
    let mut record = record(2);
    record.link_jobs(&crate::report::links::JobWeb::new(
        "https://job.example.com",
        "biz",
        "2",
    ));
    let page = render(&record);
    assert!(page.contains("href=\"https://job.example.com/biz/2/execute/task/1001\""));
    assert!(
        record
            .table()
            .contains("https://job.example.com/biz/2/execute/task/1000")
    );
    assert!(
        record
            .to_json()
            .contains("\"job_url\": \"https://job.example.com/biz/2/execute/task/1000\"")
    );
}

/// A 1,000-step run stays a page a browser opens at once: bounded size, every step
/// present and collapsed, rendered quickly.
#[test]
fn a_thousand_steps_render_small_and_fast() {
    let record = record(1000);
    let started = Instant::now();
    let page = render(&record);
    let took = started.elapsed();
    assert_eq!(page.matches("<details class=\"step\"").count(), 1000);
    assert_eq!(page.matches("<g class=\"row\"").count(), 1000);
    assert_eq!(page.matches("class=\"edge-needs\"").count(), 999);
    assert!(page.len() < 4 * 1024 * 1024, "{} bytes", page.len());
    // The graph grows down the page, where a reader scrolls, not sideways.
    let needle = "<div class=\"scroll dag\"><svg width=\"";
    let graph = &page[page.find(needle).unwrap() + needle.len()..];
    let width: f64 = graph[..graph.find('"').unwrap()].parse().unwrap();
    assert!(width < 5000.0, "graph {width}px wide");
    assert!(took < Duration::from_secs(20), "{took:?}");
    eprintln!("1,000 steps: {} bytes in {took:?}", page.len());
}
