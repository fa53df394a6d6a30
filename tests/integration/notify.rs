//! Notifications against receivers on 127.0.0.1: each format's body as a chat robot
//! would receive it, a receiver that hangs, one that answers 500, and a real rehearsal
//! that tells the team of its failure without changing its exit code.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use baton::mask::Masker;
use baton::notify::{Channel, FailedStep, Format, Message, SendOptions, When, send_all};
use serde_json::Value;

use crate::support::{baton, text};

/// What a receiver was sent: (route, body).
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// Chat robots on loopback: `/ok/<format>` answers as that robot does, `/fail` answers
/// 500, `/hang` never answers.
struct Receivers {
    runtime: tokio::runtime::Runtime,
    base: String,
    seen: Seen,
}

impl Receivers {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let seen: Seen = Arc::default();
        let app =
            axum::Router::new()
                .route(
                    "/ok/{format}",
                    post(
                        |State(seen): State<Seen>,
                         UrlPath(format): UrlPath<String>,
                         body: String| async move {
                            let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                            seen.lock().unwrap().push((format.clone(), value));
                            match format.as_str() {
                                "wecom" => r#"{"errcode":0,"errmsg":"ok"}"#.to_owned(),
                                "feishu" => r#"{"code":0,"msg":"success","data":{}}"#.to_owned(),
                                _ => "ok".to_owned(),
                            }
                        },
                    ),
                )
                .route(
                    "/fail",
                    post(|State(seen): State<Seen>, body: String| async move {
                        let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                        seen.lock().unwrap().push(("fail".into(), value));
                        (StatusCode::INTERNAL_SERVER_ERROR, "robot down")
                    }),
                )
                .route(
                    "/hang",
                    post(|State(seen): State<Seen>| async move {
                        seen.lock().unwrap().push(("hang".into(), Value::Null));
                        std::future::pending::<()>().await;
                        "never"
                    }),
                )
                .with_state(Arc::clone(&seen));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        runtime.spawn(async move { axum::serve(listener, app).await });
        Receivers {
            runtime,
            base,
            seen,
        }
    }

    fn seen(&self, route: &str) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| r == route)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn channel(name: &str, format: Format, url: String) -> Channel {
    Channel {
        name: Some(name.into()),
        format,
        url,
        secret: None,
        on: vec![When::Failure],
    }
}

fn message() -> Message {
    Message {
        when: When::Failure,
        plan: "nightly-sync".into(),
        run_id: "0196-run".into(),
        exit_code: Some(1),
        failed: vec![FailedStep {
            id: "sync-config".into(),
            status: "failed".into(),
            reason: Some("token tok-SECRET-123 refused".into()),
            hosts: vec!["0:10.0.0.2 exit 3".into()],
        }],
        duration: Some("1m40s".into()),
        report: Some("/var/log/baton/nightly.html".into()),
        gate: None,
        error: None,
    }
}

#[test]
fn each_format_reaches_its_receiver_masked() {
    let r = Receivers::start();
    let channels: Vec<Channel> = [
        ("wecom", Format::Wecom),
        ("feishu", Format::Feishu),
        ("slack", Format::Slack),
        ("json", Format::Json),
    ]
    .into_iter()
    .map(|(name, format)| channel(name, format, format!("{}/ok/{name}", r.base)))
    .collect();
    let masker = Masker::new(["tok-SECRET-123".to_owned()]);
    baton::job_api::client::install_crypto_provider();
    let client = reqwest::Client::new();
    let deliveries = r.runtime.block_on(send_all(
        &client,
        &channels,
        &message(),
        &masker,
        SendOptions::default(),
    ));
    assert!(
        deliveries.iter().all(|d| d.ok && d.attempts == 1),
        "{deliveries:?}"
    );
    let wecom = &r.seen("wecom")[0];
    assert_eq!(wecom["msgtype"], "markdown");
    let content = wecom["markdown"]["content"].as_str().unwrap();
    assert!(content.contains("nightly-sync") && content.contains("0:10.0.0.2 exit 3"));
    let feishu = &r.seen("feishu")[0];
    assert_eq!(feishu["msg_type"], "text");
    assert!(
        feishu["content"]["text"]
            .as_str()
            .unwrap()
            .contains("0196-run")
    );
    let slack = &r.seen("slack")[0];
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .starts_with("*baton: nightly-sync FAILED")
    );
    let json = &r.seen("json")[0];
    assert_eq!(json["schema"], "baton.notification");
    assert_eq!(json["failed_steps"][0]["id"], "sync-config");
    assert_eq!(json["report"], "/var/log/baton/nightly.html");
    let all = r.seen.lock().unwrap().clone();
    for (_, body) in all {
        assert!(
            !body.to_string().contains("tok-SECRET-123"),
            "masked: {body}"
        );
    }
}

#[test]
fn a_hanging_receiver_and_a_500_are_bounded_and_reported() {
    let r = Receivers::start();
    let channels = vec![
        channel("hangs", Format::Slack, format!("{}/hang", r.base)),
        channel("fails", Format::Json, format!("{}/fail", r.base)),
        channel("works", Format::Json, format!("{}/ok/json", r.base)),
    ];
    let options = SendOptions {
        timeout: Duration::from_millis(300),
        attempts: 3,
        backoff: Duration::from_millis(10),
        deadline: Duration::from_secs(5),
    };
    baton::job_api::client::install_crypto_provider();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let deliveries = r.runtime.block_on(send_all(
        &client,
        &channels,
        &message(),
        &Masker::default(),
        options,
    ));
    let took = started.elapsed();
    // Three attempts of 300ms each, not the receiver's forever.
    assert!(took < Duration::from_secs(4), "{took:?}");
    let hangs = &deliveries[0];
    assert!(!hangs.ok);
    assert_eq!(hangs.attempts, 3);
    assert!(
        hangs
            .error
            .as_deref()
            .unwrap()
            .contains("no answer within 300ms"),
        "{hangs:?}"
    );
    assert_eq!(r.seen("hang").len(), 3);
    let fails = &deliveries[1];
    assert!(!fails.ok);
    assert_eq!(fails.attempts, 3, "a 500 is tried again");
    assert!(
        fails.error.as_deref().unwrap().contains("HTTP 500"),
        "{fails:?}"
    );
    assert_eq!(r.seen("fail").len(), 3);
    assert!(deliveries[2].ok, "one bad receiver delays no other");

    // The overall deadline abandons what is still pending.
    let tight = SendOptions {
        timeout: Duration::from_secs(30),
        attempts: 1,
        backoff: Duration::ZERO,
        deadline: Duration::from_millis(300),
    };
    let started = Instant::now();
    let deliveries = r.runtime.block_on(send_all(
        &client,
        &channels[..1],
        &message(),
        &Masker::default(),
        tight,
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!deliveries[0].ok);
    assert!(
        deliveries[0]
            .error
            .as_deref()
            .unwrap()
            .contains("abandoned"),
        "{deliveries:?}"
    );
}

#[test]
fn a_failed_rehearsal_tells_the_team_and_keeps_its_exit_code() {
    let r = Receivers::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = "robotkey-0123456789abcdef";
    std::fs::write(
        dir.path().join("plan.yaml"),
        format!(
            r#"version: 1
name: nightly
scope: {{ type: biz, id: 2 }}
defaults: {{ account: root, timeout: 120 }}
hosts:
  web: {{ ips: ["0:10.0.0.1", "0:10.0.0.2"] }}
notify:
  - {{ channel: team, on: [failure] }}
  - {{ url: "{base}/ok/json", on: [failure, success] }}
steps:
  - id: sync
    targets: web
    script: {{ language: shell, content: "echo sync" }}
"#,
            base = r.base
        ),
    )
    .expect("plan");
    std::fs::write(
        dir.path().join("world.yaml"),
        "faults:\n  hosts:\n    - { host: \"0:10.0.0.2\", status: 104, exit_code: 3, log: \"boom\\n\" }\n",
    )
    .expect("world");
    std::fs::write(
        dir.path().join("profile.yaml"),
        format!(
            "notify:\n  - {{ name: team, format: wecom, url: \"{base}/ok/wecom?key={key}\" }}\n  - {{ name: broken, format: slack, url: \"{base}/fail\", on: [failure] }}\n",
            base = r.base
        ),
    )
    .expect("profile");
    let out = baton(dir.path())
        .arg("run")
        .arg(dir.path().join("plan.yaml"))
        .arg("--profile-file")
        .arg(dir.path().join("profile.yaml"))
        .arg("--report")
        .arg(dir.path().join("report.json"))
        .arg("--html")
        .arg(dir.path().join("report.html"))
        .output()
        .expect("baton run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let wecom = r.seen("wecom");
    assert_eq!(wecom.len(), 1, "the team's robot was told once");
    let content = wecom[0]["markdown"]["content"].as_str().unwrap();
    assert!(content.contains("nightly FAILED (exit 1)"), "{content}");
    assert!(content.contains("0:10.0.0.2 exit 3"), "{content}");
    assert!(content.contains("report.html"), "{content}");
    assert_eq!(r.seen("json").len(), 1, "the plan's own webhook");
    assert_eq!(r.seen("fail").len(), 3, "retried");

    let report = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
    assert!(
        report.contains("notification to broken failed after 3 attempts: HTTP 500"),
        "{report}"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("notification to broken failed"));
    let runs = dir.path().join("state").join("runs");
    let run_dir = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let journal = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap();
    let notified: Vec<Value> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "notified")
        .collect();
    assert_eq!(notified.len(), 3, "{journal}");
    assert!(
        notified
            .iter()
            .any(|v| v["channel"] == "team" && v["ok"] == true)
    );
    assert!(
        notified
            .iter()
            .any(|v| v["channel"] == "broken" && v["ok"] == false)
    );
    for written in [&report, &html, &journal] {
        assert!(
            !written.contains(key),
            "the robot key never leaves the profile"
        );
    }
    let shown = baton(dir.path())
        .args(["runs", "show", "last"])
        .output()
        .expect("runs show");
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("notification to broken failed"),
        "{}",
        text(&shown)
    );
}

#[test]
fn a_plan_naming_an_unknown_channel_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("plan.yaml"),
        "version: 1\nname: p\nscope: { type: biz, id: 2 }\ndefaults: { account: root }\nhosts: { web: { ips: [\"0:10.0.0.1\"] } }\nnotify:\n  - { channel: nobody }\nsteps:\n  - { id: s, targets: web, script: { language: shell, content: echo } }\n",
    )
    .expect("plan");
    let out = baton(dir.path())
        .arg("run")
        .arg(dir.path().join("plan.yaml"))
        .output()
        .expect("baton run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("channel `nobody`"));
    let runs = dir.path().join("state").join("runs");
    assert!(
        std::fs::read_dir(&runs).map_or(true, |mut d| d.next().is_none()),
        "no run was recorded"
    );
}

#[test]
fn a_notify_rule_with_both_or_neither_target_is_a_located_plan_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("plan.yaml"),
        "version: 1\nname: p\nscope: { type: biz, id: 2 }\nhosts: { web: { ips: [\"0:10.0.0.1\"] } }\nnotify:\n  - { on: [failure] }\nsteps:\n  - { id: s, targets: web, script: { language: shell, content: echo } }\n",
    )
    .expect("plan");
    let out = baton(dir.path())
        .arg("validate")
        .arg(dir.path().join("plan.yaml"))
        .output()
        .expect("baton validate");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plan.yaml:6:"), "{stderr}");
    assert!(stderr.contains("`channel` or gives a `url`"), "{stderr}");
}

#[test]
fn an_unreachable_job_is_told_with_its_error_and_keeps_exit_3() {
    let r = Receivers::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("plan.yaml"),
        format!(
            "version: 1\nname: p\nscope: {{ type: biz, id: 2 }}\ndefaults: {{ account: root }}\nhosts: {{ web: {{ ips: [\"0:10.0.0.1\"] }} }}\nnotify:\n  - {{ url: \"{}/ok/json\" }}\nsteps:\n  - {{ id: s, targets: web, script: {{ language: shell, content: echo }} }}\n",
            r.base
        ),
    )
    .expect("plan");
    let mut cmd = baton(dir.path());
    cmd.arg("run")
        .arg(dir.path().join("plan.yaml"))
        .args(["--endpoint", "http://127.0.0.1:1"]);
    crate::support::app_credentials(&mut cmd, "app-secret-never-told");
    let out = cmd.output().expect("baton run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let told = r.seen("json");
    assert_eq!(told.len(), 1, "{}", text(&out));
    assert_eq!(told[0]["exit_code"], 3);
    let error = told[0]["error"].as_str().unwrap_or("");
    assert!(error.contains("JOB is unreachable"), "{}", told[0]);
    assert!(!told[0].to_string().contains("app-secret-never-told"));
}

#[test]
fn a_run_that_cannot_start_tells_the_failure_channels() {
    let r = Receivers::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("plan.yaml"),
        format!(
            "version: 1\nname: p\nscope: {{ type: biz, id: 2 }}\ndefaults: {{ account: root }}\nhosts: {{ web: {{ ips: [\"0:10.0.0.1\"] }} }}\nnotify:\n  - {{ url: \"{}/ok/json\" }}\nsteps:\n  - {{ id: s, targets: web, script: {{ language: shell, content: echo }} }}\n",
            r.base
        ),
    )
    .expect("plan");
    // The callback receiver's port is taken: the run stops before any step (exit 3).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let out = baton(dir.path())
        .arg("run")
        .arg(dir.path().join("plan.yaml"))
        .arg("--callback-listen")
        .arg(taken.local_addr().expect("addr").to_string())
        .arg("--sandbox")
        .arg(dir.path().join("sandbox"))
        .output()
        .expect("baton run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let told = r.seen("json");
    assert_eq!(told.len(), 1, "{}", text(&out));
    assert_eq!(told[0]["event"], "failure");
    assert_eq!(told[0]["exit_code"], 3);
    assert!(
        told[0]["error"].as_str().unwrap_or("").contains("callback"),
        "{}",
        told[0]
    );
}

#[test]
fn a_gate_tells_only_the_approval_channels_while_it_waits() {
    let r = Receivers::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("plan.yaml"),
        format!(
            r#"version: 1
name: go-live
scope: {{ type: biz, id: 2 }}
defaults: {{ account: root, timeout: 120 }}
hosts:
  web: {{ ips: ["0:10.0.0.1"] }}
notify:
  - {{ url: "{base}/ok/json", on: [approval] }}
  - {{ url: "{base}/ok/slack", format: slack, on: [failure] }}
steps:
  - id: cut-over
    approve: {{ message: "approve the cut-over", timeout: 10m }}
  - id: switch
    needs: [cut-over]
    targets: web
    script: {{ language: shell, content: "echo switched" }}
"#,
            base = r.base
        ),
    )
    .expect("plan");
    let child = baton(dir.path())
        .arg("run")
        .arg(dir.path().join("plan.yaml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("baton run");
    // The run waits at the gate until it is answered, so the notice must arrive first.
    let deadline = Instant::now() + Duration::from_secs(60);
    let told = loop {
        let told = r.seen("json");
        if !told.is_empty() || Instant::now() > deadline {
            break told;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        told.len(),
        1,
        "the approval channel is told while the gate waits"
    );
    assert_eq!(told[0]["event"], "approval");
    let gate = told[0]["gate"].as_str().unwrap_or_default();
    assert!(gate.starts_with("cut-over: approve the cut-over"), "{gate}");
    let run_id = told[0]["run_id"].as_str().expect("run id").to_owned();
    assert!(
        gate.contains(&format!("baton approve {run_id} cut-over")),
        "{gate}"
    );
    let approve = baton(dir.path())
        .args(["approve", &run_id, "cut-over", "--by", "ana"])
        .output()
        .expect("baton approve");
    assert_eq!(approve.status.code(), Some(0), "{}", text(&approve));
    let out = child.wait_with_output().expect("baton run ends");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(r.seen("slack").is_empty(), "failure channels hear nothing");
    let journal = std::fs::read_to_string(
        dir.path()
            .join("state")
            .join("runs")
            .join(&run_id)
            .join("journal.jsonl"),
    )
    .expect("journal");
    assert!(
        journal
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["event"] == "notified" && v["when"] == "approval" && v["ok"] == true),
        "{journal}"
    );
}
